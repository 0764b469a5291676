"""Emulator layer: what a handler call cost in the ISS, from the log of the blocks it executed.

Each block (address, size) is priced once (m4_timing.BlockTimer) and given to the firmware function
holding it (the ELF's symbols); a call's log is then summed with NumPy: instructions, cycles (a
conditional branch at a block's end counts as taken when the next block is not the fall-through),
instructions per class, cycles per function. Short logs repeat exactly (packet handlers), so their
sums are memoised by the log's bytes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s2eprop.firmware.arm_image import ArmImage
from s2eprop.emulator.runners.block_log import SIZE_BITS
from s2eprop.emulator.runners.m4_timing import CLASSES, BlockTimer

MEMO_MAX_BLOCKS = 256      # logs up to this long are memoised
MEMO_MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class LogCost:
    instructions: int
    cycles: int
    classes: np.ndarray          # instructions per m4_timing.CLASSES entry
    function_cycles: np.ndarray  # cycles per BlockPricer.functions entry


class BlockPricer:
    def __init__(self, image: ArmImage, code: bytes, timer: BlockTimer) -> None:
        self.image, self._code, self._timer = image, code, timer
        self.functions = (*image.func_names, "?")
        self._keys = np.zeros(0, dtype=np.int64)            # sorted block keys
        self._rows = np.zeros((0, 5), dtype=np.int64)       # end, cycles, taken_extra, instructions, function
        self._classes = np.zeros((0, len(CLASSES)), dtype=np.int64)
        self._memo: dict[bytes, LogCost] = {}

    def price(self, keys: np.ndarray) -> LogCost:
        sig = keys.tobytes() if keys.size <= MEMO_MAX_BLOCKS else None
        if sig is not None and sig in self._memo:
            return self._memo[sig]
        ids = self._ids(keys)
        end, cycles, taken_extra, n_instr, func = self._rows.T
        each = cycles[ids]
        if ids.size > 1:
            each[:-1] += taken_extra[ids[:-1]] * ((keys[1:] >> SIZE_BITS) != end[ids[:-1]])
        per_block = np.bincount(ids, minlength=len(end))
        cost = LogCost(instructions=int(per_block @ n_instr), cycles=int(each.sum()), classes=per_block @ self._classes,
                       function_cycles=np.bincount(func[ids], weights=each,
                                                   minlength=len(self.functions)).astype(np.int64))
        if sig is not None:
            if len(self._memo) >= MEMO_MAX_ENTRIES:
                self._memo.clear()
            self._memo[sig] = cost
        return cost

    def _ids(self, keys: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self._keys, keys)
        known = pos < self._keys.size
        known[known] = self._keys[pos[known]] == keys[known]
        if not known.all():
            self._add(np.unique(keys[~known]))
            pos = np.searchsorted(self._keys, keys)
        return pos

    def _add(self, new: np.ndarray) -> None:
        rows, classes = [], []
        for key in new.tolist():
            addr, size = key >> SIZE_BITS, key & ((1 << SIZE_BITS) - 1)
            c = self._timer.cost(self._code[addr:addr + size], addr)
            rows.append((addr + size, c.cycles, c.taken_extra, c.n_instructions,
                         self.image.function_index(addr) % len(self.functions)))  # -1: the last entry, "?"
            classes.append(c.classes)
        keys = np.concatenate([self._keys, new])
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        self._rows = np.concatenate([self._rows, np.array(rows, dtype=np.int64)])[order]
        self._classes = np.concatenate([self._classes, np.array(classes, dtype=np.int64)])[order]


def cycles_before(code: bytes, timer: BlockTimer) -> np.ndarray:
    """Estimated cycles of the code before each halfword, summed (for stopping the simulator at a cycle
    budget, emulator/runners/block_log.py): every instruction of a linear sweep priced alone, a
    conditional branch as taken and a load as not pipelined, so a block's estimate is at least what
    the timing table charges it (the runner then takes the exact cycles from the log)."""
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    md.skipdata = True
    per_half = np.zeros(len(code) // 2 + 1, dtype=np.uint64)
    for addr, size, _, _ in md.disasm_lite(code, 0):
        c = timer.cost(code[addr:addr + size], addr)
        per_half[addr >> 1] = max(1, c.cycles + c.taken_extra)
    out = np.zeros(per_half.size + 1, dtype=np.uint64)
    np.cumsum(per_half, out=out[1:])
    if out[-1] >= 1 << 32:
        raise ValueError(f"{len(code)} B of code estimated at {int(out[-1]):,} cycles: past uint32")
    return out.astype(np.uint32)
