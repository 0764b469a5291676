"""Golden E-prop model: agreement with the authors' C code and the rules of section 10."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from s2eprop.host.config import NetworkConfig, TrainConfig
from s2eprop.host.errors import DataError
from s2eprop.host.reference.golden import AdamState, GoldenModel, random_feedback, surrogate
from s2eprop.host.weights import Weights, init_weights

NET = NetworkConfig()
TRAIN = TrainConfig()


@pytest.fixture(scope="module")
def authors_run(authors: dict[str, np.ndarray]) -> tuple[GoldenModel, list]:
    model = GoldenModel(NET, TRAIN, Weights(authors["w_in_init"], authors["w_rec_init"], authors["w_out_init"]))
    model.start_epoch(0)
    results = [model.train_batch(authors["x"][i:i + 1], authors["y"][i:i + 1]) for i in range(6)]
    return model, results


def sample_batch(n: int, seed: int = 0, net: NetworkConfig = NET) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((n, net.n_steps, net.n_in))).astype(np.float32)
    return x, rng.integers(0, net.n_out, n)


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_losses_and_predictions_match_authors(authors, authors_run) -> None:
    """Per-sample CE within 1e-5, identical predictions, output_mean within 1e-5 of the C code."""
    _, results = authors_run
    loss = np.array([r.loss[0] for r in results])
    pred = np.array([r.pred[0] for r in results])
    out = np.stack([r.output_mean[0] for r in results])
    print(f"max loss diff vs authors: {np.abs(loss - authors['loss']).max():.3g}")
    np.testing.assert_allclose(loss, authors["loss"], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(pred, authors["pred"])
    np.testing.assert_allclose(out, authors["output_mean"], rtol=0, atol=1e-5)
    assert all(r.spikes[0] > 0 for r in results)


def test_final_weights_match_authors(authors, authors_run) -> None:
    """After six per-sample Adam steps every matrix is within 1e-5 of max|w| of the C code's."""
    model, _ = authors_run
    for key in ("w_in", "w_rec", "w_out"):
        got, want = getattr(model.weights, key), authors[key]
        assert got.dtype == np.float32
        moved = np.abs(want - authors[f"{key}_init"]).max()
        err = rel(got, want)
        print(f"{key}: max diff / max|w| = {err:.3g} (weights moved by up to {moved:.3g})")
        assert err < 1e-5
        assert moved > 1e-3


def test_rec_diagonal_changes_only_by_l2() -> None:
    """Self-weights get a zero e-prop gradient; one step moves them by Adam on g = 2*l2*W only."""
    w = init_weights(NET, 3)
    x, y = sample_batch(1, seed=3)
    model = GoldenModel(NET, TRAIN, w)
    grads, _ = model.gradients(x, y)
    assert np.all(np.diag(grads["w_rec"]) == 0)
    assert np.abs(grads["w_rec"]).max() > 0
    model.train_batch(x, y)
    d = np.diag(w.w_rec).astype(np.float64)
    g = 2 * TRAIN.l2 * d
    b1, b2 = TRAIN.adam_b1, TRAIN.adam_b2
    m, v = (1 - b1) * g, (1 - b2) * g * g
    lr_t = TRAIN.lr * math.sqrt(1 - b2) / (1 - b1)
    expected = d - lr_t * m / (np.sqrt(v) + TRAIN.adam_eps)
    np.testing.assert_allclose(np.diag(model.weights.w_rec), expected, rtol=1e-6, atol=1e-9)
    assert np.abs(np.diag(model.weights.w_rec) - d).max() > 1e-6


def test_batch_of_identical_samples_equals_batch_one() -> None:
    """A batch of copies of one sample takes the same Adam step as that sample alone."""
    w = init_weights(NET, 4)
    x, y = sample_batch(1, seed=4)
    single = GoldenModel(NET, TRAIN, w)
    single.train_batch(x, y)
    for copies in (2, 3):
        batched = GoldenModel(NET, dataclasses.replace(TRAIN, batch_size=copies), w)
        r = batched.train_batch(np.repeat(x, copies, axis=0), np.repeat(y, copies))
        assert np.all(r.loss == r.loss[0]) and np.all(r.spikes == r.spikes[0])
        for key in ("w_in", "w_rec", "w_out"):
            np.testing.assert_allclose(getattr(batched.weights, key), getattr(single.weights, key), rtol=0, atol=1e-6)


