"""Host <-> core messages: the Python message types match the firmware's, and every message packs and
unpacks to itself."""
from __future__ import annotations

import numpy as np

from emulator import messages as m
from emulator.fw_bridge import Firmware


def test_message_types_match_the_firmware() -> None:
    """Rule: the type numbers in emulator/messages.py are those of fw_abi.h (FW_MSG_*)."""
    lib = Firmware().lib
    assert (m.MSG_SAMPLE, m.MSG_FRAME, m.MSG_SCALE_LR, m.MSG_RESULT) == (
        lib.FW_MSG_SAMPLE, lib.FW_MSG_FRAME, lib.FW_MSG_SCALE_LR, lib.FW_MSG_RESULT)


def test_packed_layouts() -> None:
    """Rule: the word layouts are those documented in fw_abi.h."""
    assert m.SampleMsg(7, 3, True).pack().tolist() == [1, 7, 3, 1]
    frame = np.array([1.0, -2.5], np.float32)
    words = m.FrameMsg(7, 42, frame).pack()
    assert words[:3].tolist() == [2, 7, 42] and np.array_equal(words[3:].view(np.float32), frame)
    assert m.ScaleLrMsg(0.3).pack()[1:].view(np.float32)[0] == np.float32(0.3)


def test_result_round_trip() -> None:
    """Rule: ResultMsg.unpack(pack()) gives the message back, bit for bit in its floats."""
    msg = m.ResultMsg(5, 2, 9, 1.25, 1234, np.arange(12, dtype=np.float32) / 7)
    back = m.ResultMsg.unpack(msg.pack())
    assert (back.sample_id, back.label, back.pred, back.loss, back.spikes_total) == (5, 2, 9, 1.25, 1234)
    assert np.array_equal(back.output_mean.view(np.uint32), msg.output_mean.view(np.uint32))
    assert m.ResultMsg.is_result(msg.pack(), 5) and not m.ResultMsg.is_result(msg.pack(), 6)
