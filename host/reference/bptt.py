"""Reference models layer: exact backpropagation through time (BPTT) for the golden model's network.

Same ALIF network, readout and loss as `s2eprop.host.reference.golden` (cross-entropy on the time-mean
readout, no L2 in the gradients), differentiated exactly with a hand-written backward pass:

* the spike non-linearity z = H(u) has the pseudo-derivative dz/du = psi(u) (the golden model's
  surrogate), and u = v - A, so dz/dv = psi and dz/da = -beta * psi;
* the reset term -z_{t-1} * A_t is treated as a constant (its gradient is stopped), as e-prop
  assumes; the recurrent input z_{t-1} @ W_rec and the adaptation a_t = rho a + (1-rho) z_{t-1} are not;
* the recurrent diagonal is used in the forward pass and its gradient is reported as 0, as e-prop does;
* network.connectivity: absent synapses (weight 0) have their gradients reported as 0.

With W_rec = 0 and beta = 0 e-prop is exact, so its gradients must equal these (tests). The
backward pass needs x, z, v, a of every step (`bptt_state_bytes`); e-prop needs none of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from s2eprop.host.config import NetworkConfig, TrainConfig
from s2eprop.host.errors import DataError
from s2eprop.host.reference.golden import (AdamState, BatchResult, Constants, apply_schedule, apply_update, float_type, l2_loss, mask_gradients, softmax_cross_entropy, surrogate)
from s2eprop.host.connectivity import connectivity_masks
from s2eprop.host.weights import Weights

SpikeFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""u -> (z, dz/du). Default: (Heaviside(u), psi(u)); tests pass a smooth pair to check the algebra."""


@dataclass
class _Forward:
    z: np.ndarray         # (T, B, n_rec) spikes
    dz_du: np.ndarray     # (T, B, n_rec) pseudo-derivative
    zbar_sum: np.ndarray  # (B, n_rec)
    out_mean: np.ndarray  # (B, n_out)


def bptt_state_bytes(net: NetworkConfig, n_steps: int, batch: int = 1, bytes_per_value: int = 4) -> int:
    """Per-step state BPTT keeps for its backward pass: x, z, v, a of every step, T*(n_in + 3 n_rec) values."""
    return n_steps * (net.n_in + 3 * net.n_rec) * batch * bytes_per_value


def _forward(net: NetworkConfig, w: dict[str, np.ndarray], x: np.ndarray, c: Constants, spike: SpikeFn) -> _Forward:
    f = c.dtype
    b, n_steps, _ = x.shape
    z, v, a, zbar, zbar_sum = (np.zeros((b, net.n_rec), f) for _ in range(5))
    out = np.zeros((b, net.n_out), f)
    zs = np.empty((n_steps, b, net.n_rec), f)
    dz_du = np.empty_like(zs)
    for t in range(n_steps):
        z_prev = z
        a = c.rho * a + c.one_rho * z_prev
        thr = c.beta * a + c.v_th
        v = c.alpha * v + c.one_alpha * (x[:, t] @ w["w_in"] + z_prev @ w["w_rec"]) - z_prev * thr
        z, dz_du[t] = spike(v - thr)
        zs[t] = z
        zbar = zbar * c.kappa + z
        out = zbar @ w["w_out"] + out
        zbar_sum += zbar
    return _Forward(zs, dz_du, zbar_sum, out / f(n_steps))


