"""Studies layer: a V100 estimate of the GPU's training step, from the kernels the PyTorch port
(host/studies/torch_eprop.py) runs. Each ATen operation of one batched training step is recorded
(TorchDispatchMode: bytes read and written, FLOPs) and priced with spec-sheet figures: time =
launch + max(bytes / achieved bandwidth, FLOPs / achieved FP32 rate); energy = board power x time.
No GPU is measured here; every figure and assumption comes from energy_constants.yaml.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from s2eprop.host.config import NetworkConfig, TrainConfig
from s2eprop.host.studies.torch_eprop import TorchEprop, require_torch
from s2eprop.host.weights import init_weights

# ATen operations that make views or metadata only: no kernel on a GPU
_NO_KERNEL = {"view", "_unsafe_view", "t", "transpose", "select", "slice", "expand", "unsqueeze", "squeeze",
              "alias", "as_strided", "detach", "lift_fresh", "permute", "reshape", "_to_copy_view", "unbind"}
_MATMUL = {"mm", "addmm", "bmm", "matmul"}


@dataclass(frozen=True)
class OpTrace:
    kernels: int
    bytes_moved: int
    flops: int
    matmul_flops: int
    by_op: Mapping[str, int]  # kernels per ATen op name


def trace_training_step(net: NetworkConfig, batch: int, seed: int = 0) -> OpTrace:
    """The kernels of one batched training step (gradients and Adam) of the torch port, on the CPU."""
    torch = require_torch()
    from torch.utils._python_dispatch import TorchDispatchMode

    counts = {"kernels": 0, "bytes": 0, "flops": 0, "mm": 0}
    by_op: dict[str, int] = {}

    def nbytes(t: Any) -> int:
        return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            if name in _NO_KERNEL:
                return out
            ins = [a for a in args if isinstance(a, torch.Tensor)]
            outs = out if isinstance(out, (tuple, list)) else [out]
            counts["kernels"] += 1
            counts["bytes"] += sum(nbytes(a) for a in ins) + sum(nbytes(o) for o in outs)
            if name in _MATMUL:
                a, b = ins[-2], ins[-1]
                f = 2 * int(np.prod(a.shape)) * int(b.shape[-1])
                counts["mm"] += f
            else:
                f = max((o.numel() for o in outs if isinstance(o, torch.Tensor)), default=0)
            counts["flops"] += f
            by_op[name] = by_op.get(name, 0) + 1
            return out

    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((batch, net.n_steps, net.n_in))).astype(np.float32)
    y = rng.integers(0, net.n_out, batch)
    model = TorchEprop(net, TrainConfig(), init_weights(net, seed))
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    with Recorder():
        model.train_batch(xt, yt)
    return OpTrace(counts["kernels"], counts["bytes"], counts["flops"], counts["mm"], dict(sorted(by_op.items())))


def price(trace: OpTrace, gpu: Mapping[str, Any], batch: int) -> dict[str, Any]:
    """Time and energy of the traced step on the constants' GPU, per batch and per sample.

    Each kernel is charged its launch plus the larger of its memory and compute times; summing the
    per-kernel maxima needs the per-kernel split, so the totals are bounded by pricing the whole
    trace as memory-bound and compute-bound in turn and taking the larger (kernels of one step are
    all memory-bound here except the small matrix products)."""
    bw = float(gpu["memory_bandwidth_bytes_per_s"]) * float(gpu["achieved_bandwidth_fraction"])
    rate = float(gpu["fp32_peak_flops"]) * float(gpu["achieved_flops_fraction"])
    launch_s = trace.kernels * float(gpu["kernel_launch_s"])
    memory_s = trace.bytes_moved / bw
    compute_s = trace.flops / rate
    batch_s = launch_s + max(memory_s, compute_s)
    power = float(gpu["board_power_w"])
    return {"gpu": gpu["name"], "batch_size": batch, "kernels_per_batch": trace.kernels,
            "bytes_per_batch": trace.bytes_moved, "flops_per_batch": trace.flops,
            "launch_s_per_batch": launch_s, "memory_s_per_batch": memory_s, "compute_s_per_batch": compute_s,
            "s_per_batch": batch_s, "s_per_sample": batch_s / batch, "power_w": power,
            "energy_j_per_sample": power * batch_s / batch,
            "energy_j_per_sample_parts": {"launch": power * launch_s / batch,
                                          "memory_or_compute": power * max(memory_s, compute_s) / batch}}
