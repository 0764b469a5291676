"""Emulator layer: the board's spike injector. A spike datagram (CMD_SPIKES, docs/protocol.md) carries one
step's active input ids, EIEIO-style, maybe as one part of several; the injector builds from the parts the
input slot the firmware fetches ([FW_SPIKES_MAGIC, sample, step, bitmap], fw_abi.h) in the chip's SDRAM,
and counts duplicate, late, incomplete and refused parts in the board's link counters."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from s2eprop.emulator.board import protocol as sdp
from s2eprop.emulator.chip.functional import FunctionalChip
from s2eprop.emulator.errors import EmulatorError

SPIKE_BUILDS = 1 << 14  # slots remembered (duplicates of a step are recognised while its slot is)


@dataclass
class _Build:
    """An input slot being built from spike datagrams: which step it is for and the parts in (its bits so far
    are in the slot itself, in SDRAM)."""

    sample: int
    step: int
    n_in: int
    parts: int
    seen: set = field(default_factory=set)


class SpikeInjector:
    def __init__(self, chip: FunctionalChip, link: Any) -> None:
        self.chip = chip
        self._link = link  # the board's LinkCounters (spikes_*)
        self._builds: OrderedDict[int, _Build] = OrderedDict()  # slot SDRAM address -> its build
        self._rings: list[tuple[int, int, int, int]] | None = None  # (core, ring address, slots, slot bytes)
        self.last_error = ""

    def cores_changed(self) -> None:
        """A core was started: its input ring is read again at the next spike datagram."""
        self._rings = None

    def refused(self, exc: Exception) -> None:
        self._link.spikes_errors += 1
        self.last_error = str(exc) if isinstance(exc, EmulatorError) else f"{type(exc).__name__}: {exc}"

    def put(self, msg: sdp.Scp) -> int:
        """Put one spike datagram's ids into its input slot [FW_SPIKES_MAGIC, sample, step, bitmap] (fw_abi.h):
        the first part of a step clears the slot's bits, every part ORs its ids in, and the slot gets its magic
        word only once all parts are in (until then a core reading it finds no frame: an input underrun).
        Returns sdp.SPIKE_REPLY_*; EmulatorError for a datagram that is refused."""
        try:
            part = sdp.unpack_spikes(msg.data)
        except sdp.WireError as exc:
            raise EmulatorError(str(exc)) from None
        addr, sample, lib = msg.arg1, msg.arg2, self.chip.fw.lib
        if (msg.x, msg.y, msg.cpu) != sdp.MONITOR:
            raise EmulatorError(f"spike datagrams go to the monitor (0, 0, 0), which writes SDRAM; got "
                                f"({msg.x}, {msg.y}, {msg.cpu})")
        if part.ids.size and int(part.ids.max()) >= part.n_in:
            bad = int(part.ids[np.argmax(part.ids >= part.n_in)])
            raise EmulatorError(f"spike datagram of sample {sample}, step {part.step} (part {part.part + 1} of "
                                f"{part.parts}): input id {bad:,} >= n_in {part.n_in:,}; refused")
        head, words = int(lib.FW_FRAME_HEAD_WORDS), -(-part.n_in // 32)
        if addr % 4 or addr + 4 * (head + words) > self.chip.sdram.size_bytes:
            raise EmulatorError(f"spike slot at 0x{addr:08x} ({4 * (head + words)} B): not a word-aligned address "
                                f"inside the chip's {self.chip.sdram.size_bytes:,} B of SDRAM")
        if self._slot_read(addr, sample, part.step):
            self._link.spikes_late += 1
            return sdp.SPIKE_REPLY_LATE
        build = self._builds.get(addr)
        if build is None or (build.sample, build.step, build.n_in, build.parts) != (sample, part.step, part.n_in,
                                                                                     part.parts):
            if build is not None and len(build.seen) < build.parts:
                self._link.spikes_incomplete += 1
            build = _Build(sample, part.step, part.n_in, part.parts)
            self._builds[addr] = build
            self._builds.move_to_end(addr)
            while len(self._builds) > SPIKE_BUILDS:
                self._builds.popitem(last=False)
        if part.part in build.seen:
            self._link.spikes_duplicates += 1
            return sdp.SPIKE_REPLY_DUPLICATE
        slot = np.zeros(head + words, dtype="<u4")
        if build.seen:  # a later part: OR into the bits the earlier ones left in the slot
            slot[head:] = np.frombuffer(self.chip.read_sdram(addr + 4 * head, 4 * words), dtype="<u4")
        ids = part.ids
        np.bitwise_or.at(slot, head + (ids >> 5), (np.uint32(1) << (ids & 31)).astype("<u4"))
        build.seen.add(part.part)
        complete = len(build.seen) == build.parts
        slot[0] = lib.FW_SPIKES_MAGIC if complete else 0
        slot[1], slot[2] = sample, part.step
        self.chip.write_sdram(addr, slot)
        self._link.spikes_parts += 1
        if complete:
            self._link.spikes_steps += 1
        return sdp.SPIKE_REPLY_WRITTEN

    def _slot_read(self, addr: int, sample: int, step: int) -> bool:
        """Whether a neuron core has already fetched this slot as step `step` of sample `sample`: it is running
        that sample (not idle), the slot is its ring's slot for the step, and its step counter has passed it
        (the firmware starts the slot's DMA as it counts the step)."""
        if self._rings is None:
            self._rings = self._input_rings()
        if not self._rings:
            return False
        ffi = self.chip.fw.ffi
        at = ffi.offsetof("fw_header_t", "state")
        for core, ring, n_slots, slot_bytes in self._rings:
            if not ring <= addr < ring + n_slots * slot_bytes or (addr - ring) % slot_bytes:
                continue
            st = ffi.from_buffer("fw_state_t *", bytearray(self.chip.read_sram(core, at, ffi.sizeof("fw_state_t"))))
            phase, k, sid, slot0 = st.phase, st.step, st.sample_id, st.slot0
            if phase != int(self.chip.fw.lib.FW_PHASE_IDLE) and sid == sample and k > step \
                    and (slot0 + step) % n_slots == (addr - ring) // slot_bytes:
                return True
        return False

    def _input_rings(self) -> list[tuple[int, int, int, int]]:
        """(core, ring SDRAM address, slots, slot bytes) of every started neuron core with spike input."""
        fw, out = self.chip.fw, []
        ffi, lib = fw.ffi, fw.lib
        size = ffi.sizeof("fw_header_t")
        for core in range(self.chip.n_cores):
            h = ffi.from_buffer("fw_header_t *", bytearray(self.chip.read_sram(core, 0, size)))
            cfg = h.config
            if h.status == lib.FW_RUNNING and cfg.role & lib.FW_ROLE_NEURON and cfg.input_kind == lib.FW_INPUT_SPIKES:
                out.append((core, int(cfg.sdram_ring), int(cfg.ring_slots),
                            4 * int(lib.fw_input_slot_words(cfg.input_kind, cfg.n_in))))
        return out
