"""Emulator layer: a functional SpiNNaker 2 chip: cores (each an SRAM running the firmware through a
core runner), a shared SDRAM, per-core DMA engines and the multicast router. Handlers are called in a
fixed order with no notion of time; the chip knows nothing of samples, frames or host messages'
meaning: it routes packets, moves DMA data and counts ticks.

Two event loops with the same order of events and the same bits: `backend="c"`
(emulator/chip/csrc/chip_loop.c, fast, calls the native build directly) and `backend="python"` (this
file, the readable specification, over any core runner). Order of events per tick:
  1. every core's timer handler, in core order; after each handler its side effects are taken:
     packets join one FIFO, host messages go out, DMA reads are done at once, in order, each followed
     by its core's fw_on_dma_done (whose side effects are taken the same way);
  2. the packets are delivered in FIFO order, each to its destination cores in core order, and what
     those handlers send joins the FIFO, until it is empty;
  3. the user events raised, in core order, each followed by 2., until none is left.
Both loops apply the router faults a user asks for (`set_router_faults`, emulator/chip/faults.py: drop,
duplicate or delay packets by kind, a count or a rate), to a packet from a core as it is delivered, after
its route is found: a duplicate is delivered twice in a row, a delayed one re-enters as an injected packet
after the timers of its due tick (before that tick's own packets).
The Python loop can also model faults and other schedules for tests of the firmware's loss rules:
`PacketFault` holds matching packets for whole ticks, delivers them twice or drops them; `schedule="eager"`
delivers each core's packets right after its own timer (so that later cores see them a tick early).
"""
from __future__ import annotations

import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from s2eprop.emulator.errors import EmulatorError
from s2eprop.firmware.abi import Firmware, abi
from s2eprop.firmware.routes import RouteEntry, check_table, lookup
from s2eprop.emulator.runners.native import DmaTransfer, Effects, NativeRunner
from s2eprop.emulator.chip.description import default_chip
from s2eprop.emulator.chip.faults import RouterFault, RouterFaults
from s2eprop.emulator.chip.sdram import Sdram

MAX_THREADS = 64  # chip_loop.h EMU_MAX_THREADS
# a core's run-time error (chip_loop.h EMU_RTE_*): why the emulator stopped it
RTE_REASONS = {
    int(abi().EMU_RTE_HEADER): "its header is no longer a valid image's (magic, ABI version or arena size)",
    int(abi().EMU_RTE_LAYOUT): "its config or layout is no longer valid (the layout is not its config's, or its sparse index breaks fw_abi.h's rules)",
    int(abi().EMU_RTE_STATE): "a state field is out of range (outbox not empty between handlers, or a label >= n_out)",
    int(abi().EMU_RTE_OUTBOX): "its outbox holds an entry past its count, or lies outside its SRAM",
}
SRC_EXTERNAL = int(abi().EMU_SRC_EXTERNAL)  # source of an injected packet
SCHEDULES = ("batched", "eager")


@dataclass(frozen=True)
class PacketFault:
    """Fault model (Python loop): packets from core `src` whose key matches key/mask are delivered
    `delay_ticks` ticks late (after that later tick's timers), twice if `duplicate`, or never if `drop`
    (lost in the router uncounted, as a packet lost on a link: only the firmware can see it)."""

    src: int
    key: int
    mask: int
    delay_ticks: int = 0
    duplicate: bool = False
    drop: bool = False

    def matches(self, src: int, key: int) -> bool:
        return src == self.src and (key & self.mask) == self.key


@dataclass
class ChipStats:
    delivered: int = 0
    dropped: int = 0
    dropped_from: dict[int, int] = field(default_factory=dict)  # source core (SRC_EXTERNAL: injected) -> drops
    last_drop: tuple[int, int] | None = None  # (source, key)
    queue_overflows: int = 0  # packets, DMA reads or host messages lost because the loop's buffers were full
    dma_faults: int = 0       # DMA reads outside SDRAM or the core's SRAM (not done, no completion)
    dma_bytes: int = 0
    rx_queue_overflows: int = 0  # timed chip: packets lost because a core's receive queue was full


