"""Emulator layer: the timed SpiNNaker 2 chip: the same cores, SDRAM, DMA engines and router as the
functional chip, in virtual time (integer picoseconds) with the chip file's cycle costs and latencies.

Two engines with the same events in the same order: `TimedChip` hands each tick's window of events
(handlers, packet bursts, DMA completions, host messages) to the C event loop
(emulator/chip/csrc/timed_loop.c: no Python object per handler or packet, many times faster than real
time); `SimpyTimedChip` runs the SimPy model that specifies it (emulator/chip/timed_spec.py), over any
core runner. `timed_chip(..., engine=)` picks one (docs/timing.md: how they are kept equal). In `realtime` mode each tick is paced to the wall clock once
(emulator/chip/pacing.py, on an injectable clock), and the lag is recorded.
The rules of the model are in timed_loop.h and docs/timing.md.
"""
from __future__ import annotations

import numpy as np
import simpy

from s2eprop.emulator.chip.functional import SRC_EXTERNAL, ChipStats, FunctionalChip
from s2eprop.emulator.chip.description import C_KIND_OF_HANDLER, HANDLERS, PHASE_OF_COUNT, PHASE_OF_HANDLER, PHASES, ChipDescription, load_chip
from s2eprop.emulator.chip.compliance import Compliance
from s2eprop.emulator.chip.pacing import Lag, Pacer, WallClock
from s2eprop.emulator.chip.timed_spec import TimedChipModel
from s2eprop.emulator.errors import EmulatorError
from s2eprop.firmware.abi import Firmware
from s2eprop.firmware.routes import RouteEntry

TIMED_MODES = ("timed", "realtime")
ENGINES = ("c", "simpy")  # the timed chip's event loop: the C fast path, or the SimPy model it is proven equal to
__all__ = ["ENGINES", "Lag", "SimpyTimedChip", "TIMED_MODES", "TimedChip", "timed_chip"]


