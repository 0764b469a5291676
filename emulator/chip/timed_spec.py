"""Emulator layer: the timed SpiNNaker 2 chip as a SimPy model: the specification that the C event
loop (emulator/chip/csrc/timed_loop.c) is the fast path of, event for event (docs/timing.md).

Time is SimPy's `env.now` in integer picoseconds. The model is made of SimPy's own parts, one concept
per process:

- `serve_interrupts(core)`: the core's dispatcher. It serves what is pending by priority (packet
  received, DMA done, host message, timer, user event; FIFO within one), one handler at a time, to
  completion: the handler runs through the core runner (any runner: native, ISS) and the core is busy
  for its cycles x the clock period. Its side effects leave when it ends. Idle, it waits for an
  interrupt (`wake`).
- `fire_timer(core)`: the core's timer: tick k fires at k x tick + the core's skew.
- `deliver_burst(...)`: the router and NoC: a handler's packets to one destination core arrive as a
  burst after router latency + hops x hop latency + packets x packet interval, into the core's
  receive queue, a bounded `simpy.Store` (a packet that finds it full waits at the router until a packet
  handler makes room, or is dropped and counted when the chip file's drop timeout has passed). The
  router's injected faults (`faults`, emulator/chip/faults.py) leave a dropped packet out, send a
  duplicated one twice in a row, and a delayed one alone, after the bursts, delay x tick later.
- `transfer_dma(...)`: one transfer on the core's DMA engine, a `simpy.Resource` (one at a time, in
  order): set-up latency + bytes / bandwidth; the copy is made at completion, then DMA done is pending.
- `send_to_host(...)` / `receive_from_host(...)`: a message over the host link (a `simpy.Resource`
  each way): bytes / bandwidth, then the link's latency.

Ordering, as in the C loop: everything that arrives at a core (timer, burst, DMA done, host message)
is an `Arrival`, a SimPy event of URGENT priority, so that at one instant every arrival comes before
any core wakes (wake-ups and handler ends are NORMAL events); within a priority, SimPy's order of
scheduling decides, as the C heap's sequence numbers do, so every Arrival is scheduled when the C loop
pushes its event: a handler's side effects are issued when it starts (their times count from its
end), DMA completions before packet bursts, bursts by destination core; a host message's arrival when
the host sends it. The DMA engines and the host link, as resources, must agree on those times (checked
at each completion). `run_until(t)` processes every event before t, as `emu_timed_run` does.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Generator

import numpy as np
import simpy
from simpy.events import URGENT

from s2eprop.emulator.chip.description import HANDLERS, PHASE_OF_COUNT, PHASE_OF_HANDLER, PHASES, ChipDescription
from s2eprop.emulator.chip.faults import RouterFaults
from s2eprop.emulator.errors import EmulatorError
from s2eprop.firmware.abi import abi
from s2eprop.firmware.outbox import DmaTransfer, Effects
from s2eprop.firmware.routes import RouteEntry, lookup

SMALL_QUEUE = 32          # pending DMA completions, host messages and timer ticks per core (EMU_SMALLQ)
WAIT_QUEUE = int(abi().EMU_WAIT_PACKETS)  # packets that may wait at the router for one core's receive queue
UTIL_BINS = 202           # tick utilisation in 1 % bins, 0..200 %, then one for more (EMU_UTIL_BINS)
NO_TICK = 0xFFFFFFFF
PACKET, DMA, HOST, TIMER, USER = range(5)   # handler kinds, in priority order (EMU_H_*)
KIND_OF_HANDLER = {"mc_packet": PACKET, "dma_done": DMA, "host_msg": HOST, "timer": TIMER, "user_event": USER}
Process = Generator[simpy.Event, Any, None]


class Arrival(simpy.Event):
    """Something reaching a core `delay_ps` from now: before any core wakes at that instant."""

    def __init__(self, env: simpy.Environment, delay_ps: int) -> None:
        super().__init__(env)
        if delay_ps < 0:
            raise EmulatorError(f"an arrival {delay_ps} ps in the past (model bug)")
        self._ok, self._value = True, None
        env.schedule(self, URGENT, delay_ps)


@dataclass
class CoreTiming:
    """One core's pending interrupts and its compliance record (the fields of emu_tcore_t)."""

    rx: simpy.Store
    dma_engine: simpy.Resource
    waiting: deque = field(default_factory=deque)  # (deadline_ps, packet) waiting at the router for room in rx
    dma: deque = field(default_factory=deque)      # tags of completed transfers
    host: deque = field(default_factory=deque)     # messages from the host (uint32 words)
    timer: deque = field(default_factory=deque)    # (tick, fired_ps)
    user_pending: bool = False
    irq: simpy.Event | None = None                 # what the idle dispatcher waits on
    dma_free_ps: int = 0                           # when the engine finishes what it was given
    cur_tick: int = NO_TICK
    cur_cycles: int = 0
    cur_packets: int = 0
    cur_max_queue: int = 0
    cur_dma_wait_ps: int = 0
    cur_timer_delay_ps: int = 0
    ticks: int = 0
    overruns: int = 0
    busy_cycles: int = 0
    worst_cycles: int = 0
    worst_tick: int = 0
    max_queue: int = 0
    max_timer_delay_ps: int = 0
    rx_overflows: int = 0
    small_q_overflows: int = 0
    packets_received: int = 0
    util_hist: list[int] = field(default_factory=lambda: [0] * UTIL_BINS)
    phase_cycles: list[float] = field(default_factory=lambda: [0.0] * len(PHASES))