def test_batch_of_two_is_mean_of_single_gradients() -> None:
    """gradients() of a batch of two different samples is the mean of their single-sample gradients."""
    w = init_weights(NET, 5)
    x, y = sample_batch(2, seed=5)
    model = GoldenModel(NET, TRAIN, w)
    both, r = model.gradients(x, y)
    g0, r0 = model.gradients(x[:1], y[:1])
    g1, r1 = model.gradients(x[1:], y[1:])
    np.testing.assert_allclose(r.loss, [r0.loss[0], r1.loss[0]], rtol=1e-6)
    for key in both:
        assert rel(both[key], (g0[key] + g1[key]) / 2) < 1e-5
        assert rel(g0[key], g1[key]) > 1e-2  # the samples really differ


def test_options_change_learning_only() -> None:
    """Triangle surrogate and random feedback change the gradients, not the forward pass or g_out."""
    w = init_weights(NET, 6)
    x, y = sample_batch(1, seed=6)
    base_g, base_r = GoldenModel(NET, TRAIN, w).gradients(x, y)
    tri_g, tri_r = GoldenModel(dataclasses.replace(NET, surrogate="triangle"), TRAIN, w).gradients(x, y)
    rnd_train = dataclasses.replace(TRAIN, feedback="random")
    rnd_g, rnd_r = GoldenModel(NET, rnd_train, w).gradients(x, y)
    for r in (tri_r, rnd_r):
        np.testing.assert_array_equal(r.output_mean, base_r.output_mean)
        np.testing.assert_array_equal(r.loss, base_r.loss)
    for g in (tri_g, rnd_g):
        np.testing.assert_array_equal(g["w_out"], base_g["w_out"])
        assert rel(g["w_in"], base_g["w_in"]) > 1e-2 and rel(g["w_rec"], base_g["w_rec"]) > 1e-2
    # An explicit feedback matrix equal to W_out gives back symmetric e-prop.
    sym_g, _ = GoldenModel(NET, rnd_train, w, feedback=w.w_out).gradients(x, y)
    for key in base_g:
        np.testing.assert_array_equal(sym_g[key], base_g[key])
    b = random_feedback(NET, rnd_train.seed)
    assert b.shape == (NET.n_rec, NET.n_out) and b.dtype == np.float32
    assert 0.5 < b.std() * math.sqrt(NET.n_rec) < 1.5


def test_n_regular_neurons_are_lif() -> None:
    """network.n_regular: the first n_regular neurons behave as with beta 0 (their threshold never adapts)
    and the others as ALIF: all LIF (n_regular = n_rec) gives exactly the beta-0 network's forward pass and
    gradients; with 60 LIF and nothing recurrent mixing the neurons (W_rec = 0), the LIF neurons'
    input synapses' eligibility E_ji is the beta-0 network's and the ALIF ones' the default network's (the learning signal
    mixes them all through the output error)."""
    w = init_weights(NET, 8)
    x, y = sample_batch(1, seed=8)
    lif = GoldenModel(dataclasses.replace(NET, beta=0.0), TRAIN, w).gradients(x, y)
    all_lif = GoldenModel(dataclasses.replace(NET, n_regular=NET.n_rec), TRAIN, w).gradients(x, y)
    np.testing.assert_array_equal(all_lif[1].output_mean, lif[1].output_mean)
    for key in lif[0]:
        np.testing.assert_array_equal(all_lif[0][key], lif[0][key])
    w0 = Weights(w.w_in, np.zeros_like(w.w_rec), w.w_out)
    def elig(net: NetworkConfig) -> np.ndarray:
        return GoldenModel(net, TRAIN, w0)._run(x, traces=True).elig[0, :NET.n_in]  # input synapses
    e_lif, e_alif = elig(dataclasses.replace(NET, beta=0.0)), elig(NET)
    e_mix = elig(dataclasses.replace(NET, n_regular=60))
    np.testing.assert_array_equal(e_mix[:, :60], e_lif[:, :60])
    np.testing.assert_array_equal(e_mix[:, 60:], e_alif[:, 60:])
    assert rel(e_lif[:, :60], e_alif[:, :60]) > 1e-3  # adaptation matters to these neurons