class TimedChip(FunctionalChip):
    def __init__(self, n_cores: int, chip: ChipDescription | None = None, mode: str = "timed",
                 firmware: Firmware | None = None, heap_events: int = 1 << 16, pool_words: int = 1 << 22,
                 host_capacity_words: int = 1 << 20, wall_clock: WallClock | None = None, threads: int = 1) -> None:
        """`wall_clock`: what realtime mode keeps pace with (default: the machine's; tests pass a fake). `threads`:
        host threads of the C event loop's batches (handlers that start at one time on several cores; same
        events and bits for any number; docs/timing.md)."""
        if mode not in TIMED_MODES:
            raise EmulatorError(f"timed chip mode must be one of {', '.join(TIMED_MODES)}, got {mode!r}")
        desc = chip or load_chip()
        if n_cores > desc.n_cores:
            raise EmulatorError(f"{n_cores} cores do not fit {desc.name} ({desc.n_cores} cores in {desc.path})")
        super().__init__(n_cores, sram_bytes=desc.sram_bytes_per_core, backend="c", firmware=firmware,
                         sdram_bytes=desc.sdram_bytes, host_capacity_words=host_capacity_words, threads=threads)
        self.desc = desc
        self.mode = mode
        ffi, lib = self.fw.ffi, self.fw.lib
        t = ffi.new("emu_timed_t *")
        self._t = t
        t.tick_ps = desc.tick_ps
        t.router_latency_ps = desc.router_latency_ps
        t.hop_latency_ps = desc.noc_hop_latency_ps
        t.packet_interval_ps = desc.packet_interval_ps
        t.dma_latency_ps = desc.dma_setup_latency_ps
        t.host_latency_ps = desc.host_link_latency_ps
        t.dma_bytes_per_s = desc.dma_bandwidth_bytes_per_s
        t.host_bytes_per_s = desc.host_link_bandwidth_bytes_per_s
        t.irq_cycles = desc.interrupt_entry_cycles + desc.interrupt_exit_cycles
        for c in range(n_cores):
            t.cycle_ps[c] = desc.cycle_ps()
            t.skew_ps[c] = desc.skew_ps(c)
        for h in HANDLERS:
            k = int(getattr(lib, C_KIND_OF_HANDLER[h]))
            t.base_cycles[k] = desc.costs.handler_base_cycles[h]
            t.phase_of_base[k] = PHASES.index(PHASE_OF_HANDLER[h])
        for i, f in enumerate(self.fw.count_fields):
            t.count_cycles[i] = desc.costs.per_count_cycles[f]
            t.phase_of_count[i] = PHASES.index(PHASE_OF_COUNT[f])
        self.hops = desc.hop_table(n_cores)
        t.hops = ffi.cast("uint8_t *", ffi.from_buffer(self.hops))
        depth = desc.receive_queue_packets
        self._rx = np.zeros((2, n_cores, depth), dtype=np.uint32)
        t.rx_depth = depth
        t.rx_keys = ffi.cast("uint32_t *", ffi.from_buffer(self._rx[0]))
        t.rx_payloads = ffi.cast("uint32_t *", ffi.from_buffer(self._rx[1]))
        t.drop_timeout_ps = desc.router_drop_timeout_ps
        wait = int(lib.EMU_WAIT_PACKETS) if desc.router_drop_timeout_ps else 1
        self._wait = np.zeros((2, n_cores, wait), dtype=np.uint32)
        self._wait_deadline = np.zeros((n_cores, wait), dtype=np.int64)
        t.wait_depth = wait
        t.wait_keys = ffi.cast("uint32_t *", ffi.from_buffer(self._wait[0]))
        t.wait_payloads = ffi.cast("uint32_t *", ffi.from_buffer(self._wait[1]))
        t.wait_deadline_ps = ffi.cast("int64_t *", ffi.from_buffer(self._wait_deadline))
        self._heap = ffi.new("emu_event_t[]", heap_events)
        t.heap, t.heap_cap = self._heap, heap_events
        self._pool = np.zeros(pool_words, dtype=np.uint32)
        t.pool, t.pool_cap = ffi.cast("uint32_t *", ffi.from_buffer(self._pool)), pool_words
        self._recs = self._logs = None
        self._pending_host: list[tuple[int, int, np.ndarray]] = []  # (arrival_ps, core, words)
        self.env = simpy.Environment()
        self.pacer = Pacer(desc.tick_ps, wall_clock) if mode == "realtime" else None
        self.compliance = Compliance(self.fw, desc, n_cores, self.hops)

    # -- the clock ------------------------------------------------------------------------------
    @property
    def now_ps(self) -> int:
        return int(self._t.now_ps)

    def run(self, n_ticks: int) -> None:
        """Advance the chip by n_ticks x 1 ms of virtual time (paced to the wall clock in realtime mode)."""
        if n_ticks < 0:
            raise EmulatorError(f"cannot run a negative number of ticks ({n_ticks})")
        if n_ticks == 0:
            return
        self._ensure_buffers(n_ticks)
        self.env.run(until=self.env.process(self._run_ticks(n_ticks)))
        self.tick_count += n_ticks
        self._drain_records()

    def _run_ticks(self, n_ticks: int):
        """Run n_ticks of virtual time. Timed mode runs them as one window of the event loop (the same
        events as tick by tick: the host sends nothing within an advance). Realtime mode runs one window a
        tick, each when it is due on the wall clock (the advance is anchored when it starts: the host's time
        between advances is not lag)."""
        lib, t, tick_ps, pacer = self.fw.lib, self._t, self.desc.tick_ps, self.pacer
        if pacer is None:  # nothing to pace, and the host sends nothing in between: all the ticks at once
            lib.emu_timed_run(self._chip, t, self.env.now + n_ticks * tick_ps)
            yield self.env.timeout(n_ticks * tick_ps)
            return
        pacer.anchor(self.env.now)
        for _ in range(n_ticks):
            pacer.start_tick(self.env.now)
            lib.emu_timed_run(self._chip, t, self.env.now + tick_ps)
            yield self.env.timeout(tick_ps)
        pacer.wait_until(self.env.now)  # the last tick lasts its millisecond too

    def record(self, on: bool) -> None:
        """Keep the per-tick records of every core from the next tick on (True) or stop (False)."""
        self.compliance.record(on, self.tick_count)

    @property
    def lag(self) -> Lag:
        return self.pacer.lag if self.pacer is not None else Lag()

    def _ensure_buffers(self, n_ticks: int) -> None:
        ffi, t = self.fw.ffi, self._t
        recs = (n_ticks + 2) * self.n_cores
        if self._recs is None or len(self._recs) < recs:
            self._recs = ffi.new("emu_tickrec_t[]", recs)
            t.recs, t.rec_cap = self._recs, recs
        logs = max(recs * 64, int(t.log_dropped and 2 * t.log_cap))
        if self._logs is None or len(self._logs) < logs:
            self._logs = ffi.new("emu_hlog_t[]", logs)
            t.log, t.log_cap = self._logs, logs
        t.rec_len = t.log_len = 0

    def _drain_records(self) -> None:
        ffi, t = self.fw.ffi, self._t
        recs = np.frombuffer(ffi.buffer(self._recs, t.rec_len * ffi.sizeof("emu_tickrec_t")),
                             dtype=self.compliance.tick_dtype).copy()
        # the handler logs as a view: the compliance record copies the few ticks it keeps
        logs = np.frombuffer(ffi.buffer(self._logs, t.log_len * ffi.sizeof("emu_hlog_t")),
                             dtype=self.compliance.log_dtype)
        self.compliance.add(recs, logs)
        t.rec_len = t.log_len = 0

    # -- the host's side -------------------------------------------------------------------------
    def host_send(self, core: int, words: np.ndarray) -> None:
        """A host message to one core: it leaves now over the host link and arrives after its latency."""
        words = self._host_words(core, words)
        ffi = self.fw.ffi
        if self.fw.lib.emu_timed_host_msg(self._chip, self._t, core, ffi.cast("uint32_t *", ffi.from_buffer(words)),
                                          words.size) == -2:
            raise self._stopped(core)

    def inject(self, key: int, payload: int = 0) -> None:
        self.fw.lib.emu_timed_inject(self._chip, self._t, key & 0xFFFFFFFF, payload & 0xFFFFFFFF)

    def init_core(self, core: int, arena_bytes: int) -> int:
        """fw_init, and the core's timer runs from the next tick on (a core never started has none)."""
        status = super().init_core(core, arena_bytes)
        self.fw.lib.emu_timed_enable(self._chip, self._t, core)
        return status

    def enable_timer(self, core: int) -> None:
        """Run a core's timer without starting its firmware (tests of the chip alone)."""
        self._check_core(core)
        self.fw.lib.emu_timed_enable(self._chip, self._t, core)

    def load_routes(self, entries: list[RouteEntry]) -> None:
        if len(entries) > self.desc.router_entries:
            raise EmulatorError(f"routing table has {len(entries):,} entries; the router of {self.desc.name} "
                                f"holds {self.desc.router_entries:,} ({self.desc.path})")
        super().load_routes(entries)

    def take_host_messages(self) -> list[tuple[int, np.ndarray]]:
        """Messages that have reached the host by now: (core, words), in order of arrival."""
        n = int(self._chip.host_len)
        buf = self._host[:n].copy()
        self._chip.host_len = 0
        at = 0
        while at < n:
            core, size = int(buf[at]), int(buf[at + 1])
            arrival = int(buf[at + 2]) | int(buf[at + 3]) << 32
            self._pending_host.append((arrival, core, buf[at + 4:at + 4 + size]))
            at += size + 4
        now = self.now_ps
        self._pending_host.sort(key=lambda m: m[0])
        ready = [m for m in self._pending_host if m[0] <= now]
        self._pending_host = self._pending_host[len(ready):]
        return [(core, words) for _, core, words in ready]

    def stats(self) -> ChipStats:
        st = super().stats()
        t = self._t
        cores = [t.cores[c] for c in range(self.n_cores)]
        st.rx_queue_overflows = sum(int(c.rx_overflows) for c in cores)
        st.queue_overflows += sum(int(c.small_q_overflows) for c in cores) + int(t.heap_overflows) \
            + int(t.pool_overwrites) + int(t.stage_overflows)
        return st

    def set_part(self, name: str) -> None:
        """The ticks from the next on run `name` (compliance.PARTS: train or inference)."""
        self.compliance.set_part(name, self.tick_count, self.phase_cycles())

    def phase_cycles(self) -> np.ndarray:
        """Cycles charged so far, per core and phase (running totals)."""
        return np.array([[self._t.cores[c].phase_cycles[p] for p in range(len(PHASES))] for c in range(self.n_cores)])

    def timing_arrays(self, part: str = "train") -> dict[str, np.ndarray]:
        """Per-core totals of the ticks of one part of the run (training, or inference)."""
        return self.compliance.part_arrays(part, self.phase_cycles())

    def timing_npz(self) -> bytes:
        """timing.npz as bytes: the training part's arrays, and inference's when inference ticks ran."""
        inference = self.timing_arrays("inference")
        return self.compliance.npz_bytes(self.timing_arrays(), inference if inference["ticks"].any() else None)

    def whole_run_arrays(self) -> dict[str, np.ndarray]:
        """Per-core totals of every tick, as the C loop keeps them (emu_tcore_t)."""
        return self.compliance.per_core([self._t.cores[c] for c in range(self.n_cores)])

    def core_timing(self, core: int):
        """The C record of one core's whole run (emu_tcore_t)."""
        self._check_core(core)
        return self._t.cores[core]