@dataclass
class ChipCounters:
    delivered: int = 0
    dropped: int = 0
    dropped_from: dict[int, int] = field(default_factory=dict)
    last_drop: tuple[int, int] | None = None


class TimedChipModel:
    """The SimPy model of a timed chip over a core runner (`runner.on_*(core, ...) -> Effects`).

    `dma_copy(core, transfer) -> bool` moves the data of a completed transfer (False: a fault, no
    completion); `routes()` gives the routing table; `count_fields` the work counts' names."""

    def __init__(self, desc: ChipDescription, n_cores: int, runner: Any, count_fields: tuple[str, ...],
                 routes: Callable[[], list[RouteEntry]], dma_copy: Callable[[int, DmaTransfer], bool],
                 src_external: int) -> None:
        self.env = simpy.Environment()
        self.desc, self.n_cores, self.runner = desc, n_cores, runner
        self.routes, self.dma_copy, self.src_external = routes, dma_copy, src_external
        self.tick_ps, self.cycle_ps = desc.tick_ps, desc.cycle_ps()
        self.budget_cycles = self.tick_ps / self.cycle_ps
        self.skew_ps = [desc.skew_ps(c) for c in range(n_cores)]
        self.hops = desc.hop_table(n_cores)
        self.irq_cycles = desc.interrupt_entry_cycles + desc.interrupt_exit_cycles
        self.base_cycles = [0.0] * len(HANDLERS)
        self.phase_of_base = [0] * len(HANDLERS)
        for h in HANDLERS:
            self.base_cycles[KIND_OF_HANDLER[h]] = float(desc.costs.handler_base_cycles[h])
            self.phase_of_base[KIND_OF_HANDLER[h]] = PHASES.index(PHASE_OF_HANDLER[h])
        self.count_cycles = [float(desc.costs.per_count_cycles[f]) for f in count_fields]
        self.phase_of_count = [PHASES.index(PHASE_OF_COUNT[f]) for f in count_fields]
        self.cores = [CoreTiming(simpy.Store(self.env, capacity=desc.receive_queue_packets),
                                 simpy.Resource(self.env, capacity=1)) for _ in range(n_cores)]
        self.host_in = simpy.Resource(self.env, capacity=1)
        self.host_out = simpy.Resource(self.env, capacity=1)
        self.counts = np.zeros((n_cores, len(count_fields)), dtype=np.uint64)
        self.counters = ChipCounters()
        self.faults = RouterFaults()  # the router's injected faults (emulator/chip/faults.py)
        self.enabled = [False] * n_cores
        self.started = False
        self.now_ps = 0
        self.host_in_free_ps = 0  # when the inbound link has sent what it was given
        self.to_host: list[tuple[int, int, int, np.ndarray]] = []  # (arrival_ps, order, core, words)
        self._sent_to_host = 0
        self.records: list[tuple] = []   # (core, tick, cycles, packets, max_queue, overrun, dma_wait, delay)
        self.log: list[tuple] = []       # (start_ps, end_ps, core, kind, tick, cycles)
        for core in range(n_cores):
            self.env.process(self.serve_interrupts(core))

    # -- the clock and the host's side ----------------------------------------------------------------
    def start(self) -> None:
        """The chip's clock starts: the timers of the cores enabled so far run from tick 0."""
        if self.started:
            return
        self.started = True
        for core in range(self.n_cores):
            if self.enabled[core]:
                self.env.process(self.fire_timer(core, 0))

    def enable(self, core: int) -> None:
        """The host started `core`: its timer runs from the first tick still ahead."""
        if self.enabled[core]:
            return
        self.enabled[core] = True
        if self.started:
            since = self.now_ps - self.skew_ps[core]
            self.env.process(self.fire_timer(core, 0 if since <= 0 else -(-since // self.tick_ps)))

    def run_until(self, until_ps: int) -> None:
        """Process every event before until_ps."""
        self.start()
        env = self.env
        while env.peek() < until_ps:
            env.step()
        self.now_ps = max(self.now_ps, until_ps)

    def host_message(self, core: int, words: np.ndarray) -> None:
        self.start()
        begin_ps = max(self.now_ps, self.host_in_free_ps)
        self.host_in_free_ps = begin_ps + transfer_ps(4 * words.size, self.desc.host_link_bandwidth_bytes_per_s)
        arrival = Arrival(self.env, self.host_in_free_ps + self.desc.host_link_latency_ps - self.env.now)
        self.env.process(self.receive_from_host(core, words, self.now_ps, arrival))

    def inject(self, key: int, payload: int) -> None:
        self.start()
        entry = lookup(self.routes(), key)
        if entry is None:
            self._drop(self.src_external, key)
            return
        self._send_bursts(self.src_external, self.now_ps, [(key, payload)], [entry])

    # -- processes --------------------------------------------------------------------------------------
    def fire_timer(self, core: int, first_tick: int) -> Process:
        """The core's timer: tick k fires at k x tick + its skew, and is pending until served."""
        c, tick = self.cores[core], first_tick
        while True:
            yield Arrival(self.env, tick * self.tick_ps + self.skew_ps[core] - self.env.now)
            if len(c.timer) == SMALL_QUEUE:
                c.small_q_overflows += 1
            else:
                c.timer.append((tick, self.env.now))
            tick += 1
            self.wake(core)

    def serve_interrupts(self, core: int) -> Process:
        """The core's dispatcher: the highest-priority pending interrupt's handler, run to completion."""
        c, env = self.cores[core], self.env
        while True:
            kind = self.pending(core)
            if kind is None:
                c.irq = env.event()
                yield c.irq
                c.irq = None
                continue
            start_ps = env.now
            effects = self.run_handler(core, kind)
            cycles = self.charge(core, kind, effects.counts)
            end_ps = start_ps + cycles * self.cycle_ps
            self.log.append((start_ps, end_ps, core, kind, c.cur_tick, cycles))
            self.release(core, effects, end_ps)
            yield env.timeout(end_ps - start_ps)

    def deliver_burst(self, core: int, packets: list[tuple[int, int]], arrival: Arrival) -> Process:
        """The router and NoC: a burst reaches the core's receive queue; a packet that does not fit waits at
        the router (behind those already waiting) until a packet handler makes room or the chip file's drop
        timeout has passed (`drop_late`); with a timeout of 0 it is dropped at once."""
        yield arrival
        c, timeout_ps = self.cores[core], self.desc.router_drop_timeout_ps
        waited = False
        for packet in packets:
            if len(c.rx.items) < c.rx.capacity:  # room: then nothing waits
                c.rx.put(packet)
            elif timeout_ps == 0:
                c.rx_overflows += 1
            elif len(c.waiting) == WAIT_QUEUE:
                c.small_q_overflows += 1
            else:
                c.waiting.append((self.env.now + timeout_ps, packet))
                waited = True
        c.cur_max_queue = max(c.cur_max_queue, len(c.rx.items))
        if waited:
            self.env.process(self.drop_late(core, Arrival(self.env, timeout_ps)))
        self.wake(core)

    def drop_late(self, core: int, timeout: Arrival) -> Process:
        """The router drops (and counts) the packets that have waited the drop timeout for room."""
        yield timeout
        c = self.cores[core]
        while c.waiting and c.waiting[0][0] <= self.env.now:
            c.waiting.popleft()
            c.rx_overflows += 1

    def transfer_dma(self, core: int, transfer: DmaTransfer, end_ps: int, done: Arrival) -> Process:
        """One transfer on the core's engine, after those given to it before; data moves at completion.
        `done` was scheduled when the transfer was issued (when the C loop schedules it); the engine
        must agree on its time."""
        c, env = self.cores[core], self.env
        with c.dma_engine.request() as turn:
            if not turn.triggered:  # the engine is busy: wait for its earlier transfers
                yield turn
            done_ps = max(end_ps, env.now) + self.desc.dma_setup_latency_ps \
                + transfer_ps(transfer.n_bytes, self.desc.dma_bandwidth_bytes_per_s)
            yield done
            if env.now != done_ps:
                raise EmulatorError(f"core {core}: DMA done at {env.now} ps, its engine says {done_ps} ps (model bug)")
            if self.dma_copy(core, transfer):
                if len(c.dma) == SMALL_QUEUE:
                    c.small_q_overflows += 1
                else:
                    c.dma.append(transfer.tag)
        self.wake(core)

    def send_to_host(self, core: int, words: np.ndarray, end_ps: int) -> Process:
        """A message to the host over the outbound link, in the order the handlers were served."""
        order = self._sent_to_host
        self._sent_to_host += 1
        with self.host_out.request() as turn:
            if not turn.triggered:
                yield turn
            begin_ps = max(end_ps, self.env.now)
            yield Arrival(self.env, begin_ps + transfer_ps(4 * words.size, self.desc.host_link_bandwidth_bytes_per_s)
                          - self.env.now)
        self.to_host.append((self.env.now + self.desc.host_link_latency_ps, order, core, words))

    def receive_from_host(self, core: int, words: np.ndarray, sent_ps: int, arrival: Arrival) -> Process:
        """A message from the host over the inbound link, then (`arrival`, scheduled when it was sent)
        pending at its core."""
        env = self.env
        with self.host_in.request() as turn:
            if not turn.triggered:
                yield turn
            sent_at_ps = max(sent_ps, env.now) + transfer_ps(4 * words.size, self.desc.host_link_bandwidth_bytes_per_s)
            yield env.timeout(sent_at_ps - env.now)
        yield arrival
        if env.now != sent_at_ps + self.desc.host_link_latency_ps:
            raise EmulatorError(f"host message to core {core} arrived at {env.now} ps, its link says "
                                f"{sent_at_ps + self.desc.host_link_latency_ps} ps (model bug)")
        c = self.cores[core]
        if len(c.host) == SMALL_QUEUE:
            c.small_q_overflows += 1
        else:
            c.host.append(words)
        self.wake(core)

    # -- a core's interrupts and handlers ----------------------------------------------------------
    def wake(self, core: int) -> None:
        """An interrupt: the idle dispatcher resumes (a busy one looks when its handler ends)."""
        irq = self.cores[core].irq
        if irq is not None and not irq.triggered:
            irq.succeed()

    def pending(self, core: int) -> int | None:
        c = self.cores[core]
        if c.rx.items:
            return PACKET
        if c.dma:
            return DMA
        if c.host:
            return HOST
        if c.timer:
            return TIMER
        return USER if c.user_pending else None

    def run_handler(self, core: int, kind: int) -> Effects:
        c, runner = self.cores[core], self.runner
        if kind == PACKET:
            key, payload = c.rx.get().value
            c.cur_packets += 1
            c.packets_received += 1
            if c.waiting:  # the oldest packet waiting at the router takes the room (its timeout is ahead)
                c.rx.put(c.waiting.popleft()[1])
            return runner.on_mc_packet(core, key, payload)
        if kind == DMA:
            return runner.on_dma_done(core, c.dma.popleft())
        if kind == HOST:
            return runner.on_host_msg(core, c.host.popleft())
        if kind == TIMER:
            tick, fired_ps = c.timer.popleft()
            self.close_tick(core)
            c.cur_tick, c.cur_cycles, c.cur_packets = tick, 0, 0
            c.cur_max_queue, c.cur_dma_wait_ps = len(c.rx.items), 0
            c.cur_timer_delay_ps = self.env.now - fired_ps
            return runner.on_timer(core, tick)
        c.user_pending = False
        return runner.on_user_event(core)

    def charge(self, core: int, kind: int, counts: np.ndarray) -> int:
        """A handler's cycles: interrupt entry and exit + its base + work counts x cycles per count."""
        c = self.cores[core]
        self.counts[core] += counts
        cycles = float(self.irq_cycles) + self.base_cycles[kind]
        c.phase_cycles[PHASES.index("overhead")] += float(self.irq_cycles)
        c.phase_cycles[self.phase_of_base[kind]] += self.base_cycles[kind]
        for i, n in enumerate(counts.tolist()):
            if n:
                x = self.count_cycles[i] * float(n)
                cycles += x
                c.phase_cycles[self.phase_of_count[i]] += x
        whole = int(cycles) + (1 if float(int(cycles)) < cycles else 0)
        c.cur_cycles += whole
        c.busy_cycles += whole
        return whole

    def close_tick(self, core: int) -> None:
        """The core's current tick ends (its next timer handler starts): its record."""
        c = self.cores[core]
        if c.cur_tick == NO_TICK:
            return
        overrun = int(c.cur_cycles > self.budget_cycles)
        c.util_hist[min(int(c.cur_cycles * 100.0 / self.budget_cycles), UTIL_BINS - 1)] += 1
        c.ticks += 1
        c.overruns += overrun
        if c.cur_cycles > c.worst_cycles or c.ticks == 1:
            c.worst_cycles, c.worst_tick = c.cur_cycles, c.cur_tick
        c.max_queue = max(c.max_queue, c.cur_max_queue)
        c.max_timer_delay_ps = max(c.max_timer_delay_ps, c.cur_timer_delay_ps)
        self.records.append((core, c.cur_tick, min(c.cur_cycles, 0xFFFFFFFF), c.cur_packets, c.cur_max_queue, overrun,
                             c.cur_dma_wait_ps, c.cur_timer_delay_ps))

    # -- side effects, leaving when the handler ends -----------------------------------------------
    def release(self, core: int, effects: Effects, end_ps: int) -> None:
        c = self.cores[core]
        for words in effects.host:
            self.env.process(self.send_to_host(core, words, end_ps))
        for d in effects.dma:
            c.dma_free_ps = max(end_ps, c.dma_free_ps) + self.desc.dma_setup_latency_ps \
                + transfer_ps(d.n_bytes, self.desc.dma_bandwidth_bytes_per_s)
            c.cur_dma_wait_ps += c.dma_free_ps - end_ps
            done = Arrival(self.env, c.dma_free_ps - self.env.now)
            self.env.process(self.transfer_dma(core, d, end_ps, done))
        if effects.user_event:
            c.user_pending = True
        if effects.packets:
            routes = self.routes()
            packets: list[tuple[int, int]] = []
            entries: list[RouteEntry | None] = []
            delayed = []
            for key, payload in effects.packets:
                entry = lookup(routes, key)
                action, delay = (None, 0) if entry is None else self.faults.apply(core, key)
                if entry is None:
                    self._drop(core, key)
                if action == "drop":
                    continue
                if action == "delay":
                    delayed.append(((key, payload), entry, delay))
                    continue
                copies = 2 if action == "duplicate" else 1
                packets += [(key, payload)] * copies
                entries += [entry] * copies
            self._send_bursts(core, end_ps, packets, entries)
            for packet, entry, delay in delayed:  # alone, after the bursts, delay ticks later
                self._send_bursts(core, end_ps + delay * self.tick_ps, [packet], [entry])

    def _send_bursts(self, src: int, end_ps: int, packets: list[tuple[int, int]],
                     entries: list[RouteEntry | None]) -> None:
        """Each destination core's packets, in order, as one burst (destinations in core order)."""
        dests = sorted({c for e in entries if e is not None for c in e.cores if c < self.n_cores})
        for core in dests:
            burst = [p for p, e in zip(packets, entries) if e is not None and core in e.cores]
            hops = 0 if src == self.src_external else int(self.hops[src, core])
            delay = end_ps - self.env.now + self.desc.router_latency_ps + hops * self.desc.noc_hop_latency_ps \
                + len(burst) * self.desc.packet_interval_ps
            self.env.process(self.deliver_burst(core, burst, Arrival(self.env, delay)))
            self.counters.delivered += len(burst)

    def _drop(self, src: int, key: int) -> None:
        k = self.counters
        k.dropped += 1
        k.dropped_from[src] = k.dropped_from.get(src, 0) + 1
        k.last_drop = (src, key)


def transfer_ps(n_bytes: int, bytes_per_s: int) -> int:
    """Time to move n_bytes at bytes_per_s, rounded up to a whole ps (as the C loop)."""
    return -(-(n_bytes * 10 ** 12) // bytes_per_s)
