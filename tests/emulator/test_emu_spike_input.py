"""Spike input (input.kind: spikes): the firmware learns what the golden model learns when every input
is a spike source (x in {0, 1}), its forward input work follows the number of input spikes, a
hand-built raster gives a hand-computed membrane, and a damaged spike slot is counted."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from s2eprop.host.config import ExperimentConfig, InputConfig, NetworkConfig, PartitionConfig
from s2eprop.firmware.messages import SampleMsg, spike_slots
from s2eprop.host.reference.golden import GoldenModel
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.weights import Weights

# the tolerances of tests/emulator/test_emu_vs_golden.py (analog input)
TOL_STEP = 1e-6
TOL_RUN = 3e-6
MATRICES = ("w_in", "w_rec", "w_out")


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def spike_cfg(cfg: ExperimentConfig) -> ExperimentConfig:
    return dataclasses.replace(cfg, input=InputConfig(kind="spikes", encoder="none")).validate()


@pytest.fixture(scope="module")
def spike_w(init_w: Weights) -> Weights:
    """The paper's initial weights with W_in x 6, so that 0/1 inputs drive the network to spike."""
    return dataclasses.replace(init_w.copy(), w_in=(6 * init_w.w_in).astype(np.float32))


def rasters(n: int, seed: int, p: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.random((n, 100, 80)) < p).astype(np.float32), rng.integers(0, 12, n).astype(np.int64)


def test_spike_input_free_running_matches_golden(spike_cfg, spike_w, weights_close, rel_err) -> None:
    """Rule: with spike input, one board and one golden model (x in {0, 1}) over the same 12 samples
    give the same predictions and spike counts, losses within 1e-5, and end within 3e-6 of max|w|
    (the analog tolerance); the weights moved far more than that, and no loss was counted."""
    x, y = rasters(12, seed=21)
    board = BoardTrainer(spike_cfg, spike_w.copy())
    golden = GoldenModel(spike_cfg.network, spike_cfg.train, spike_w)
    for i in range(len(x)):
        rb = board.train_batch(x[i:i + 1], y[i:i + 1])
        rg = golden.train_batch(x[i:i + 1], y[i:i + 1])
        assert rb.pred.tolist() == rg.pred.tolist(), f"sample {i}"
        assert rb.spikes.tolist() == rg.spikes.tolist() and rg.spikes[0] > 0, f"sample {i}: {rb.spikes} {rg.spikes}"
        assert abs(float(rb.loss[0]) - float(rg.loss[0])) <= 1e-5, f"sample {i}"
    weights_close(board.weights, golden.weights, TOL_RUN, "spike input: board vs golden after 12 samples")
    moved = rel_err(golden.weights, spike_w)
    assert min(moved.values()) > 100 * TOL_RUN, f"training barely moved the weights: {moved}"
    assert board.provenance() == dict.fromkeys(board.provenance(), 0)


def test_spike_input_update_matches_golden_from_the_same_state(spike_cfg, spike_w) -> None:
    """Rule: from the same weights and Adam state, each of 4 spike-input samples gives the golden
    model's weight update within 1e-6 of max|w| per matrix and its Adam moments within 1e-6."""
    x, y = rasters(4, seed=22)
    golden = GoldenModel(spike_cfg.network, spike_cfg.train, spike_w)
    for i in range(len(x)):
        w0, a0 = golden.weights.copy(), golden.adam.copy()
        board = BoardTrainer(spike_cfg, w0.copy(), a0.copy() if i else None)
        board.train_batch(x[i:i + 1], y[i:i + 1])
        golden.train_batch(x[i:i + 1], y[i:i + 1])
        wb, ab = board.weights, board.adam
        for k in MATRICES:
            scale = float(np.max(np.abs(getattr(golden.weights, k))))
            err = float(np.max(np.abs((getattr(wb, k) - getattr(w0, k)) - (getattr(golden.weights, k) - getattr(w0, k)))))
            assert err / scale <= TOL_STEP, f"sample {i}: {k} update differs by {err / scale:.3g} of max|w|"
            assert _rel(ab.m[k], golden.adam.m[k]) <= TOL_STEP and _rel(ab.v[k], golden.adam.v[k]) <= TOL_STEP


