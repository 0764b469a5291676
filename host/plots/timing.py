"""Host layer, plots: the figures of a timed run, drawn from its timing.npz (so that `s2eprop plot timing`
redraws them from a run folder): timing.png (per-core, per-tick utilisation against the 1 ms budget,
utilisation and slack histograms, cycles by phase) and tick.png (Gantt chart of the worst tick and
of a typical one: every handler on every core over the tick)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from s2eprop.host.errors import DataError
from s2eprop.host.plots.figures import pyplot

KIND_COLOURS = {"mc_packet": "tab:orange", "dma_done": "tab:blue", "host_msg": "tab:purple",
                "timer": "tab:green", "user_event": "tab:red"}


def load_timing(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: no such file (a timed run writes it: s2eprop train --mode timed)")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a timing record ({exc})") from None


def _heat_map(ax: Any, t: dict[str, np.ndarray], n_cores: int) -> None:
    ticks = t["tick_tick"]
    if not len(ticks):
        ax.text(0.5, 0.5, "no tick recorded", ha="center", va="center", transform=ax.transAxes)
        return
    order = np.unique(ticks)
    grid = np.full((n_cores, len(order)), np.nan)
    col = np.searchsorted(order, ticks)
    grid[t["tick_core"], col] = t["tick_utilisation"]
    im = ax.imshow(100 * grid, aspect="auto", interpolation="nearest", cmap="viridis",
                   vmin=0, vmax=max(100.0, float(np.nanmax(100 * grid))))
    for start in t.get("sample_start_ticks", ()):  # where the host started each recorded training sample
        at = int(np.searchsorted(order, start))
        if 0 < at < len(order):
            ax.axvline(at - 0.5, color="white", lw=0.8, ls="--")
    gaps = np.nonzero(np.diff(order) > 1)[0]  # recorded runs of ticks are not contiguous: mark where one ends
    for g in gaps:
        ax.axvline(g + 0.5, color="white", lw=1.5)
    over = t["tick_overrun"] != 0
    if over.any():
        ax.plot(col[over], t["tick_core"][over], "rx", ms=4, label="overrun")
    from matplotlib.lines import Line2D

    handles = ax.get_legend_handles_labels()[0]
    if len(t.get("sample_start_ticks", ())):
        handles.append(Line2D([], [], color="0.5", lw=0.8, ls="--", label="a sample starts"))
    if gaps.size:
        handles.append(Line2D([], [], color="0.5", lw=1.5, label="gap between recorded runs of ticks"))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0, -0.16), ncol=3, fontsize=7, frameon=False)
    ax.set_xlabel(f"recorded training tick ({len(order)}: first and last sample of each epoch, overruns)", fontsize=8)
    ax.set_ylabel("core")
    ax.figure.colorbar(im, ax=ax, label="tick utilisation (%)")


def plot_timing(t: dict[str, np.ndarray], path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.6))
    n_cores = len(t["core_ticks"])
    clock = float(t["clock_hz"]) / 1e6
    _heat_map(axes[0, 0], t, n_cores)
    axes[0, 0].set_title(f"tick utilisation per core ({clock:g} MHz, 1 ms budget = 100 %)")
    hist = t["core_util_hist"].sum(axis=0)
    width = int(t["util_bin_percent"])
    edges = np.arange(len(hist)) * width
    ax = axes[0, 1]
    ax.bar(edges, hist, width=width, align="edge", color="tab:blue")
    ax.axvline(100, color="red", lw=1, label="1 ms budget")
    ax.set_yscale("log")
    ax.set_xlabel(f"tick utilisation (%, last bin: >= {edges[-1]} %)")
    ax.set_ylabel("core-ticks")
    ax.set_title(f"utilisation over {int(hist.sum()):,} core-ticks, {int(t['core_overruns'].sum())} overruns")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    slack = 100 - edges[:101]
    ax.bar(slack - width, hist[:101], width=width, align="edge", color="tab:green")
    if hist[101:].sum():
        ax.bar([-width], [hist[101:].sum()], width=width, align="edge", color="tab:red", label="no slack (overrun)")
        ax.legend(fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("slack left in the tick (% of 1 ms)")
    ax.set_ylabel("core-ticks")
    ax.set_title("slack")
    ax = axes[1, 1]
    phases = [str(p) for p in t["phases"]]
    cyc = t["core_phase_cycles"]
    bottom = np.zeros(n_cores)
    for i, name in enumerate(phases):
        ax.bar(np.arange(n_cores), cyc[:, i] / 1e6, bottom=bottom, label=name)
        bottom += cyc[:, i] / 1e6
    ax.set_xlabel("core")
    ax.set_ylabel("cycles (millions, training ticks)")
    ax.set_title("cycles by phase")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _gantt(ax: Any, t: dict[str, np.ndarray], name: str, n_cores: int) -> None:
    if f"gantt_{name}_at_tick" not in t:
        ax.text(0.5, 0.5, f"no {name} tick recorded", ha="center", va="center", transform=ax.transAxes)
        return
    tick = int(t[f"gantt_{name}_at_tick"])
    origin = tick * int(t["tick_ps"])
    start = (t[f"gantt_{name}_start_ps"] - origin) / 1e6
    dur = (t[f"gantt_{name}_end_ps"] - t[f"gantt_{name}_start_ps"]) / 1e6
    core = t[f"gantt_{name}_core"]
    kinds = [str(k) for k in t["handlers"]]
    for k, kind in enumerate(kinds):
        sel = t[f"gantt_{name}_kind"] == k
        if not sel.any():
            continue
        if kind in ("mc_packet", "dma_done"):  # short handlers: marks, so that they stay visible
            ax.plot(start[sel], core[sel] + (0.25 if kind == "mc_packet" else -0.25), "|",
                    color=KIND_COLOURS[kind], ms=6, label=f"{kind} ({int(sel.sum())})")
        ax.barh(core[sel], dur[sel], left=start[sel], height=0.6, color=KIND_COLOURS[kind],
                label=None if kind in ("mc_packet", "dma_done") else f"{kind} ({int(sel.sum())})")
    ax.axvline(float(t["tick_ps"]) / 1e6, color="black", lw=1.2, ls="--", label="the next tick")
    ax.set_ylim(-0.7, n_cores - 0.3)
    ax.set_xlabel(f"time from the start of tick {tick} (us)")
    ax.set_ylabel("core")
    util = 100 * float(t[f"gantt_{name}_utilisation"])
    ax.set_title(f"{name} tick {tick}: busiest core at {util:.1f} % of the tick")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)  # beside, over no bar


def plot_tick(t: dict[str, np.ndarray], path: Path) -> Path:
    plt = pyplot()
    n_cores = len(t["core_ticks"])
    fig, axes = plt.subplots(2, 1, figsize=(12, 3 + 0.45 * n_cores))
    _gantt(axes[0], t, "worst", n_cores)
    _gantt(axes[1], t, "typical", n_cores)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_timing_files(npz: Path, out_dir: Path) -> dict[str, str]:
    """Both figures of a timing.npz into out_dir: {"timing": ..., "tick": ..., "data": ...} (file names)."""
    t = load_timing(npz)
    return {"timing": plot_timing(t, out_dir / "timing.png").name, "tick": plot_tick(t, out_dir / "tick.png").name,
            "data": npz.name}
