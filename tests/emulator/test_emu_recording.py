"""Recording (config `record:`, host/mapping/recording.py, firmware recording.c): the spikes, membrane voltages
and readout outputs the cores write into SDRAM by DMA equal the golden model's for the same samples,
on analog and spike input, on the functional, timed and ISS chips; only marked samples are recorded,
and a record that never reached SDRAM is counted, never taken."""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from s2eprop.host.config import ChipConfig, ExperimentConfig, InputConfig
from s2eprop.host.mapping.resolve import config_from_dict
from s2eprop.host.errors import ConfigError
from s2eprop.host.mapping.recording import RecordingPlan
from s2eprop.host.reference.golden import GoldenModel
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport import open_transport
from s2eprop.host.weights import Weights, init_weights

V_TOL = 2e-5  # of max|v|: the firmware's and the golden model's float32 sums differ in order only


def _with_record(cfg: ExperimentConfig, **record) -> ExperimentConfig:
    raw = dataclasses.asdict(cfg)
    raw["dataset"] = {"kind": "synth"}
    raw["record"] = {"train_every": 1, **record}
    return config_from_dict(raw)


def _run_both(cfg: ExperimentConfig, w: Weights, x: np.ndarray, y: np.ndarray, marks: list[bool]):
    """Train the board and the golden model on the same samples, recording the marked ones on both."""
    board = BoardTrainer(cfg, w.copy())
    golden = GoldenModel(cfg.network, cfg.train, w)
    got, want = [], []
    for i in range(len(x)):
        if marks[i]:
            steps = golden.record(x[i:i + 1])
            want.append({k: a[0] for k, a in steps.items()})
        board.train_batch(x[i:i + 1], y[i:i + 1], record=np.array([marks[i]]))
        got.extend(board.recorded())
        golden.train_batch(x[i:i + 1], y[i:i + 1])
    return board, got, want


def _check_equal(cfg: ExperimentConfig, got, want, what: str) -> None:
    z_ids, v_ids = list(cfg.record.spikes), list(cfg.record.v)
    assert len(got) == len(want), what
    for n, (g, w) in enumerate(zip(got, want)):
        assert g.missing == 0, f"{what}, record {n}: {g.missing} records missing"
        assert np.array_equal(g.spikes, w["z"][:, z_ids]), f"{what}, record {n}: spikes differ"
        assert w["z"][:, z_ids].sum() > 0, f"{what}: the network never spiked (a weak test)"
        scale = float(np.max(np.abs(w["v"][:, v_ids])))
        assert float(np.max(np.abs(g.v - w["v"][:, v_ids]))) <= V_TOL * scale, f"{what}, record {n}: v differs"
        if cfg.record.readout:
            yscale = float(np.max(np.abs(w["y"])))
            assert float(np.max(np.abs(g.y - w["y"]))) <= V_TOL * yscale, f"{what}, record {n}: y differs"
        else:
            assert g.y.shape == (len(w["y"]), 0)


def test_recorded_activity_equals_the_golden_models(cfg, samples20, init_w) -> None:
    """Rule: over 4 training samples (weights moving between them), the records of samples 0, 2 and 3
    equal the golden model's spikes exactly and its v and y_t within 2e-5 of their range; sample 1 is
    not recorded; nothing is missing or lost."""
    rcfg = _with_record(cfg, spikes="all", v=[0, 9, 10, 57, 119])
    x, y = samples20[0][:4], samples20[1][:4]
    board, got, want = _run_both(rcfg, init_w, x, y, [True, False, True, True])
    _check_equal(rcfg, got, want, "analog input")
    assert board.provenance() == dict.fromkeys(board.provenance(), 0)


def test_recording_spike_input_and_a_few_neurons(cfg) -> None:
    """Rule: with spike input, spikes of every 7th neuron and v of neuron 10 only (one core's, while the
    spikes are every core's) are the golden model's columns of those neurons; no readout record."""
    spike_cfg = dataclasses.replace(cfg, input=InputConfig(kind="spikes", encoder="none"))
    rcfg = _with_record(spike_cfg, spikes=list(range(119, -1, -7)), v=[10], readout=False)
    w = init_weights(cfg.network, seed=7)
    w = dataclasses.replace(w, w_in=(6 * w.w_in).astype(np.float32))
    rng = np.random.default_rng(3)
    x = (rng.random((2, 100, 80)) < 0.2).astype(np.float32)
    board, got, want = _run_both(rcfg, w, x, np.array([1, 4]), [True, True])
    _check_equal(rcfg, got, want, "spike input")
    assert got[0].spikes.shape == (100, 18) and got[0].v.shape == (100, 1) and got[0].y.shape == (100, 0)


@pytest.mark.parametrize("mode", ["timed"])
def test_timed_chip_records_what_the_functional_chip_records(cfg, samples20, init_w, mode) -> None:
    """Rule: on the timed chip (DMA writes take their time, the records land later) the records of a
    sample are those of the functional chip, bit for bit."""
    rcfg = _with_record(cfg, spikes="all", v="all")
    x, y = samples20[0][:1], samples20[1][:1]
    out = []
    for chip in (ChipConfig(), ChipConfig(mode=mode)):
        c = dataclasses.replace(rcfg, chip=chip)
        b = BoardTrainer(c, init_w.copy(), transport=open_transport("emulator", 12, chip=chip))
        assert (b.timing is not None) == (chip.mode != "functional")
        b.train_batch(x, y, record=np.array([True]))
        out.append(b.recorded()[0])
        assert b.provenance()["record_overruns"] == 0
    assert out[1].missing == 0
    for name in ("spikes", "v", "y"):
        assert np.array_equal(getattr(out[0], name), getattr(out[1], name), equal_nan=True), name