class SimpyTimedChip(TimedChip):
    """The timed chip run by its SimPy model (emulator/chip/timed_spec.py) over the core runner, instead
    of the C event loop: the same events in the same order, so the same bits and the same records."""

    def __init__(self, n_cores: int, chip: ChipDescription | None = None, mode: str = "timed",
                 firmware: Firmware | None = None, wall_clock: WallClock | None = None, runner=None) -> None:
        super().__init__(n_cores, chip, mode, firmware, heap_events=16, pool_words=16, wall_clock=wall_clock)
        if runner is not None:
            self.runner = runner
        self.model = TimedChipModel(self.desc, n_cores, self.runner, tuple(self.fw.count_fields), lambda: self.routes,
                                    self._dma_copy, SRC_EXTERNAL)
        self.env = self.model.env

    @property
    def now_ps(self) -> int:
        return self.model.now_ps

    def set_router_faults(self, faults) -> None:
        super().set_router_faults(faults)
        self.model.faults = self._router_faults  # the model applies the Python mirror

    def fault_hits(self) -> list[int]:
        return list(self.model.faults.hits)

    def run(self, n_ticks: int) -> None:
        if n_ticks < 0:
            raise EmulatorError(f"cannot run a negative number of ticks ({n_ticks})")
        if n_ticks == 0:
            return
        model, pacer, tick_ps = self.model, self.pacer, self.desc.tick_ps
        if pacer is not None:
            pacer.anchor(model.now_ps)
        for _ in range(n_ticks):
            if pacer is not None:
                pacer.start_tick(model.now_ps)
            model.run_until(model.now_ps + tick_ps)
        if pacer is not None:
            pacer.wait_until(model.now_ps)
        self.tick_count += n_ticks
        recs = np.array(model.records, dtype=self.compliance.tick_dtype)
        logs = np.array(model.log, dtype=self.compliance.log_dtype)
        model.records, model.log = [], []
        self.compliance.add(recs, logs)

    def host_send(self, core: int, words: np.ndarray) -> None:
        self.model.host_message(core, self._host_words(core, words).copy())

    def inject(self, key: int, payload: int = 0) -> None:
        self.model.inject(key & 0xFFFFFFFF, payload & 0xFFFFFFFF)

    def init_core(self, core: int, arena_bytes: int) -> int:
        status = FunctionalChip.init_core(self, core, arena_bytes)
        self.model.enable(core)
        return status

    def enable_timer(self, core: int) -> None:
        self._check_core(core)
        self.model.enable(core)

    def take_host_messages(self) -> list[tuple[int, np.ndarray]]:
        model = self.model
        ready = sorted(m for m in model.to_host if m[0] <= model.now_ps) if model.to_host else []
        model.to_host = [m for m in model.to_host if m[0] > model.now_ps]
        return [(core, words) for _, _, core, words in ready]

    def stats(self) -> ChipStats:
        k, cores = self.model.counters, self.model.cores
        return ChipStats(delivered=k.delivered, dropped=k.dropped, dropped_from=dict(k.dropped_from),
                         last_drop=k.last_drop, queue_overflows=sum(c.small_q_overflows for c in cores),
                         dma_faults=self._stats.dma_faults, dma_bytes=self._stats.dma_bytes,
                         rx_queue_overflows=sum(c.rx_overflows for c in cores))

    def work_counts(self) -> dict[str, np.ndarray]:
        return {f: self.model.counts[:, i].copy() for i, f in enumerate(self.fw.count_fields)}

    def phase_cycles(self) -> np.ndarray:
        return np.array([c.phase_cycles for c in self.model.cores], dtype=np.float64)

    def whole_run_arrays(self) -> dict[str, np.ndarray]:
        return self.compliance.per_core(self.model.cores)

    def core_timing(self, core: int):
        self._check_core(core)
        return self.model.cores[core]


def timed_chip(n_cores: int, chip: ChipDescription | None = None, mode: str = "timed", engine: str = "c",
               threads: int = 1, **kw) -> TimedChip:
    """A timed chip on one engine: "c" (the C event loop, fast, on `threads` host threads) or "simpy" (its
    SimPy model, on one)."""
    if engine not in ENGINES:
        raise EmulatorError(f"timed chip engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "simpy":
        return SimpyTimedChip(n_cores, chip, mode, **kw)
    return TimedChip(n_cores, chip, mode, threads=threads, **kw)
