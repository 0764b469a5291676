"""Exact BPTT reference: its backward pass, and e-prop = BPTT where e-prop is exact."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from s2eprop.host.config import NetworkConfig, RateRegConfig, TrainConfig
from s2eprop.host.reference.bptt import BPTTModel, bptt_gradients, bptt_state_bytes
from s2eprop.host.reference.golden import Constants, GoldenModel
from s2eprop.host.weights import Weights, init_weights

TINY = NetworkConfig(n_in=3, n_rec=4, n_out=2, n_steps=8, beta=1.0)
SMALL = NetworkConfig(n_in=20, n_rec=30, n_out=5, n_steps=50)
STEEP = 2.0


def smooth_spike(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = 1 / (1 + np.exp(-STEEP * u))
    return s, STEEP * s * (1 - s)


def smooth_loss(net: NetworkConfig, w: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray,
                resets: list[np.ndarray] | None = None, c_reg: float = 0.0,
                f_target: float = 0.0) -> tuple[float, list[np.ndarray]]:
    """Forward pass with z = sigmoid(u); the reset terms are frozen to `resets` when given.

    Freezing -z_{t-1} A_t at its base-point value makes finite differences see exactly the
    stopped-reset gradient that BPTT computes.
    """
    c = Constants.of(net, np.float64)
    b = x.shape[0]
    z, v, a, zbar = (np.zeros((b, net.n_rec)) for _ in range(4))
    out = np.zeros((b, net.n_out))
    count = np.zeros((b, net.n_rec))
    used = []
    for t in range(net.n_steps):
        a = c.rho * a + c.one_rho * z
        thr = c.beta * a + c.v_th
        reset = z * thr if resets is None else resets[t]
        used.append(reset)
        v = c.alpha * v + c.one_alpha * (x[:, t] @ w["w_in"] + z @ w["w_rec"]) - reset
        z, _ = smooth_spike(v - thr)
        count += z
        zbar = c.kappa * zbar + z
        out += zbar @ w["w_out"]
    m = out / net.n_steps
    logz = m.max(axis=1) + np.log(np.exp(m - m.max(axis=1, keepdims=True)).sum(axis=1))
    reg = c_reg / 2 * np.sum((count / net.n_steps - f_target) ** 2, axis=1)  # rate regularisation per sample
    return float(np.mean(logz - m[np.arange(b), y] + reg)), used


def tiny_problem(seed: int = 0) -> tuple[Weights, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = init_weights(TINY, seed)
    w = Weights(w.w_in * 3, w.w_rec * 2, w.w_out * 3)
    x = 2 * rng.standard_normal((2, TINY.n_steps, TINY.n_in))
    return w, x, np.array([0, 1])


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_backward_pass_matches_finite_differences() -> None:
    """With a smooth spike function, BPTT's gradients equal central differences of the loss (float64)."""
    w, x, y = tiny_problem()
    grads, loss = bptt_gradients(TINY, w, x, y, spike_fn=smooth_spike)
    base = {k: a.astype(np.float64) for k, a in w.as_dict().items()}
    loss0, resets = smooth_loss(TINY, base, x, y)
    assert loss == pytest.approx(loss0, rel=1e-12)
    h = 1e-6
    for key, arr in base.items():
        fd = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            plus, minus = ({**base, key: arr.copy()} for _ in range(2))
            plus[key][idx] += h
            minus[key][idx] -= h
            fd[idx] = (smooth_loss(TINY, plus, x, y, resets)[0] - smooth_loss(TINY, minus, x, y, resets)[0]) / (2 * h)
        if key == "w_rec":
            assert np.all(np.diag(grads[key]) == 0)
            np.fill_diagonal(fd, 0)
        assert rel(grads[key], fd) < 1e-6, key


def test_rate_regularisation_gradient_matches_finite_differences() -> None:
    """train.rate_reg (c_reg 3, target 100 Hz = 0.1 spikes per 1 ms step): BPTT's gradients of CE + c_reg / 2
    sum_j (f_j - f*)^2 equal central differences (float64, smooth spikes), and differ from CE's alone."""
    w, x, y = tiny_problem()
    train = TrainConfig(rate_reg=RateRegConfig(c_reg=3.0, target_hz=100.0))
    grads, _ = bptt_gradients(TINY, w, x, y, spike_fn=smooth_spike, train=train)
    plain, _ = bptt_gradients(TINY, w, x, y, spike_fn=smooth_spike)
    base = {k: a.astype(np.float64) for k, a in w.as_dict().items()}
    _, resets = smooth_loss(TINY, base, x, y)
    h = 1e-6
    for key in ("w_in", "w_rec"):
        arr = base[key]
        fd = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            plus, minus = ({**base, key: arr.copy()} for _ in range(2))
            plus[key][idx] += h
            minus[key][idx] -= h
            fd[idx] = (smooth_loss(TINY, plus, x, y, resets, 3.0, 0.1)[0]
                       - smooth_loss(TINY, minus, x, y, resets, 3.0, 0.1)[0]) / (2 * h)
        if key == "w_rec":
            np.fill_diagonal(fd, 0)
        assert rel(grads[key], fd) < 1e-6, key
        assert rel(grads[key], plain[key]) > 1e-3, key


