"""Host layer, CLI: calibration of the timed chip's cycle costs against the ARM build run in the ISS
(`s2eprop calibrate`).

Model (emulator/chip/configs/cycle_costs.yaml): cycles of one handler call =
    handler_base_cycles[handler] + sum over fw_counts_t fields f of per_count_cycles[f] * counts[f].
The ISS runs several network shapes (neurons per core, n_in, n_rec, n_out, training and inference,
input scales that move the spike rate, spike input at two input rates: in one shape the counts
move together and cannot be told apart); every handler call gives a row (its counts, the ISS's cycles). The fit is non-negative least
squares (Lawson-Hanson active set, written here in NumPy) of the relative error, so that short and
long calls weigh alike. A count that is constant within every handler (mc_received: 1 per packet)
cannot be told from the handler's base: it is fixed at 0 and named in the provenance. Held-out
samples (other seeds) give the residuals.
"""
from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from s2eprop.emulator.chip.description import DEFAULT_CHIP
from s2eprop.firmware.arm_image import SRAM_BYTES
from s2eprop.host.config import ExperimentConfig

HANDLERS = ("timer", "mc_packet", "dma_done", "host_msg", "user_event")
COST_FILE = DEFAULT_CHIP.parent / "cycle_costs.yaml"


@dataclass(frozen=True)
class Shape:
    """One network run on the ISS for calibration."""

    name: str
    n_in: int
    n_rec: int
    n_out: int
    neurons_per_core: int
    input_scale: float = 3.0   # inputs scale * N(0, 1): the spike rate
    train: bool = True
    n_steps: int = 20
    spike_p: float = 0.0       # > 0: spike input (input.kind spikes), each input spiking with this chance a step


SHAPES = (
    Shape("kws", 80, 120, 12, 10),
    Shape("kws-quiet", 80, 120, 12, 10, input_scale=0.7),
    Shape("kws-inference", 80, 120, 12, 10, train=False),
    Shape("small", 40, 60, 12, 6),
    Shape("wide-in", 120, 80, 6, 16, input_scale=2.0),
    Shape("deep-rec", 20, 200, 12, 20),
    Shape("busy", 60, 90, 4, 15, input_scale=6.0),
    Shape("thin", 100, 40, 8, 4, input_scale=2.0),
    Shape("kws-spikes", 80, 120, 12, 10, input_scale=6.0, spike_p=0.1),
    Shape("wide-spikes", 120, 80, 6, 16, input_scale=4.0, spike_p=0.4),
)
QUICK_SHAPES = (Shape("tiny", 16, 24, 4, 8), Shape("tiny-wide", 32, 16, 6, 4, input_scale=5.0),
                Shape("tiny-inference", 16, 24, 4, 8, train=False))


@dataclass(frozen=True)
class Calls:
    """Handler calls measured on the ISS: which handler, its work counts, its cycles."""

    handler: np.ndarray   # (n,) index into HANDLERS
    counts: np.ndarray    # (n, n_fields)
    cycles: np.ndarray    # (n,)
    instructions: np.ndarray
    shape: np.ndarray     # (n,) index into the shapes run

    @staticmethod
    def join(parts: Sequence["Calls"]) -> "Calls":
        return Calls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Calls)))


@dataclass(frozen=True)
class CostModel:
    handler_base_cycles: dict[str, float]
    per_count_cycles: dict[str, float]
    folded: tuple[str, ...]   # counts fixed at 0: constant within every handler

    def predict(self, calls: Calls, fields: Sequence[str]) -> np.ndarray:
        base = np.array([self.handler_base_cycles[h] for h in HANDLERS])[calls.handler]
        return base + calls.counts @ np.array([self.per_count_cycles[f] for f in fields])


def shape_config(base: ExperimentConfig, s: Shape) -> ExperimentConfig:
    net = dataclasses.replace(base.network, n_in=s.n_in, n_rec=s.n_rec, n_out=s.n_out, n_steps=s.n_steps)
    part = dataclasses.replace(base.partition, neurons_per_core=s.neurons_per_core)
    inp = dataclasses.replace(base.input, kind="spikes", encoder="none") if s.spike_p > 0 else base.input
    return dataclasses.replace(base, network=net, partition=part, input=inp).validate()