def test_sgd_update_by_hand() -> None:
    """train.optimizer sgd: two steps with momentum 0.9 give m1 = g1 + 2 l2 W0, W1 = W0 - lr m1,
    m2 = 0.9 m1 + g2 + 2 l2 W1, W2 = W1 - lr m2 (float64 by hand, within 1e-6 relative); Adam's v untouched."""
    from s2eprop.host.reference.golden import apply_update

    train = dataclasses.replace(TRAIN, optimizer="sgd", momentum=0.9, lr=0.05, l2=1e-3)
    w = init_weights(NET, 9)
    rng = np.random.default_rng(9)
    grads = [{k: rng.standard_normal(a.shape).astype(np.float32) for k, a in w.as_dict().items()} for _ in range(2)]
    adam = AdamState.zeros(NET, train)
    model = w.copy()
    want = {k: a.astype(np.float64) for k, a in w.as_dict().items()}
    m = {k: np.zeros_like(a) for k, a in want.items()}
    for g in grads:
        apply_update(model, g, adam, train)
        for k in want:
            m[k] = 0.9 * m[k] + g[k] + 2 * 1e-3 * want[k]
            want[k] = want[k] - 0.05 * m[k]
    for k, a in model.as_dict().items():
        assert rel(a, want[k]) < 1e-6, k
        assert rel(adam.m[k], m[k]) < 1e-6, k
        assert not adam.v[k].any()
    assert adam.t == 2


def test_adaptive_feedback_learns_as_w_out() -> None:
    """train.feedback adaptive: B starts as the random B and takes W_out's gradient with its own moments, so
    without L2 every step moves B as it moves W_out (the same gradient and moments: the same update value,
    to 1e-7); the learning signal of the next step uses the moved B."""
    train = dataclasses.replace(TRAIN, feedback="adaptive", l2=0.0)
    w = init_weights(NET, 10)
    x, y = sample_batch(2, seed=10)
    model = GoldenModel(NET, train, w)
    b0 = model.feedback.copy()
    np.testing.assert_array_equal(b0, random_feedback(NET, train.seed))
    for i in range(2):
        w_out0, b_before = model.weights.w_out.copy(), model.feedback.copy()
        model.train_batch(x[i:i + 1], y[i:i + 1])
        # the same update value, up to the rounding of adding it to weights of other magnitudes (updates ~1e-2)
        np.testing.assert_allclose(model.feedback - b_before, model.weights.w_out - w_out0, rtol=0, atol=1e-7)
    assert rel(model.feedback, b0) > 1e-3
    fixed = GoldenModel(NET, dataclasses.replace(train, feedback="random"), w)
    for i in range(2):
        fixed.train_batch(x[i:i + 1], y[i:i + 1])
    np.testing.assert_array_equal(fixed.feedback, b0)
    assert rel(fixed.weights.w_in, model.weights.w_in) > 1e-6  # the second step saw another B


def test_lr_schedule() -> None:
    """lr is unchanged at epochs 0, 1, 3 and multiplied by 0.3 (float32) at epochs 2 and 4."""
    model = GoldenModel(NET, TRAIN, init_weights(NET, 0))
    lrs = []
    for epoch in range(5):
        model.start_epoch(epoch)
        lrs.append(model.adam.lr)
    f = np.float32
    lr0, d = f(TRAIN.lr), f(TRAIN.lr_decay)
    assert lrs == [lr0, lr0, f(lr0 * d), f(lr0 * d), f(f(lr0 * d) * d)]
    assert all(isinstance(lr, np.float32) for lr in lrs)


def _gauss(u: float, mu: float, s: float) -> float:
    return math.exp(-(u - mu) ** 2 / (2 * s * s)) / math.sqrt(2 * math.pi) / s


@pytest.mark.parametrize("u", [-4.0, -1.6, -0.5, -0.1, 0.0, 0.25, 0.8, 2.0])
def test_surrogate_values(u: float) -> None:
    """psi matches a float64 hand computation of the multi-Gaussian and of Bellec's triangle."""
    mg = 0.5 * (1.15 * _gauss(u, 0, 0.5) - 0.15 * _gauss(u, 0.5, 3.0) - 0.15 * _gauss(u, -0.5, 3.0))
    got32 = surrogate(np.array([u], np.float32), NET)[0]
    assert got32.dtype == np.float32
    assert abs(float(got32) - mg) <= 1e-6 * abs(mg) + 1e-9
    assert abs(float(surrogate(np.array([u]), NET, np.float64)[0]) - mg) <= 1e-12
    tri = dataclasses.replace(NET, surrogate="triangle")
    want = 0.3 / 1.6 * max(0.0, 1 - abs(u / 1.6))
    assert abs(float(surrogate(np.array([u]), tri, np.float64)[0]) - want) <= 1e-15
    assert abs(float(surrogate(np.array([u], np.float32), tri)[0]) - want) <= 1e-7


