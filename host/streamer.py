"""Host layer: the per-sample streaming policy, written once for every transport.

Input frames live in the chip's SDRAM, in one ring of frame slots shared by the neuron cores (each
slot: FW_FRAME_MAGIC, sample id, step, then the frame). For each sample the host writes its frames
into the ring, sends every core a SAMPLE message naming the ring slot of frame 0, advances the
chip's clock and collects the readout core's RESULT and every core's SAMPLE_DONE.

Two input modes write the same ring: `prefetch` (default) writes the whole sample before it starts,
then advances n_steps + 1 ticks at once; `realtime` keeps only `lookahead_ticks` frames ahead of the
chip's clock, one tick at a time, as a host streaming live input would.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emulator.fw_bridge import abi
from host.config import INPUT_MODES
from host.errors import ConfigError
from host.messages import ResultMsg, SampleDoneMsg, SampleMsg, frame_slots
from host.transport.base import Transport

# The input ring's SDRAM region: 1 MiB into SDRAM (below it: reserved for the board's own use),
# room for this many samples' frames, so that a sample's slots are not rewritten while it may run.
INPUT_RING_ADDR = 0x0010_0000
INPUT_RING_SAMPLES = 4
GRACE_TICKS = 16  # ticks past a sample's n_steps + 1 to wait for late messages before giving up


@dataclass(frozen=True)
class InputRing:
    sdram_addr: int
    n_slots: int
    slot_words: int

    @classmethod
    def for_network(cls, n_in: int, n_steps: int) -> "InputRing":
        return cls(INPUT_RING_ADDR, INPUT_RING_SAMPLES * n_steps, int(abi().FW_FRAME_HEAD_WORDS) + n_in)


@dataclass
class SampleOutcome:
    """What came back for one sample: the readout's result (None if it never came), each core's
    SAMPLE_DONE, ticks advanced, and messages that belonged to no sample being waited for."""

    sample_id: int
    result: ResultMsg | None
    done: dict[int, SampleDoneMsg] = field(default_factory=dict)
    ticks: int = 0
    stray_messages: int = 0


class SampleStreamer:
    def __init__(self, transport: Transport, ring: InputRing, cores: tuple[int, ...], readout_core: int,
                 n_steps: int, mode: str = "prefetch", lookahead_ticks: int = 4) -> None:
        if mode not in INPUT_MODES:
            raise ConfigError(f"input mode is {mode!r}; choose one of {', '.join(INPUT_MODES)}")
        if lookahead_ticks < 1:
            raise ConfigError(f"the input lookahead must be >= 1 tick, got {lookahead_ticks}")
        self.transport = transport
        self.ring = ring
        self.cores = cores
        self.readout_core = readout_core
        self.n_steps = n_steps
        self.mode = mode
        self.lookahead_ticks = lookahead_ticks
        self._next_slot = 0

    def run_sample(self, sample_id: int, label: int, train: bool, frames: np.ndarray) -> SampleOutcome:
        slot0 = self._next_slot
        self._next_slot = (slot0 + self.n_steps) % self.ring.n_slots
        slots = frame_slots(sample_id, frames)
        if self.mode == "prefetch":
            self._write(slot0, slots)
        msg = SampleMsg(sample_id, label, train, slot0).pack()
        for core in self.cores:
            self.transport.send(core, msg)
        out = SampleOutcome(sample_id, None)
        if self.mode == "prefetch":
            self.transport.advance(self.n_steps + 1)
        else:
            written = 0
            for k in range(self.n_steps + 1):
                ahead = min(self.n_steps, k + self.lookahead_ticks)
                if ahead > written:
                    self._write(slot0 + written, slots[written:ahead])
                    written = ahead
                self.transport.advance(1)
        out.ticks = self.n_steps + 1
        self._collect(out)
        while not self._complete(out) and out.ticks < self.n_steps + 1 + GRACE_TICKS:
            self.transport.advance(1)
            out.ticks += 1
            self._collect(out)
        return out

    def _write(self, slot: int, slots: np.ndarray) -> None:
        """Write consecutive slots from ring slot `slot` on, wrapping around the ring's end."""
        ring, done = self.ring, 0
        while done < len(slots):
            at = (slot + done) % ring.n_slots
            n = min(len(slots) - done, ring.n_slots - at)
            self.transport.write_sdram(ring.sdram_addr + 4 * ring.slot_words * at, slots[done:done + n])
            done += n

    def _collect(self, out: SampleOutcome) -> None:
        for core, words in self.transport.poll():
            if ResultMsg.is_result(words) and core == self.readout_core and int(words[1]) == out.sample_id \
                    and out.result is None:
                out.result = ResultMsg.unpack(words)
            elif SampleDoneMsg.is_done(words) and int(words[1]) == out.sample_id and core not in out.done:
                out.done[core] = SampleDoneMsg.unpack(words)
            else:
                out.stray_messages += 1

    def _complete(self, out: SampleOutcome) -> bool:
        return out.result is not None and len(out.done) == len(self.cores)