class FunctionalChip:
    """Cores + SDRAM + router; handlers are called in event order with no notion of time."""

    def __init__(self, n_cores: int, sram_bytes: int | None = None, backend: str = "c",
                 firmware: Firmware | None = None, sdram_bytes: int | None = None,
                 packet_capacity: int = 65536, host_capacity_words: int = 1 << 20,
                 faults: tuple[PacketFault, ...] = (), schedule: str = "batched", runner=None,
                 threads: int = 1) -> None:
        if backend not in ("c", "python"):
            raise EmulatorError(f"backend must be 'c' or 'python', got {backend!r}")
        if schedule not in SCHEDULES:
            raise EmulatorError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        if backend == "c" and (faults or schedule != "batched"):
            raise EmulatorError("packet faults and the eager schedule exist in the Python loop only: use backend='python'")
        if backend == "c" and runner is not None:
            raise EmulatorError("the C loop calls the native build itself: another core runner needs backend='python'")
        if not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
            raise EmulatorError(f"threads must be an integer in 1..{MAX_THREADS}, got {threads!r}")
        self.fw = firmware or Firmware()
        self.threads = 1
        if not 0 < n_cores <= int(self.fw.lib.FW_MAX_CORES):
            raise EmulatorError(f"a chip of {n_cores} cores: the emulator takes 1..{int(self.fw.lib.FW_MAX_CORES)}")
        self.n_cores = n_cores
        chip = default_chip()  # sizes not given are the chip file's
        sram_bytes = chip.sram_bytes_per_core if sram_bytes is None else sram_bytes
        sdram_bytes = chip.sdram_bytes if sdram_bytes is None else sdram_bytes
        self.sram_bytes = sram_bytes
        self.backend = backend
        # any core runner with NativeRunner's interface (init, on_* -> Effects, sram arrays)
        self.runner = runner if runner is not None else NativeRunner(self.fw, n_cores, sram_bytes)
        ffi = self.fw.ffi
        self.sdram = Sdram(sdram_bytes, ffi if backend == "c" else None)
        self.routes: list[RouteEntry] = []
        self.tick_count = 0
        self.max_host_words = int(self.fw.lib.FW_MAX_HOST_WORDS)
        self._stats = ChipStats()
        self._counts = np.zeros((n_cores, len(self.fw.count_fields)), dtype=np.uint64)
        self._host_out: list[tuple[int, np.ndarray]] = []
        self._faults = tuple(faults)
        self._held: dict[int, list[tuple[int, int, int]]] = {}
        self._schedule = schedule
        self._user: set[int] = set()
        self._router_faults = RouterFaults()
        self._c_faults = None
        if backend == "c":
            self._chip = ffi.new("emu_chip_t *")
            self._chip.n_cores = n_cores
            self._chip.sram_bytes = sram_bytes
            self._chip.route_epoch = 1  # cache entries of epoch 0 (all of them, zeroed) are never valid
            for i, p in enumerate(self.runner.arena_ptrs):
                self._chip.arenas[i] = p
            self._chip.sdram_pages = self.sdram.c_pages
            self._chip.sdram_page_bits = self.sdram.page_bits
            self._chip.sdram_n_pages = self.sdram.n_pages
            self._pkt = ffi.new("uint32_t[]", 3 * packet_capacity)
            self._chip.pkt_buf, self._chip.pkt_cap = self._pkt, packet_capacity
            self._dma = ffi.new("emu_dma_t[]", 4 * n_cores)
            self._chip.dma_buf, self._chip.dma_cap = self._dma, 4 * n_cores
            self._host = np.zeros(host_capacity_words, dtype=np.uint32)
            self._chip.host_buf = ffi.cast("uint32_t *", ffi.from_buffer(self._host))
            self._chip.host_cap = host_capacity_words
            self._held_buf = np.zeros(3 * packet_capacity, dtype=np.uint32)
            self._chip.held_buf = ffi.cast("uint32_t *", ffi.from_buffer(self._held_buf))
            self._chip.held_cap = packet_capacity
            self.threads = min(threads, n_cores)
            if self.threads > 1:
                self._alloc_stages(packet_capacity, host_capacity_words)
            self._route_buf = None

    def _alloc_stages(self, packet_capacity: int, host_capacity_words: int) -> None:
        """A stage per thread of the C loop's timer phases (chip_loop.h emu_stage_t): room for as many
        packets, host words and DMA transfers as the chip's own buffers, so that merging them in core
        order gives what one thread gives (NumPy zeros: pages are taken only when written)."""
        ffi, n = self.fw.ffi, self.threads
        self._stages = ffi.new("emu_stage_t[]", n)
        self._stage_bufs = []
        for st in self._stages:
            pkt = np.zeros(3 * packet_capacity, dtype=np.uint32)
            host = np.zeros(host_capacity_words, dtype=np.uint32)
            dma = ffi.new("emu_dma_t[]", 4 * self.n_cores)
            st.pkt_buf, st.pkt_cap = ffi.cast("uint32_t *", ffi.from_buffer(pkt)), packet_capacity
            st.host_buf, st.host_cap = ffi.cast("uint32_t *", ffi.from_buffer(host)), host_capacity_words
            st.dma_buf, st.dma_cap = dma, 4 * self.n_cores
            self._stage_bufs.append((pkt, host, dma))
        self._chip.stages, self._chip.n_threads = self._stages, n
        # the C loop keeps its threads between runs: ended with the chip (the finaliser holds the chip's buffers)
        weakref.finalize(self, self.fw.lib.emu_threads_stop, self._chip)

    # -- memory and tables ------------------------------------------------------------------
    def write_sram(self, core: int, offset: int, data: bytes | np.ndarray) -> None:
        """Write a core's SRAM. Anything may be written: a running core whose header or state it made invalid
        is stopped with a run-time error before its next handler (core_errors), never run on bad offsets."""
        raw = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
        self._check_range(core, offset, raw.size)
        self.runner.sram[core][offset:offset + raw.size] = raw
        if self.backend == "c":
            self._chip.core_written[core] = 1
        elif hasattr(self.runner, "written"):  # a runner that checks cores (NativeRunner); a test's may not
            self.runner.written(core)

    def core_error(self, core: int) -> str | None:
        """Why this core is stopped by a run-time error, or None (core_errors, for one core)."""
        self._check_core(core)
        if self.backend == "c":
            code = int(self.fw.lib.emu_core_error(self._chip, core))
        else:
            code = getattr(self.runner, "check", lambda c: 0)(core)
        return RTE_REASONS.get(code, f"run-time error {code}") if code else None

    def core_errors(self) -> dict[int, str]:
        """Cores stopped by a run-time error, and why (a host write made their memory invalid); fw_init (START)
        clears it."""
        if self.backend == "c":
            self.fw.lib.emu_check_written(self._chip)
            errors = np.frombuffer(self.fw.ffi.buffer(self._chip.core_error, 4 * self.n_cores), dtype=np.uint32)
            codes = {int(c): int(errors[c]) for c in np.flatnonzero(errors)}  # a read per core was 0.05 ms
        else:
            check = getattr(self.runner, "check", lambda c: 0)
            codes = {c: check(c) for c in range(self.n_cores)}
        return {c: RTE_REASONS.get(code, f"run-time error {code}") for c, code in codes.items() if code}

    def read_sram(self, core: int, offset: int, n_bytes: int) -> bytes:
        self._check_range(core, offset, n_bytes)
        return self.runner.sram[core][offset:offset + n_bytes].tobytes()

    def write_sdram(self, addr: int, data: bytes | np.ndarray) -> None:
        self.sdram.write(addr, data)

    def read_sdram(self, addr: int, n_bytes: int) -> bytes:
        return self.sdram.read(addr, n_bytes)

    def _check_core(self, core: int) -> None:
        if not 0 <= core < self.n_cores:
            raise EmulatorError(f"core {core} does not exist (chip has {self.n_cores})")

    def _check_range(self, core: int, offset: int, n_bytes: int) -> None:
        self._check_core(core)
        if offset < 0 or n_bytes < 0 or offset + n_bytes > self.sram_bytes:
            raise EmulatorError(
                f"core {core}: access [{offset}, {offset + n_bytes}) outside its {self.sram_bytes:,} B of SRAM")

    def load_routes(self, entries: list[RouteEntry]) -> None:
        check_table(entries, self.n_cores)
        self.routes = list(entries)
        if self.backend == "c":
            buf = self.fw.ffi.new("emu_route_t[]", max(1, len(entries)))
            for i, e in enumerate(entries):
                buf[i].key, buf[i].mask = e.key, e.mask
                for c in e.cores:
                    buf[i].dest[c >> 5] |= 1 << (c & 31)
            self._route_buf = buf
            self._chip.routes = buf
            self._chip.n_routes = len(entries)
            care = 0
            for e in entries:
                care |= e.mask
            self._chip.route_care = care
            self._chip.route_epoch += 1  # forget the cached lookups of the old table

    def set_router_faults(self, faults: tuple[RouterFault, ...] | list[RouterFault]) -> None:
        """The faults the router injects from now on (emulator/chip/faults.py), their counters at 0; () for none."""
        faults = tuple(faults)
        for f in faults:
            if f.src is not None and f.src >= self.n_cores:
                raise EmulatorError(f"a fault names source core {f.src}; the chip has {self.n_cores} cores "
                                    f"(0..{self.n_cores - 1})")
        self._router_faults = RouterFaults(faults)
        if self.backend == "c":
            buf = self.fw.ffi.new("emu_fault_t[]", max(1, len(faults)))
            for i, f in enumerate(faults):
                f.fill(buf[i])
            self._c_faults = buf
            self._chip.faults, self._chip.n_faults = buf, len(faults)

    @property
    def router_faults(self) -> tuple[RouterFault, ...]:
        return self._router_faults.faults

    def fault_hits(self) -> list[int]:
        """Packets each router fault has hit so far (in the order given to set_router_faults)."""
        if self.backend == "c":
            return [int(self._c_faults[i].hits) for i in range(len(self._router_faults.faults))]
        return list(self._router_faults.hits)

    def init_core(self, core: int, arena_bytes: int) -> int:
        """fw_init on a core whose image is in its SRAM; returns the firmware's status word."""
        self._check_core(core)
        if not 0 < arena_bytes <= self.sram_bytes:
            raise EmulatorError(f"core {core}: arena of {arena_bytes:,} B does not fit its {self.sram_bytes:,} B of SRAM")
        status = self.runner.init(core, arena_bytes)
        if self.backend == "c":  # fw_init checked the image: the core runs again (or not at all, by its status)
            self._chip.core_error[core] = 0
            self._chip.core_written[core] = 0
        return status

    def _stopped(self, core: int) -> EmulatorError:
        why = self.core_error(core) or "a run-time error"
        return EmulatorError(f"core {core} is stopped: {why}; load its image and start it again")

    # -- running ------------------------------------------------------------------------------
    def _host_words(self, core: int, words: np.ndarray) -> np.ndarray:
        """A host message's words, checked: an existing core, at most FW_MAX_HOST_WORDS."""
        self._check_core(core)
        words = np.ascontiguousarray(words, dtype=np.uint32)
        if words.size > self.max_host_words:
            raise EmulatorError(f"host message of {words.size} words to core {core}: at most {self.max_host_words} "
                                f"({4 * self.max_host_words} B, an SDP payload) fit one message")
        return words

    def host_send(self, core: int, words: np.ndarray) -> None:
        """A host message to one core, and everything it causes."""
        words = self._host_words(core, words)
        if self.backend == "c":
            ffi = self.fw.ffi
            if self.fw.lib.emu_host_msg(self._chip, core, ffi.cast("uint32_t *", ffi.from_buffer(words)), words.size) == -2:
                raise self._stopped(core)
            return
        if getattr(self.runner, "check", lambda c: 0)(core):
            raise self._stopped(core)
        fifo: deque[tuple[int, int, int]] = deque()
        self._take(core, self.runner.on_host_msg(core, words), fifo)
        self._settle(fifo)

    def host_send_many(self, messages: list[tuple[int, np.ndarray]]) -> None:
        """host_send of each (core, words), in order; the C loop's calls made with each message checked once (the
        host sends one SAMPLE message to every core of a network before each sample)."""
        if self.backend != "c" or type(self).host_send is not FunctionalChip.host_send:
            for core, words in messages:
                self.host_send(core, words)
            return
        ffi, send = self.fw.ffi, self.fw.lib.emu_host_msg
        checked: dict[int, tuple[np.ndarray, Any]] = {}  # by id(words): the array (kept alive) and its pointer
        for core, words in messages:
            self._check_core(core)
            got = checked.get(id(words))
            if got is None:
                arr = self._host_words(core, words)
                got = checked[id(words)] = (arr, ffi.cast("uint32_t *", ffi.from_buffer(arr)))
            if send(self._chip, core, got[1], got[0].size) == -2:
                raise self._stopped(core)

    def inject(self, key: int, payload: int = 0) -> None:
        """A multicast packet entering the router from outside the cores (a chip link, a test)."""
        if self.backend == "c":
            self.fw.lib.emu_inject(self._chip, key & 0xFFFFFFFF, payload & 0xFFFFFFFF)
            return
        self._settle(deque([(SRC_EXTERNAL, key & 0xFFFFFFFF, payload & 0xFFFFFFFF)]))

    def run(self, n_ticks: int) -> None:
        """Advance every core by n_ticks timer ticks."""
        if n_ticks < 0:
            raise EmulatorError(f"cannot run a negative number of ticks ({n_ticks})")
        if self.backend == "c":
            self.fw.lib.emu_run(self._chip, self.tick_count & 0xFFFFFFFF, n_ticks)
            self.tick_count += n_ticks
            return
        for _ in range(n_ticks):
            self._tick()

    def take_host_messages(self) -> list[tuple[int, np.ndarray]]:
        """Messages the cores sent to the host since the last call: (core, words)."""
        if self.backend == "python":
            out, self._host_out = self._host_out, []
            return out
        n = int(self._chip.host_len)
        buf = self._host[:n].copy()
        self._chip.host_len = 0
        out, at = [], 0
        while at < n:
            core, size = int(buf[at]), int(buf[at + 1])
            out.append((core, buf[at + 2:at + 2 + size]))
            at += size + 2
        return out

    def stats(self) -> ChipStats:
        if self.backend == "python":
            return self._stats
        ch = self._chip
        externals = int(ch.dropped_from[int(self.fw.lib.FW_MAX_CORES)])
        dropped = np.frombuffer(self.fw.ffi.buffer(ch.dropped_from, 8 * self.n_cores), dtype=np.uint64)
        dropped_from = {int(c): int(dropped[c]) for c in np.flatnonzero(dropped)}
        if externals:
            dropped_from[SRC_EXTERNAL] = externals
        return ChipStats(
            delivered=int(ch.delivered), dropped=int(ch.dropped), dropped_from=dropped_from,
            last_drop=(int(ch.last_drop_src), int(ch.last_drop_key)) if ch.dropped else None,
            queue_overflows=int(ch.pkt_overflows) + int(ch.host_overflows) + int(ch.dma_overflows),
            dma_faults=int(ch.dma_faults), dma_bytes=int(ch.dma_bytes))

    def work_counts(self) -> dict[str, np.ndarray]:
        """Accumulated handler work per core (input of the timing model)."""
        if self.backend == "c":
            return {f: np.array([getattr(self._chip.counts[c], f) for c in range(self.n_cores)], dtype=np.uint64)
                    for f in self.fw.count_fields}
        return {f: self._counts[:, i].copy() for i, f in enumerate(self.fw.count_fields)}

    # -- the Python loop ------------------------------------------------------------------------
    def _tick(self) -> None:
        tick = self.tick_count
        fifo: deque[tuple[int, int, int]] = deque(self._held.pop(tick, []))
        for core in range(self.n_cores):
            self._take(core, self.runner.on_timer(core, tick), fifo)
            if self._schedule == "eager":
                self._settle(fifo)
        self._settle(fifo)
        self.tick_count += 1

    def _take(self, core: int, effects: Effects, fifo: deque) -> None:
        """Take a handler's side effects; do its DMA transfers (and their completions) at once, in order."""
        dma: deque[tuple[int, DmaTransfer]] = deque()
        self._absorb(core, effects, fifo, dma)
        while dma:
            c, d = dma.popleft()
            if self._dma_copy(c, d):
                self._absorb(c, self.runner.on_dma_done(c, d.tag), fifo, dma)

    def _absorb(self, core: int, effects: Effects, fifo: deque, dma: deque) -> None:
        self._counts[core] += effects.counts
        fifo.extend((core, key, payload) for key, payload in effects.packets)
        self._host_out.extend((core, words) for words in effects.host)
        dma.extend((core, d) for d in effects.dma)
        if effects.user_event:
            self._user.add(core)

    def _dma_copy(self, core: int, d: DmaTransfer) -> bool:
        """As emu_dma_copy: a write only to SDRAM the host has written (allocated)."""
        if d.sdram_addr + d.n_bytes > self.sdram.size_bytes or d.sram_offset + d.n_bytes > self.sram_bytes \
                or (d.write and not self.sdram.backed(d.sdram_addr, d.n_bytes)):
            self._stats.dma_faults += 1
            return False
        sram = self.runner.sram[core]
        if d.write:
            self.sdram.write(d.sdram_addr, sram[d.sram_offset:d.sram_offset + d.n_bytes])
        else:
            sram[d.sram_offset:d.sram_offset + d.n_bytes] = np.frombuffer(
                self.sdram.read(d.sdram_addr, d.n_bytes), dtype=np.uint8)
        self._stats.dma_bytes += d.n_bytes
        return True

    def _settle(self, fifo: deque) -> None:
        """Deliver every packet, then the user events in core order, until nothing is left."""
        while True:
            self._deliver_all(fifo)
            if not self._user:
                return
            core = min(self._user)
            self._user.discard(core)
            self._take(core, self.runner.on_user_event(core), fifo)

    def _deliver_all(self, fifo: deque) -> None:
        while fifo:
            src, key, payload = fifo.popleft()
            fault = next((f for f in self._faults if f.matches(src, key)), None)
            if fault is not None:  # re-enters as an external packet, so the fault applies once
                if fault.drop:
                    continue
                if fault.delay_ticks > 0:
                    self._held.setdefault(self.tick_count + fault.delay_ticks, []).append((SRC_EXTERNAL, key, payload))
                    continue
                if fault.duplicate:
                    fifo.appendleft((SRC_EXTERNAL, key, payload))
            entry = lookup(self.routes, key)
            if entry is None:
                st = self._stats
                st.dropped += 1
                st.dropped_from[src] = st.dropped_from.get(src, 0) + 1
                st.last_drop = (src, key)
                continue
            action, delay = self._router_faults.apply(src, key)
            if action == "drop":
                continue
            if action == "delay":  # re-enters as an external packet, so that no fault applies again
                self._held.setdefault(self.tick_count + delay, []).append((SRC_EXTERNAL, key, payload))
                continue
            for _ in range(2 if action == "duplicate" else 1):
                for core in sorted(entry.cores):
                    self._take(core, self.runner.on_mc_packet(core, key, payload), fifo)
                    self._stats.delivered += 1
