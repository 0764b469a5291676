"""Studies layer: the memory study. Per-core byte map of the firmware's arena (header, weights, Adam
state, traces, neuron and readout state, buffers) from the firmware's own layout (fw_layout through
cffi), plus code and stack from the ARM build's size report when `make arm` has made one; the
training state against the paper's 680 KB; and E-prop against BPTT over sequence length and network
size (host/studies/memory_scaling.py).

    s2eprop study memory --out DIR     ->  DIR/result.json, memory_per_core.png, eprop_vs_bptt.png
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from s2eprop.firmware.arm_size import SIZE_JSON
from s2eprop.emulator.chip.description import default_chip
from s2eprop.host.config import ExperimentConfig
from s2eprop.host.mapping.memory import memory_map
from s2eprop.host.studies import memory_scaling
from s2eprop.host.studies.common import save_figure, study_folder, write_result

PAPER_TRAINING_BYTES = 680 * 1024  # "680 KB memory for training" (abstract); read as KiB, as 25 K weights is
# the paper's reconstruction (reference notes 3.2): 7 floats per input/recurrent synapse, 4 per readout synapse
PAPER_LAYOUT_FLOATS = {"per_synapse": 7, "per_readout_synapse": 4}
ARENA_PARTS = ("header", "weights", "optimizer", "traces", "neuron", "readout", "buffers")
IMAGE_PARTS = ("code", "stack")
_ACCOUNTING = {"weights": "weights_bytes", "optimizer": "optimizer_bytes", "traces": "trace_bytes",
               "neuron": "neuron_bytes", "readout": "readout_bytes", "buffers": "buffer_bytes"}


def arm_image_sizes(report_path: Path = SIZE_JSON) -> dict[str, Any] | None:
    """Code (text + data, which the image copies into SRAM) and stack of the ARM build, None without one."""
    try:
        rep = json.loads(Path(report_path).read_text())
        return {"code_bytes": int(rep["text_bytes"]) + int(rep["data_bytes"]), "bss_bytes": int(rep["bss_bytes"]),
                "stack_bytes": int(rep["stack_bytes"]), "arena_room_bytes": int(rep["arena_room_bytes"]),
                "source_hash": rep.get("source_hash"), "report": str(report_path)}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def core_parts(core: dict[str, Any], header_bytes: int, image: dict[str, Any] | None) -> dict[str, int]:
    """One core's bytes by part: the arena's (from fw_layout's accounting; the header with the padding that
    aligns the first region after it) then the image's code and stack."""
    first = min((r["offset"] for r in core["regions"]), default=header_bytes)
    parts = {"header": max(first, header_bytes), **{k: int(core["accounting"][v]) for k, v in _ACCOUNTING.items()}}
    if image is not None:
        parts.update(code=image["code_bytes"] + image["bss_bytes"], stack=image["stack_bytes"])
    return parts


def paper_layout_bytes(cfg: ExperimentConfig) -> int:
    """The reference notes' reconstruction of the 680 KB: 7 float32 per input/recurrent synapse, 4 per readout one."""
    n = cfg.network
    syn = (n.n_in + n.n_rec) * n.n_rec
    return 4 * (PAPER_LAYOUT_FLOATS["per_synapse"] * syn + PAPER_LAYOUT_FLOATS["per_readout_synapse"] * n.n_rec * n.n_out)


def firmware_memory(cfg: ExperimentConfig, report_path: Path = SIZE_JSON) -> dict[str, Any]:
    """The byte map of every core and the totals, from the firmware's layout and the ARM size report."""
    m = memory_map(cfg, stack=False)
    image = arm_image_sizes(report_path)
    from s2eprop.firmware.abi import Firmware

    header = Firmware().header_bytes
    per_core = []
    for c in m["per_core"]:
        parts = core_parts(c, header, image)
        per_core.append({"core": c["core"], "role": c["role"], "neurons": c["neurons"],
                         "arena_bytes": c["arena_bytes"], "parts": parts, "total_bytes": sum(parts.values()), "regions": c["regions"], "fits": c["fits"]})
    totals = {p: sum(c["parts"].get(p, 0) for c in per_core) for p in (*ARENA_PARTS, *IMAGE_PARTS)}
    training = m["training_state_bytes_total"]
    return {"cores": m["cores"], "neurons_per_core": m["neurons_per_core"],
            "arena_limit_bytes": m["arena_limit_bytes"], "arena_limit_from": m["arena_limit_from"],
            "arm_image": image, "per_core": per_core, "totals_bytes": totals,
            "arena_bytes_total": sum(c["arena_bytes"] for c in per_core),
            "all_bytes_total": sum(c["total_bytes"] for c in per_core),
            "training_state_bytes_total": training,
            "paper_training_bytes": PAPER_TRAINING_BYTES,
            "training_state_vs_paper": round(training / PAPER_TRAINING_BYTES, 4),
            "paper_layout_reconstruction_bytes": paper_layout_bytes(cfg)}


