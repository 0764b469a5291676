"""The C firmware on emulated cores learns what the NumPy golden model learns (reference notes,
section 10): per sample from the same state, free-running, over partitions and with the options."""
from __future__ import annotations

import numpy as np
import pytest

from s2eprop.host.config import ConnectivityConfig, RateRegConfig
from s2eprop.host.reference.golden import GoldenModel, random_feedback
from s2eprop.host.session.runtime import BoardTrainer

# one update from the same state, relative to max|w| per matrix: the README's 2e-6 (measured: 8.7e-7 for this
# seed's weight updates, up to 1.2e-6 in w_in over seeds; 7.1e-7 for the Adam moments)
TOL_STEP = 2e-6
# 20 free-running samples (measured: 7.7e-7 for w_in, 3.0e-7 w_rec, 1.4e-7 w_out), about 4x margin
TOL_RUN = 3e-6
MATRICES = ("w_in", "w_rec", "w_out")


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_each_update_matches_golden_from_the_same_state(cfg, init_w, samples20) -> None:
    """Rule: for each of 20 samples, a fresh 12-core board built from the golden model's weights and
    Adam state after the previous sample makes the same weight update as the golden model (within
    2e-6 of max|w| per matrix, the README's figure), the same prediction, spike count and loss (1e-5),
    and ends in the same Adam state (t, lr, beta powers; moments within 1e-6 of their max)."""
    x, y = samples20
    golden = GoldenModel(cfg.network, cfg.train, init_w)
    worst_update, worst_moment = 0.0, 0.0
    for i in range(len(x)):
        w0, a0 = golden.weights.copy(), golden.adam.copy()
        board = BoardTrainer(cfg, w0.copy(), a0.copy() if i else None)
        assert board.plan.n_cores == 12
        rb = board.train_batch(x[i:i + 1], y[i:i + 1])
        rg = golden.train_batch(x[i:i + 1], y[i:i + 1])
        assert rb.pred.tolist() == rg.pred.tolist(), f"sample {i}: prediction {rb.pred} vs golden {rg.pred}"
        assert rb.spikes.tolist() == rg.spikes.tolist(), f"sample {i}: spikes {rb.spikes} vs golden {rg.spikes}"
        assert abs(float(rb.loss[0]) - float(rg.loss[0])) <= 1e-5, f"sample {i}: loss {rb.loss} vs {rg.loss}"
        np.testing.assert_allclose(rb.output_mean, rg.output_mean, rtol=0, atol=1e-5)
        wb = board.weights
        for k in MATRICES:
            w_before, w_g, w_b = getattr(w0, k), getattr(golden.weights, k), getattr(wb, k)
            scale = float(np.max(np.abs(w_g)))
            du_g, du_b = w_g - w_before, w_b - w_before
            err = float(np.max(np.abs(du_b - du_g))) / scale
            worst_update = max(worst_update, err)
            assert err <= TOL_STEP, f"sample {i}: {k} update differs by {err:.3g} of max|w|"
            # the check has teeth: the update itself is 100x larger than the tolerance
            assert float(np.max(np.abs(du_g))) / scale > 100 * TOL_STEP, f"sample {i}: {k} barely moved"
        ab, ag = board.adam, golden.adam
        assert ab.t == ag.t == i + 1
        assert np.float32(ab.lr) == np.float32(ag.lr)
        assert np.float32(ab.b1_pow) == np.float32(ag.b1_pow) and np.float32(ab.b2_pow) == np.float32(ag.b2_pow)
        for k in MATRICES:
            worst_moment = max(worst_moment, _rel(ab.m[k], ag.m[k]), _rel(ab.v[k], ag.v[k]))
            assert _rel(ab.m[k], ag.m[k]) <= TOL_STEP, f"sample {i}: Adam m[{k}]"
            assert _rel(ab.v[k], ag.v[k]) <= TOL_STEP, f"sample {i}: Adam v[{k}]"
    print(f"\nboard vs golden over {len(x)} samples from the same state: max update difference "
          f"{worst_update:.3g} of max|w|, Adam moments {worst_moment:.3g} of their max")


