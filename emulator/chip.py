"""Emulator layer: a functional SpiNNaker 2 chip: N cores, each an SRAM arena running the firmware,
and a multicast router. Two interchangeable tick loops over the same firmware and tables:
`backend="c"` (emulator/csrc/chip_loop.c, fast) and `backend="python"` (this file, the readable
specification of the order of events). Both give the same bits.

Order of events per tick: every core's timer handler in core order; each handler's outbox is drained
into one FIFO of packets; then packets are delivered in FIFO order, each to its destination cores in
core order, and whatever those handlers send joins the FIFO, until it is empty.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from emulator.errors import EmulatorError
from emulator.fw_bridge import Firmware
from emulator.messages import FrameMsg, ResultMsg, SampleMsg
from emulator.router import RouteEntry, check_table, lookup

SRAM_BYTES = 128 * 1024
HAL_OUT_MC = 1
HAL_OUT_HOST = 2
COUNT_FIELDS = ("neuron_updates", "synapse_mults", "trace_updates", "exp_calls", "adam_updates",
                "mc_sent", "mc_received", "host_words")


@dataclass
class RouterStats:
    delivered: int = 0
    dropped: int = 0
    dropped_from: dict[int, int] = field(default_factory=dict)
    last_drop: tuple[int, int] | None = None  # (source core, key)
    queue_overflows: int = 0  # packets or host messages lost because the C loop's buffers were full


class FunctionalChip:
    """Cores + router; handlers are called in tick order with no notion of time."""

    def __init__(self, n_cores: int, sram_bytes: int = SRAM_BYTES, backend: str = "c",
                 firmware: Firmware | None = None, packet_capacity: int = 65536,
                 host_capacity_words: int = 1 << 20) -> None:
        if backend not in ("c", "python"):
            raise EmulatorError(f"backend must be 'c' or 'python', got {backend!r}")
        self.fw = firmware or Firmware()
        self.n_cores = n_cores
        self.sram_bytes = sram_bytes
        self.backend = backend
        self.sram = [np.zeros(sram_bytes, dtype=np.uint8) for _ in range(n_cores)]
        self.routes: list[RouteEntry] = []
        self.tick_count = 0
        self.stats = RouterStats()
        self.counts = np.zeros((n_cores, len(COUNT_FIELDS)), dtype=np.uint64)
        self.host_inbox: list[tuple[int, np.ndarray]] = []
        ffi = self.fw.ffi
        self._arena_ptrs = [ffi.cast("uint8_t *", ffi.from_buffer(a)) for a in self.sram]
        if backend == "c":
            self._chip = ffi.new("emu_chip_t *")
            self._chip.n_cores = n_cores
            for i, p in enumerate(self._arena_ptrs):
                self._chip.arenas[i] = p
            self._pkt = ffi.new("uint32_t[]", 3 * packet_capacity)
            self._chip.pkt_buf = self._pkt
            self._chip.pkt_cap = packet_capacity
            self._host = np.zeros(host_capacity_words, dtype=np.uint32)
            self._chip.host_buf = ffi.cast("uint32_t *", ffi.from_buffer(self._host))
            self._chip.host_cap = host_capacity_words
            self._route_buf = None

    # -- memory and tables ------------------------------------------------------------------
    def write(self, core: int, offset: int, data: bytes | np.ndarray) -> None:
        raw = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
        self._check_range(core, offset, raw.size)
        self.sram[core][offset:offset + raw.size] = raw

    def read(self, core: int, offset: int, n_bytes: int) -> bytes:
        self._check_range(core, offset, n_bytes)
        return self.sram[core][offset:offset + n_bytes].tobytes()

    def _check_core(self, core: int) -> None:
        if not 0 <= core < self.n_cores:
            raise EmulatorError(f"core {core} does not exist (chip has {self.n_cores})")

    def _check_range(self, core: int, offset: int, n_bytes: int) -> None:
        self._check_core(core)
        if offset < 0 or offset + n_bytes > self.sram_bytes:
            raise EmulatorError(
                f"core {core}: access [{offset}, {offset + n_bytes}) outside its {self.sram_bytes:,} B of SRAM")

    def load_routes(self, entries: list[RouteEntry]) -> None:
        check_table(entries, self.n_cores)
        self.routes = list(entries)
        if self.backend == "c":
            ffi = self.fw.ffi
            buf = ffi.new("emu_route_t[]", max(1, len(entries)))
            for i, e in enumerate(entries):
                buf[i].key, buf[i].mask = e.key, e.mask
                for c in e.cores:
                    buf[i].dest[c >> 5] |= 1 << (c & 31)
            self._route_buf = buf
            self._chip.routes = buf
            self._chip.n_routes = len(entries)

    def init_core(self, core: int, arena_bytes: int) -> int:
        self._check_core(core)
        if not 0 < arena_bytes <= self.sram_bytes:
            raise EmulatorError(f"core {core}: arena of {arena_bytes:,} B does not fit its {self.sram_bytes:,} B of SRAM")
        return int(self.fw.lib.fw_init(self._arena_ptrs[core], arena_bytes))

    # -- running ------------------------------------------------------------------------------
    def host_send(self, core: int, words: np.ndarray) -> None:
        self._check_core(core)
        words = np.ascontiguousarray(words, dtype=np.uint32)
        if self.backend == "c":
            ffi = self.fw.ffi
            self.fw.lib.emu_host_msg(self._chip, core, ffi.cast("uint32_t *", ffi.from_buffer(words)), words.size)
            return
        ffi = self.fw.ffi
        c = self.fw.lib.fw_on_host_msg(self._arena_ptrs[core], ffi.cast("uint32_t *", ffi.from_buffer(words)),
                                       words.size)
        self._add_counts(core, c)
        fifo: deque[tuple[int, int, int]] = deque()
        self._drain(core, fifo)
        self._deliver_all(fifo)

    def tick(self) -> None:
        if self.backend == "c":
            self.fw.lib.emu_tick(self._chip, self.tick_count)
            self.tick_count += 1
            return
        fifo: deque[tuple[int, int, int]] = deque()
        for core in range(self.n_cores):
            self._add_counts(core, self.fw.lib.fw_on_timer(self._arena_ptrs[core], self.tick_count))
            self._drain(core, fifo)
        self._deliver_all(fifo)
        self.tick_count += 1

    def run_sample(self, sample_id: int, label: int, train: bool, frames: np.ndarray,
                   neuron_cores: list[int], lookahead: int, max_ticks: int) -> int:
        """Stream one sample (see chip_loop.h); returns ticks used, -1 if no result came in max_ticks."""
        frames = np.ascontiguousarray(frames, dtype=np.float32)
        max_in = int(self.fw.lib.FW_MAX_IN)
        if frames.ndim != 2 or frames.shape[1] > max_in:
            raise EmulatorError(f"frames must have shape (steps, inputs <= {max_in}), got {frames.shape}")
        for core in neuron_cores:
            self._check_core(core)
        n_steps, n_in = frames.shape
        if self.backend == "c":
            ffi = self.fw.ffi
            tick = ffi.new("uint32_t *", self.tick_count)
            cores = ffi.new("uint32_t[]", list(neuron_cores))
            used = self.fw.lib.emu_run_sample(
                self._chip, tick, sample_id, label, int(train), ffi.cast("float *", ffi.from_buffer(frames)),
                n_steps, n_in, cores, len(neuron_cores), lookahead, max_ticks)
            self.tick_count = int(tick[0])
            return int(used)
        inbox_from = len(self.host_inbox)
        for core in range(self.n_cores):
            self.host_send(core, SampleMsg(sample_id, label, train).pack())
        pushed = 0
        for k in range(max_ticks):
            while pushed < n_steps and pushed < k + lookahead:
                msg = FrameMsg(sample_id, pushed, frames[pushed]).pack()
                for core in neuron_cores:
                    self.host_send(core, msg)
                pushed += 1
            self.tick()
            if any(ResultMsg.is_result(m, sample_id) for _, m in self.host_inbox[inbox_from:]):
                return k + 1
        return -1

    def take_host_messages(self) -> list[tuple[int, np.ndarray]]:
        """Messages the cores sent to the host since the last call: (core, words)."""
        if self.backend == "c":
            n = int(self._chip.host_len)
            buf = self._host[:n].copy()
            self._chip.host_len = 0
            out, at = [], 0
            while at < n:
                core, size = int(buf[at]), int(buf[at + 1])
                out.append((core, buf[at + 2:at + 2 + size]))
                at += size + 2
            return out
        out, self.host_inbox = self.host_inbox, []
        return out

    def router_stats(self) -> RouterStats:
        if self.backend == "c":
            ch = self._chip
            return RouterStats(
                delivered=int(ch.delivered), dropped=int(ch.dropped),
                dropped_from={c: int(ch.dropped_from[c]) for c in range(self.n_cores) if ch.dropped_from[c]},
                last_drop=(int(ch.last_drop_src), int(ch.last_drop_key)) if ch.dropped else None,
                queue_overflows=int(ch.pkt_overflows) + int(ch.host_overflows))
        return self.stats

    def work_counts(self) -> dict[str, np.ndarray]:
        """Accumulated handler work per core (input of the timing model)."""
        if self.backend == "c":
            return {f: np.array([getattr(self._chip.counts[c], f) for c in range(self.n_cores)], dtype=np.uint64)
                    for f in COUNT_FIELDS}
        return {f: self.counts[:, i].copy() for i, f in enumerate(COUNT_FIELDS)}

    # -- python path internals --------------------------------------------------------------
    def _add_counts(self, core: int, c) -> None:
        self.counts[core] += np.array([getattr(c, f) for f in COUNT_FIELDS], dtype=np.uint64)

    def _drain(self, core: int, fifo: deque) -> None:
        fw = self.fw
        arena = self.sram[core]
        hdr = fw.ffi.cast("fw_header_t *", self._arena_ptrs[core])
        n = int(hdr.state.outbox_count)
        if n == 0:
            return
        off = int(hdr.layout.outbox)
        box = arena[off:off + 4 * n].view(np.uint32)
        at = 0
        while at < n:
            tag = int(box[at]) & 0xFF
            if tag == HAL_OUT_MC:
                fifo.append((core, int(box[at + 1]), int(box[at + 2])))
                at += 3
            else:
                size = int(box[at]) >> 8
                self.host_inbox.append((core, box[at + 1:at + 1 + size].copy()))
                at += size + 1
        hdr.state.outbox_count = 0

    def _deliver_all(self, fifo: deque) -> None:
        lib = self.fw.lib
        while fifo:
            src, key, payload = fifo.popleft()
            entry = lookup(self.routes, key)
            if entry is None:
                self.stats.dropped += 1
                self.stats.dropped_from[src] = self.stats.dropped_from.get(src, 0) + 1
                self.stats.last_drop = (src, key)
                continue
            for core in sorted(entry.cores):
                self._add_counts(core, lib.fw_on_mc_packet(self._arena_ptrs[core], key, payload))
                self.stats.delivered += 1
                self._drain(core, fifo)
