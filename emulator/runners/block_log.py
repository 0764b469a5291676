"""Emulator layer: a log of the basic blocks the ISS executes, written by a C block hook.

A Python hook per executed block costs about 1.5 us (7 million blocks per KWS training sample), so
the hook is a C function (compiled once with cffi into the cache folder) that appends
`address << 12 | size` to a buffer; after each handler call NumPy reads the buffer in place.
"""
from __future__ import annotations

import ctypes
import hashlib
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from s2eprop.emulator.errors import EmulatorError

CDEF = """
typedef struct {
    uint64_t *keys; uint64_t n, cap, overflow;
    const uint32_t *est; uint64_t est_len;   /* cycles before each halfword of code, summed (a stop's estimate) */
    uint64_t budget, spent; uint32_t limited, stopped;
    int (*stop)(void *uc);
} s2e_block_log_t;
void s2e_block_hook(void *uc, uint64_t address, uint32_t size, void *user);
"""
SOURCE = """
#include <stdint.h>
typedef struct {
    uint64_t *keys; uint64_t n, cap, overflow;
    const uint32_t *est; uint64_t est_len;
    uint64_t budget, spent; uint32_t limited, stopped;
    int (*stop)(void *uc);
} s2e_block_log_t;
/* Logs the block about to run. With a cycle budget (`limited`), a block that starts once the blocks
 * run so far are estimated to have spent it is not run: the simulator stops before it (unicorn
 * stops before a block whose hook asks it to, PC at the block), and it is not logged. */
void s2e_block_hook(void *uc, uint64_t address, uint32_t size, void *user)
{
    s2e_block_log_t *log = user;
    if (log->limited) {
        if (log->spent >= log->budget) {
            log->stopped = 1;
            log->limited = 0;
            log->stop(uc);
            return;
        }
        const uint64_t a = address >> 1, b = (address + size) >> 1;
        log->spent += b < log->est_len ? log->est[b] - log->est[a] : size;
    }
    if (log->n < log->cap) log->keys[log->n++] = address << 12 | size;
    else log->overflow++;
}
"""
SIZE_BITS = 12  # a translation block is shorter than 4 KiB


@lru_cache(maxsize=None)
def _module() -> ModuleType:
    from s2eprop.firmware.abi import cache_dir
    from s2eprop.firmware.build import compile_module

    tag = hashlib.sha256((CDEF + SOURCE).encode()).hexdigest()[:16]
    return compile_module(f"_s2e_block_log_{tag}", cache_dir() / "block_log" / tag, CDEF, SOURCE,
                          extra_compile_args=["-O2"])

class BlockLog:
    """Blocks executed since the last `take`, for every simulator it is attached to (one runs at a time)."""

    def __init__(self, capacity: int = 1 << 21) -> None:
        mod = _module()
        self._ffi, self._lib = mod.ffi, mod.lib
        self._keys = np.zeros(capacity, dtype=np.uint64)
        self._log = self._ffi.new("s2e_block_log_t *")
        self._log.keys = self._ffi.cast("uint64_t *", self._keys.ctypes.data)
        self._log.cap = capacity
        self._hooks: list[Any] = []
        self._est: np.ndarray | None = None

    def set_estimate(self, cycles_before: np.ndarray) -> None:
        """The stop's estimate: cycles_before[i] = estimated cycles of the code before halfword i, summed
        (a block at a..a+size is estimated at cycles_before[(a+size)/2] - cycles_before[a/2])."""
        self._est = np.ascontiguousarray(cycles_before, dtype=np.uint32)
        self._log.est = self._ffi.cast("uint32_t *", self._est.ctypes.data)
        self._log.est_len = self._est.size

    def limit(self, budget_cycles: int | None) -> None:
        """Stop the simulator before the first block that starts once `budget_cycles` (estimated) are
        spent from now (None: no limit). `stopped` says whether the last run stopped so."""
        self._log.stopped = 0
        self._log.spent = 0
        if budget_cycles is None:
            self._log.limited = 0
            return
        if self._est is None:
            raise EmulatorError("BlockLog.limit needs set_estimate first (model bug)")
        if not self._log.stop:
            from unicorn.unicorn_py3.unicorn import uclib

            self._log.stop = self._ffi.cast("int (*)(void *)", ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value)
        self._log.budget = max(1, int(budget_cycles))  # a run always makes progress: one block at least
        self._log.limited = 1

    @property
    def stopped(self) -> bool:
        return bool(self._log.stopped)

    def attach(self, uc: Any) -> None:
        """Add the C block hook to a unicorn.Uc (through the C API: the Python one would wrap it)."""
        import unicorn as U
        from unicorn.unicorn_py3.unicorn import uclib

        handle = ctypes.c_size_t()
        callback = int(self._ffi.cast("uintptr_t", self._ffi.addressof(self._lib, "s2e_block_hook")))
        user = int(self._ffi.cast("uintptr_t", self._log))
        err = uclib.uc_hook_add(uc._uch, ctypes.byref(handle), U.UC_HOOK_BLOCK, ctypes.c_void_p(callback),
                                ctypes.c_void_p(user), 1, 0)
        if err != 0:
            raise EmulatorError(f"unicorn refused the block hook (error {err}): unicorn {U.__version__} "
                                f"(the ISS runner is tested with 2.1)")
        self._hooks.append(handle)

    def take(self) -> np.ndarray:
        """The keys (address << 12 | size) logged since the last call, in order; the log is emptied."""
        if self._log.overflow:
            cap = int(self._log.cap)
            self._log.n = self._log.overflow = 0
            raise EmulatorError(f"a handler ran more than {cap:,} basic blocks (the block log's capacity): "
                                f"pass a larger capacity to BlockLog")
        n = int(self._log.n)
        self._log.n = 0
        return self._keys[:n].astype(np.int64)

    def clear(self) -> None:
        self._log.n = self._log.overflow = 0