def test_free_running_20_samples_matches_golden(cfg, init_w, samples20, weights_close, rel_err) -> None:
    """Rule: one board and one golden model, each on its own over the same 20 samples, end within
    3e-6 of max|w| per matrix (and both actually learned: the weights moved far more than that)."""
    x, y = samples20
    board = BoardTrainer(cfg, init_w.copy())
    golden = GoldenModel(cfg.network, cfg.train, init_w)
    preds_b, preds_g = [], []
    for i in range(len(x)):
        preds_b.append(int(board.train_batch(x[i:i + 1], y[i:i + 1]).pred[0]))
        preds_g.append(int(golden.train_batch(x[i:i + 1], y[i:i + 1]).pred[0]))
    weights_close(board.weights, golden.weights, TOL_RUN, "board vs golden after 20 samples")
    print(f"\nboard vs golden after 20 free-running samples: {rel_err(board.weights, golden.weights)} of max|w|")
    moved = rel_err(golden.weights, init_w)
    assert min(moved.values()) > 100 * TOL_RUN, f"training barely moved the weights: {moved}"
    assert sum(p == q for p, q in zip(preds_b, preds_g)) >= 18, (preds_b, preds_g)
    assert board.provenance() == dict.fromkeys(board.provenance(), 0)


@pytest.fixture(scope="module")
def golden5(cfg, init_w, sample_maker):
    x, y = sample_maker(5, seed=55)
    golden = GoldenModel(cfg.network, cfg.train, init_w)
    results = [golden.train_batch(x[i:i + 1], y[i:i + 1]) for i in range(5)]
    return x, y, golden.weights, results


@pytest.mark.parametrize("npc, readout, n_cores, readout_core", [
    (20, "shared", 6, 0), (10, "shared", 12, 0), (5, "shared", 24, 0), (10, "extra", 13, 12),
])
def test_partitions_learn_the_same(cfg, init_w, golden5, with_options, weights_close,
                                   npc, readout, n_cores, readout_core) -> None:
    """Rule: however the 120 neurons are split (20, 10 or 5 per core; readout on core 0 or on an extra
    core), 5 training samples give the golden model's weights within 1e-5 of max|w| and its predictions.
    (20 neurons need about 105 KiB of arena, over the 96 KiB data budget: that case runs with the
    whole 128 KiB SRAM as the arena limit, since it checks the numerics of the split, not the fit.)"""
    x, y, w_golden, results = golden5
    part = {"neurons_per_core": npc, "readout": readout}
    if npc == 20:
        part["arena_limit_bytes"] = 128 * 1024
    c = with_options(cfg, partition=part)
    board = BoardTrainer(c, init_w.copy())
    assert board.plan.n_cores == n_cores and board.plan.readout_core == readout_core
    assert len(board.plan.neuron_cores) == 120 // npc
    for i in range(5):
        r = board.train_batch(x[i:i + 1], y[i:i + 1])
        assert r.pred.tolist() == results[i].pred.tolist(), f"sample {i}"
        assert abs(float(r.loss[0]) - float(results[i].loss[0])) <= 1e-5, f"sample {i}"
    weights_close(board.weights, w_golden, 1e-5, f"{n_cores} cores ({npc} per core, readout {readout})")
    assert board.provenance() == dict.fromkeys(board.provenance(), 0)


# issue 27: chip vs golden within 1e-6 of max|w| on 3 samples with each option (measured: at most 6.3e-7, in w_in)
TOL_OPTION = 1e-6


