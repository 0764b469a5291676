"""Emulator layer: cycles of Cortex-M4F code, from the instructions a basic block holds.

The one timing table of the project (`CORTEX_M4F`), from the ARM Cortex-M4 Technical Reference Manual
(ARM DDI 0439B, r0p1): section 3.3 "Processor instructions timing" (table 3-1) and section 7.2.3 "FPU
instruction set" (table 7-1). Its terms, as modelled here:

- P, the pipeline refill of a taken branch, "ranges from 1 to 3 depending on the alignment and width
  of the target instruction": `branch_refill` (2, the middle; SRAM has no wait states).
- N, registers moved by LDM/STM/PUSH/POP/VLDM/VSTM/VPUSH/VPOP (a D register is 2 words): 1 + N.
- Neighbouring single loads and stores pipeline: an LDR/STR right after one in the same block costs
  1 instead of 2 (the TRM's 2, "or 1 when pipelined").
- UDIV/SDIV "2 to 12 cycles" by the operands' leading zeros: `divide` (7, the middle).
- IT is taken as 1 cycle (the TRM lets it fold onto a 16-bit instruction: 0); wait states, FPU
  register stalls and interrupt entry/exit are not modelled here.

A conditional branch costs 1 when it falls through and 1 + P when taken; which happened is read from
the block executed next (`BlockCost.taken_extra` is then added).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

CLASSES = ("alu", "mul", "div", "load_store", "load_store_multiple", "branch",
           "fp_alu", "fp_mac", "fp_div_sqrt", "fp_load_store", "fp_move")
SOURCE = "ARM Cortex-M4 TRM r0p1 (ARM DDI 0439B) tables 3-1 and 7-1"


@dataclass(frozen=True)
class TimingTable:
    name: str = "cortex-m4f-trm-r0p1"
    source: str = SOURCE
    alu: int = 1                 # data processing, shifts, compares, moves, IT, NOP
    mul: int = 1                 # MUL, MLA, MLS, UMULL, SMULL, UMLAL, SMLAL (single-cycle MAC)
    divide: int = 7              # UDIV, SDIV: 2..12
    load_store: int = 2          # LDR/STR (any width); 1 when pipelined behind another
    load_store_double: int = 3   # LDRD/STRD: 1 + N, N = 2
    branch_refill: int = 2       # P, 1..3
    table_branch: int = 2        # TBB/TBH: 2 + P
    fp_alu: int = 1              # VADD, VSUB, VMUL, VNMUL, VABS, VNEG, VCMP, VCVT, VMOV, VMRS/VMSR
    fp_mac: int = 3              # VMLA, VMLS, VNMLA, VNMLS, VFMA, VFMS, VFNMA, VFNMS
    fp_div_sqrt: int = 14        # VDIV, VSQRT
    fp_load_store: int = 2       # VLDR, VSTR
    fp_move_pair: int = 2        # VMOV of two core registers <-> two singles (or a double)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


CORTEX_M4F = TimingTable()

_MUL = {"mul", "mla", "mls", "umull", "smull", "umlal", "smlal", "smulbb", "smulbt", "smultb", "smultt",
        "smlabb", "smlabt", "smlatb", "smlatt", "smmul", "smmla", "smmls", "smuad", "smusd", "smlad", "smlsd"}
_DIV = {"udiv", "sdiv"}
_LS = {"ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrt", "ldrex", "ldrexb", "ldrexh",
       "str", "strb", "strh", "strt", "strex", "strexb", "strexh"}
_LSD = {"ldrd", "strd"}
_LSM = {"ldm", "ldmdb", "ldmia", "stm", "stmdb", "stmia", "push", "pop"}
_BRANCH = {"b", "bl", "bx", "blx", "cbz", "cbnz"}
_TABLE = {"tbb", "tbh"}
_FP_ALU = {"vadd", "vsub", "vmul", "vnmul", "vabs", "vneg", "vcmp", "vcmpe", "vcvt", "vcvtr", "vmrs", "vmsr"}
_FP_MAC = {"vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms"}
_FP_DIV = {"vdiv", "vsqrt"}
_FP_LS = {"vldr", "vstr"}
_FP_LSM = {"vldmia", "vldmdb", "vstmia", "vstmdb", "vpush", "vpop", "vldm", "vstm"}


@dataclass(frozen=True)
class BlockCost:
    """Cost of one execution of a basic block (a QEMU translation block: it ends at a branch)."""

    n_instructions: int
    cycles: int                  # with a final conditional branch falling through
    taken_extra: int             # added when that branch is taken (0: no conditional branch at the end)
    classes: np.ndarray = field(repr=False)  # instructions per CLASSES entry


class BlockTimer:
    """Classifies blocks once with capstone (Thumb-2, M profile) and prices them with a TimingTable."""

    def __init__(self, table: TimingTable = CORTEX_M4F) -> None:
        import capstone
        import capstone.arm as arm

        self.table = table
        self._md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
        self._md.detail = True
        self._arm = arm

    def cost(self, code: bytes, address: int) -> BlockCost:
        t, arm = self.table, self._arm
        classes = np.zeros(len(CLASSES), dtype=np.int64)
        cycles, taken_extra, n, prev_single_ls = 0, 0, 0, False
        insns = list(self._md.disasm(code, address))
        for k, insn in enumerate(insns):
            name = self._md.insn_name(insn.id)
            regs = [op.reg for op in insn.operands if op.type == arm.ARM_OP_REG]
            writes_pc = arm.ARM_REG_PC in regs and name not in ("str", "push", "stm", "stmdb", "stmia")
            last = k == len(insns) - 1
            single_ls = False
            if name in _MUL:
                cls, c = "mul", t.mul
            elif name in _DIV:
                cls, c = "div", t.divide
            elif name in _LS and not (name.startswith("ldr") and writes_pc):
                cls, c, single_ls = "load_store", (1 if prev_single_ls else t.load_store), True
            elif name in _LSD:
                cls, c = "load_store", t.load_store_double
            elif name in _LSM:
                base = 0 if name in ("push", "pop") else 1
                cls, c = "load_store_multiple", 1 + len(regs) - base
                if writes_pc:
                    c += t.branch_refill
            elif name in _BRANCH or name in _TABLE or writes_pc:
                cls = "branch"
                extra = t.table_branch if name in _TABLE else 1
                conditional = name in ("cbz", "cbnz") or insn.cc not in (arm.ARM_CC_AL, arm.ARM_CC_INVALID)
                if conditional and last:
                    c, taken_extra = 1, t.branch_refill
                else:
                    c = extra + t.branch_refill
            elif name in _FP_MAC:
                cls, c = "fp_mac", t.fp_mac
            elif name in _FP_DIV:
                cls, c = "fp_div_sqrt", t.fp_div_sqrt
            elif name in _FP_LS:
                cls, c = "fp_load_store", t.fp_load_store
            elif name in _FP_LSM:
                base = 0 if name in ("vpush", "vpop") else 1
                words = sum(2 if self._is_double(r) else 1 for r in regs[base:])
                cls, c = "fp_load_store", 1 + words
            elif name == "vmov":
                core = sum(1 for r in regs if not self._is_fp(r))
                cls, c = "fp_move", (t.fp_move_pair if core >= 2 else t.fp_alu)
            elif name in _FP_ALU:
                cls, c = "fp_alu", t.fp_alu
            else:
                cls, c = "alu", t.alu
            classes[CLASSES.index(cls)] += 1
            cycles += c
            n += 1
            prev_single_ls = single_ls
        return BlockCost(n_instructions=n, cycles=cycles, taken_extra=taken_extra, classes=classes)

    def _is_fp(self, reg: int) -> bool:
        arm = self._arm
        return arm.ARM_REG_S0 <= reg <= arm.ARM_REG_S31 or self._is_double(reg)

    def _is_double(self, reg: int) -> bool:
        arm = self._arm
        return arm.ARM_REG_D0 <= reg <= arm.ARM_REG_D31