def test_input_work_follows_the_spikes(cfg, spike_cfg, init_w) -> None:
    """Rule: with spike input a neuron core adds its n_local weights of each input spike and nothing for
    a silent input (synapse_mults = input spikes x n_local when no neuron spikes); analog input makes
    n_in x n_local products per step whatever the values. The traces stay dense: the same trace updates."""
    x, y = rasters(1, seed=23, p=0.05)
    n_spikes, n_local = int(x.sum()), 10
    work = {}
    for name, c, xin in (("spikes", spike_cfg, x), ("analog", cfg, 0.01 * x)):
        board = BoardTrainer(c, init_w.copy())  # unscaled W_in and weak input: no neuron spikes
        before = board.transport.chip.work_counts()
        r = board.train_batch(xin, y)
        assert r.spikes.tolist() == [0], f"{name}: the network spiked, the recurrent adds would count"
        after = board.transport.chip.work_counts()
        work[name] = ({k: after[k] - before[k] for k in after}, board.plan.neuron_cores)
    (s, cores), (a, _) = work["spikes"], work["analog"]
    assert 0 < n_spikes < 0.1 * 100 * 80
    assert [int(s["synapse_mults"][c]) for c in cores] == [n_spikes * n_local] * len(cores)
    assert [int(a["synapse_mults"][c]) for c in cores] == [100 * 80 * n_local] * len(cores)
    assert int(s["trace_updates"].sum()) == int(a["trace_updates"].sum()) > 0


def _one_neuron_cfg() -> ExperimentConfig:
    net = NetworkConfig(n_in=3, n_rec=1, n_out=2, n_steps=4)
    return ExperimentConfig(network=net, partition=PartitionConfig(neurons_per_core=1),
                            input=InputConfig(kind="spikes", encoder="none")).validate()


# inputs 0, 1, 2 onto the one neuron; the raster: step 0 input 0, step 1 inputs 1 and 2, step 2 none,
# step 3 all three
W_IN = (4.0, 2.0, 3.0)
RASTER = ((1, 0, 0), (0, 1, 1), (0, 0, 0), (1, 1, 1))


def _hand_membrane() -> tuple[list[float], int]:
    """v after each step by hand: v = alpha v + (1 - alpha) (sum of W_in rows of the spiking inputs)
    while the neuron is silent (no reset, adaptation a stays 0, threshold v_th = 1.6), in float32.
    alpha = exp(-1 / 5) = 0.818731: v0 = 0.181269 * 4 = 0.725077, v1 = 0.818731 v0 + 0.181269 * 5 =
    1.499989 (< 1.6: silent), v2 = 0.818731 v1 = 1.228087, v3 = 0.818731 v2 + 0.181269 * 9 = 2.636896
    > 1.6: one spike, at step 3."""
    f = np.float32
    alpha = f(np.exp(f(-1.0) / f(5.0), dtype=np.float64))
    one_alpha = f(1) - alpha
    v, out = f(0), []
    for row in RASTER:
        current = f(0)
        for i, s in enumerate(row):
            if s:
                current = f(current + f(W_IN[i]))
        v = f(alpha * v) + f(one_alpha * current)
        out.append(float(v))
    return out, 3


def test_hand_built_raster_gives_the_hand_computed_membrane() -> None:
    """Rule: a hand-built raster of 3 inputs onto one neuron gives, step by step, the membrane
    computed by hand (0.725, 1.500, 1.228, 2.637; the firmware's within 1e-6 of it) and the one spike at step 3;
    the golden model reports that one spike and the readout it implies (w_out / n_steps)."""
    cfg = _one_neuron_cfg()
    v_hand, spike_step = _hand_membrane()
    np.testing.assert_allclose(v_hand, [0.725077, 1.499989, 1.228087, 2.636896], atol=1e-6)
    w = Weights(np.array(W_IN, np.float32).reshape(3, 1), np.zeros((1, 1), np.float32),
                np.array([[0.5, -0.25]], np.float32), labels=("a", "b"))
    raster = np.array(RASTER, np.float32)
    board = BoardTrainer(cfg, w.copy())
    core = board.plan.neuron_cores[0]
    img = next(i for i in board.images if i.plan.core_id == core)
    ring = board.streamer.ring
    board.transport.write_sdram(ring.sdram_addr, spike_slots(0, raster))
    board.transport.send(core, SampleMsg(0, 0, False, 0).pack())
    v_fw, z_fw = [], []
    for _ in range(4):
        board.transport.advance(1)
        v_fw.append(float(np.frombuffer(board.transport.read_sram(core, img.layout.region("v"), 4), np.float32)[0]))
        z_fw.append(float(np.frombuffer(board.transport.read_sram(core, img.layout.region("z_local"), 4), np.float32)[0]))
    np.testing.assert_allclose(v_fw, v_hand, rtol=1e-6)
    assert z_fw == [1.0 if k == spike_step else 0.0 for k in range(4)]
    golden = GoldenModel(cfg.network, cfg.train, w).forward(raster[None], np.array([0]))
    assert golden.spikes.tolist() == [1]
    # zbar is 1 at step 3 and 0 before: the readout's time mean is w_out / 4
    np.testing.assert_allclose(golden.output_mean[0], w.w_out[0] / 4, rtol=1e-6)


