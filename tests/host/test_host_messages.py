"""Host <-> core messages and input-frame slots: the word layouts documented in fw_abi.h, built by hand
here (struct), against firmware_c/contract/messages.py."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from s2eprop.firmware import messages as m
from s2eprop.host.errors import TransportError


def _words(fmt: str, *values) -> np.ndarray:
    return np.frombuffer(struct.pack("<" + fmt, *values), dtype=np.uint32)


def test_sample_and_scale_lr_layouts() -> None:
    """Rule: SAMPLE is [1, id, label, train, slot0]; SCALE_LR is [3, factor as float32 bits]."""
    assert m.SampleMsg(7, 3, True, 200).pack().tolist() == [1, 7, 3, 1, 200]
    assert m.SampleMsg(7, 3, False, 0).pack().tolist() == [1, 7, 3, 0, 0]
    assert m.ScaleLrMsg(0.3).pack().tolist() == _words("If", 3, 0.3).tolist()


def test_frame_slots_layout() -> None:
    """Rule: slot k of a sample is ["FRME" magic 0x46524d45, sample id, k, frame k as float32 words]."""
    frames = np.arange(6, dtype=np.float32).reshape(3, 2) - 2.5
    slots = m.frame_slots(41, frames)
    assert slots.shape == (3, 5)
    for k in range(3):
        assert slots[k].tolist() == _words("III2f", 0x46524D45, 41, k, *frames[k]).tolist()


def test_result_unpack() -> None:
    """Rule: RESULT [16, id, label, pred, loss, n_out means] unpacks to its fields, floats bit for bit."""
    means = (np.arange(12, dtype=np.float32) / 7).tolist()
    words = _words("IIIIf12f", 16, 5, 2, 9, 1.25, *means)
    r = m.ResultMsg.unpack(words)
    assert (r.sample_id, r.label, r.pred, r.loss) == (5, 2, 9, 1.25)
    assert np.array_equal(r.output_mean, np.array(means, np.float32))
    assert m.ResultMsg.is_result(words) and not m.SampleDoneMsg.is_done(words)


def test_sample_done_unpack() -> None:
    """Rule: SAMPLE_DONE [17, id, sum w^2 (float), spikes, counters moved] unpacks to its fields."""
    words = _words("IIfII", 17, 8, 3.5, 211, 0b101)
    d = m.SampleDoneMsg.unpack(words)
    assert (d.sample_id, d.sum_w2, d.spikes, d.counters_moved) == (8, 3.5, 211, 5)
    assert m.SampleDoneMsg.is_done(words) and not m.ResultMsg.is_result(words)
    with pytest.raises(TransportError, match="sample-done"):
        m.SampleDoneMsg.unpack(words[:4])


def test_the_firmware_writes_these_layouts() -> None:
    """Rule: the words the cores send for one inference sample, read with struct by the layouts above,
    are one RESULT from the readout core whose id, label, prediction, loss and output means are the
    golden model's, and one SAMPLE_DONE per core (12) whose spike counts add up to the golden model's."""
    from s2eprop.host.config import ExperimentConfig
    from s2eprop.host.reference.golden import GoldenModel
    from s2eprop.host.session.runtime import BoardTrainer
    from s2eprop.host.weights import init_weights

    cfg = ExperimentConfig().validate()
    w = init_weights(cfg.network, seed=11)
    x = (3 * np.random.default_rng(12).standard_normal((1, 100, 80))).astype(np.float32)
    board = BoardTrainer(cfg, w.copy())
    raw: list[tuple[int, bytes]] = []
    poll = board.transport.poll

    def recording(timeout_s=None):
        got = poll(timeout_s)
        raw.extend((core, np.asarray(words, np.uint32).tobytes()) for core, words in got)
        return got

    board.transport.poll = recording
    board.forward(x, np.array([7]))
    g = GoldenModel(cfg.network, cfg.train, w).forward(x, np.array([7]))
    results = [(c, b) for c, b in raw if struct.unpack_from("<I", b)[0] == 16]
    dones = [(c, b) for c, b in raw if struct.unpack_from("<I", b)[0] == 17]
    assert len(results) == 1 and results[0][0] == 0 and len(results[0][1]) == 4 * (5 + 12)
    _, sid, label, pred, loss = struct.unpack_from("<IIIIf", results[0][1])
    means = np.array(struct.unpack_from("<12f", results[0][1], 20), np.float32)
    assert (sid, label, pred) == (0, 7, int(g.pred[0]))
    assert abs(loss - float(g.loss[0])) <= 1e-5 and np.allclose(means, g.output_mean[0], atol=1e-5)
    assert sorted(c for c, _ in dones) == list(range(12)) and all(len(b) == 20 for _, b in dones)
    assert sum(struct.unpack_from("<IIfII", b)[3] for _, b in dones) == int(g.spikes[0])