@pytest.mark.parametrize("surrogate", ["multi_gaussian", "arctan"])
def test_eprop_equals_bptt_with_rate_regularisation(surrogate: str) -> None:
    """float64, W_rec = 0, beta = 0, train.rate_reg on (c_reg 0.5, 10 Hz): e-prop's gradients (the golden
    model sums the unfiltered e) are BPTT's to 1e-9 relative."""
    net = dataclasses.replace(SMALL, beta=0.0, surrogate=surrogate)
    train = TrainConfig(rate_reg=RateRegConfig(c_reg=0.5, target_hz=10.0))
    w = init_weights(net, 2)
    w.w_rec[:] = 0
    rng = np.random.default_rng(2)
    x = 3 * rng.standard_normal((3, net.n_steps, net.n_in))
    y = rng.integers(0, net.n_out, 3)
    eprop, _ = GoldenModel(net, train, w, dtype=np.float64).gradients(x, y)
    bptt, _ = bptt_gradients(net, w, x, y, train=train)
    plain, _ = bptt_gradients(net, w, x, y)
    for k in bptt:
        assert rel(eprop[k], bptt[k]) < 1e-9, k
    assert rel(plain["w_in"], bptt["w_in"]) > 1e-3  # the term matters


def test_default_forward_is_the_golden_forward() -> None:
    """BPTT's forward pass (Heaviside spikes) gives exactly the golden model's readout and loss."""
    x = 3 * np.random.default_rng(1).standard_normal((2, SMALL.n_steps, SMALL.n_in))
    y = np.array([1, 3])
    w = init_weights(SMALL, 1)
    for dtype in (np.float32, np.float64):
        r = BPTTModel(SMALL, TrainConfig(), w, dtype=dtype).train_batch(x, y)
        g = GoldenModel(SMALL, TrainConfig(), w, dtype=dtype).forward(x, y)
        np.testing.assert_array_equal(r.output_mean, g.output_mean)
        np.testing.assert_array_equal(r.loss, g.loss)
        np.testing.assert_array_equal(r.spikes, g.spikes)
        assert r.output_mean.dtype == dtype


def eprop_vs_bptt(net: NetworkConfig, zero_rec: bool) -> dict[str, float]:
    w = init_weights(net, 2)
    if zero_rec:
        w.w_rec[:] = 0
    rng = np.random.default_rng(2)
    x = 3 * rng.standard_normal((3, net.n_steps, net.n_in))
    y = rng.integers(0, net.n_out, 3)
    eprop, _ = GoldenModel(net, TrainConfig(), w, dtype=np.float64).gradients(x, y)
    bptt, _ = bptt_gradients(net, w, x, y)
    return {k: rel(eprop[k], bptt[k]) for k in bptt}


@pytest.mark.parametrize("surrogate", ["multi_gaussian", "triangle", "exponential", "fast_sigmoid", "arctan"])
def test_eprop_equals_bptt_without_recurrence_and_adaptation(surrogate: str) -> None:
    """float64, W_rec = 0, beta = 0: e-prop's gradients are BPTT's to 1e-9 relative, with every surrogate."""
    diffs = eprop_vs_bptt(dataclasses.replace(SMALL, beta=0.0, surrogate=surrogate), zero_rec=True)
    print(f"W_rec=0, beta=0, {surrogate}: e-prop vs BPTT relative diff {diffs}")
    assert all(d < 1e-9 for d in diffs.values())


