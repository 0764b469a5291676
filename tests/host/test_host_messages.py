"""Host <-> core messages and input-frame slots: the word layouts documented in fw_abi.h, built by hand
here (struct), against host/messages.py."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from host import messages as m
from host.errors import TransportError


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