def test_iss_records_what_the_native_build_records(arm_elf) -> None:
    """Rule: the ARM build in the instruction-set simulator writes the same records as the native build
    (a small network: 3 cores, 10 steps)."""
    raw = {"network": {"n_in": 6, "n_rec": 9, "n_out": 3, "n_steps": 10}, "partition": {"neurons_per_core": 3},
           "record": {"spikes": "all", "v": [1, 4, 8], "train_every": 1}}
    rng = np.random.default_rng(5)
    x = (4 * rng.standard_normal((1, 10, 6))).astype(np.float32)
    rcfg = config_from_dict(raw)
    w = init_weights(rcfg.network, seed=2)
    out = []
    for cpu in ("native", "iss"):
        chip = ChipConfig(cpu=cpu)
        b = BoardTrainer(rcfg, w.copy(), transport=open_transport("emulator", 3, chip=chip))
        b.train_batch(x, np.array([1]), record=np.array([True]))
        out.append(b.recorded()[0])
    assert out[0].missing == 0 and out[0].spikes.sum() > 0
    for name in ("spikes", "v", "y"):
        assert np.array_equal(getattr(out[0], name), getattr(out[1], name)), name


def test_a_record_that_never_reached_sdram_is_counted_not_taken(cfg, samples20, init_w, monkeypatch) -> None:
    """Rule: when the host has not allocated the record regions, the DMA writes fault (dma_faults: the
    first write of each of the 2 buffers of the 12 neuron and 1 readout streams; a faulted write never
    completes, so its buffer stays taken and every later record is an overrun), and the host reads no
    stale record: all 100 x 13 records are missing, v and y NaN."""
    rcfg = _with_record(cfg, spikes="all", v=[5])
    rcfg = dataclasses.replace(rcfg, train=dataclasses.replace(rcfg.train, on_loss="count"))
    monkeypatch.setattr(RecordingPlan, "allocate", lambda self, write: None)
    b = BoardTrainer(rcfg, init_w.copy())
    b.train_batch(samples20[0][:1], samples20[1][:1], record=np.array([True]))
    r = b.recorded()[0]
    assert r.missing == 100 * 13
    assert np.isnan(r.v).all() and np.isnan(r.y).all() and r.spikes.sum() == 0
    lost = b.provenance()
    assert lost["dma_faults"] == 2 * 13 and lost["record_overruns"] == 100 * 13 - 2 * 13


def test_stale_records_of_an_earlier_sample_are_not_taken(cfg, samples20, init_w) -> None:
    """Rule: a sample that was not recorded leaves the records of the last recorded one in SDRAM; reading
    them as its own finds every header of another sample: all missing (and an unmarked sample writes
    nothing: the earlier sample's records are intact)."""
    rcfg = _with_record(cfg, spikes="all", v=[5])
    b = BoardTrainer(rcfg, init_w.copy())
    x, y = samples20
    b.train_batch(x[:1], y[:1], record=np.array([True]))
    first = b.recorded()[0]
    b.train_batch(x[1:2], y[1:2])  # sample id 1, not marked
    assert b.recording.read(b.transport.read_sdram, 1).missing == 100 * 13
    again = b.recording.read(b.transport.read_sdram, 0)
    assert again.missing == 0 and np.array_equal(again.v, first.v)


def test_recording_costs_are_reported(cfg, init_w) -> None:
    """Rule: each neuron core's record buffers are 2 x its record (3 header words, the spike bitmap, the
    v words), the readout core's add 2 x (3 + 12) words; the DMA bytes per sample are 100 steps of all
    records."""
    rcfg = _with_record(cfg, spikes="all", v=[0, 1, 15])
    b = BoardTrainer(rcfg, init_w.copy())
    costs = b.recording_costs()
    # core 0: 10 spikes (1 word), v of 0 and 1; core 1: v of 15; the rest spikes only
    neuron = [3 + 1 + 2, 3 + 1 + 1] + [3 + 1] * 10
    assert costs["sram_bytes_per_core"] == [4 * 2 * (n + (15 if c == 0 else 0)) for c, n in enumerate(neuron)]
    assert costs["dma_bytes_per_sample"] == 4 * 100 * (sum(neuron) + 15)
    assert costs["dma_us_per_sample_worst_core"] > 0


@pytest.mark.parametrize("record, message", [
    ({"spikes": [0, 120], "train_every": 1}, "record.spikes names neuron(s) [120]"),
    ({"v": "some", "train_every": 1}, "record.v must be"),
    ({"spikes": "all"}, "record names neurons but no samples"),
    ({"spikes": "all", "test": -2}, "record.test >= -1"),
    ({"spikes": "all", "every": 3}, "unknown key(s) in 'record': every"),
])
def test_bad_record_sections_are_refused(record, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict({"record": record})