@pytest.mark.parametrize("section, option", [
    ("train", {"feedback": "random"}),
    ("network", {"surrogate": "triangle"}),
    ("network", {"surrogate": "piecewise_linear", "surrogate_beta": 1.5, "surrogate_gamma": 0.5}),
    ("network", {"surrogate": "exponential", "surrogate_beta": 0.8}),
    ("network", {"surrogate": "fast_sigmoid", "surrogate_beta": 2.0}),
    ("network", {"surrogate": "arctan"}),
    ("network", {"n_regular": 60}),
    ("network", {"n_regular": 5}),  # core 0 holds 5 LIF and 5 ALIF neurons
    ("train", {"optimizer": "sgd", "lr": 0.05}),
    ("train", {"optimizer": "sgd", "lr": 0.02, "momentum": 0.9}),
    ("train", {"rate_reg": RateRegConfig(c_reg=50.0, target_hz=10.0)}),
    ("train", {"feedback": "adaptive"}),
    ("train", {"feedback": "adaptive", "optimizer": "sgd", "lr": 0.05}),
    ("network", {"connectivity": ConnectivityConfig(p_in=0.5, p_rec=0.25)}),
])
def test_options_match_golden(cfg, init_w, sample_maker, with_options, weights_close, rel_err,
                              section, option) -> None:
    """Rule: with an option (train.feedback "random": a fixed random B in the learning signal; each of
    network.surrogate's NEST surrogates), 3 samples on the board give the golden model's weights (same
    option) within 1e-6 of max|w|; and the option matters (the default golden model ends far from it)."""
    x, y = sample_maker(3, seed=99)
    c = with_options(cfg, **{section: option})
    w0 = init_w.masked(c.network)  # network.connectivity: no weight at an absent synapse (others: init_w itself)
    board = BoardTrainer(c, w0.copy())
    golden = GoldenModel(c.network, c.train, w0)
    default = GoldenModel(cfg.network, cfg.train, init_w)
    for i in range(3):
        rb = board.train_batch(x[i:i + 1], y[i:i + 1])
        rg = golden.train_batch(x[i:i + 1], y[i:i + 1])
        default.train_batch(x[i:i + 1], y[i:i + 1])
        assert rb.pred.tolist() == rg.pred.tolist()
    weights_close(board.weights, golden.weights, TOL_OPTION, f"option {option}")
    if c.train.feedback != "symmetric":  # the chip's B: fixed (random) or learned as the golden model's (adaptive)
        fb_b, fb_g = board.feedback, golden.feedback
        assert _rel(fb_b, fb_g) <= TOL_OPTION, f"option {option}: feedback B differs by {_rel(fb_b, fb_g):.3g}"
        moved = _rel(fb_g, random_feedback(c.network, c.train.seed))
        assert (moved > 100 * TOL_OPTION) == (c.train.feedback == "adaptive"), f"option {option}: B moved {moved:.3g}"
    diff = rel_err(default.weights, golden.weights)
    assert max(diff[k] for k in ("w_in", "w_rec")) > 100 * 1e-5, f"option {option} changed nothing: {diff}"


def test_uneven_partition_learns_the_same(cfg, init_w, sample_maker, with_options, weights_close) -> None:
    """Rule: a split that does not divide the 120 neurons evenly (18 per core: 6 x 18 + 12, so 7 cores, the
    last with neurons 108..119) learns what the golden model learns: over 3 samples the same predictions
    and losses (1e-5), weights within 1e-5 of max|w|, every arena within 96 KiB and no loss counted."""
    x, y = sample_maker(3, seed=77)
    c = with_options(cfg, partition={"neurons_per_core": 18})
    board = BoardTrainer(c, init_w.copy())
    assert board.plan.n_cores == 7 and board.plan.readout_core == 0
    assert [(p.neuron_lo, p.n_local) for p in board.plan.cores] == [(18 * i, 18) for i in range(6)] + [(108, 12)]
    assert max(img.layout.arena_bytes for img in board.images) <= 96 * 1024
    golden = GoldenModel(cfg.network, cfg.train, init_w)
    for i in range(3):
        rb = board.train_batch(x[i:i + 1], y[i:i + 1])
        rg = golden.train_batch(x[i:i + 1], y[i:i + 1])
        assert rb.pred.tolist() == rg.pred.tolist(), f"sample {i}"
        assert abs(float(rb.loss[0]) - float(rg.loss[0])) <= 1e-5, f"sample {i}"
    weights_close(board.weights, golden.weights, 1e-5, "7 cores (18 per core, the last 12)")
    assert board.provenance() == dict.fromkeys(board.provenance(), 0)


