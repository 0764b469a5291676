"""Studies layer: traces stored in 16 bits, on the golden model (its `trace_round` hook rounds eps_a, the
filtered trace and its sum in place after every step), and the accuracy it costs on a dataset."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from s2eprop.host.config import ExperimentConfig
from s2eprop.host.reference.golden import GoldenModel
from s2eprop.host.weights import init_weights


_HALF_MIN_NORMAL = np.float32(2.0 ** -14)
_HALF_OVERFLOW = np.float32(65520.0)  # rounds to inf in half precision


def round_float16(a: np.ndarray) -> None:
    """Round float32 values in place to the nearest IEEE half (ties to even; half subnormals; overflow to
    inf), as `a.astype(np.float16)` does, in bit operations (NumPy's conversion is 10x slower)."""
    mag = np.abs(a)
    small = mag < _HALF_MIN_NORMAL
    sub = np.rint(a[small] * np.float32(2.0 ** 24)) * np.float32(2.0 ** -24)  # multiples of the smallest half
    big = mag >= _HALF_OVERFLOW
    u = a.view(np.uint32)
    u += np.uint32(0x0FFF) + ((u >> np.uint32(13)) & np.uint32(1))  # 10 mantissa bits, ties to even
    u &= np.uint32(0xFFFFE000)
    a[small] = sub
    a[big] = np.copysign(np.float32(np.inf), a[big])


def round_bfloat16(a: np.ndarray) -> None:
    """Round float32 values in place to the nearest bfloat16 (ties to even): keep the top 16 bits."""
    u = a.view(np.uint32)
    u += np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))
    u &= np.uint32(0xFFFF0000)


ROUNDERS: dict[str, Callable[[np.ndarray], None]] = {"float16": round_float16, "bfloat16": round_bfloat16}


def train_and_test(cfg: ExperimentConfig, data: Any, n_train: int, trace_format: str | None,
                   seed: int = 0, test_batch: int = 100) -> dict[str, Any]:
    """Golden model, batch 1 as the chip, on the first n_train samples; test accuracy and loss."""
    model = GoldenModel(cfg.network, cfg.train, init_weights(cfg.network, seed, tuple(data.labels)))
    model.trace_round = ROUNDERS[trace_format] if trace_format else None
    n = min(n_train, len(data.x_train))
    train_correct = 0
    for i in range(n):
        r = model.train_batch(data.x_train[i:i + 1], data.y_train[i:i + 1])
        train_correct += int(r.pred[0] == data.y_train[i])
    x, y = (data.x_test, data.y_test) if data.x_test is not None else (data.x_train[n:], data.y_train[n:])
    correct, loss = 0, 0.0
    for lo in range(0, len(x), test_batch):
        r = model.forward(x[lo:lo + test_batch], y[lo:lo + test_batch])
        correct += int(np.sum(r.pred == y[lo:lo + test_batch]))
        loss += float(np.sum(r.loss))
    return {"trace_format": trace_format or "float32", "train_samples": n,
            "train_accuracy_online": train_correct / max(n, 1),
            "test_accuracy": correct / max(len(x), 1), "test_loss": loss / max(len(x), 1), "test_samples": len(x)}
