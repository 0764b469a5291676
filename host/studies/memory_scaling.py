"""Studies layer: E-prop against BPTT memory, measured on the real implementations and set beside the
closed-form formulas, over sequence length T and network size.

Measured two ways, without touching the models' code:
* held: the arrays each algorithm keeps for its learning step, read at the point they are complete:
  the golden model's per-sample state (traces, neuron state) as `GoldenModel._run` returns, and what
  BPTT keeps for its backward pass (the input x of every step and `_forward`'s per-step spikes and
  pseudo-derivatives) as `_forward` returns, captured with `sys.setprofile`;
* peak: tracemalloc's peak of one gradient computation (temporaries and gradients included; weights,
  Adam state and the caller's input excluded, BPTT's input then added: its backward pass reads every x_t,
  while the chip streams one frame per tick).
Formulas (float32, B = 4 bytes): E-prop k (n_in + n) n + (n_in + n) floats (k per-synapse traces, eps_v
per presynaptic neuron), independent of T; BPTT T (n_in + 3 n) floats (x, z, v, a of every step,
reference notes section 4). Crossover T* where BPTT's grows past E-prop's.
"""
from __future__ import annotations

import dataclasses
import sys
import tracemalloc
from types import CodeType
from typing import Any, Callable, Sequence

import numpy as np

from s2eprop.host.config import NetworkConfig, TrainConfig
from s2eprop.host.reference import bptt
from s2eprop.host.reference import golden
from s2eprop.host.studies.common import save_figure
from s2eprop.host.weights import init_weights

DEFAULT_STEPS = (25, 50, 100, 200, 500, 1000, 2000)
DEFAULT_SIZES = (30, 60, 120, 240, 480)
FIRMWARE_TRACES_PER_SYNAPSE = 3  # eps_a, the filtered trace and its sum (firmware_c/include/eprop_trace.h)
BYTES_PER_FLOAT = 4


def eprop_formula_bytes(net: NetworkConfig, k: int = FIRMWARE_TRACES_PER_SYNAPSE) -> int:
    n_pre = net.n_in + net.n_rec
    return BYTES_PER_FLOAT * (k * n_pre * net.n_rec + n_pre)


def bptt_formula_bytes(net: NetworkConfig, n_steps: int) -> int:
    return bptt.bptt_state_bytes(net, n_steps, 1, BYTES_PER_FLOAT)


def crossover_formula(net: NetworkConfig, k: int = FIRMWARE_TRACES_PER_SYNAPSE) -> float:
    """T* = (k (n_in + n) n + (n_in + n)) / (n_in + 3 n): the T where the two formulas meet."""
    return eprop_formula_bytes(net, k) / bptt_formula_bytes(net, 1)


def _capture(code: CodeType, call: Callable[[], Any]) -> tuple[dict[str, Any], Any]:
    """Locals and return value of the (last) frame of `code` as it returns, while `call()` runs."""
    seen: dict[str, Any] = {}

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "return" and frame.f_code is code:
            seen.clear()
            seen.update(locals=dict(frame.f_locals), value=arg)

    old = sys.getprofile()
    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(old)
    return seen["locals"], seen["value"]


