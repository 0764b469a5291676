"""Emulator layer, core runners: the run-time errors of a runner's cores (chip_loop.h EMU_RTE_*), kept as the
C loops keep them: a core whose SRAM the host wrote is checked (emu_core_check) before its next handler, and
one that fails is stopped, running nothing until `reset` (the host's init)."""
from __future__ import annotations

from typing import Any, Callable

from s2eprop.firmware.abi import Firmware


class CoreChecks:
    """Per core: whether the host wrote its SRAM since its last check, and its run-time error (0: none).
    `arena(core)` gives the cffi pointer and the bytes the check may read."""

    def __init__(self, firmware: Firmware, n_cores: int, arena: Callable[[int], tuple[Any, int]]) -> None:
        self.fw = firmware
        self._arena = arena
        self.written_since = [False] * n_cores
        self.error = [0] * n_cores  # EMU_RTE_* per core

    def reset(self, core: int) -> None:
        """init ran: nothing to check, no error."""
        self.written_since[core], self.error[core] = False, 0

    def written(self, core: int) -> None:
        """The host wrote this core's SRAM: check it before its next handler."""
        self.written_since[core] = True

    def check(self, core: int) -> int:
        """The core's run-time error (EMU_RTE_*, 0: none), after the check its host writes made due."""
        if self.written_since[core]:
            self.written_since[core] = False
            if not self.error[core]:
                ptr, n_bytes = self._arena(core)
                self.error[core] = int(self.fw.lib.emu_core_check(ptr, n_bytes))
        return self.error[core]

    def stop(self, core: int, code: int) -> None:
        self.error[core] = code
