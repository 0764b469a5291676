"""Host layer: the `Transport` between the host runtime and a board, and its implementations.

`open_transport(target, ...)` picks one from the target named on the command line."""
from __future__ import annotations

from host.config import ChipConfig
from host.errors import ConfigError
from host.transport.base import FW_STATUS, Transport, TransportStatus
from host.transport.inproc import EmulatorTransport

__all__ = ["FW_STATUS", "EmulatorTransport", "Transport", "TransportStatus", "open_transport"]


def open_transport(target: str, n_cores: int, backend: str = "c", chip: ChipConfig | None = None) -> Transport:
    """The transport to `target`: "emulator" (the in-process chip: functional, or timed as `chip` says)."""
    if target == "emulator":
        if chip is None or (chip.mode == "functional" and not chip.file):
            return EmulatorTransport(n_cores, backend=backend)
        from emulator.chip_config import load_chip

        desc = load_chip(chip.file or None)
        if chip.mode == "functional":  # a chip file gives the functional chip its memory sizes
            from emulator.chip import FunctionalChip

            return EmulatorTransport(n_cores, chip=FunctionalChip(n_cores, sram_bytes=desc.sram_bytes_per_core,
                                                                  sdram_bytes=desc.sdram_bytes, backend=backend))
        if backend != "c":
            raise ConfigError(f"chip mode {chip.mode} runs on the C event loop only; drop --backend {backend}")
        from emulator.timed import TimedChip

        if chip.clock_mhz:
            desc = desc.with_clock(round(chip.clock_mhz * 1e6))
        return EmulatorTransport(n_cores, chip=TimedChip(n_cores, desc, chip.mode))
    if target.startswith("udp://"):
        raise ConfigError(f"target {target}: boards over UDP are not supported yet; use --target emulator")
    raise ConfigError(f"unknown board target {target!r}; use 'emulator'")