def test_spike_slot_checks() -> None:
    """Rule: a slot of analog frame magic under spike input counts one input_underrun and its step runs
    with no input; a bit past n_in (an input that does not exist) is never read: its step runs with
    its real inputs and nothing is counted."""
    cfg = _one_neuron_cfg()
    w = Weights(np.full((3, 1), 4.0, np.float32), np.zeros((1, 1), np.float32), np.zeros((1, 2), np.float32),
                labels=("a", "b"))
    board = BoardTrainer(cfg, w)
    core = board.plan.neuron_cores[0]
    img = next(i for i in board.images if i.plan.core_id == core)
    slots = spike_slots(0, np.array(RASTER, np.float32))
    slots[0, 0] = board.fw.lib.FW_FRAME_MAGIC
    slots[1, 3] |= 0xfffffff8        # inputs 3..31 of 3
    board.transport.write_sdram(board.streamer.ring.sdram_addr, slots)
    board.transport.send(core, SampleMsg(0, 0, False, 0).pack())
    v = []
    for _ in range(2):
        board.transport.advance(1)
        v.append(float(np.frombuffer(board.transport.read_sram(core, img.layout.region("v"), 4), np.float32)[0]))
    one_alpha = np.float32(1) - np.float32(cfg.network.decays()[0])
    assert v == [0.0, float(one_alpha * np.float32(8.0))]  # step 1: inputs 1 and 2, 4 + 4
    board.transport.advance(8)
    assert board.core_counters()[core]["input_underruns"] == 1


def test_spike_slots_refuse_values_other_than_0_and_1() -> None:
    """Rule: spike input holding anything but 0 and 1 is refused, naming the step and the input."""
    raster = np.zeros((4, 3), np.float32)
    raster[2, 1] = 0.5
    with pytest.raises(Exception, match="at step 2, input 1"):
        spike_slots(0, raster)


def test_iss_matches_native_on_spike_input(arm_elf, cfg, with_options) -> None:
    """Rule: on a 3-core network with spike input, 3 training samples and 1 inference sample give the
    same handler calls, effects, counts, SRAM bytes, weights and results on the ISS (the ARM build) as
    natively."""
    from s2eprop.host.weights import init_weights
    from test_iss_parity import assert_same_bits  # tests/emulator is on sys.path (pytest prepend mode)

    c = with_options(cfg, network={"n_in": 40, "n_rec": 24, "n_out": 4, "n_steps": 30},
                     partition={"neurons_per_core": 8}, input={"kind": "spikes", "encoder": "none"})
    rng = np.random.default_rng(8)
    x = (rng.random((4, 30, 40)) < 0.3).astype(np.float32)
    y = rng.integers(0, 4, 4).astype(np.int64)
    w = init_weights(c.network, seed=3)
    w = dataclasses.replace(w, w_in=(6 * w.w_in).astype(np.float32))
    assert_same_bits(c, w, x, y, arm_elf, n_train=3)


def test_spike_input_streamed_in_realtime_learns_the_same_bits(spike_cfg, spike_w, with_options,
                                                               weights_identical) -> None:
    """Rule: spike slots streamed a few ticks ahead of the chip's clock (train.input_mode realtime,
    lookahead 2) give the same weights, bit for bit, as the whole sample written ahead (prefetch)."""
    x, y = rasters(2, seed=24)
    boards = [BoardTrainer(with_options(spike_cfg, train={"input_mode": m, "input_lookahead_ticks": 2}),
                           spike_w.copy()) for m in ("prefetch", "realtime")]
    for b in boards:
        for i in range(2):
            b.train_batch(x[i:i + 1], y[i:i + 1])
    weights_identical(boards[0].weights, boards[1].weights, "spike input: realtime vs prefetch")
    assert boards[1].provenance() == dict.fromkeys(boards[1].provenance(), 0)
