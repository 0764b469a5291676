"""The Cortex-M4F timing table (emulator/runners/m4_timing.py): blocks priced from the TRM's figures."""
from __future__ import annotations

import pytest

pytest.importorskip("capstone", reason="the block timer needs capstone (pip install -e .)")

from s2eprop.emulator.runners.m4_timing import CLASSES, CORTEX_M4F, BlockTimer  # noqa: E402

# Thumb-2 encodings (halfwords little-endian): vdiv.f32 s15, s0, s1; vadd.f32 s0, s15, s0; bx lr
VDIV_VADD_BX = bytes.fromhex("c0ee207a" "37ee800a" "7047")
# ldr r2, [r0]; ldr r3, [r0, #4]; str r2, [r1]; cmp r2, r3; bne (back to the start)
LOADS_BNE = bytes.fromhex("0268" "4368" "0a60" "9a42" "f8d1")


def test_fp_divide_add_and_return() -> None:
    """Rule: VDIV 14 + VADD 1 + BX (1 + P, P = 2) = 18 cycles for 3 instructions; nothing conditional."""
    c = BlockTimer().cost(VDIV_VADD_BX, 0x100)
    assert (c.n_instructions, c.cycles, c.taken_extra) == (3, 14 + 1 + 1 + CORTEX_M4F.branch_refill, 0)
    assert c.classes[CLASSES.index("fp_div_sqrt")] == 1 and c.classes[CLASSES.index("branch")] == 1


def test_pipelined_loads_and_a_conditional_branch() -> None:
    """Rule: the first load 2 cycles, the load and store behind it 1 each, CMP 1, BNE 1 falling through
    with P more when taken."""
    c = BlockTimer().cost(LOADS_BNE, 0x200)
    assert (c.n_instructions, c.cycles, c.taken_extra) == (5, 2 + 1 + 1 + 1 + 1, CORTEX_M4F.branch_refill)
    assert c.classes[CLASSES.index("load_store")] == 3