def plot_per_core(fm: dict[str, Any], path: Path) -> Path:
    from s2eprop.host.plots.figures import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    cores = [c["core"] for c in fm["per_core"]]
    bottom = [0.0] * len(cores)
    for part in (*ARENA_PARTS, *IMAGE_PARTS):
        vals = [c["parts"].get(part, 0) / 1024 for c in fm["per_core"]]
        if not any(vals):
            continue
        ax.bar(cores, vals, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, vals)]
    sram_kib = default_chip().sram_bytes_per_core / 1024
    ax.axhline(sram_kib, color="k", ls="--", lw=1, label=f"{sram_kib:.0f} KiB SRAM per core")
    ax.set_xlabel("core")
    ax.set_ylabel("KiB")
    ax.set_xticks(cores)
    train_kib = fm["training_state_bytes_total"] / 1024
    over = [c["core"] for c, b in zip(fm["per_core"], bottom) if b > sram_kib]
    ax.set_title(f"per-core SRAM: training state {train_kib:,.0f} KiB over {fm['cores']} cores (paper: 680 KiB)"
                 + (f"; cores {over} do not fit" if over else ""), fontsize=10, color="tab:red" if over else "k")
    top = max(max(bottom, default=0.0), sram_kib) * 1.45  # room above the bars for the legend, nothing clipped
    ax.set_ylim(0, top)
    ax.legend(fontsize=7, ncol=5, loc="upper center")
    return save_figure(plt, fig, path)


def run(out_dir: Path, cfg: ExperimentConfig | None = None, steps: Sequence[int] = memory_scaling.DEFAULT_STEPS,
        sizes: Sequence[int] = memory_scaling.DEFAULT_SIZES, report_path: Path = SIZE_JSON) -> dict[str, Any]:
    """The memory study into `out_dir` (result.json, memory_per_core.png, eprop_vs_bptt.png)."""
    out_dir = study_folder(out_dir, "memory")
    cfg = cfg or ExperimentConfig()
    fm = firmware_memory(cfg, report_path)
    scaling = memory_scaling.study(cfg.network, steps, sizes, firmware_trace_bytes=fm["totals_bytes"]["traces"])
    figures = {"per_core": plot_per_core(fm, out_dir / "memory_per_core.png"),
               "eprop_vs_bptt": memory_scaling.plot(scaling, out_dir / "eprop_vs_bptt.png")}
    return write_result(out_dir, "memory", {"firmware": fm, "eprop_vs_bptt": scaling}, figures)


def summary_lines(result: dict[str, Any]) -> list[str]:
    fm, sc = result["firmware"], result["eprop_vs_bptt"]
    t = fm["totals_bytes"]
    img = fm["arm_image"]
    over = [c["core"] for c in fm["per_core"] if not c["fits"]]
    warn = [f"warning: cores {over} do not fit their SRAM: lower partition.neurons_per_core or set it to auto"] \
        if over else []
    return warn + [f"{fm['cores']} cores: training state {fm['training_state_bytes_total']:,} B "
            f"({100 * fm['training_state_vs_paper']:.1f} % of the paper's 680 KB); arenas {fm['arena_bytes_total']:,} B "
            f"(weights {t['weights']:,}, Adam {t['optimizer']:,}, traces {t['traces']:,}, buffers {t['buffers']:,})"
            + (f"; code {t['code']:,} B and stack {t['stack']:,} B from the ARM image" if img else
               "; no ARM image (make arm): code and stack not counted"),
            f"E-prop vs BPTT: T* = {sc['crossover_steps']['formula']:.0f} steps (formulas, k = 3; the README's), "
            f"{sc['crossover_steps']['firmware_vs_bptt_formula']:.0f} (the firmware's trace bytes vs BPTT's "
            f"T(n_in+3n_rec) floats), {sc['crossover_steps']['measured']:.0f} measured on the NumPy models"]