def test_lif_neurons_keep_no_adaptation_trace(cfg, init_w, sample_maker, with_options) -> None:
    """Rule: with network.n_regular 5, after a training sample core 0's eps_a traces (ea_in, ea_rec) are 0 in
    the columns of its 5 LIF neurons (global ids 0-4) and not in those of its 5 ALIF ones; the default
    network's are not 0 there."""
    x, y = sample_maker(1, seed=99)
    for n_regular in (5, 0):
        board = BoardTrainer(with_options(cfg, network={"n_regular": n_regular}), init_w.copy())
        board.train_batch(x, y)
        img = board.images[0]
        assert (img.plan.neuron_lo, img.plan.n_local) == (0, 10)
        for region, n_pre in (("ea_in", cfg.network.n_in), ("ea_rec", cfg.network.n_rec)):
            raw = board.transport.read_sram(0, img.layout.region(region), 4 * n_pre * 10)
            ea = np.frombuffer(raw, np.float32).reshape(n_pre, 10)
            assert np.count_nonzero(ea[:, 5:]) > n_pre // 2, (region, n_regular)
            assert (np.count_nonzero(ea[:, :5]) == 0) == (n_regular == 5), (region, n_regular)


SPARSE = ConnectivityConfig(p_in=0.5, p_rec=0.25, seed=1)


@pytest.mark.parametrize("sections", [
    {"network": {"connectivity": SPARSE}},
    {"network": {"connectivity": SPARSE, "n_regular": 5}},  # core 0: 5 LIF and 5 ALIF neurons
    {"network": {"connectivity": SPARSE}, "train": {"rate_reg": RateRegConfig(c_reg=50.0, target_hz=10.0),
                                                    "optimizer": "sgd", "lr": 0.05}},
    {"network": {"connectivity": ConnectivityConfig(p_in=0.05, p_rec=0.02, seed=2)}, "partition": {"neurons_per_core": 7}},
])
def test_sparse_connectivity_matches_golden(cfg, init_w, sample_maker, with_options, weights_close, sections) -> None:
    """Rule: with network.connectivity (p_in 0.5, p_rec 0.25; also with LIF neurons, with the rate term and
    SGD, and so sparse that some rows and blocks of a core are empty), 3 samples on the board give the golden
    model's weights within 1e-6 of max|w|; the read-back matrices keep their dense shapes, their absent
    synapses are exactly 0, and a present synapse moved; each neuron core stores only its present synapses."""
    from s2eprop.host.connectivity import connectivity_masks

    x, y = sample_maker(3, seed=5)
    c = with_options(cfg, **sections)
    masks = connectivity_masks(c.network)
    w0 = init_w.masked(c.network)
    board = BoardTrainer(c, w0.copy())
    golden = GoldenModel(c.network, c.train, w0)
    for i in range(3):
        rb = board.train_batch(x[i:i + 1], y[i:i + 1])
        rg = golden.train_batch(x[i:i + 1], y[i:i + 1])
        assert rb.pred.tolist() == rg.pred.tolist()
    wb = board.weights
    weights_close(wb, golden.weights, TOL_OPTION, f"sparse {sections}")
    adam = board.adam
    for key in ("w_in", "w_rec"):
        w = getattr(wb, key)
        assert w.shape == getattr(init_w, key).shape
        assert np.all(w[~masks.of(key)] == 0) and np.all(adam.m[key][~masks.of(key)] == 0)
        assert np.abs(w - getattr(w0, key))[masks.of(key)].max() > 1e-4, key
    for img in board.images:
        if img.plan.n_local:
            lo, nl = img.plan.neuron_lo, img.plan.n_local
            present = int(masks.w_in[:, lo:lo + nl].sum() + masks.w_rec[:, lo:lo + nl].sum())
            assert img.layout.accounting["weights_bytes"] == 4 * (present + nl * c.network.n_out)
    assert board.provenance() == dict.fromkeys(board.provenance(), 0)
