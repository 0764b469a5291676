"""Studies layer: the energy study. Energy per training sample and per epoch on the emulated chip:
active cycles (from the timed chip, host/studies/time_profile.py) x energy per cycle, plus the started
PEs' idle power and the chip's static power over the sample's time; against a V100 estimate of the
PyTorch port's batched training step (host/studies/gpu_estimate.py). Every constant and its source:
host/studies/energy_constants.yaml. No GPU is measured: the V100 figure is a spec-sheet estimate.

    s2eprop study energy --out DIR [--samples N]   ->  DIR/result.json, energy.png
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from s2eprop.host.config import ExperimentConfig
from s2eprop.host.errors import ConfigError
from s2eprop.host.studies import time_profile
from s2eprop.host.studies.common import save_figure, study_folder, write_result

CONSTANTS_FILE = Path(__file__).resolve().parent / "energy_constants.yaml"
_CHIP_KEYS = ("static_power_w", "all_pes_active_power_w", "pes_measured", "measured_clock_hz",
              "voltage_v_by_clock_hz", "dynamic_energy_scales_with", "pe_idle_power_fraction")
_GPU_KEYS = ("name", "fp32_peak_flops", "memory_bandwidth_bytes_per_s", "board_power_w",
             "achieved_bandwidth_fraction", "achieved_flops_fraction", "kernel_launch_s", "batch_size")


@dataclass(frozen=True)
class ChipPower:
    """The chip's power model at one clock level."""

    clock_hz: float
    energy_per_cycle_j: float   # one active PE cycle
    pe_idle_power_w: float      # a started PE between handlers
    static_power_w: float       # the chip with its PEs off

    @classmethod
    def at(cls, chip: Mapping[str, Any], clock_hz: float) -> "ChipPower":
        volts = {int(k): float(v) for k, v in chip["voltage_v_by_clock_hz"].items()}
        if int(clock_hz) not in volts:
            raise ConfigError(f"energy constants: no voltage for clock {clock_hz / 1e6:g} MHz in "
                              f"chip.voltage_v_by_clock_hz ({sorted(v / 1e6 for v in volts)} MHz): add it")
        f0 = float(chip["measured_clock_hz"])
        pe_power_f0 = (float(chip["all_pes_active_power_w"]) - float(chip["static_power_w"])) / float(chip["pes_measured"])
        e_cycle = pe_power_f0 / f0 * (volts[int(clock_hz)] / volts[int(f0)]) ** 2
        return cls(float(clock_hz), e_cycle, float(chip["pe_idle_power_fraction"]) * e_cycle * float(clock_hz),
                   float(chip["static_power_w"]))


def load_constants(path: Path = CONSTANTS_FILE) -> dict[str, Any]:
    """The energy constants file, its sections and keys checked (an error names the file and the key)."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"energy constants {path}: cannot read ({exc})") from None
    for section, keys in (("chip", _CHIP_KEYS), ("gpu", _GPU_KEYS), ("workload", ("samples_per_epoch",))):
        missing = [k for k in keys if k not in (raw or {}).get(section, {})]
        if missing:
            raise ConfigError(f"energy constants {path}: {section}.{missing[0]} is missing: add it with its source")
    if raw["chip"]["dynamic_energy_scales_with"] != "voltage_squared":
        raise ConfigError(f"energy constants {path}: chip.dynamic_energy_scales_with must be voltage_squared")
    return raw


def chip_energy(busy_cycles: Sequence[float], duration_s: float, power: ChipPower) -> dict[str, float]:
    """Energy of the started PEs' `busy_cycles` over `duration_s` (one tick or one sample), in joules:
    active cycles x energy per cycle + each PE's idle time x idle power + static power x duration."""
    busy = np.asarray(busy_cycles, dtype=float)
    idle_s = np.clip(duration_s - busy / power.clock_hz, 0.0, None)
    active = float(busy.sum()) * power.energy_per_cycle_j
    idle = float(idle_s.sum()) * power.pe_idle_power_w
    static = power.static_power_w * duration_s
    return {"active_j": active, "idle_j": idle, "static_j": static, "total_j": active + idle + static}


def chip_sample_energy(prof: dict[str, Any], power: ChipPower, tick_s: float, samples_per_epoch: int) -> dict[str, Any]:
    busy = [sum(c["cycles_per_sample"].values()) for c in prof["per_core"]]
    duration = prof["ticks_per_sample"] * tick_s
    e = chip_energy(busy, duration, power)
    return {"clock_mhz": power.clock_hz / 1e6, "energy_per_cycle_pj": round(power.energy_per_cycle_j * 1e12, 3),
            "pe_idle_power_mw": round(power.pe_idle_power_w * 1e3, 4), "static_power_w": power.static_power_w,
            "sample_s": duration, "busy_cycles_per_sample": round(float(sum(busy))), "real_time": prof["real_time"],
            "energy_j_per_sample": e, "energy_j_per_epoch": e["total_j"] * samples_per_epoch,
            "average_power_w": e["total_j"] / duration}


