"""Emulator layer: the ARM build in time: the SimPy model of the timed chip (timed_spec.py) over the ISS
core runner, with each handler's cycles counted by the ISS itself and packet interrupts that preempt.

The execution model is the firmware's (hal.h, docs/chip.md section 10): a pending packet preempts any
other running handler at the first basic block that starts after its arrival, unless the handler has
the interrupt masked (PRIMASK, hal_irq_disable), in which case it is taken where the handler unmasks
it. The packet handler then runs nested (the ISS stacks an exception frame below the preempted
handler's SP), and the preempted handler resumes. Packet handlers are never preempted; the other
handlers never preempt anything (served by priority when the core is free, as in timed_spec.py).

How the dispatcher runs a preemptible handler, in slices of simulated time: it runs the ISS until the
next event anywhere in the chip (`env.peek()`: nothing can reach this core before it), lets SimPy
catch up to where the ISS stopped, and nests whatever packet has arrived meanwhile. Cycles: interrupt
entry + the ISS's own cycles (its timing table, m4_timing.py) + exit, for the handler and for every
nested packet handler (the chip file's `interrupt_entry_cycles` and `interrupt_exit_cycles`). The
cycles by phase split each handler's measured cycles as the calibrated model (cycle_costs.yaml)
splits its estimate of the same call.

What differs from the run-to-completion model besides the cycles: side effects still leave when the
handler that queued them ends, and those of a nested packet handler (at most a user event) leave with
the handler it preempted.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from s2eprop.emulator.chip.description import PHASES
from s2eprop.emulator.chip.timed import SimpyTimedChip
from s2eprop.emulator.chip.timed_spec import DMA, HOST, PACKET, TIMER, Process, TimedChipModel
from s2eprop.emulator.errors import EmulatorError

HANDLER_OF_KIND = {DMA: "dma_done", HOST: "host_msg", TIMER: "timer"}


class PreemptiveChipModel(TimedChipModel):
    """TimedChipModel whose dispatcher lets packets preempt, over a runner with the ISS's slice interface
    (begin, resume, masked, run_to_unmask, nest_packet, finish: emulator/runners/iss.py)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        for name in ("begin", "resume", "masked", "run_to_unmask", "nest_packet", "finish", "done"):
            if not hasattr(self.runner, name):
                raise EmulatorError(f"the preemptive timed chip needs a core runner that runs handlers in slices "
                                    f"(the ISS runner); {type(self.runner).__name__} has no {name}()")
        self.entry_cycles = self.desc.interrupt_entry_cycles
        self.exit_cycles = self.desc.interrupt_exit_cycles
        self.preemptions = [0] * self.n_cores     # packet handlers run nested in another handler
        self.deferred = [0] * self.n_cores        # ... of which the handler had masked at arrival

    def serve_interrupts(self, core: int) -> Process:
        """The core's dispatcher: by priority as in TimedChipModel, but a packet preempts a running handler."""
        c, env = self.cores[core], self.env
        while True:
            kind = self.pending(core)
            if kind is None:
                c.irq = env.event()
                yield c.irq
                c.irq = None
                continue
            start_ps = env.now
            if kind == PACKET:
                effects = self.run_handler(core, kind)
                cycles = self.charge_measured(core, kind, effects.counts, self.runner.last_cycles)
                end_ps = start_ps + cycles * self.cycle_ps
                self.log.append((start_ps, end_ps, core, kind, c.cur_tick, cycles))
                self.release(core, effects, end_ps)
                yield env.timeout(end_ps - start_ps)
                continue
            self.begin_handler(core, kind)
            t_ps = start_ps + self.entry_cycles * self.cycle_ps
            own = 0
            while not self.runner.done(core):
                horizon = env.peek()
                budget = None if math.isinf(horizon) else max(1, -(-(int(horizon) - t_ps) // self.cycle_ps))
                ran = self.runner.resume(core, budget)
                own += ran
                t_ps += ran * self.cycle_ps
                if self.runner.done(core):
                    break
                if t_ps > env.now:
                    yield env.timeout(t_ps - env.now)
                if not c.rx.items:
                    continue
                if self.runner.masked(core):  # taken where the handler unmasks it
                    self.deferred[core] += 1
                    ran = self.runner.run_to_unmask(core)
                    own += ran
                    t_ps += ran * self.cycle_ps
                    if self.runner.done(core):
                        break
                while c.rx.items:  # each packet waiting, nested in turn
                    key, payload = c.rx.get().value
                    c.cur_packets += 1
                    c.packets_received += 1
                    counts, cycles_iss = self.runner.nest_packet(core, key, payload)
                    cycles = self.charge_measured(core, PACKET, counts, cycles_iss)
                    self.log.append((t_ps, t_ps + cycles * self.cycle_ps, core, PACKET, c.cur_tick, cycles))
                    t_ps += cycles * self.cycle_ps
                    self.preemptions[core] += 1
                    if t_ps > env.now:
                        yield env.timeout(t_ps - env.now)
            effects = self.runner.finish(core)
            end_ps = t_ps + self.exit_cycles * self.cycle_ps
            cycles = self.charge_measured(core, kind, effects.counts, own)
            self.log.append((start_ps, end_ps, core, kind, c.cur_tick, cycles))
            self.release(core, effects, end_ps)
            yield env.timeout(end_ps - env.now)

    def begin_handler(self, core: int, kind: int) -> None:
        """run_handler's bookkeeping, with the handler begun in the runner instead of run."""
        c, runner = self.cores[core], self.runner
        if kind == DMA:
            runner.begin(core, "dma_done", (c.dma.popleft() & 0xFFFFFFFF,))
        elif kind == HOST:
            runner.begin(core, "host_msg", words=c.host.popleft())
        elif kind == TIMER:
            tick, fired_ps = c.timer.popleft()
            self.close_tick(core)
            c.cur_tick, c.cur_cycles, c.cur_packets = tick, 0, 0
            c.cur_max_queue, c.cur_dma_wait_ps = len(c.rx.items), 0
            c.cur_timer_delay_ps = self.env.now - fired_ps
            runner.begin(core, "timer", (tick & 0xFFFFFFFF,))
        else:
            c.user_pending = False
            runner.begin(core, "user_event")

    def charge_measured(self, core: int, kind: int, counts: np.ndarray, own_cycles: int) -> int:
        """A handler's cycles: interrupt entry and exit + what the ISS counted; split into phases as the
        calibrated model splits its estimate of the same call."""
        c = self.cores[core]
        self.counts[core] += counts
        parts = [0.0] * len(PHASES)
        parts[self.phase_of_base[kind]] += self.base_cycles[kind]
        for i, n in enumerate(counts.tolist()):
            if n:
                parts[self.phase_of_count[i]] += self.count_cycles[i] * float(n)
        model = sum(parts)
        irq = self.entry_cycles + self.exit_cycles
        c.phase_cycles[PHASES.index("overhead")] += float(irq)
        for p, x in enumerate(parts):
            if x:
                c.phase_cycles[p] += own_cycles * x / model
        if model == 0.0:
            c.phase_cycles[self.phase_of_base[kind]] += float(own_cycles)
        whole = irq + int(own_cycles)
        c.cur_cycles += whole
        c.busy_cycles += whole
        return whole


class IssTimedChip(SimpyTimedChip):
    """The timed chip run by PreemptiveChipModel over an ISS core runner (`--mode timed --cpu iss`)."""

    def __init__(self, n_cores: int, chip=None, mode: str = "timed", firmware=None, wall_clock=None,
                 runner=None) -> None:
        if runner is None:
            raise EmulatorError("IssTimedChip needs its ISS core runner (emulator/runners/iss.py IssRunner)")
        super().__init__(n_cores, chip, mode, firmware, wall_clock, runner)
        self.model = PreemptiveChipModel(self.desc, n_cores, self.runner, tuple(self.fw.count_fields),
                                         lambda: self.routes, self._dma_copy, self.model.src_external)
        self.env = self.model.env

    @property
    def preemptions(self) -> int:
        return sum(self.model.preemptions)

    def iss_summary(self) -> dict[str, Any]:
        """What report.json `timing` adds for the ARM build in time: preemptions and measured stack."""
        from s2eprop.firmware.stack import CORTEX_M4F_EXCEPTION_FRAME

        uses = self.runner.stack_use
        worst = max(range(self.n_cores), key=lambda c: uses[c].bytes)
        nested = max(range(self.n_cores), key=lambda c: uses[c].nested_bytes)
        return {"cpu": "iss", "preemptions": self.preemptions,
                "preemptions_deferred_by_mask": sum(self.model.deferred),
                "preemptions_per_core": list(self.model.preemptions),
                "stack_measured": {
                    "bytes": uses[worst].bytes, "handler": uses[worst].handler, "core": worst,
                    "nested_bytes": uses[nested].nested_bytes, "nested_over": uses[nested].nested_handler,
                    "nested_core": nested, "nested_calls": sum(u.nested_calls for u in uses),
                    "budget_bytes": self.runner.image.stack_bytes,
                    "how": f"painted stack, lowest word written below the SP a first-level interrupt hands its "
                           f"handler, + {CORTEX_M4F_EXCEPTION_FRAME} B per exception frame (nested: the inner frame "
                           f"is inside the painted span)"}}