def _peak_bytes(call: Callable[[], Any]) -> int:
    """tracemalloc's peak above the memory traced when `call` starts."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        call()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        if started:
            tracemalloc.stop()


def _inputs(net: NetworkConfig, seed: int) -> tuple[np.ndarray, np.ndarray, Any]:
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((1, net.n_steps, net.n_in))).astype(np.float32)
    return x, rng.integers(0, net.n_out, 1), init_weights(net, seed)


def eprop_measured(net: NetworkConfig, seed: int = 0) -> dict[str, int]:
    """Bytes of the golden model's per-sample state (held) and of its gradient step's allocations (peak)."""
    x, y, w = _inputs(net, seed)
    model = golden.GoldenModel(net, TrainConfig(), w)
    local, _ = _capture(golden.GoldenModel._run.__code__, lambda: model.gradients(x, y))
    held = {name: a.nbytes for name, a in local.items()
            if isinstance(a, np.ndarray) and name != "x" and not np.shares_memory(a, x)}
    peak = _peak_bytes(lambda: model.gradients(x, y))
    return {"held_bytes": sum(held.values()), "peak_bytes": peak,
            "traces_bytes": sum(held[k] for k in ("ev", "ea", "eb", "elig", "tmp")),
            "per_synapse_arrays": sum(1 for k in ("ea", "eb", "elig", "tmp") if k in held)}


def bptt_measured(net: NetworkConfig, seed: int = 0) -> dict[str, int]:
    """Bytes BPTT keeps for its backward pass (held: x and `_forward`'s arrays) and its peak (+ x)."""
    x, y, w = _inputs(net, seed)
    call = lambda: bptt.bptt_gradients(net, w, x, y, np.float32)  # noqa: E731
    _, fw = _capture(bptt._forward.__code__, call)
    kept = {"x": x.nbytes, **{f.name: getattr(fw, f.name).nbytes for f in dataclasses.fields(fw)}}
    return {"held_bytes": sum(kept.values()), "peak_bytes": _peak_bytes(call) + x.nbytes,
            "per_step_bytes": kept["x"] + kept["z"] + kept["dz_du"]}


def _fit_crossover(steps: np.ndarray, bptt_bytes: np.ndarray, eprop_bytes: np.ndarray) -> float:
    """T where the straight line through BPTT's bytes meets E-prop's (mean) bytes."""
    slope, icpt = np.polyfit(steps.astype(float), bptt_bytes.astype(float), 1)
    return float((eprop_bytes.mean() - icpt) / slope)


def study(net: NetworkConfig, steps: Sequence[int] = DEFAULT_STEPS, sizes: Sequence[int] = DEFAULT_SIZES,
          firmware_trace_bytes: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Both algorithms' memory over T (network `net`) and over n_rec (at net.n_steps), measured and by formula."""
    over_t = []
    for t in steps:
        nt = dataclasses.replace(net, n_steps=int(t))
        over_t.append({"n_steps": int(t), "eprop": eprop_measured(nt, seed), "bptt": bptt_measured(nt, seed),
                       "eprop_formula_bytes": eprop_formula_bytes(nt), "bptt_formula_bytes": bptt_formula_bytes(nt, t)})
    over_n = []
    for n in sizes:
        nn = dataclasses.replace(net, n_rec=int(n))
        over_n.append({"n_rec": int(n), "eprop": eprop_measured(nn, seed), "bptt": bptt_measured(nn, seed),
                       "eprop_formula_bytes": eprop_formula_bytes(nn),
                       "bptt_formula_bytes": bptt_formula_bytes(nn, nn.n_steps),
                       "crossover_formula_steps": round(crossover_formula(nn), 1)})
    t_arr = np.array([r["n_steps"] for r in over_t])
    col = lambda alg, key: np.array([r[alg][key] for r in over_t])  # noqa: E731
    crossover = {"formula": round(crossover_formula(net), 1),
                 "measured": round(_fit_crossover(t_arr, col("bptt", "held_bytes"), col("eprop", "held_bytes")), 1),
                 "measured_peak": round(_fit_crossover(t_arr, col("bptt", "peak_bytes"), col("eprop", "peak_bytes")), 1)}
    if firmware_trace_bytes is not None:
        crossover["firmware_vs_bptt_formula"] = round(firmware_trace_bytes / bptt_formula_bytes(net, 1), 1)
    return {"network": {"n_in": net.n_in, "n_rec": net.n_rec, "n_out": net.n_out, "n_steps": net.n_steps},
            "over_steps": over_t, "over_size": over_n, "crossover_steps": crossover,
            "firmware_trace_bytes": firmware_trace_bytes, "traces_per_synapse_firmware": FIRMWARE_TRACES_PER_SYNAPSE,
            "bptt_kept_per_step_floats": {"formula": net.n_in + 3 * net.n_rec, "implementation": net.n_in + 2 * net.n_rec}}


def plot(s: dict[str, Any], path: Any) -> Any:
    from s2eprop.host.plots.figures import pyplot

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    t = [r["n_steps"] for r in s["over_steps"]]
    kib = lambda rows, alg, key: [r[alg][key] / 1024 for r in rows]  # noqa: E731
    ax1.plot(t, kib(s["over_steps"], "eprop", "held_bytes"), "o-", color="tab:blue", label="E-prop held (golden model)")
    ax1.plot(t, kib(s["over_steps"], "bptt", "held_bytes"), "s-", color="tab:red", label="BPTT held (x, z, psi per step)")
    ax1.plot(t, kib(s["over_steps"], "eprop", "peak_bytes"), "o:", color="tab:blue", alpha=0.6, label="E-prop peak")
    ax1.plot(t, kib(s["over_steps"], "bptt", "peak_bytes"), "s:", color="tab:red", alpha=0.6, label="BPTT peak")
    ax1.plot(t, [r["eprop_formula_bytes"] / 1024 for r in s["over_steps"]], "--", color="tab:blue",
             label=f"E-prop formula ({s['traces_per_synapse_firmware']} traces/synapse)")
    ax1.plot(t, [r["bptt_formula_bytes"] / 1024 for r in s["over_steps"]], "--", color="tab:red",
             label="BPTT formula T(n_in+3n)")
    cx = s["crossover_steps"]
    ax1.axvline(cx["formula"], color="k", lw=1, ls="--", label=f"crossover T* = {cx['formula']:.0f} (formulas)")
    ax1.axvline(cx["measured"], color="gray", lw=1, label=f"crossover T* = {cx['measured']:.0f} (measured)")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("sequence length T (steps)")
    ax1.set_ylabel("KiB (float32, one sample)")
    ax1.set_title(f"memory for learning, n_in={s['network']['n_in']}, n_rec={s['network']['n_rec']}", fontsize=10)
    ax1.legend(fontsize=7)
    n = [r["n_rec"] for r in s["over_size"]]
    ax2.plot(n, kib(s["over_size"], "eprop", "held_bytes"), "o-", color="tab:blue", label="E-prop held")
    ax2.plot(n, kib(s["over_size"], "bptt", "held_bytes"), "s-", color="tab:red", label="BPTT held")
    ax2.plot(n, [r["eprop_formula_bytes"] / 1024 for r in s["over_size"]], "--", color="tab:blue", label="E-prop formula")
    ax2.plot(n, [r["bptt_formula_bytes"] / 1024 for r in s["over_size"]], "--", color="tab:red", label="BPTT formula")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xticks(n, [str(v) for v in n])
    ax2.minorticks_off()
    ax2.set_xlabel("recurrent neurons n_rec")
    ax2.set_ylabel("KiB")
    ax2.set_title(f"over network size at T = {s['network']['n_steps']}", fontsize=10)
    ax2.legend(fontsize=7)
    return save_figure(plt, fig, path)