def test_eprop_equals_bptt_when_every_neuron_is_lif() -> None:
    """float64, W_rec = 0, beta 0.184 but n_regular = n_rec (all LIF: no adaptation): e-prop is exact again,
    BPTT's gradients to 1e-9; with half of them LIF it is not (the ALIF half's adaptation)."""
    diffs = eprop_vs_bptt(dataclasses.replace(SMALL, n_regular=SMALL.n_rec), zero_rec=True)
    assert all(d < 1e-9 for d in diffs.values()), diffs
    half = eprop_vs_bptt(dataclasses.replace(SMALL, n_regular=SMALL.n_rec // 2), zero_rec=True)
    assert max(half.values()) > 1e-6, half


@pytest.mark.parametrize("beta, zero_rec", [(0.184, True), (0.0, False), (0.184, False)])
def test_eprop_approximates_bptt_otherwise(beta: float, zero_rec: bool) -> None:
    """With adaptation or recurrence e-prop is an approximation: close to BPTT but not equal."""
    diffs = eprop_vs_bptt(dataclasses.replace(SMALL, beta=beta), zero_rec)
    print(f"beta={beta}, W_rec{'=0' if zero_rec else ' random'}: e-prop vs BPTT relative diff {diffs}")
    assert 1e-6 < max(diffs["w_in"], diffs["w_rec"]) < 1
    assert diffs["w_out"] < 1e-9  # the readout gradient is exact in e-prop


def test_float32_gradients_close_to_float64() -> None:
    """bptt_gradients runs in float32 too, returning float32 arrays close to the float64 ones."""
    w, x, y = tiny_problem(3)
    g64, loss64 = bptt_gradients(TINY, w, x, y)
    g32, loss32 = bptt_gradients(TINY, w, x, y, dtype=np.float32)
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    for key in g64:
        assert g32[key].dtype == np.float32
        assert rel(g32[key], g64[key]) < 1e-4


def test_bptt_model_trains_like_golden_where_exact() -> None:
    """BPTTModel applies the golden model's L2 + Adam: with W_rec = 0 and beta = 0 the first step agrees.

    (After it W_rec is no longer 0, so later steps legitimately differ.)
    """
    net = dataclasses.replace(SMALL, beta=0.0)
    w = init_weights(net, 4)
    w.w_rec[:] = 0
    x = 3 * np.random.default_rng(4).standard_normal((2, net.n_steps, net.n_in))
    y = np.array([0, 4])
    bptt = BPTTModel(net, TrainConfig(), w, dtype=np.float64)
    golden = GoldenModel(net, TrainConfig(), w, dtype=np.float64)
    bptt.train_batch(x, y)
    golden.train_batch(x, y)
    assert bptt.adam.t == 1
    for key in ("w_in", "w_rec", "w_out"):
        assert np.abs(getattr(bptt.weights, key) - w.as_dict()[key]).max() > 1e-4
        np.testing.assert_allclose(getattr(bptt.weights, key), getattr(golden.weights, key), rtol=0, atol=1e-9)


def test_state_bytes() -> None:
    """BPTT keeps x, z, v, a per step: 100 * (80 + 3*120) * 4 B = 176 000 B for the reference net."""
    assert bptt_state_bytes(NetworkConfig(), 100) == 176_000
    assert bptt_state_bytes(NetworkConfig(), 200, batch=2, bytes_per_value=8) == 200 * 440 * 2 * 8


def test_eprop_equals_bptt_on_spike_input() -> None:
    """Spike input (x in {0, 1}, input.kind spikes), float64, W_rec = 0, beta = 0: e-prop's gradients
    are BPTT's to 1e-9 relative, as for analog input (and the network spikes: W_in x 6)."""
    net = dataclasses.replace(SMALL, beta=0.0)
    w = init_weights(net, 2)
    w.w_rec[:] = 0
    w.w_in[:] *= 6
    rng = np.random.default_rng(3)
    x = (rng.random((3, net.n_steps, net.n_in)) < 0.2).astype(np.float64)
    y = rng.integers(0, net.n_out, 3)
    golden = GoldenModel(net, TrainConfig(), w, dtype=np.float64)
    eprop, result = golden.gradients(x, y)
    bptt, _ = bptt_gradients(net, w, x, y)
    assert result.spikes.min() > 0
    diffs = {k: rel(eprop[k], bptt[k]) for k in bptt}
    assert all(d < 1e-9 for d in diffs.values()), diffs


def test_eprop_equals_bptt_with_sparse_connectivity() -> None:
    """float64, W_rec = 0, beta = 0, network.connectivity p_in 0.5, p_rec 0.25: e-prop's gradients are BPTT's
    to 1e-9 relative; both are exactly 0 at the absent synapses, where the dense BPTT's are not (the mask
    matters), and the sparse forward is the dense one's with the absent weights zeroed."""
    from s2eprop.host.config import ConnectivityConfig
    from s2eprop.host.connectivity import connectivity_masks

    net = dataclasses.replace(SMALL, beta=0.0, connectivity=ConnectivityConfig(p_in=0.5, p_rec=0.25, seed=3))
    masks = connectivity_masks(net)
    assert masks is not None and 0.4 < masks.w_in.mean() < 0.6 and 0.15 < masks.w_rec.mean() < 0.35
    diffs = eprop_vs_bptt(net, zero_rec=True)
    assert all(d < 1e-9 for d in diffs.values()), diffs
    w = init_weights(net, 2)
    assert np.all(w.w_in[~masks.w_in] == 0) and np.all(w.w_rec[~masks.w_rec] == 0)
    w.w_rec[:] = 0
    x = 3 * np.random.default_rng(2).standard_normal((3, net.n_steps, net.n_in))
    y = np.array([0, 1, 2])
    sparse, _ = bptt_gradients(net, w, x, y)
    dense, _ = bptt_gradients(dataclasses.replace(net, connectivity=ConnectivityConfig()), w, x, y)
    eprop, _ = GoldenModel(net, TrainConfig(), w, dtype=np.float64).gradients(x, y)
    for key in ("w_in", "w_rec"):
        absent = ~masks.of(key)
        assert np.all(sparse[key][absent] == 0) and np.all(eprop[key][absent] == 0)
        np.testing.assert_array_equal(sparse[key][~absent], dense[key][~absent])
    assert np.abs(dense["w_in"][~masks.w_in]).max() > 1e-3
