"""Reference models layer: the golden E-prop model, a vectorised NumPy twin of the authors' C code.

The semantics are those of section 10 of `reference/eprop_spinnaker2.md`; this module is the one
place that spells out the per-step order of operations (see `GoldenModel._run`). In float32 mode
(the default) every operation rounds like the authors' C, including the few quantities their code
computes in double (decays, the Gaussian `exp`, Adam's `sqrt` and `lr_t`, the L2 term). In float64
mode the same equations run entirely in double (used to compare against exact BPTT).

Spike input (`input.kind: spikes`) is x in {0, 1}: the same equations, the spike as the input
current's factor and as the input traces' presynaptic signal, as on the chip.

Batches are vectorised: traces have shape (B, n_pre, n_rec) with the input and recurrent
synapses stacked along n_pre (inputs first). The per-sample gradients are averaged over the batch
and one Adam step is taken per batch; batch 1 is exactly the authors' per-sample update.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from s2eprop.host.config import NetworkConfig, TrainConfig
from s2eprop.host.connectivity import Masks, connectivity_masks
from s2eprop.host.errors import DataError
from s2eprop.host.weights import Weights

WEIGHT_KEYS = ("w_in", "w_rec", "w_out")
_SQRT_2PI_F = 2.5066282746  # the authors' SQRT_2PI_F, a float literal (float32 mode rounds it)


def float_type(dtype: Any) -> Any:
    """np.float32 or np.float64 from any dtype spelling; other precisions are refused."""
    f = np.dtype(dtype).type
    if f not in (np.float32, np.float64):
        raise ValueError(f"reference models run in float32 or float64, not {np.dtype(dtype).name}")
    return f


@dataclass
class AdamState:
    """Adam moments and schedule; never reset between samples or epochs (authors' C)."""

    m: dict[str, np.ndarray]  # keys WEIGHT_KEYS, same shapes as the weights
    v: dict[str, np.ndarray]
    t: int                    # Adam steps taken so far (global)
    lr: np.float32            # current base learning rate, after schedule decays
    b1_pow: np.float32        # beta1**(t+1), accumulated as a product in the model's dtype
    b2_pow: np.float32

    @classmethod
    def zeros(cls, net: NetworkConfig, train: TrainConfig, dtype: Any = np.float32) -> "AdamState":
        dtype = float_type(dtype)
        shapes = {"w_in": (net.n_in, net.n_rec), "w_rec": (net.n_rec, net.n_rec), "w_out": (net.n_rec, net.n_out)}
        return cls(
            m={k: np.zeros(s, dtype) for k, s in shapes.items()},
            v={k: np.zeros(s, dtype) for k, s in shapes.items()},
            t=0, lr=dtype(train.lr), b1_pow=dtype(train.adam_b1), b2_pow=dtype(train.adam_b2),
        )

    def copy(self) -> "AdamState":
        return AdamState({k: a.copy() for k, a in self.m.items()}, {k: a.copy() for k, a in self.v.items()},
                         self.t, self.lr, self.b1_pow, self.b2_pow)

    def astype(self, dtype: Any) -> "AdamState":
        """A copy with arrays and scalars in `dtype` (float64 models keep their optimiser in double)."""
        dtype = float_type(dtype)
        m = {k: a.astype(dtype) for k, a in self.m.items()}
        v = {k: a.astype(dtype) for k, a in self.v.items()}
        return AdamState(m, v, self.t, dtype(self.lr), dtype(self.b1_pow), dtype(self.b2_pow))


@dataclass
class BatchResult:
    """What one forward pass over a batch gives, all taken before any weight update."""

    loss: np.ndarray         # (B,) cross-entropy per sample
    pred: np.ndarray         # (B,) int64 argmax (first max) of output_mean
    output_mean: np.ndarray  # (B, n_out) time-mean readout
    l2_loss: float           # l2 * sum of all squared weights (epoch loss = mean(CE + this))
    spikes: np.ndarray       # (B,) int64 total spike count of the recurrent layer per sample


@dataclass(frozen=True)
class Constants:
    """Neuron and readout constants in the model's dtype, rounded as the authors' C rounds them."""

    dtype: Any
    alpha: Any
    rho: Any
    kappa: Any
    one_alpha: Any
    one_rho: Any
    one_alpha_x_one_rho: Any
    beta: Any            # a scalar, or per neuron (n_rec,) with 0 for the LIF ones (network.n_regular)
    v_th: Any
    one_rho_x_beta: Any

    @classmethod
    def of(cls, net: NetworkConfig, dtype: Any = np.float32) -> "Constants":
        dtype = float_type(dtype)
        if dtype == np.float32:
            alpha, rho, kappa = (np.float32(d) for d in net.decays())
        else:
            taus = (net.tau_m_ms, net.tau_a_ms, net.tau_out_ms)
            alpha, rho, kappa = (dtype(math.exp(-net.dt_ms / tau)) for tau in taus)
        one = dtype(1)
        beta = dtype(net.beta)
        one_rho_x_beta = (one - rho) * beta
        if net.n_regular:  # the first n_regular hidden neurons are LIF: beta 0 (per neuron, the last axis)
            alif = np.arange(net.n_rec) >= net.n_regular
            beta = np.where(alif, beta, dtype(0)).astype(dtype)
            one_rho_x_beta = np.where(alif, one_rho_x_beta, dtype(0)).astype(dtype)
        return cls(dtype, alpha, rho, kappa, one - alpha, one - rho, (one - alpha) * (one - rho),
                   beta, dtype(net.v_th), one_rho_x_beta)


def random_feedback(net: NetworkConfig, seed: int, dtype: Any = np.float32) -> np.ndarray:
    """Fixed random feedback matrix B (n_rec, n_out) ~ N(0, 1/n_rec), replacing W_out in L_j."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((net.n_rec, net.n_out)) / np.sqrt(net.n_rec)).astype(dtype)


def _gaussian(u: np.ndarray, mu: float, s: float, dtype: Any) -> np.ndarray:
    """Gaussian pdf as the authors compute it: exponent in the model dtype, exp and scaling in double."""
    d = u - dtype(mu)
    ratio = -(d * d) / dtype(2 * s * s)
    sqrt_2pi = float(np.float32(_SQRT_2PI_F)) if dtype == np.float32 else math.sqrt(2 * math.pi)
    return (np.exp(ratio.astype(np.float64)) / sqrt_2pi / s).astype(dtype)


_PI_F = 3.14159265  # the firmware's float literal of pi (float32 mode rounds it)


def surrogate(u: np.ndarray, net: NetworkConfig, dtype: Any = np.float32) -> np.ndarray:
    """Pseudo-derivative psi(u), u = v - A: the multi-Gaussian (default), or one of NEST's four with its
    beta and gamma (network.surrogate_beta, surrogate_gamma), in the firmware's order of operations."""
    dtype = float_type(dtype)
    u = np.asarray(u, dtype)
    beta, gamma = dtype(net.surrogate_beta), dtype(net.surrogate_gamma)
    if net.surrogate in ("triangle", "piecewise_linear"):
        scale = gamma / dtype(net.v_th)
        t = dtype(1) - beta * np.abs(u / dtype(net.v_th))
        return np.where(t > 0, scale * t, dtype(0)).astype(dtype)
    if net.surrogate == "exponential":
        arg = -(beta * np.abs(u))
        return (gamma * np.exp(arg.astype(np.float64)).astype(dtype)).astype(dtype)
    if net.surrogate == "fast_sigmoid":
        d = dtype(1) + beta * np.abs(u)
        return gamma / (d * d)
    if net.surrogate == "arctan":
        pi = dtype(_PI_F) if dtype == np.float32 else dtype(math.pi)
        q = beta * pi * u
        return (gamma / pi) / (dtype(1) + q * q)
    h, sigma = dtype(net.mg_height), net.mg_sigma
    centre = _gaussian(u, 0.0, sigma, dtype) * (dtype(1) + h)
    side = net.mg_scale * sigma
    plus = _gaussian(u, sigma, side, dtype) * h
    minus = _gaussian(u, -sigma, side, dtype) * h
    return dtype(net.mg_gamma) * (centre - plus - minus)


def rate_reg_signal(zcount: np.ndarray | None, net: NetworkConfig, train: TrainConfig, f: Any) -> np.ndarray | None:
    """train.rate_reg: r_j = c_reg (n_j / T - f_target) / T per sample and neuron (the firmware's order), the
    factor of sum_t e_ji^t in the gradient of c_reg / 2 sum_j (f_j - f_target)^2, f in spikes per step; None
    when off."""
    rr = train.rate_reg
    if not rr.active:
        return None
    assert zcount is not None
    t = f(net.n_steps)
    return (f(rr.c_reg) * (zcount / t - f(rr.f_target_per_step(net.dt_ms)))) / t


def mask_gradients(grads: dict[str, np.ndarray], masks: Masks | None) -> dict[str, np.ndarray]:
    """network.connectivity: the gradients of absent synapses are 0 (in place), so that their weights, 0
    from the start, stay 0 under L2 and either optimizer (g = 0 + 2 l2 0, m = v = 0, step 0)."""
    if masks is not None:
        for key in ("w_in", "w_rec"):
            grads[key] = np.where(masks.of(key), grads[key], grads[key].dtype.type(0))
    return grads


def softmax_cross_entropy(m: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample CE and error softmax - onehot of logits m (B, n_out), via the max-shifted logsumexp."""
    mx = m.max(axis=1, keepdims=True)
    offset = mx + np.log(np.exp(m - mx).sum(axis=1, keepdims=True))
    rows = np.arange(m.shape[0])
    loss = -(m[rows, y] - offset[:, 0])
    err = np.exp(m - offset)
    err[rows, y] -= m.dtype.type(1)
    return loss, err


def l2_loss(weights: Weights, l2: float) -> float:
    return float(l2 * sum(float(np.sum(np.square(w, dtype=np.float64))) for w in weights.as_dict().values()))


def apply_update(weights: Weights, grads: dict[str, np.ndarray], adam: AdamState, train: TrainConfig,
                 extra: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = ()) -> None:
    """Coupled L2 (g + 2*l2*W, in double, on all weights) then one Adam step (or SGD's), in place.

    Rounds like the authors' `grad_L2` and `AdamOptimizer`; the dtype is that of the weights. `extra`:
    more (w, g, m, v) arrays stepped the same way, in place (adaptive feedback's B).
    """
    w = weights.as_dict()
    f = w["w_in"].dtype.type
    b1, b2 = f(train.adam_b1), f(train.adam_b2)
    one = f(1)
    items = [(w[k], grads[k], adam.m[k], adam.v[k]) for k in WEIGHT_KEYS] + list(extra)
    if train.optimizer == "sgd":  # m = momentum m + g; W -= lr m (the firmware's order)
        lr, mu = f(adam.lr), f(train.momentum)
        for wk, gk, mk, _ in items:
            g = (gk.astype(np.float64) + 2 * train.l2 * wk.astype(np.float64)).astype(f)
            mk[...] = mu * mk + g
            wk -= lr * mk
    else:
        lr_t = f(float(adam.lr) * math.sqrt(float(one - adam.b2_pow)) / float(one - adam.b1_pow))
        eps = float(f(train.adam_eps))
        for wk, gk, mk, vk in items:
            g = (gk.astype(np.float64) + 2 * train.l2 * wk.astype(np.float64)).astype(f)
            mk[...] = b1 * mk + (one - b1) * g
            vk[...] = b2 * vk + (one - b2) * g * g
            wk -= ((lr_t * mk).astype(np.float64) / (np.sqrt(vk.astype(np.float64)) + eps)).astype(f)
    adam.b1_pow = f(adam.b1_pow * b1)  # (sgd: kept as the chip keeps them, unused)
    adam.b2_pow = f(adam.b2_pow * b2)
    adam.t += 1


def apply_schedule(adam: AdamState, train: TrainConfig, epoch: int) -> None:
    """At the start of epoch e > 0 with e % lr_decay_every_epochs == 0: lr *= lr_decay (in lr's dtype)."""
    if epoch > 0 and epoch % train.lr_decay_every_epochs == 0:
        f = type(adam.lr)
        adam.lr = f(adam.lr * f(train.lr_decay))


@dataclass
class _Run:
    out_mean: np.ndarray        # (B, n_out)
    zbar_sum: np.ndarray        # (B, n_rec) sum over time of zbar
    elig: np.ndarray | None     # (B, n_in + n_rec, n_rec) summed filtered eligibility E
    spikes: np.ndarray          # (B,)
    steps: dict[str, np.ndarray] | None = None  # recorded: z, v (B, T, n_rec), y (B, T, n_out) per step
    zcount: np.ndarray | None = None  # (B, n_rec) spikes per neuron (train.rate_reg)
    sum_e: np.ndarray | None = None   # (B, n_in + n_rec, n_rec) sum over time of the unfiltered e (train.rate_reg)


class GoldenModel:
    """The golden E-prop trainer: forward pass, e-prop gradients and Adam, batched.

    `weights` are copied (to `dtype`); `self.weights` and `self.adam` are then updated in place.
    The learning signal uses W_out (symmetric e-prop), a random B seeded by `train.seed` when
    `train.feedback` is "random" (fixed) or "adaptive" (B then learns as W_out does: W_out's gradient, its
    own L2 and optimizer moments), or the `feedback` matrix (n_rec, n_out) when one is given.
    A float64 model converts a given AdamState to float64.
    """

    def __init__(self, net: NetworkConfig, train: TrainConfig, weights: Weights,
                 adam: AdamState | None = None, dtype: Any = np.float32, feedback: np.ndarray | None = None):
        dtype = float_type(dtype)
        self.net, self.train, self.dtype = net, train, dtype
        self.c = Constants.of(net, dtype)
        # network.connectivity: absent synapses are 0 (as on the chip, which does not store them)
        self.masks = connectivity_masks(net)
        self.weights = Weights(*(np.array(a, dtype=dtype) for a in (weights.w_in, weights.w_rec, weights.w_out)),
                               labels=weights.labels)
        if self.masks is not None:
            self.weights = self.weights.masked(net)
        adam = adam if adam is not None else AdamState.zeros(net, train, dtype)
        self.adam = adam if dtype == np.float32 else adam.astype(dtype)
        if train.feedback in ("random", "adaptive"):
            self.feedback: np.ndarray | None = (random_feedback(net, train.seed, dtype) if feedback is None
                                                else np.array(feedback, dtype))
        else:
            self.feedback = None if feedback is None else np.asarray(feedback, dtype)
        # adaptive feedback: B learns as W_out does (W_out's gradient, its own L2 and optimizer moments)
        self.feedback_moments: tuple[np.ndarray, np.ndarray] | None = None
        if train.feedback == "adaptive":
            assert self.feedback is not None
            self.feedback_moments = (np.zeros_like(self.feedback), np.zeros_like(self.feedback))
        # what-if studies (host/studies/whatif.py): rounds the stored traces in place after every step
        self.trace_round: Callable[[np.ndarray], None] | None = None

    def start_epoch(self, epoch: int) -> None:
        """Learning-rate schedule: lr *= lr_decay at the start of each epoch e > 0 with e % every == 0."""
        apply_schedule(self.adam, self.train, epoch)

    def forward(self, x: np.ndarray, y: np.ndarray | None = None) -> BatchResult:
        """Inference only (no traces, no learning); the loss is NaN unless labels `y` are given."""
        x = self._check_x(x)
        run = self._run(x, traces=False)
        if y is None:
            loss = np.full(x.shape[0], np.nan, self.dtype)
        else:
            loss, _ = softmax_cross_entropy(run.out_mean, self._check_y(y, x.shape[0]))
        return BatchResult(loss, run.out_mean.argmax(axis=1).astype(np.int64), run.out_mean,
                           l2_loss(self.weights, self.train.l2), run.spikes)

    def gradients(self, x: np.ndarray, y: np.ndarray) -> tuple[dict[str, np.ndarray], BatchResult]:
        """Batch-mean e-prop gradients (no L2 term) and the batch's results, weights unchanged."""
        x, y = self._check_x(x), self._check_y(y, x.shape[0])
        run = self._run(x, traces=True)
        assert run.elig is not None
        f, (b, n_steps, _) = self.dtype, x.shape
        loss, err = softmax_cross_entropy(run.out_mean, y)
        fb = self.weights.w_out if self.feedback is None else self.feedback
        learning = (err @ fb.T) / f(n_steps)                               # L_j, (B, n_rec)
        per_sample = learning[:, None, :] * run.elig                       # (B, n_pre, n_rec)
        reg = rate_reg_signal(run.zcount, self.net, self.train, f)         # (B, n_rec) or None
        if reg is not None:
            per_sample = per_sample + reg[:, None, :] * run.sum_e
        g = per_sample.sum(axis=0) / f(b)
        g_out = ((run.zbar_sum[:, :, None] * err[:, None, :]) / f(n_steps)).sum(axis=0) / f(b)
        n_in = self.net.n_in
        grads = mask_gradients({"w_in": g[:n_in], "w_rec": g[n_in:], "w_out": g_out}, self.masks)
        result = BatchResult(loss, run.out_mean.argmax(axis=1).astype(np.int64), run.out_mean,
                             l2_loss(self.weights, self.train.l2), run.spikes)
        return grads, result

    def record(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Per-step activity with the current weights, as the chip records it: spikes z and membrane
        voltage v after each step (B, n_steps, n_rec), and the readout's output of each step
        y_t = zbar_t @ W_out (B, n_steps, n_out)."""
        run = self._run(self._check_x(x), traces=False, record=True)
        assert run.steps is not None
        return run.steps

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> BatchResult:
        """E-prop gradients + 2*l2*W on all weights, then one Adam step."""
        grads, result = self.gradients(x, y)
        extra = []
        if self.feedback_moments is not None:  # B takes W_out's gradient (no L2 in it), then its own step
            assert self.feedback is not None
            extra.append((self.feedback, grads["w_out"], *self.feedback_moments))
        apply_update(self.weights, grads, self.adam, self.train, extra)
        return result

    # -- per-step simulation -------------------------------------------------------------------

    def _run(self, x: np.ndarray, traces: bool, record: bool = False) -> _Run:
        """Simulate a batch; the order of operations per step is the authors' (section 10)."""
        c, f, net = self.c, self.dtype, self.net
        w = self.weights
        b, n_steps, n_in = x.shape
        n_rec, n_pre = net.n_rec, net.n_in + net.n_rec
        z, v, a, zbar = (np.zeros((b, n_rec), f) for _ in range(4))
        out = np.zeros((b, net.n_out), f)
        zbar_sum = np.zeros((b, n_rec), f)
        spikes = np.zeros(b, np.int64)
        rate = traces and self.train.rate_reg.active
        zcount = np.zeros((b, n_rec), f) if rate else None
        sum_e = np.zeros((b, n_pre, n_rec), f) if rate else None
        if traces:
            ev = np.zeros((b, n_pre), f)                       # eps_v, per presynaptic neuron
            ea, eb, elig, tmp = (np.zeros((b, n_pre, n_rec), f) for _ in range(4))
            diag = (slice(None), np.arange(n_in, n_pre), np.arange(n_rec))
            alif = (np.arange(n_rec) >= net.n_regular).astype(f)  # 0 for the LIF neurons
        steps = {"z": np.zeros((b, n_steps, n_rec), np.uint8), "v": np.zeros((b, n_steps, n_rec), f),
                 "y": np.zeros((b, n_steps, net.n_out), f)} if record else None
        for t in range(n_steps):
            z_prev = z
            a = c.rho * a + c.one_rho * z_prev
            thr = c.beta * a + c.v_th
            current = x[:, t] @ w.w_in + z_prev @ w.w_rec
            v = c.alpha * v + c.one_alpha * current - z_prev * thr
            u = v - thr
            z = (u > 0).astype(f)
            spikes += np.count_nonzero(z, axis=1)
            if zcount is not None:
                zcount += z
            zbar = zbar * c.kappa + z
            y_t = zbar @ w.w_out
            out = y_t + out
            zbar_sum += zbar
            if steps is not None:
                steps["z"][:, t], steps["v"][:, t], steps["y"][:, t] = z, v, y_t
            if traces:
                psi = surrogate(u, net, f)
                ev = c.alpha * ev + np.concatenate([x[:, t], z_prev], axis=1)
                psi_b = psi[:, None, :]
                ea *= (c.rho - c.one_rho_x_beta * psi)[:, None, :]
                # eps_a stays 0 for the LIF neurons (network.n_regular): no psi term enters it
                np.multiply(psi_b if not net.n_regular else psi_b * alif, ev[:, :, None], out=tmp)
                tmp *= c.one_alpha_x_one_rho
                ea += tmp
                ea[diag] = 0
                np.multiply(ea, -c.beta, out=tmp)                 # e = psi * (one_alpha*ev - beta*ea)
                tmp += (c.one_alpha * ev)[:, :, None]
                tmp *= psi_b
                tmp[diag] = 0
                if sum_e is not None:
                    sum_e += tmp
                eb *= c.kappa
                eb += tmp
                elig += eb
                if self.trace_round is not None:
                    for stored in (ea, eb, elig):
                        self.trace_round(stored)
        return _Run(out / f(n_steps), zbar_sum, elig if traces else None, spikes, steps, zcount, sum_e)

    def _check_x(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        want = (self.net.n_steps, self.net.n_in)
        if x.ndim != 3 or x.shape[1:] != want:
            raise DataError(f"golden model: input has shape {x.shape}, expected (batch, {want[0]}, {want[1]})")
        return x.astype(self.dtype, copy=False)

    def _check_y(self, y: np.ndarray, batch: int) -> np.ndarray:
        y = np.asarray(y, dtype=np.int64).reshape(-1)
        if y.shape != (batch,) or y.min() < 0 or y.max() >= self.net.n_out:
            raise DataError(f"golden model: labels {y.tolist()} must be {batch} integers in [0, {self.net.n_out})")
        return y