# NEST's surrogate_gradient_function (nestkernel/eprop_archiving_node_recurrent: u = v_m - v_th_adapt, V_th the
# relative threshold, our v_th), written from NEST's formulas in float64, with beta and gamma away from 1
NEST_SURROGATES = {
    "piecewise_linear": lambda u, b, g: g * max(0.0, 1.0 - b * abs(u / 1.6)) / 1.6,
    "exponential": lambda u, b, g: g * math.exp(-b * abs(u)),
    "fast_sigmoid": lambda u, b, g: g * (1.0 + b * abs(u)) ** -2,
    "arctan": lambda u, b, g: g / math.pi * (1.0 / (1.0 + (b * math.pi * u) ** 2)),
}


@pytest.mark.parametrize("name", sorted(NEST_SURROGATES))
@pytest.mark.parametrize("u", [-4.0, -1.6, -0.5, -0.1, 0.0, 0.25, 0.8, 2.0])
def test_nest_surrogate_values(name: str, u: float) -> None:
    """Each of NEST's four surrogates (beta 1.7, gamma 0.45) matches NEST's formula: float64 within 1e-15
    relative, float32 within 1e-6 relative (+1e-12: beta rounded to float32 moves exp(-beta |u|) by up to 7e-7); the triangle is piecewise_linear under another name."""
    net = dataclasses.replace(NET, surrogate=name, surrogate_beta=1.7, surrogate_gamma=0.45)
    want = NEST_SURROGATES[name](u, 1.7, 0.45)
    got64 = float(surrogate(np.array([u]), net, np.float64)[0])
    assert abs(got64 - want) <= 1e-15 * max(abs(want), 1e-3), (got64, want)
    got32 = surrogate(np.array([u], np.float32), net)[0]
    assert got32.dtype == np.float32
    assert abs(float(got32) - want) <= 1e-6 * abs(want) + 1e-12, (float(got32), want)
    if name == "piecewise_linear":
        tri = dataclasses.replace(net, surrogate="triangle")
        assert surrogate(np.array([u], np.float32), tri)[0] == got32


def test_float64_mode_runs_in_double() -> None:
    """dtype=float64 keeps weights, Adam state and outputs in float64 and stays close to float32."""
    net = NetworkConfig(n_in=10, n_rec=12, n_out=3, n_steps=20)
    w = init_weights(net, 7)
    x, y = sample_batch(2, seed=7, net=net)
    m64 = GoldenModel(net, TRAIN, w, dtype=np.float64)
    r = m64.train_batch(x, y)
    assert r.output_mean.dtype == np.float64 and m64.weights.w_in.dtype == np.float64
    assert m64.adam.m["w_in"].dtype == np.float64 and m64.adam.t == 1
    r32 = GoldenModel(net, TRAIN, w).forward(x, y)
    np.testing.assert_allclose(r.output_mean, r32.output_mean, atol=1e-5)


def test_forward_does_not_learn() -> None:
    """forward() leaves weights and Adam untouched and agrees with the training pass."""
    w = init_weights(NET, 8)
    x, y = sample_batch(2, seed=8)
    model = GoldenModel(NET, TRAIN, w)
    r = model.forward(x, y)
    assert model.adam.t == 0 and np.array_equal(model.weights.w_in, w.w_in)
    _, rg = model.gradients(x, y)
    np.testing.assert_array_equal(r.output_mean, rg.output_mean)
    np.testing.assert_array_equal(r.loss, rg.loss)
    assert np.isnan(model.forward(x).loss).all()
    sum_sq = sum(float(np.sum(a.astype(np.float64) ** 2)) for a in w.as_dict().values())
    assert r.l2_loss == pytest.approx(TRAIN.l2 * sum_sq)


def test_adam_state_zeros_and_copy() -> None:
    """AdamState.zeros starts at t=0, lr and beta powers in float32; copy() is deep."""
    a = AdamState.zeros(NET, TRAIN)
    assert a.t == 0 and a.lr == np.float32(0.01) and a.b1_pow == np.float32(0.9) and a.b2_pow == np.float32(0.999)
    assert a.m["w_rec"].shape == (NET.n_rec, NET.n_rec) and a.v["w_out"].dtype == np.float32
    b = a.copy()
    b.m["w_in"][0, 0] = 1
    assert a.m["w_in"][0, 0] == 0


def test_bad_input_shapes_are_rejected() -> None:
    """Wrong input shape or out-of-range labels raise DataError naming the problem."""
    model = GoldenModel(NET, TRAIN, init_weights(NET, 0))
    with pytest.raises(DataError, match="shape"):
        model.forward(np.zeros((1, 50, NET.n_in), np.float32))
    with pytest.raises(DataError, match="labels"):
        model.gradients(np.zeros((1, NET.n_steps, NET.n_in), np.float32), np.array([12]))
