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
typedef struct { uint64_t *keys; uint64_t n, cap, overflow; } s2e_block_log_t;
void s2e_block_hook(void *uc, uint64_t address, uint32_t size, void *user);
"""
SOURCE = """
#include <stdint.h>
typedef struct { uint64_t *keys; uint64_t n, cap, overflow; } s2e_block_log_t;
void s2e_block_hook(void *uc, uint64_t address, uint32_t size, void *user)
{
    s2e_block_log_t *log = user;
    (void)uc;
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