def _backward(w: dict[str, np.ndarray], x: np.ndarray, fw: _Forward, err: np.ndarray,
              c: Constants, reg: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Adjoints of v and a, from the last step back; returns batch-mean gradients. `reg` (B, n_rec):
    dE_reg/dz_j^t of the rate regularisation, the same at every t (train.rate_reg)."""
    f = c.dtype
    b, n_steps, _ = x.shape
    err = err / f(b)
    reg = None if reg is None else reg / f(b)
    grads = {"w_in": np.zeros_like(w["w_in"]), "w_rec": np.zeros_like(w["w_rec"]),
             "w_out": (fw.zbar_sum.T @ err) / f(n_steps)}
    direct = (err @ w["w_out"].T) / f(n_steps)  # dL/dzbar_t through the readout, the same at every t
    g_zbar = np.zeros_like(direct)
    g_v_next = np.zeros_like(direct)            # dL/dv_{t+1}
    g_a_next = np.zeros_like(direct)            # dL/da_{t+1}
    zero = np.zeros_like(direct)
    for t in range(n_steps - 1, -1, -1):
        g_zbar = direct + c.kappa * g_zbar
        g_z = g_zbar + (c.one_alpha * g_v_next) @ w["w_rec"].T + c.one_rho * g_a_next
        if reg is not None:
            g_z = g_z + reg
        g_u = g_z * fw.dz_du[t]
        g_v = g_u + c.alpha * g_v_next
        g_a = -c.beta * g_u + c.rho * g_a_next
        g_current = c.one_alpha * g_v
        grads["w_in"] += x[:, t].T @ g_current
        grads["w_rec"] += (fw.z[t - 1] if t > 0 else zero).T @ g_current
        g_v_next, g_a_next = g_v, g_a
    np.fill_diagonal(grads["w_rec"], 0)
    return grads


def _default_spike(net: NetworkConfig, f: Any) -> SpikeFn:
    return lambda u: ((u > 0).astype(f), surrogate(u, net, f))


def _check(net: NetworkConfig, x: np.ndarray, y: np.ndarray, f: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=f)
    if x.ndim != 3 or x.shape[1:] != (net.n_steps, net.n_in):
        raise DataError(f"BPTT: input has shape {x.shape}, expected (batch, {net.n_steps}, {net.n_in})")
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    if y.shape != (x.shape[0],) or y.min() < 0 or y.max() >= net.n_out:
        raise DataError(f"BPTT: labels {y.tolist()} must be {x.shape[0]} integers in [0, {net.n_out})")
    return x, y


def _bptt(net: NetworkConfig, weights: Weights, x: np.ndarray, y: np.ndarray, dtype: Any,
          spike_fn: SpikeFn | None, train: TrainConfig | None = None) -> tuple[dict[str, np.ndarray], np.ndarray, _Forward]:
    dtype = float_type(dtype)
    c = Constants.of(net, dtype)
    x, y = _check(net, x, y, dtype)
    w = {k: np.asarray(a, dtype) for k, a in weights.masked(net).as_dict().items()}
    fw = _forward(net, w, x, c, spike_fn or _default_spike(net, dtype))
    loss, err = softmax_cross_entropy(fw.out_mean, y)
    reg = None
    if train is not None and train.rate_reg.active:
        # E_reg = c_reg / 2 sum_j (f_j - f*)^2, f_j = sum_t z_j^t / T: dE_reg/dz_j^t = c_reg (f_j - f*) / T
        rr, t = train.rate_reg, dtype(net.n_steps)
        reg = dtype(rr.c_reg) * (fw.z.sum(axis=0) / t - dtype(rr.f_target_per_step(net.dt_ms))) / t
    # network.connectivity: the absent synapses' weights are 0 and their gradients reported as 0, as e-prop's
    return mask_gradients(_backward(w, x, fw, err, c, reg), connectivity_masks(net)), loss, fw


def bptt_gradients(net: NetworkConfig, weights: Weights, x: np.ndarray, y: np.ndarray, dtype: Any = np.float64,
                   *, spike_fn: SpikeFn | None = None, train: TrainConfig | None = None
                   ) -> tuple[dict[str, np.ndarray], float]:
    """Batch-mean BPTT gradients (no L2) of the mean cross-entropy (plus train.rate_reg's term when `train`
    has one), and the mean cross-entropy."""
    grads, loss, _ = _bptt(net, weights, x, y, dtype, spike_fn, train)
    return grads, float(np.mean(loss, dtype=np.float64))


class BPTTModel:
    """The same network trained with BPTT gradients, L2 and Adam exactly as the golden model."""

    def __init__(self, net: NetworkConfig, train: TrainConfig, weights: Weights,
                 adam: AdamState | None = None, dtype: Any = np.float32):
        dtype = float_type(dtype)
        self.net, self.train, self.dtype = net, train, dtype
        self.weights = Weights(*(np.array(a, dtype=dtype) for a in (weights.w_in, weights.w_rec, weights.w_out)),
                               labels=weights.labels).masked(net)
        adam = adam if adam is not None else AdamState.zeros(net, train, dtype)
        self.adam = adam if dtype == np.float32 else adam.astype(dtype)

    def start_epoch(self, epoch: int) -> None:
        """Same schedule as the golden model: lr *= lr_decay at epochs e > 0 with e % every == 0."""
        apply_schedule(self.adam, self.train, epoch)

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> BatchResult:
        grads, loss, fw = _bptt(self.net, self.weights, x, y, self.dtype, None, self.train)
        result = BatchResult(loss, fw.out_mean.argmax(axis=1).astype(np.int64), fw.out_mean,
                             l2_loss(self.weights, self.train.l2), fw.z.sum(axis=(0, 2)).astype(np.int64))
        apply_update(self.weights, grads, self.adam, self.train)
        return result
