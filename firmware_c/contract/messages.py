"""Host layer: the host <-> core messages and the input-ring slots of the firmware ABI (fw_abi.h
FW_MSG_*, FW_FRAME_*, FW_SPIKES_MAGIC: analog frames or spike bitmaps), as uint32 words. Type numbers and sizes are read from the compiled firmware.

One dataclass per message: `pack` for what the host sends, `unpack` for what a core sends.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from s2eprop.firmware.abi import abi
from s2eprop.host.errors import TransportError


def _f32_bits(value: float) -> int:
    return int(np.float32(value).view(np.uint32))


@dataclass(frozen=True)
class SampleMsg:
    """Runs the next sample: its id, label, whether to learn from it, the ring slot of its frame 0, and
    whether the cores record it (FW_SAMPLE_RECORD)."""

    sample_id: int
    label: int
    train: bool
    slot0: int
    record: bool = False

    def pack(self) -> np.ndarray:
        lib = abi()
        flags = (lib.FW_SAMPLE_TRAIN if self.train else 0) | (lib.FW_SAMPLE_RECORD if self.record else 0)
        return np.array([lib.FW_MSG_SAMPLE, self.sample_id, self.label, flags, self.slot0], dtype=np.uint32)


@dataclass(frozen=True)
class ScaleLrMsg:
    """Learning-rate schedule: lr *= factor (float32) on the core."""

    factor: float

    def pack(self) -> np.ndarray:
        return np.array([abi().FW_MSG_SCALE_LR, _f32_bits(self.factor)], dtype=np.uint32)


def frame_slots(sample_id: int, frames: np.ndarray) -> np.ndarray:
    """(n_steps, FW_FRAME_HEAD_WORDS + n_in) uint32: each step's input-ring slot [magic, id, step, frame]."""
    frames = np.ascontiguousarray(frames, dtype=np.float32)
    lib = abi()
    head = int(lib.FW_FRAME_HEAD_WORDS)
    slots = np.empty((frames.shape[0], head + frames.shape[1]), dtype=np.uint32)
    slots[:, 0] = lib.FW_FRAME_MAGIC
    slots[:, 1] = sample_id
    slots[:, 2] = np.arange(frames.shape[0], dtype=np.uint32)
    slots[:, head:] = frames.view(np.uint32)
    return slots


