"""Studies layer: the time study. Cycles per tick and per sample by phase, per core, from the timed chip
(the firmware's work counts x the calibrated cycle costs of emulator/chip/configs/cycle_costs.yaml), against
the 1 ms tick at each clock level (150 and 300 MHz), with the dominant phase named.

Inputs are seeded random frames (3 N(0, 1), the emulator tests' recipe): the cycles depend on the spike
counts, not on what the frames mean. The paper names only the dominant phase ("most cycles in the
E-prop function", a secondary summary); its cycle counts are not known to us.

    s2eprop study time --out DIR [--samples N]   ->  DIR/result.json, time_phases.png, time_ticks.png
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from s2eprop.emulator.chip.description import PHASES
from s2eprop.host.config import ExperimentConfig
from s2eprop.host.errors import HostError
from s2eprop.host.studies.common import save_figure, study_folder, write_result
from s2eprop.host.weights import init_weights

DEFAULT_CLOCKS_MHZ = (150, 300)
DEFAULT_SAMPLES = 10
# the paper's phase names for the timed chip's phases (docs/timing.md "Charging")
PAPER_PHASE = {"neuron_update": "neuron update", "packet_handling": "spike communication",
               "trace_update": "eligibility traces", "learning_update": "learning signal and Adam",
               "overhead": "overhead (interrupts, timer, DMA)"}


def random_samples(cfg: ExperimentConfig, n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    net = cfg.network
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((n_samples, net.n_steps, net.n_in))).astype(np.float32)
    return x, rng.integers(0, net.n_out, n_samples)


def profile_clock(cfg: ExperimentConfig, clock_mhz: float, x: np.ndarray, y: np.ndarray,
                  weights_seed: int = 7) -> dict[str, Any]:
    """Train the samples on the timed chip at one clock; cycles by phase per core, tick utilisation."""
    from s2eprop.host.session.train import make_trainer

    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, on_loss="count"),
                              chip=dataclasses.replace(cfg.chip, mode="timed", clock_mhz=float(clock_mhz))).validate()
    trainer = make_trainer(cfg, "emulator", init_weights(cfg.network, weights_seed), None)
    try:
        chip = trainer.timing
        chip.record(True)  # every tick of every core into the window (a few samples only)
        for i in range(len(x)):
            trainer.train_batch(x[i], y[i:i + 1])
        summary = trainer.timing_summary()
        arrays = chip.arrays()
        window = chip.window()
        budget = chip.budget_cycles
        roles = [c.role for c in trainer.plan.cores]
    finally:
        trainer.close()
    return profile_from_arrays(arrays, window, budget, len(x), summary, roles)


def profile_from_arrays(arrays: dict[str, np.ndarray], window: np.ndarray, budget_cycles: float, n_samples: int,
                        summary: dict[str, Any], roles: Sequence[int]) -> dict[str, Any]:
    """The study's numbers from the compliance record's arrays (pure arithmetic, tested on its own)."""
    phase = np.asarray(arrays["phase_cycles"], dtype=float)          # (cores, phases)
    ticks = np.asarray(arrays["ticks"], dtype=float)
    util = window["cycles"] / budget_cycles
    per_core = []
    for c in range(phase.shape[0]):
        mine = util[window["core"] == c]
        per_core.append({
            "core": c, "role": "+".join(n for bit, n in ((1, "neuron"), (2, "readout")) if roles[c] & bit),
            "cycles_per_sample": dict(zip(PHASES, np.round(phase[c] / n_samples, 1).tolist())),
            "cycles_per_tick_mean": dict(zip(PHASES, np.round(phase[c] / max(ticks[c], 1), 1).tolist())),
            "ticks": int(ticks[c]), "overruns": int(arrays["overruns"][c]),
            "max_tick_utilisation": round(float(arrays["worst_cycles"][c]) / budget_cycles, 4),
            "median_tick_utilisation": round(float(np.median(mine)), 4) if len(mine) else None})
    totals = phase.sum(axis=0)
    share = totals / totals.sum()
    dominant = PHASES[int(np.argmax(totals))]
    return {"budget_cycles_per_tick": round(budget_cycles, 1), "samples": n_samples,
            "ticks_per_sample": round(float(ticks.max()) / n_samples, 2),
            "cycles_per_sample_by_phase": dict(zip(PHASES, np.round(totals / n_samples, 1).tolist())),
            "phase_share": dict(zip(PHASES, np.round(share, 4).tolist())),
            "dominant_phase": dominant, "dominant_phase_paper_name": PAPER_PHASE[dominant],
            "overruns": int(summary["overruns"]), "core_ticks": int(summary["ticks"]),
            "real_time": int(summary["overruns"]) == 0,
            "max_tick_utilisation": summary["max_tick_utilisation"],
            "p99_tick_utilisation": summary["p99_tick_utilisation"],
            "median_tick_utilisation": round(float(np.median(util)), 4) if len(util) else None,
            "late_packets": int(summary["late_packets"]), "cycle_costs_source": summary["cycle_costs_source"],
            "per_core": per_core,
            "tick_window": {"core": window["core"].tolist(), "tick": window["tick"].tolist(),
                            "utilisation": np.round(util, 4).tolist()}}


def plot_phases(prof: dict[str, Any], path: Path) -> Path:
    from s2eprop.host.plots.figures import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    cores = [c["core"] for c in prof["per_core"]]
    bottom = np.zeros(len(cores))
    for p in PHASES:
        vals = np.array([c["cycles_per_sample"][p] for c in prof["per_core"]]) / 1e6
        ax.bar(cores, vals, bottom=bottom, label=PAPER_PHASE[p])
        bottom += vals
    ax.set_xticks(cores)
    ax.set_xlabel("core")
    ax.set_ylabel("Mcycles per training sample")
    ax.set_title(f"cycles by phase (dominant: {prof['dominant_phase_paper_name']}, "
                 f"{100 * prof['phase_share'][prof['dominant_phase']]:.0f} %)", fontsize=10)
    ax.legend(fontsize=7)
    return save_figure(plt, fig, path)


def plot_ticks(profiles: dict[str, dict[str, Any]], path: Path) -> Path:
    """Utilisation of every tick of the first sample, core 0 and core 1, at each clock."""
    from s2eprop.host.plots.figures import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    for (mhz, prof), color in zip(profiles.items(), ("tab:red", "tab:blue", "tab:green")):
        w = prof["tick_window"]
        core, tick, util = (np.asarray(w[k]) for k in ("core", "tick", "utilisation"))
        first = tick < np.ceil(prof["ticks_per_sample"]) + 1
        for c, ls in ((0, "-"), (1, ":")):
            sel = first & (core == c)
            order = np.argsort(tick[sel])
            ax.plot(tick[sel][order], 100 * util[sel][order], ls, color=color, lw=1,
                    label=f"{mhz} MHz, core {c}" + (" (readout)" if c == 0 else ""))
            over = util[sel][order] > 1.0
            if over.any():
                ax.plot(tick[sel][order][over], 100 * util[sel][order][over], "v", color=color, ms=5, ls="none",
                        label=f"{mhz} MHz, core {c}: overrun ({int(over.sum())} ticks)")
    ax.axhline(100, color="k", lw=1, ls="--", label="1 ms tick")
    ax.set_xlabel("tick (1 ms) of the first training sample")
    ax.set_ylabel("cycles used / cycles in 1 ms (%)")
    top = max(100.0, float(ax.get_ylim()[1]))
    ax.set_ylim(0, top * 1.35)  # room above the peaks for the legend
    ax.legend(fontsize=7, ncol=3, loc="upper center")
    return save_figure(plt, fig, path)


def run(out_dir: Path, cfg: ExperimentConfig | None = None, n_samples: int = DEFAULT_SAMPLES,
        clocks_mhz: Sequence[float] = DEFAULT_CLOCKS_MHZ, seed: int = 1234) -> dict[str, Any]:
    """The time study into `out_dir` (result.json, time_phases.png, time_ticks.png)."""
    if n_samples < 1:
        raise HostError(f"study time: --samples must be >= 1, got {n_samples}")
    out_dir = study_folder(out_dir, "time")
    cfg = cfg or ExperimentConfig()
    x, y = random_samples(cfg, n_samples, seed)
    profiles = {f"{mhz:g}": profile_clock(cfg, mhz, x, y) for mhz in clocks_mhz}
    last = profiles[f"{max(clocks_mhz):g}"]  # the fastest clock: fewest late packets, the work as designed
    figures = {"phases": plot_phases(last, out_dir / "time_phases.png"),
               "ticks": plot_ticks(profiles, out_dir / "time_ticks.png")}
    result = {"inputs": f"{n_samples} samples of 3 N(0, 1) frames, seed {seed}", "clocks_mhz": list(clocks_mhz),
              "by_clock_mhz": profiles, "dominant_phase": last["dominant_phase"],
              "dominant_phase_paper_name": last["dominant_phase_paper_name"],
              "paper": "most cycles in the E-prop (eligibility trace) function [secondary summary]; "
                       "real time at 1 ms per step"}
    return write_result(out_dir, "time", result, figures)


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for mhz, p in result["by_clock_mhz"].items():
        lines.append(f"{mhz} MHz: {p['cycles_per_sample_by_phase'][p['dominant_phase']]:,.0f} of "
                     f"{sum(p['cycles_per_sample_by_phase'].values()):,.0f} cycles per sample (all cores) in "
                     f"{p['dominant_phase_paper_name']}; tick utilisation median {100 * p['median_tick_utilisation']:.0f} %, "
                     f"p99 {100 * (p['p99_tick_utilisation'] or 0):.0f} %, max {100 * p['max_tick_utilisation']:.0f} %; "
                     f"{p['overruns']} overruns in {p['core_ticks']:,} core-ticks: "
                     + ("real time" if p["real_time"] else "not real time"))
    return lines
