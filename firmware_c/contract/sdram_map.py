"""Firmware contract: the chip's SDRAM map as host and firmware use it: the input ring (a few samples'
frames or spike bitmaps, slots the cores fetch by DMA), per copy of the network on a chip."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s2eprop.firmware.abi import abi
from s2eprop.firmware.messages import frame_slots, spike_slots
from s2eprop.host.errors import ConfigError

INPUT_KINDS = ("analog", "spikes")  # input.kind: what a ring slot holds

# The input ring's SDRAM region: 1 MiB into SDRAM (below it: reserved for the board's own use),
# room for this many samples' frames, so that a sample's slots are not rewritten while it may run.
INPUT_RING_ADDR = 0x0010_0000
INPUT_RING_SAMPLES = 4
RING_ALIGN_BYTES = 1 << 16


@dataclass(frozen=True)
class InputRing:
    sdram_addr: int
    n_slots: int
    slot_words: int
    kind: str = "analog"  # input.kind: analog frames or spike bitmaps (fw_abi.h FW_INPUT_*)
    n_in: int = 0         # inputs (the bits of a spike bitmap that are inputs)

    @classmethod
    def for_network(cls, n_in: int, n_steps: int, copy: int = 0, kind: str = "analog") -> "InputRing":
        """The ring of copy `copy` of the network on a chip (copies side by side, 64 KiB aligned; the
        stride of analog frames also for spike input, so that copies lie where they always lie)."""
        n_slots = INPUT_RING_SAMPLES * n_steps
        slot_words = int(abi().fw_input_slot_words(input_kind_code(kind), n_in))
        frame_words = int(abi().fw_input_slot_words(abi().FW_INPUT_ANALOG, n_in))
        stride = -(-4 * n_slots * frame_words // RING_ALIGN_BYTES) * RING_ALIGN_BYTES
        return cls(INPUT_RING_ADDR + copy * stride, n_slots, slot_words, kind, n_in)

    def slots(self, sample_id: int, inputs: np.ndarray) -> np.ndarray:
        """A sample's ring slots: its analog frames, or its spikes (0/1, (n_steps, n_in)) as bitmaps."""
        return frame_slots(sample_id, inputs) if self.kind == "analog" else spike_slots(sample_id, inputs)


def input_kind_code(kind: str) -> int:
    """fw_config_t.input_kind of an input.kind ("analog" or "spikes")."""
    if kind not in INPUT_KINDS:
        raise ConfigError(f"input kind is {kind!r}; choose one of {', '.join(INPUT_KINDS)}")
    return int(abi().FW_INPUT_ANALOG if kind == "analog" else abi().FW_INPUT_SPIKES)