def spike_slots(sample_id: int, spikes: np.ndarray) -> np.ndarray:
    """(n_steps, FW_FRAME_HEAD_WORDS + ceil(n_in / 32)) uint32: each step's input-ring slot of spike input
    [FW_SPIKES_MAGIC, id, step, bitmap], input i in bit i % 32 of bitmap word i // 32 (fw_abi.h)."""
    spikes = np.asarray(spikes)
    if spikes.ndim != 2:
        raise TransportError(f"spike input must be (n_steps, n_in), got shape {spikes.shape}")
    bad = (spikes != 0) & (spikes != 1)
    if bad.any():
        t, i = (int(v) for v in np.argwhere(bad)[0])
        raise TransportError(f"spike input of sample {sample_id} holds {spikes[t, i]!r} at step {t}, input {i}: "
                             f"spikes are 0 or 1 (encode analog features with input.encoder)")
    lib = abi()
    head, n_steps, n_in = int(lib.FW_FRAME_HEAD_WORDS), spikes.shape[0], spikes.shape[1]
    words = -(-n_in // 32)
    bits = np.zeros((n_steps, 32 * words), dtype=np.uint8)
    bits[:, :n_in] = spikes != 0
    bitmap = np.packbits(bits.reshape(n_steps, words, 4, 8), axis=-1, bitorder="little")  # 4 bytes per word
    slots = np.empty((n_steps, head + words), dtype=np.uint32)
    slots[:, 0] = lib.FW_SPIKES_MAGIC
    slots[:, 1] = sample_id
    slots[:, 2] = np.arange(n_steps, dtype=np.uint32)
    slots[:, head:] = np.ascontiguousarray(bitmap.reshape(n_steps, 4 * words)).view("<u4")
    return slots


def spike_slot_ids(slots: np.ndarray, n_in: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The inverse of spike_slots: (sample ids, steps, each slot's active input ids, ascending) of spike slots
    (rows [FW_SPIKES_MAGIC, id, step, bitmap], the layout read from fw_abi.h as spike_slots writes it)."""
    slots = np.ascontiguousarray(slots, dtype=np.uint32)
    lib = abi()
    head, words = int(lib.FW_FRAME_HEAD_WORDS), -(-n_in // 32)
    if slots.ndim != 2 or slots.shape[1] != head + words:
        raise TransportError(f"spike slots of n_in {n_in} are (n, {head + words}) words, got shape {slots.shape}")
    if len(slots) and (slots[:, 0] != lib.FW_SPIKES_MAGIC).any():
        raise TransportError("not spike slots: a slot lacks FW_SPIKES_MAGIC")
    bits = np.unpackbits(np.ascontiguousarray(slots[:, head:], dtype="<u4").view(np.uint8), axis=1, bitorder="little")[:, :n_in]
    rows, ids = np.nonzero(bits)
    cuts = np.searchsorted(rows, np.arange(1, len(slots)))
    return slots[:, 1].copy(), slots[:, 2].copy(), np.split(ids.astype(np.uint32), cuts)


@dataclass(frozen=True)
class ResultMsg:
    """What the readout core reports at the end of a sample (before the weight update)."""

    sample_id: int
    label: int
    pred: int
    loss: float
    output_mean: np.ndarray    # (n_out,) float32 time-mean readout

    @staticmethod
    def is_result(words: np.ndarray) -> bool:
        kind, head = _result_shape()
        return len(words) >= head and int(words[0]) == kind

    @classmethod
    def unpack(cls, words: np.ndarray) -> "ResultMsg":
        return _parsed(cls.parse(words), words, "a result message")

    @classmethod
    def parse(cls, words: np.ndarray) -> "ResultMsg | None":
        """The message in a core's uint32 words, or None when they are not one (checked once)."""
        words = np.asarray(words, dtype=np.uint32)
        if not cls.is_result(words):
            return None
        head = _result_shape()[1]
        floats = words.view(np.float32)
        return cls(sample_id=int(words[1]), label=int(words[2]), pred=int(words[3]),
                   loss=float(floats[4]), output_mean=floats[head:].copy())


@dataclass(frozen=True)
class SampleDoneMsg:
    """What every core reports once its sample is over (after its weight update, when training)."""

    sample_id: int
    sum_w2: float              # sum of w^2 over the core's own weights, after the update
    spikes: int                # spikes the core sent during the sample
    counters_moved: int        # bit i: field i of fw_counters_t moved since the core's last SAMPLE_DONE

    @staticmethod
    def is_done(words: np.ndarray) -> bool:
        kind, n_words = _done_shape()
        return len(words) == n_words and int(words[0]) == kind

    @classmethod
    def unpack(cls, words: np.ndarray) -> "SampleDoneMsg":
        return _parsed(cls.parse(words), words, "a sample-done message")

    @classmethod
    def parse(cls, words: np.ndarray) -> "SampleDoneMsg | None":
        """The message in a core's uint32 words, or None when they are not one (checked once)."""
        words = np.asarray(words, dtype=np.uint32)
        if not cls.is_done(words):
            return None
        return cls(sample_id=int(words[1]), sum_w2=float(words.view(np.float32)[2]), spikes=int(words[3]),
                   counters_moved=int(words[4]))


def _parsed(got: Any, words: np.ndarray, what: str) -> Any:
    """What a message's parse gave, or the error naming the words that are not `what`."""
    if got is None:
        raise TransportError(f"not {what}: {np.asarray(words)[:8].tolist()}")
    return got


# the type and size of the messages the host reads once a sample per core, from fw_abi.h (read once: the
# checks run for every message)
@lru_cache(maxsize=None)
def _result_shape() -> tuple[int, int]:
    return int(abi().FW_MSG_RESULT), int(abi().FW_RESULT_HEAD_WORDS)


@lru_cache(maxsize=None)
def _done_shape() -> tuple[int, int]:
    return int(abi().FW_MSG_SAMPLE_DONE), int(abi().FW_SAMPLE_DONE_WORDS)