def plot(result: dict[str, Any], path: Path) -> Path:
    """Left: the chip's energy per sample by part (linear); right: chip and V100 totals (log with the V100's,
    linear without: a log axis would draw 9 against 11 mJ as about 1:20)."""
    from s2eprop.host.plots.figures import pyplot

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1, 1.2]})
    names = [f"{mhz} MHz" + ("" if c["real_time"] else "\n(overruns)") for mhz, c in result["chip"].items()]
    bottom = np.zeros(len(names))
    for part, label in (("active_j", "active cycles"), ("idle_j", "PE idle"), ("static_j", "static")):
        vals = np.array([c["energy_j_per_sample"][part] for c in result["chip"].values()]) * 1e3
        ax1.bar(names, vals, bottom=bottom, label=label)
        bottom += vals
    ax1.set_ylabel("mJ per training sample")
    ax1.set_title("SpiNNaker 2 (emulated, 12 cores)", fontsize=10)
    ax1.legend(fontsize=7)
    totals = {f"chip {n}": b for n, b in zip(names, bottom)}
    gpu = result.get("gpu") or {}
    if "energy_j_per_sample" in gpu:
        totals[f"V100 estimate\nbatch {gpu['batch_size']}"] = gpu["energy_j_per_sample"] * 1e3
    ax2.bar(list(totals), list(totals.values()), color=["tab:blue"] * len(names) + ["tab:red"])
    for i, v in enumerate(totals.values()):
        ax2.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    if len(totals) > len(names):  # the V100 bar is an order of magnitude taller: log, from a tenth of the least
        ax2.set_yscale("log")
        ax2.set_ylim(min(totals.values()) / 10, max(totals.values()) * 3)
    ax2.set_ylabel("mJ per training sample" + (" (log)" if len(totals) > len(names) else ""))
    ratio = result.get("ratio_gpu_over_chip")
    ax2.set_title("total" + (f": V100 / chip = {ratio:.1f}x (paper: 12x)" if ratio else
                             ": no V100 estimate (PyTorch absent or --no-gpu)"), fontsize=10)
    return save_figure(plt, fig, path)


def run(out_dir: Path, cfg: ExperimentConfig | None = None, n_samples: int = 10,
        clocks_mhz: Sequence[float] = time_profile.DEFAULT_CLOCKS_MHZ, gpu: bool = True,
        constants: Path = CONSTANTS_FILE, seed: int = 1234) -> dict[str, Any]:
    """The energy study into `out_dir` (result.json, energy.png)."""
    from s2eprop.host.errors import HostError

    if n_samples < 1:
        raise HostError(f"study energy: --samples must be >= 1, got {n_samples}")
    out_dir = study_folder(out_dir, "energy")
    cfg = cfg or ExperimentConfig()
    const = load_constants(constants)
    x, y = time_profile.random_samples(cfg, n_samples, seed)
    per_epoch = int(const["workload"]["samples_per_epoch"])
    chip = {}
    for mhz in clocks_mhz:
        prof = time_profile.profile_clock(cfg, mhz, x, y)
        chip[f"{mhz:g}"] = chip_sample_energy(prof, ChipPower.at(const["chip"], mhz * 1e6), 1e-3, per_epoch)
    result: dict[str, Any] = {"constants_file": str(constants), "constants": const, "chip": chip,
                              "inputs": f"{n_samples} samples of 3 N(0, 1) frames, seed {seed}",
                              "paper_ratio_vs_v100": const["workload"]["paper_energy_ratio_vs_v100"]}
    result["gpu"] = gpu_part(cfg, const) if gpu else {"skipped": "gpu=False"}
    if "energy_j_per_sample" in result["gpu"]:
        fastest = chip[f"{max(clocks_mhz):g}"]
        result["ratio_gpu_over_chip"] = round(result["gpu"]["energy_j_per_sample"]
                                              / fastest["energy_j_per_sample"]["total_j"], 2)
        result["ratio_at_clock_mhz"] = fastest["clock_mhz"]
        result["gpu"]["energy_j_per_epoch"] = result["gpu"]["energy_j_per_sample"] * per_epoch
    return write_result(out_dir, "energy", result, {"energy": plot(result, out_dir / "energy.png")})


def gpu_part(cfg: ExperimentConfig, const: dict[str, Any]) -> dict[str, Any]:
    """The V100 estimate, or why there is none (no PyTorch)."""
    from s2eprop.host.errors import HostError
    from s2eprop.host.studies import gpu_estimate

    batch = int(const["gpu"]["batch_size"])
    try:
        trace = gpu_estimate.trace_training_step(cfg.network, batch)
    except HostError as exc:
        return {"skipped": str(exc)}
    out = gpu_estimate.price(trace, const["gpu"], batch)
    out.update(measured=False, note="no GPU lent to this study: spec-sheet V100 estimate of the PyTorch port's "
                                    "kernels (traced on the CPU), see energy_constants.yaml")
    return out


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"{mhz} MHz: {1e3 * c['energy_j_per_sample']['total_j']:.2f} mJ per sample (active "
             f"{1e3 * c['energy_j_per_sample']['active_j']:.2f}, PE idle {1e3 * c['energy_j_per_sample']['idle_j']:.2f}, "
             f"static {1e3 * c['energy_j_per_sample']['static_j']:.2f}), {c['energy_j_per_epoch']:.0f} J per epoch"
             + ("" if c["real_time"] else " (not real time)") for mhz, c in result["chip"].items()]
    g = result["gpu"]
    if "energy_j_per_sample" in g:
        lines.append(f"V100 estimate (spec sheet, batch {g['batch_size']}): {1e3 * g['energy_j_per_sample']:.1f} mJ per "
                     f"sample: {result['ratio_gpu_over_chip']:.1f}x the chip at {result['ratio_at_clock_mhz']:g} MHz "
                     f"(paper: {result['paper_ratio_vs_v100']}x)")
    else:
        lines.append(f"GPU: {g['skipped']}")
    return lines
