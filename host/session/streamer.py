"""Host layer: the per-sample streaming policy, written once for every transport.

Input frames live in the chip's SDRAM, in one ring of frame slots shared by the neuron cores (each
slot: FW_FRAME_MAGIC, sample id, step, then the frame; with spike input (`input.kind: spikes`)
FW_SPIKES_MAGIC, sample id, step, then the bitmap of the inputs that spiked at that step). For each sample the host writes its frames
into the ring, sends every core a SAMPLE message naming the ring slot of frame 0, advances the
chip's clock and collects the readout core's RESULT and every core's SAMPLE_DONE.

Two input modes write the same ring: `prefetch` (default) writes the whole sample before it starts,
then advances n_steps + 1 ticks at once; `realtime` keeps only `lookahead_ticks` frames ahead of the
chip's clock, one tick at a time, as a host streaming live input would.

Pipelined (prefetch mode): when the host knows the sample that comes next (`upcoming`), its frames go
into the ring slots after the current sample's while the current sample runs (between the transport's
start_advance and finish_advance: a board takes them while its cores run; the ring holds
INPUT_RING_SAMPLES samples, and a core reads only its own sample's slots, so the bits are those of
writing them later). The next begin finds them there (same sample id, slots and frames) and writes
nothing; anything else is written as usual.

A board whose clock runs on its own (realtime) would start each core when its SAMPLE message arrives, and
one lost and sent again a retransmission timeout late: there the SAMPLE messages are held on the board and
one SYNC delivers them all on one tick (`starts_together`, as SpiNNaker applications start on one signal).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from s2eprop.host.config import INPUT_MODES
from s2eprop.host.errors import ConfigError
from s2eprop.firmware.messages import ResultMsg, SampleDoneMsg, SampleMsg
from s2eprop.host.transport.base import Transport
from s2eprop.firmware.sdram_map import InputRing

GRACE_TICKS = 16  # ticks past a sample's n_steps + 1 to wait for late messages before giving up


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
        self._staged: tuple[int, int, np.ndarray] | None = None  # (sample id, slot 0, slots) written ahead
        self.staged_used = 0     # samples whose frames were written ahead and found right by their begin
        self.staged_wasted = 0   # ... and found wrong (another sample came): written again

    def run_sample(self, sample_id: int, label: int, train: bool, frames: np.ndarray,
                   record: bool = False, upcoming: tuple[int, np.ndarray] | None = None) -> SampleOutcome:
        """One sample; `upcoming`: (sample id, frames) of the sample that will run next, written while this runs."""
        return run_samples([self], [(sample_id, label, train, frames, record)], [upcoming])[0]

    def stage(self, sample_id: int, frames: np.ndarray) -> None:
        """Write the frames of the sample that will begin next into its ring slots now (prefetch mode, a ring of
        at least two samples; otherwise nothing is written ahead)."""
        if self.mode != "prefetch" or self.ring.n_slots < 2 * self.n_steps:
            return
        slots = self.ring.slots(sample_id, frames)
        self._write(self._next_slot, slots)
        self._staged = (sample_id, self._next_slot, slots)

    def begin(self, sample_id: int, label: int, train: bool, frames: np.ndarray, record: bool = False) -> "_Pending":
        """Write the sample's frames (all of them in prefetch mode) and announce it to every core (`record`:
        the cores write its records, host/mapping/recording.py)."""
        slot0 = self._next_slot
        self._next_slot = (slot0 + self.n_steps) % self.ring.n_slots
        slots = self.ring.slots(sample_id, frames)
        staged, self._staged = self._staged, None
        if self.mode == "prefetch":
            if staged is not None and staged[:2] == (sample_id, slot0) and np.array_equal(staged[2], slots):
                self.staged_used += 1  # written while the sample before ran
            else:
                self.staged_wasted += staged is not None
                self._write(slot0, slots)
        msg = SampleMsg(sample_id, label, train, slot0, record).pack()
        # one message to each core, together (one datagram to a board); held on the board until run_samples' sync
        # where the board's clock runs on its own
        self.transport.send_many([(core, msg) for core in self.cores],
                                 hold=getattr(self.transport, "starts_together", False))
        return _Pending(self, SampleOutcome(sample_id, None), slot0, slots, 0 if self.mode == "realtime" else self.n_steps)

    def _write(self, slot: int, slots: np.ndarray, live: bool = False) -> None:
        """Write consecutive slots from ring slot `slot` on, wrapping around the ring's end. `live` frames
        to a board whose clock runs on its own go without waiting for an acknowledgement (post_sdram):
        one lost is a frame missing at its tick, which the firmware counts."""
        write = self.transport.write_sdram
        posted = live and getattr(self.transport, "realtime", False)
        if posted:
            write = getattr(self.transport, "post_sdram", write)
        spikes = getattr(self.transport, "write_spike_slots", None)  # a board link: spike datagrams, not bitmaps
        if self.ring.kind == "spikes" and spikes is not None:
            write = functools.partial(spikes, n_in=self.ring.n_in, posted=posted)
        ring, done = self.ring, 0
        while done < len(slots):
            at = (slot + done) % ring.n_slots
            n = min(len(slots) - done, ring.n_slots - at)
            write(ring.sdram_addr + 4 * ring.slot_words * at, slots[done:done + n])
            done += n

    def _take(self, out: SampleOutcome, core: int, words: np.ndarray) -> None:
        """A core's message (uint32 words, from poll): the sample's result, a SAMPLE_DONE, or a stray one."""
        if ResultMsg.is_result(words):
            if core == self.readout_core and int(words[1]) == out.sample_id and out.result is None:
                out.result = ResultMsg.unpack(words)
                return
        elif (done := SampleDoneMsg.parse(words)) is not None and done.sample_id == out.sample_id \
                and core not in out.done:
            out.done[core] = done
            return
        out.stray_messages += 1

    def _complete(self, out: SampleOutcome) -> bool:
        return out.result is not None and len(out.done) == len(self.cores)


@dataclass
class _Pending:
    streamer: SampleStreamer
    out: SampleOutcome
    slot0: int
    slots: np.ndarray
    written: int  # frames in the ring so far


def run_samples(streamers: list[SampleStreamer], items: list[tuple[Any, ...]],
                upcoming: list[tuple[int, np.ndarray] | None] | None = None) -> list[SampleOutcome]:
    """One sample on each streamer's cores at once, on one chip clock (copies of a network side by side:
    each streamer owns its cores and input ring). Items are (sample id, label, train, frames[, record]);
    `upcoming`, per streamer: (sample id, frames) of its next sample, written while these run, or None."""
    if not streamers:
        return []
    transport, n_steps = streamers[0].transport, streamers[0].n_steps
    if any(s.transport is not transport or s.n_steps != n_steps or s.mode != streamers[0].mode for s in streamers):
        raise ConfigError("samples run at once need one transport, one sample length and one input mode")
    owner = {core: i for i, s in enumerate(streamers) for core in s.cores}
    pending = [s.begin(*item) for s, item in zip(streamers, items)]
    if getattr(transport, "starts_together", False):  # a realtime board: every core of every sample on one tick
        transport.sync()  # type: ignore[attr-defined]
    if streamers[0].mode == "prefetch":
        transport.start_advance(n_steps + 1)
        for s, up in zip(streamers, upcoming or ()):
            if up is not None:
                s.stage(*up)
        transport.finish_advance()
    else:
        # driven by the chip's clock: a board whose clock runs on its own may be further on than the host
        # (then the frames it skipped come late, and the firmware counts them)
        tick0, k = transport.advance(0), 0
        while k < n_steps + 1:
            for p in pending:
                ahead = min(n_steps, k + p.streamer.lookahead_ticks)
                if ahead > p.written:
                    p.streamer._write(p.slot0 + p.written, p.slots[p.written:ahead], live=True)
                    p.written = ahead
            k = transport.advance(1) - tick0
    ticks = n_steps + 1

    def collect() -> None:
        for core, words in transport.poll():
            i = owner.get(core)
            if i is None:
                pending[0].out.stray_messages += 1  # from a core of no network here
            else:
                streamers[i]._take(pending[i].out, core, words)

    collect()
    while not all(p.streamer._complete(p.out) for p in pending) and ticks < n_steps + 1 + GRACE_TICKS:
        transport.advance(1)
        ticks += 1
        collect()
    for p in pending:
        p.out.ticks = ticks
    return [p.out for p in pending]
