"""Emulator layer: the core runner over the native (cffi) build of the firmware.

Each core's SRAM is a NumPy array; a handler runs on it in place, and what it queued in its outbox
(hal.h: HAL_OUT_*) is parsed into `Effects` (firmware_c/contract/outbox.py) and the outbox emptied.
As the C loops do (chip_loop.h EMU_RTE_*), a core whose SRAM the host wrote is checked (emu_core_check)
before its next handler, and one that fails is stopped: it runs nothing until `init`.
"""
from __future__ import annotations

import numpy as np

from s2eprop.emulator.runners.core_checks import CoreChecks
from s2eprop.firmware.abi import Firmware
from s2eprop.firmware.outbox import DmaTransfer, Effects, OutboxReader

__all__ = ["DmaTransfer", "Effects", "NativeRunner"]


class NativeRunner:
    """Runs firmware handlers of `n_cores` cores, each on its own `sram_bytes` of memory."""

    def __init__(self, firmware: Firmware, n_cores: int, sram_bytes: int) -> None:
        self.fw = firmware
        self.n_cores = n_cores
        self.sram_bytes = sram_bytes
        self.sram = [np.zeros(sram_bytes, dtype=np.uint8) for _ in range(n_cores)]
        ffi = firmware.ffi
        self.arena_ptrs = [ffi.cast("uint8_t *", ffi.from_buffer(a)) for a in self.sram]
        self._headers = [ffi.cast("fw_header_t *", p) for p in self.arena_ptrs]
        self._outbox = OutboxReader(firmware)
        self.checks = CoreChecks(firmware, n_cores, lambda core: (self.arena_ptrs[core], self.sram_bytes))
        self._none = np.zeros(len(firmware.count_fields), dtype=np.uint64)

    def init(self, core: int, arena_bytes: int) -> int:
        status = int(self.fw.lib.fw_init(self.arena_ptrs[core], arena_bytes))
        self.checks.reset(core)
        return status

    def written(self, core: int) -> None:
        self.checks.written(core)

    def check(self, core: int) -> int:
        return self.checks.check(core)

    def on_timer(self, core: int, tick: int) -> Effects:
        if self.check(core):
            return Effects(counts=self._none.copy())
        return self._effects(core, self.fw.lib.fw_on_timer(self.arena_ptrs[core], tick & 0xFFFFFFFF))

    def on_mc_packet(self, core: int, key: int, payload: int) -> Effects:
        if self.check(core):
            return Effects(counts=self._none.copy())
        return self._effects(core, self.fw.lib.fw_on_mc_packet(self.arena_ptrs[core], key, payload))

    def on_dma_done(self, core: int, tag: int) -> Effects:
        if self.check(core):
            return Effects(counts=self._none.copy())
        return self._effects(core, self.fw.lib.fw_on_dma_done(self.arena_ptrs[core], tag))

    def on_host_msg(self, core: int, words: np.ndarray) -> Effects:
        if self.check(core):
            return Effects(counts=self._none.copy())
        words = np.ascontiguousarray(words, dtype=np.uint32)
        ffi = self.fw.ffi
        return self._effects(core, self.fw.lib.fw_on_host_msg(self.arena_ptrs[core],
                                                              ffi.cast("uint32_t *", ffi.from_buffer(words)), words.size))

    def on_user_event(self, core: int) -> Effects:
        if self.check(core):
            return Effects(counts=self._none.copy())
        return self._effects(core, self.fw.lib.fw_on_user_event(self.arena_ptrs[core]))

    def _effects(self, core: int, counts) -> Effects:
        work = np.array([getattr(counts, f) for f in self.fw.count_fields], dtype=np.uint64)
        effects = self._outbox.drain(core, self._headers[core], self.sram[core], work)
        if effects is None:  # an outbox past its arena or an entry past its count: stopped (as chip_loop.c's drain)
            self.checks.stop(core, int(self.fw.lib.EMU_RTE_OUTBOX))
            return Effects(counts=work)
        return effects
