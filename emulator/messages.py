"""Emulator layer: the host <-> core messages of the firmware ABI (fw_abi.h, FW_MSG_*), as uint32 words.

One dataclass per message, each with `pack` (to words) and, for what a core sends, `unpack`.
The type numbers are checked against the compiled firmware by tests/emulator/test_emu_messages.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MSG_SAMPLE = 1
MSG_FRAME = 2
MSG_SCALE_LR = 3
MSG_RESULT = 16


def _f32_bits(value: float) -> int:
    return int(np.float32(value).view(np.uint32))


@dataclass(frozen=True)
class SampleMsg:
    """Announces the next sample: its id, label, and whether to learn from it."""

    sample_id: int
    label: int
    train: bool

    def pack(self) -> np.ndarray:
        return np.array([MSG_SAMPLE, self.sample_id, self.label, int(self.train)], dtype=np.uint32)


@dataclass(frozen=True)
class FrameMsg:
    """One input frame (one 1 ms step) of a sample, streamed to every neuron core."""

    sample_id: int
    index: int
    frame: np.ndarray  # (n_in,) float32

    def pack(self) -> np.ndarray:
        head = np.array([MSG_FRAME, self.sample_id, self.index], dtype=np.uint32)
        return np.concatenate([head, np.ascontiguousarray(self.frame, dtype=np.float32).view(np.uint32)])


@dataclass(frozen=True)
class ScaleLrMsg:
    """Learning-rate schedule: lr *= factor (float32) on the core."""

    factor: float

    def pack(self) -> np.ndarray:
        return np.array([MSG_SCALE_LR, _f32_bits(self.factor)], dtype=np.uint32)


@dataclass(frozen=True)
class ResultMsg:
    """What the readout core reports at the end of a sample (before the weight update)."""

    sample_id: int
    label: int
    pred: int
    loss: float
    spikes_total: int          # spikes the readout core has received since it started
    output_mean: np.ndarray    # (n_out,) float32 time-mean readout

    HEAD_WORDS = 6

    def pack(self) -> np.ndarray:
        head = np.array([MSG_RESULT, self.sample_id, self.label, self.pred, _f32_bits(self.loss), self.spikes_total],
                        dtype=np.uint32)
        return np.concatenate([head, np.ascontiguousarray(self.output_mean, dtype=np.float32).view(np.uint32)])

    @classmethod
    def is_result(cls, words: np.ndarray, sample_id: int | None = None) -> bool:
        ok = len(words) >= cls.HEAD_WORDS and int(words[0]) == MSG_RESULT
        return ok and (sample_id is None or int(words[1]) == sample_id)

    @classmethod
    def unpack(cls, words: np.ndarray) -> "ResultMsg":
        words = np.asarray(words, dtype=np.uint32)
        if not cls.is_result(words):
            raise ValueError(f"not a result message: {words[:cls.HEAD_WORDS].tolist()}")
        return cls(sample_id=int(words[1]), label=int(words[2]), pred=int(words[3]),
                   loss=float(words[4:5].view(np.float32)[0]), spikes_total=int(words[5]),
                   output_mean=words[cls.HEAD_WORDS:].view(np.float32).copy())