def run_shape(s: Shape, n_samples: int, seed: int, elf: Path | None = None, index: int = 0) -> Calls:
    """n_samples samples of shape s on an ISS chip (each call's counts and cycles)."""
    from s2eprop.emulator.chip.functional import FunctionalChip
    from s2eprop.firmware.abi import Firmware
    from s2eprop.emulator.runners.iss import IssRunner
    from s2eprop.host.mapping.partition import plan_partition
    from s2eprop.host.session.runtime import BoardTrainer
    from s2eprop.host.transport.inproc import EmulatorTransport
    from s2eprop.host.weights import init_weights

    cfg = shape_config(ExperimentConfig(), s)
    fw = Firmware()
    n = plan_partition(cfg.network, cfg.partition).n_cores
    record: list = []
    chip = FunctionalChip(n, backend="python", firmware=fw, runner=IssRunner(fw, n, SRAM_BYTES, elf_path=elf,
                                                                             record=record))
    weights = init_weights(cfg.network, seed=seed)
    if s.spike_p > 0:  # 0/1 inputs: W_in x input_scale drives the network as the analog scale does
        weights = dataclasses.replace(weights, w_in=(s.input_scale * weights.w_in).astype(np.float32))
    board = BoardTrainer(cfg, weights, firmware=fw, transport=EmulatorTransport(n, chip=chip))
    rng = np.random.default_rng(seed)
    for _ in range(n_samples):
        if s.spike_p > 0:
            x = (rng.random((1, s.n_steps, s.n_in)) < s.spike_p).astype(np.float32)
        else:
            x = (s.input_scale * rng.standard_normal((1, s.n_steps, s.n_in))).astype(np.float32)
        y = rng.integers(0, s.n_out, 1)
        (board.train_batch if s.train else board.forward)(x, y)
    board.close()
    rows = [c for c in record if c.handler != "init"]
    return Calls(handler=np.array([HANDLERS.index(c.handler) for c in rows]),
                 counts=np.array([c.counts for c in rows], dtype=np.float64).reshape(len(rows), -1),
                 cycles=np.array([c.cycles for c in rows], dtype=np.float64),
                 instructions=np.array([c.instructions for c in rows], dtype=np.float64),
                 shape=np.full(len(rows), index))


def nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """min ||a x - b|| subject to x >= 0 (Lawson and Hanson 1974, active set)."""
    m, n = a.shape
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    tol = 10 * np.finfo(float).eps * np.abs(a).sum(axis=0).max() * max(m, n)
    for _ in range(3 * n):
        w = a.T @ (b - a @ x)
        if passive.all() or np.where(passive, -np.inf, w).max() <= tol:
            break
        passive[int(np.argmax(np.where(passive, -np.inf, w)))] = True
        while True:
            s = np.zeros(n)
            s[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if s[passive].min() > 0:
                x = s
                break
            neg = passive & (s <= 0)
            alpha = np.min(x[neg] / (x[neg] - s[neg]))
            x = x + alpha * (s - x)
            passive &= x > tol
            x[~passive] = 0.0
    return x


def fit(calls: Calls, fields: Sequence[str]) -> CostModel:
    """NNLS of the relative error over handler indicators and the identifiable counts."""
    folded = tuple(f for i, f in enumerate(fields)
                   if all(np.ptp(calls.counts[calls.handler == h, i]) == 0 for h in range(len(HANDLERS))
                          if (calls.handler == h).any()))
    free = [i for i, f in enumerate(fields) if f not in folded]
    a = np.hstack([np.eye(len(HANDLERS))[calls.handler], calls.counts[:, free]])
    weight = 1.0 / np.maximum(calls.cycles, 1.0)
    a, b = a * weight[:, None], calls.cycles * weight
    scale = np.linalg.norm(a, axis=0)
    scale[scale == 0] = 1.0
    x = nnls(a / scale, b) / scale
    per_count = {f: 0.0 for f in fields}
    per_count.update({fields[i]: float(v) for i, v in zip(free, x[len(HANDLERS):])})
    return CostModel({h: float(v) for h, v in zip(HANDLERS, x[:len(HANDLERS)])}, per_count, folded)


def rounded(model: CostModel) -> CostModel:
    """The model as the cost file holds it: whole cycles per call, 3 decimals per count."""
    return CostModel({h: float(round(v)) for h, v in model.handler_base_cycles.items()},
                     {f: round(v, 3) for f, v in model.per_count_cycles.items()}, model.folded)


def residual_stats(model: CostModel, calls: Calls, fields: Sequence[str]) -> dict[str, Any]:
    """Relative error of each call's predicted cycles, overall and per handler (percent)."""
    rel = np.abs(model.predict(calls, fields) - calls.cycles) / calls.cycles
    out: dict[str, Any] = {"calls": int(rel.size), "max_pct": float(100 * rel.max()),
                           "median_pct": float(100 * np.median(rel)),
                           "within_10pct_share": float(np.mean(rel <= 0.10)),
                           "cycles_within_10pct_share": float(calls.cycles[rel <= 0.10].sum() / calls.cycles.sum()),
                           "p99_pct": float(100 * np.quantile(rel, 0.99)), "per_handler": {}}
    for h, name in enumerate(HANDLERS):
        r = rel[calls.handler == h]
        if r.size:
            out["per_handler"][name] = {"calls": int(r.size), "max_pct": float(100 * r.max()),
                                        "median_pct": float(100 * np.median(r)),
                                        "within_10pct_share": float(np.mean(r <= 0.10))}
    return out


def calibrate(shapes: Sequence[Shape] = SHAPES, fit_samples: int = 2, held_out_samples: int = 1,
              seed: int = 1, elf: Path | None = None,
              progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run every shape on the ISS (fit and held-out samples of other seeds), fit, and measure."""
    import time

    from s2eprop.firmware.abi import Firmware
    from s2eprop.emulator.runners.m4_timing import CORTEX_M4F

    fields = Firmware().count_fields
    fit_parts, held_parts = [], []
    t0 = time.perf_counter()
    for i, s in enumerate(shapes):
        progress(f"shape {s.name}: n_in {s.n_in}, n_rec {s.n_rec}, n_out {s.n_out}, "
                 f"{s.neurons_per_core} per core, {'training' if s.train else 'inference'}")
        fit_parts.append(run_shape(s, fit_samples, seed + 2 * i, elf, i))
        held_parts.append(run_shape(s, held_out_samples, seed + 2 * i + 1, elf, i))
    seconds = time.perf_counter() - t0
    fit_calls, held = Calls.join(fit_parts), Calls.join(held_parts)
    model = rounded(fit(fit_calls, fields))
    n_instr = float(fit_calls.instructions.sum() + held.instructions.sum())
    return {"model": model, "fields": fields, "fit_calls": fit_calls, "held_out": held,
            "fit_residuals": residual_stats(model, fit_calls, fields),
            "held_out_residuals": residual_stats(model, held, fields),
            "shapes": [dataclasses.asdict(s) for s in shapes],
            "iss": {"instructions": int(n_instr), "seconds": seconds,
                    "instructions_per_s": n_instr / seconds,
                    "samples": len(shapes) * (fit_samples + held_out_samples)},
            "timing_table": CORTEX_M4F.as_dict(),
            "date": datetime.date.today().isoformat()}


def cost_file_text(model: CostModel, result: dict[str, Any]) -> str:
    """cycle_costs.yaml: a header saying what the numbers are, then provenance and the two mappings."""
    import yaml

    held = result["held_out_residuals"]
    prov = {"source": "calibrated", "tool": "s2eprop calibrate", "date": result["date"],
            "fit": "non-negative least squares of the relative error (Lawson-Hanson, NumPy)",
            "iss": "unicorn, the ARM build of firmware_c (make arm)",
            "timing_table": result["timing_table"]["name"], "timing_source": result["timing_table"]["source"],
            "shapes": [s["name"] for s in result["shapes"]],
            "fit_calls": result["fit_residuals"]["calls"], "held_out_calls": held["calls"],
            "held_out_max_pct": round(held["max_pct"], 2), "held_out_median_pct": round(held["median_pct"], 2),
            "held_out_within_10pct_share": round(held["within_10pct_share"], 4),
            "held_out_cycles_within_10pct_share": round(held["cycles_within_10pct_share"], 4),
            "folded_into_handler_base": list(model.folded)}
    body = yaml.safe_dump({"provenance": prov, "handler_base_cycles": model.handler_base_cycles,
                           "per_count_cycles": model.per_count_cycles}, sort_keys=False, width=110)
    header = ("# Cycle costs of the firmware's handlers on one Cortex-M4F core (read by the chip file spinnaker2.yaml).\n"
              "# Model: cycles of one handler call = handler_base_cycles[handler] + sum over fw_counts_t fields of\n"
              "# per_count_cycles[field] x the count the call reported (interrupt entry/exit is the chip file's).\n"
              "# Fitted by `s2eprop calibrate --write-costs` to the ARM build run in the ISS (docs/arm.md); do not\n"
              "# edit by hand, re-fit instead.\n")
    return header + body


def write_cost_file(model: CostModel, result: dict[str, Any], path: Path = COST_FILE) -> Path:
    from s2eprop.host.files import atomic_write

    text = cost_file_text(model, result).encode()
    return atomic_write(path, lambda f: f.write(text))


def plot_residuals(result: dict[str, Any], path: Path) -> Path:
    """Predicted vs ISS cycles of every held-out call, and the relative errors, by handler."""
    from s2eprop.host.plots.figures import pyplot

    model, fields, held = result["model"], result["fields"], result["held_out"]
    pred = model.predict(held, fields)
    rel = 100 * (pred - held.cycles) / held.cycles
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.5))
    for h, name in enumerate(HANDLERS):
        sel = held.handler == h
        if sel.any():
            ax.scatter(held.cycles[sel], pred[sel], s=6, label=name, alpha=0.6)
            bx.scatter(held.cycles[sel], rel[sel], s=6, label=name, alpha=0.6)
    lo, hi = held.cycles.min(), held.cycles.max()
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="ISS cycles per call", ylabel="model cycles",
           title="held-out handler calls")
    bx.axhline(10, color="k", lw=0.6, ls="--")
    bx.axhline(-10, color="k", lw=0.6, ls="--")
    bx.set(xscale="log", xlabel="ISS cycles per call", ylabel="model - ISS (% of ISS)", title="relative error")
    ax.legend(fontsize=8)
    fig.tight_layout()
    from s2eprop.host.files import atomic_write

    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """calibration.json: the costs, residuals, shapes, ISS speed and timing table (no raw calls)."""
    model = result["model"]
    return {"handler_base_cycles": model.handler_base_cycles, "per_count_cycles": model.per_count_cycles,
            "folded_into_handler_base": list(model.folded),
            **{k: result[k] for k in ("fit_residuals", "held_out_residuals", "shapes", "iss", "timing_table", "date")}}


def run(out_dir: Path, write_costs: bool, quick: bool = False, progress: Callable[[str], None] = print) -> dict:
    from s2eprop.host.files import write_json

    result = calibrate(QUICK_SHAPES if quick else SHAPES, progress=progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "calibration.json", summary(result))
    plot_residuals(result, out_dir / "residuals.png")
    held = result["held_out_residuals"]
    progress(f"held-out calls {held['calls']:,}: max {held['max_pct']:.1f} %, median {held['median_pct']:.2f} %, "
             f"{100 * held['within_10pct_share']:.1f} % within 10 % ({100 * held['cycles_within_10pct_share']:.1f} % "
             f"of the cycles); ISS {result['iss']['instructions_per_s'] / 1e6:.1f} M "
             f"instructions/s; {out_dir / 'calibration.json'}, {out_dir / 'residuals.png'}")
    if write_costs:
        progress(f"wrote {write_cost_file(result['model'], result, COST_FILE)}")
    return result
