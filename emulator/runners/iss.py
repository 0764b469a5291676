"""Emulator layer: the core runner over the ARM build, run in an instruction-set simulator (unicorn).

Each core is one Cortex-M4F (Thumb-2, M profile) with its own 128 KiB: the ELF's code and data at 0,
the arena at `__arena_start`, the stack below `__stack_top` (firmware_c/arm/link.ld). The arena is
the runner's `sram[core]` itself, mapped into the simulator (no copies), so the host's offset 0 is
`__arena_start` and host and firmware see the same bytes as with the native runner; the HAL's DMA
words hold offsets from the arena (hal_emu.c), so `Effects` are the native runner's too.

A handler runs as an interrupt would: the start-up code has run once (reset), each call starts at the
handler's symbol with its AAPCS arguments and returns to `fw_idle`. Its cost is counted per basic
block: a block hook records each executed block's address, blocks are disassembled and priced once
(emulator/runners/m4_timing.py), and after the call NumPy sums them: instructions, cycles (taken
branches read from the next block), instruction classes and cycles per firmware function.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2eprop.firmware.arm_image import ArmImage, load_image
from s2eprop.emulator.errors import EmulatorError
from s2eprop.emulator.runners.core_checks import CoreChecks
from s2eprop.firmware.abi import Firmware
from s2eprop.emulator.runners.block_log import BlockLog
from s2eprop.firmware.outbox import Effects, OutboxReader
from s2eprop.emulator.runners.iss_cost import BlockPricer, cycles_before
from s2eprop.firmware.stack import CORTEX_M4F_EXCEPTION_FRAME
from s2eprop.emulator.runners.m4_timing import CORTEX_M4F, BlockTimer, TimingTable

HANDLERS = ("init", "timer", "mc_packet", "dma_done", "host_msg", "user_event")
SCS_BASE, SCS_BYTES = 0xE000E000, 0x1000   # system control space: only CPACR is modelled
CPACR_ADDR, CPACR_FPU_ON = 0xE000ED88, 0xF << 20
CALLER_FRAME_BYTES = 64 + 256              # the caller's result struct and host message, atop the stack
ALIGN = 4096
STACK_PAINT = 0xA5A5A5A5                   # the stack's words before any handler wrote them (high-water mark)


@dataclass(frozen=True)
class StackUse:
    """The deepest stack a core's handlers reached in the ISS (painted stack: the lowest word written),
    from the SP an interrupt hands the first handler, plus one exception frame per level in flight."""

    bytes: int = 0                # deepest of any call, one exception frame included
    handler: str = ""             # the handler of that call
    nested_bytes: int = 0         # deepest of a call with a packet handler nested in it, two frames included
    nested_handler: str = ""      # the handler the packet preempted then
    nested_calls: int = 0         # calls a packet preempted


@dataclass
class _Open:
    """A handler started with `begin` and not yet finished: where it stopped and what it ran so far."""

    handler: str
    keys: list                    # block logs of its slices
    last_key: int | None = None   # its last block so far (a slice's cycles include the branch into the next)
    cycles: int = 0
    done: bool = False
    stopped: bool = False         # refused at the start (a stopped core): no call, no effects
    nested: int = 0               # packet handlers run over it


@dataclass(frozen=True)
class CallCost:
    """What one handler call executed in the simulator."""

    core: int
    handler: str                 # one of HANDLERS
    instructions: int
    cycles: int                  # by the timing table, interrupt entry and exit not included
    classes: np.ndarray          # instructions per m4_timing.CLASSES entry
    function_cycles: np.ndarray  # cycles per IssRunner.functions entry ("?": outside every function)
    counts: np.ndarray | None    # the call's fw_counts_t (None for init)


class IssRunner:
    """Runs firmware handlers of `n_cores` cores on the ARM ELF, each core's arena in `sram[core]`.

    `record`, when a list, receives a CallCost per handler call (calibration); `last_call` is always
    the latest one (`last_cycles`, `last_instructions` its figures)."""

    def __init__(self, firmware: Firmware | None, n_cores: int, sram_bytes: int, elf_path: Path | None = None,
                 timing: TimingTable = CORTEX_M4F, record: list[CallCost] | None = None) -> None:
        import unicorn as uc_mod
        import unicorn.arm_const as arm

        from s2eprop.firmware import arm_build

        self.fw = firmware or Firmware()
        self.n_cores = n_cores
        self.sram_bytes = sram_bytes
        self.image: ArmImage = load_image(Path(elf_path) if elf_path is not None else arm_build.current_elf())
        self.timing = timing
        self.record = record
        self.last_call: CallCost | None = None
        self._uc_mod, self._arm = uc_mod, arm
        self._arg_regs = (arm.UC_ARM_REG_R0, arm.UC_ARM_REG_R1, arm.UC_ARM_REG_R2, arm.UC_ARM_REG_R3)
        img = self.image
        self._room = img.arena_room_bytes
        self._entry = {h: img.address("fw_" + h if h == "init" else "fw_on_" + h) for h in HANDLERS}
        self._idle, self._fault = img.address("fw_idle"), img.address("fw_fault")
        self._counts_at = img.stack_top - 64
        self._msg_at = img.stack_top - CALLER_FRAME_BYTES
        self._sp0 = self._msg_at - 8
        self._code = self._code_bytes()
        self._pricer = BlockPricer(img, self._code, BlockTimer(timing))
        self._log = BlockLog()
        self._faulted = False
        self._count_dtype = np.dtype(np.uint32)
        self._n_counts = len(self.fw.count_fields)
        self.sram = [self._aligned_zeros(sram_bytes) for _ in range(n_cores)]
        ffi = self.fw.ffi
        self._headers = [ffi.cast("fw_header_t *", ffi.from_buffer(a)) for a in self.sram]
        self._outbox = OutboxReader(self.fw)
        self._stack_bottom = img.symbols["__stack_bottom"]
        self._stacks = [self._aligned_zeros(img.stack_top - self._stack_bottom).view(np.uint32) for _ in range(n_cores)]
        self._cores = [self._make_core(c) for c in range(n_cores)]
        self._log.set_estimate(cycles_before(self._code, BlockTimer(timing)))
        self._open: list[_Open | None] = [None] * n_cores
        self.stack_use = [StackUse() for _ in range(n_cores)]
        for c in range(n_cores):
            self._stacks[c][:] = STACK_PAINT
        ffi = self.fw.ffi  # as NativeRunner, a core the host made invalid is stopped
        self.checks = CoreChecks(self.fw, n_cores, lambda core: (ffi.cast("uint8_t *", ffi.from_buffer(self.sram[core])),
                                                                 min(self._room, self.sram_bytes)))

    # -- the core-runner interface (NativeRunner's) ------------------------------------------
    def init(self, core: int, arena_bytes: int) -> int:
        if arena_bytes > self._room:
            raise EmulatorError(
                f"core {core}: arena of {arena_bytes:,} B does not fit the {self._room:,} B that the ARM image "
                f"{self.image.path.name} leaves in 128 KiB (code, data, stack): lower partition.neurons_per_core")
        status = self._call(core, "init", (self.image.arena_start, arena_bytes), counts=False)[0]
        self.checks.reset(core)
        return status

    def on_timer(self, core: int, tick: int) -> Effects:
        return self._effects(core, "timer", (tick & 0xFFFFFFFF,))

    def on_mc_packet(self, core: int, key: int, payload: int) -> Effects:
        return self._effects(core, "mc_packet", (key & 0xFFFFFFFF, payload & 0xFFFFFFFF))

    def on_dma_done(self, core: int, tag: int) -> Effects:
        return self._effects(core, "dma_done", (tag & 0xFFFFFFFF,))

    def on_host_msg(self, core: int, words: np.ndarray) -> Effects:
        words = np.ascontiguousarray(words, dtype=np.uint32)
        if words.size > (CALLER_FRAME_BYTES - 64) // 4:
            raise EmulatorError(f"core {core}: host message of {words.size} words, the ISS passes at most "
                                f"{(CALLER_FRAME_BYTES - 64) // 4}")
        self._cores[core].mem_write(self._msg_at, words.tobytes())
        return self._effects(core, "host_msg", (self._msg_at, words.size))

    def on_user_event(self, core: int) -> Effects:
        return self._effects(core, "user_event", ())

    @property
    def functions(self) -> tuple[str, ...]:
        return self._pricer.functions

    @property
    def last_cycles(self) -> int:
        return self.last_call.cycles if self.last_call else 0

    @property
    def last_instructions(self) -> int:
        return self.last_call.instructions if self.last_call else 0

    # -- cores -------------------------------------------------------------------------------
    def _aligned_zeros(self, n: int) -> np.ndarray:
        buf = np.zeros(n + ALIGN, dtype=np.uint8)
        skip = (-buf.ctypes.data) % ALIGN
        return buf[skip:skip + n]

    def _code_bytes(self) -> bytes:
        code = bytearray(self.image.arena_start)
        for addr, data in self.image.segments:
            if addr + len(data) > len(code):
                raise EmulatorError(f"{self.image.path}: segment at 0x{addr:x} ({len(data)} B) runs into the arena")
            code[addr:addr + len(data)] = data
        return bytes(code)

    def _make_core(self, core: int) -> Any:
        U, arm, img = self._uc_mod, self._arm, self.image
        uc = U.Uc(U.UC_ARCH_ARM, U.UC_MODE_THUMB | U.UC_MODE_MCLASS)
        uc.ctl_set_cpu_model(arm.UC_CPU_ARM_CORTEX_M4)
        uc.mem_map(0, img.arena_start)
        uc.mem_write(0, self._code)
        room = min(self._room, self.sram_bytes)
        uc.mem_map_ptr(img.arena_start, room, U.UC_PROT_READ | U.UC_PROT_WRITE, self.sram[core].ctypes.data)
        uc.mem_map_ptr(self._stack_bottom, img.stack_top - self._stack_bottom, U.UC_PROT_READ | U.UC_PROT_WRITE,
                       self._stacks[core].ctypes.data)
        uc.mem_map(SCS_BASE, SCS_BYTES, U.UC_PROT_READ | U.UC_PROT_WRITE)
        self._log.attach(uc)
        uc.hook_add(U.UC_HOOK_CODE, self._on_fault, begin=self._fault, end=self._fault + 1)
        self._run(uc, core, "reset", img.address("fw_reset"))
        cpacr = int.from_bytes(uc.mem_read(CPACR_ADDR, 4), "little")
        # unicorn does not model CPACR: a Cortex-M4F would fault on the first VFP instruction
        if cpacr & CPACR_FPU_ON != CPACR_FPU_ON:
            raise EmulatorError(f"core {core}: the start-up code left the FPU off (CPACR = 0x{cpacr:08x}, CP10 and "
                                f"CP11 need full access, bits 20-23): fw_reset in firmware_c/arm/startup.c must set them")
        return uc

    def _on_fault(self, uc: Any, *_: Any) -> None:
        self._faulted = True
        uc.emu_stop()

    def _run(self, uc: Any, core: int, handler: str, entry: int, args: tuple[int, ...] = ()) -> None:
        arm = self._arm
        # SP and LR as an interrupt's entry leaves them (returning to the idle loop), FPSCR = FPDSCR's reset value
        uc.reg_write_batch([*zip(self._arg_regs, args), (arm.UC_ARM_REG_SP, self._sp0),
                            (arm.UC_ARM_REG_LR, self._idle | 1), (arm.UC_ARM_REG_FPSCR, 0)])
        self._log.clear()
        self._faulted = False
        try:
            uc.emu_start(entry | 1, self._idle)
        except self._uc_mod.UcError as e:
            pc = uc.reg_read(arm.UC_ARM_REG_PC)
            raise EmulatorError(f"core {core}: {handler} stopped in the ISS at 0x{pc:05x} "
                                f"({self.image.function_at(pc)}): {e}") from None
        if self._faulted:
            pc = uc.reg_read(arm.UC_ARM_REG_LR)
            raise EmulatorError(f"core {core}: {handler} faulted (reached fw_fault; LR 0x{pc:08x})")

    def _call(self, core: int, handler: str, args: tuple[int, ...], counts: bool) -> tuple[int, np.ndarray | None]:
        uc, arm = self._cores[core], self._arm
        if counts:  # fw_counts_t comes back in memory: r0 holds where (AAPCS), the arguments shift by one
            args = (self._counts_at, self.image.arena_start, *args)
        self._run(uc, core, handler, self._entry[handler], args)
        work = None
        if counts:
            raw = uc.mem_read(self._counts_at, 4 * self._n_counts)
            work = np.frombuffer(bytes(raw), dtype=self._count_dtype).astype(np.uint64)
        self._account(core, handler, work)
        return int(uc.reg_read(arm.UC_ARM_REG_R0)), work

    def _effects(self, core: int, handler: str, args: tuple[int, ...]) -> Effects:
        if self.check(core):  # stopped: runs nothing until init
            return Effects(counts=np.zeros(self._n_counts, dtype=np.uint64))
        _, work = self._call(core, handler, args, counts=True)
        assert work is not None
        self._measure_stack(core, handler, nested=0)
        return self._drain(core, work)

    def _drain(self, core: int, work: np.ndarray) -> Effects:
        effects = self._outbox.drain(core, self._headers[core], self.sram[core], work)
        if effects is None:  # an outbox past its arena or an entry past its count (as chip_loop.c's drain)
            self.checks.stop(core, int(self.fw.lib.EMU_RTE_OUTBOX))
            return Effects(counts=work)
        return effects

    # -- preemption: a handler run in slices, packet handlers nested between them ------------------
    # (the SimPy timed chip's preemptive dispatcher, emulator/chip/timed_iss.py, drives these)
    def begin(self, core: int, handler: str, args: tuple[int, ...] = (), words: np.ndarray | None = None) -> None:
        """Start `handler` (not fw_on_mc_packet: packets preempt, they are not preempted) without running
        it: `resume` runs it. A host message's `words` are passed as on_host_msg passes them."""
        if self._open[core] is not None:
            raise EmulatorError(f"core {core}: {handler} begun while {self._open[core].handler} runs (model bug)")
        if handler in ("init", "mc_packet"):
            raise EmulatorError(f"core {core}: {handler} cannot be preempted; call it directly (model bug)")
        call = _Open(handler, [])
        self._open[core] = call
        if self.check(core):  # stopped: runs nothing until init
            call.done = call.stopped = True
            return
        if words is not None:
            self._cores[core].mem_write(self._msg_at, np.ascontiguousarray(words, dtype=np.uint32).tobytes())
            args = (self._msg_at, words.size)
        arm = self._arm
        self._cores[core].reg_write_batch(
            [*zip(self._arg_regs, (self._counts_at, self.image.arena_start, *args)), (arm.UC_ARM_REG_SP, self._sp0),
             (arm.UC_ARM_REG_LR, self._idle | 1), (arm.UC_ARM_REG_FPSCR, 0), (arm.UC_ARM_REG_PC, self._entry[handler] | 1)])

    def resume(self, core: int, budget_cycles: int | None = None) -> int:
        """Run the begun handler on until it returns, or (a budget) stop before the first basic block that
        starts once budget_cycles are spent (a block's estimate; at least one block runs). The exact
        cycles this slice ran (by the timing table, the taken branch into it included)."""
        return self._slice(core, budget_cycles, None)

    def resume_to(self, core: int, address: int) -> int:
        """Run the begun handler on until it is about to execute the instruction at `address` (or returns):
        where a test raises an interrupt. The exact cycles of this slice."""
        return self._slice(core, None, address)

    def run_to_unmask(self, core: int) -> int:
        """Run the begun handler on, a basic block at a time, until it has the packet interrupt unmasked
        (where a masked interrupt is taken) or returns. The exact cycles it ran."""
        cycles = 0
        while not self.done(core) and self.masked(core):
            cycles += self._slice(core, 1, None)
        return cycles

    def _slice(self, core: int, budget_cycles: int | None, address: int | None) -> int:
        call = self._open[core]
        if call is None or call.done:
            raise EmulatorError(f"core {core}: resume with no handler running (model bug)")
        uc, arm = self._cores[core], self._arm
        pc = uc.reg_read(arm.UC_ARM_REG_PC)
        hook = None
        if address is not None:
            hook = uc.hook_add(self._uc_mod.UC_HOOK_CODE, lambda u, *_: u.emu_stop(), begin=address, end=address)
            uc.ctl_remove_cache(address, address + 4)  # a block translated before the hook would not call it
        self._log.clear()
        self._log.limit(budget_cycles)
        self._faulted = False
        try:
            uc.emu_start(pc | 1, self._idle)
        except self._uc_mod.UcError as e:
            pc = uc.reg_read(arm.UC_ARM_REG_PC)
            raise EmulatorError(f"core {core}: {call.handler} stopped in the ISS at 0x{pc:05x} "
                                f"({self.image.function_at(pc)}): {e}") from None
        finally:
            self._log.limit(None)
            if hook is not None:
                uc.hook_del(hook)
                uc.ctl_remove_cache(address, address + 4)
        if self._faulted:
            raise EmulatorError(f"core {core}: {call.handler} faulted (reached fw_fault; LR "
                                f"0x{uc.reg_read(arm.UC_ARM_REG_LR):08x})")
        keys = self._log.take().copy()
        pc = uc.reg_read(arm.UC_ARM_REG_PC)
        call.done = pc == self._idle
        if address is not None and pc == address and keys.size:  # stopped inside the last block: its head ran
            start = int(keys[-1]) >> 12
            keys = keys[:-1] if start == address else np.append(keys[:-1], start << 12 | (address - start))
        cycles = self._slice_cycles(call, keys)
        call.cycles += cycles
        return cycles

    def masked(self, core: int) -> bool:
        """Whether the running handler has the packet interrupt masked (PRIMASK, hal_irq_disable)."""
        return bool(self._cores[core].reg_read(self._arm.UC_ARM_REG_PRIMASK) & 1)

    def done(self, core: int) -> bool:
        call = self._open[core]
        return call is None or call.done

    def nest_packet(self, core: int, key: int, payload: int) -> tuple[np.ndarray, int]:
        """fw_on_mc_packet run where the begun handler stopped, as the interrupt would: one exception
        frame stacked below its SP, the handler's result below that, its context back afterwards.
        Its work counts and cycles (interrupt entry and exit not included); its outbox entries stay
        in the outbox and leave with the preempted handler's (`finish`)."""
        call = self._open[core]
        if call is None or call.done or call.stopped:
            raise EmulatorError(f"core {core}: a nested packet with no handler to preempt (model bug)")
        if self.masked(core):
            raise EmulatorError(f"core {core}: a packet nested where {call.handler} masked it (model bug)")
        uc, arm = self._cores[core], self._arm
        context = uc.context_save()
        sp = uc.reg_read(arm.UC_ARM_REG_SP)
        counts_at = ((sp - CORTEX_M4F_EXCEPTION_FRAME) & ~7) - 8 * (-(-4 * self._n_counts // 8))
        uc.reg_write_batch([*zip(self._arg_regs, (counts_at, self.image.arena_start, key & 0xFFFFFFFF,
                                                  payload & 0xFFFFFFFF)),
                            (arm.UC_ARM_REG_SP, counts_at), (arm.UC_ARM_REG_LR, self._idle | 1),
                            (arm.UC_ARM_REG_FPSCR, 0)])
        self._log.clear()
        self._faulted = False
        try:
            uc.emu_start(self._entry["mc_packet"] | 1, self._idle)
        except self._uc_mod.UcError as e:
            pc = uc.reg_read(arm.UC_ARM_REG_PC)
            raise EmulatorError(f"core {core}: mc_packet (over {call.handler}) stopped in the ISS at 0x{pc:05x} "
                                f"({self.image.function_at(pc)}): {e}") from None
        if self._faulted:
            raise EmulatorError(f"core {core}: mc_packet (over {call.handler}) faulted (reached fw_fault)")
        work = np.frombuffer(bytes(uc.mem_read(counts_at, 4 * self._n_counts)), dtype=self._count_dtype).astype(np.uint64)
        self._account(core, "mc_packet", work)
        uc.context_restore(context)
        call.nested += 1
        return work, self.last_cycles

    def finish(self, core: int) -> Effects:
        """The begun handler's effects once it returned (with those of the packets nested in it)."""
        call = self._open[core]
        if call is None or not call.done:
            raise EmulatorError(f"core {core}: finish before the handler returned (model bug)")
        self._open[core] = None
        if call.stopped:
            return Effects(counts=np.zeros(self._n_counts, dtype=np.uint64))
        uc = self._cores[core]
        work = np.frombuffer(bytes(uc.mem_read(self._counts_at, 4 * self._n_counts)),
                             dtype=self._count_dtype).astype(np.uint64)
        cost = self._pricer.price(np.concatenate(call.keys) if call.keys else np.zeros(0, dtype=np.int64))
        self.last_call = CallCost(core=core, handler=call.handler, instructions=cost.instructions, cycles=cost.cycles,
                                  classes=cost.classes, function_cycles=cost.function_cycles, counts=work)
        if self.record is not None:
            self.record.append(self.last_call)
        self._measure_stack(core, call.handler, call.nested)
        return self._drain(core, work)

    def _slice_cycles(self, call: _Open, keys: np.ndarray) -> int:
        """A slice's exact cycles: the log priced after the previous slice's last block, minus that block
        alone (what the branch from it into this slice cost is charged here)."""
        if keys.size == 0:
            return 0
        call.keys.append(keys)
        if call.last_key is None:
            cycles = self._pricer.price(keys).cycles
        else:
            head = np.array([call.last_key], dtype=np.int64)
            cycles = self._pricer.price(np.concatenate([head, keys])).cycles - self._pricer.price(head).cycles
        call.last_key = int(keys[-1])
        return cycles

    def _measure_stack(self, core: int, handler: str, nested: int) -> None:
        """The painted stack's lowest written word since the last call; the paint restored."""
        stack = self._stacks[core]
        top = (self._sp0 - self._stack_bottom) // 4
        touched = np.flatnonzero(stack[:top] != STACK_PAINT)
        if touched.size == 0:
            return
        low = int(touched[0])
        depth = self._sp0 - (self._stack_bottom + 4 * low) + CORTEX_M4F_EXCEPTION_FRAME
        use = self.stack_use[core]
        if low == 0:
            raise EmulatorError(f"core {core}: {handler} wrote the last word of its {self.image.stack_bytes:,} B "
                                f"stack: it may have overflowed (firmware_c/arm/link.ld)")
        if depth > use.bytes:
            use = dataclasses.replace(use, bytes=depth, handler=handler)
        if nested:
            use = dataclasses.replace(use, nested_calls=use.nested_calls + 1)
            if depth > use.nested_bytes:
                use = dataclasses.replace(use, nested_bytes=depth, nested_handler=handler)
        self.stack_use[core] = use
        stack[low:top] = STACK_PAINT

    def written(self, core: int) -> None:
        self.checks.written(core)

    def check(self, core: int) -> int:
        return self.checks.check(core)

    def _account(self, core: int, handler: str, work: np.ndarray | None) -> None:
        cost = self._pricer.price(self._log.take())
        call = CallCost(core=core, handler=handler, instructions=cost.instructions, cycles=cost.cycles,
                        classes=cost.classes, function_cycles=cost.function_cycles, counts=work)
        self.last_call = call
        if self.record is not None:
            self.record.append(call)
