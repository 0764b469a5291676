"""Host layer: the `Transport` between the host runtime and a board, and its implementations.

`open_transport(target, ...)` picks one from the target named on the command line."""
from __future__ import annotations

from s2eprop.host.config import ChipConfig
from s2eprop.host.engines import Engine, check_engine, target_kind
from s2eprop.host.errors import ConfigError
from s2eprop.host.transport.base import FW_STATUS, Transport, TransportStatus
from s2eprop.host.transport.inproc import EmulatorTransport

__all__ = ["FW_STATUS", "EmulatorTransport", "Transport", "TransportStatus", "open_transport"]


def open_transport(target: str, n_cores: int, backend: str = "c", chip: ChipConfig | None = None,
                   key_file: str | None = None, link_patience_s: float = 10.0) -> Transport:
    """The transport to `target`: "emulator" (the in-process chip: functional, or timed as `chip` says)
    or "udp://HOST:PORT" (a board, or `s2eprop serve`; its own chip file and mode apply). A combination
    that cannot run is refused first, by the one table of s2eprop.host.engines."""
    chip_cfg = chip or ChipConfig()
    check_engine(Engine(target_kind(target), chip_cfg.mode, chip_cfg.cpu, backend, 1, bool(key_file),
                        bool(chip_cfg.file), bool(chip_cfg.clock_mhz), engine=chip_cfg.engine))
    if target == "emulator":
        if chip is None or (chip.mode == "functional" and not chip.file and chip.cpu == "native"):
            return EmulatorTransport(n_cores, backend=backend, threads=1 if chip is None else chip.n_threads())
        from s2eprop.emulator.chip.description import load_chip

        desc = load_chip(chip.file or None)
        if chip.mode == "functional":  # a chip file gives the functional chip its memory sizes
            from s2eprop.emulator.chip.functional import FunctionalChip

            runner = None
            if chip.cpu == "iss":
                from s2eprop.emulator.runners.iss import IssRunner

                backend, runner = "python", IssRunner(None, n_cores, desc.sram_bytes_per_core)
            return EmulatorTransport(n_cores, chip=FunctionalChip(n_cores, sram_bytes=desc.sram_bytes_per_core,
                                                                  sdram_bytes=desc.sdram_bytes, backend=backend,
                                                                  runner=runner, threads=chip.n_threads()))
        from s2eprop.emulator.chip.timed import timed_chip

        if chip.clock_mhz:
            desc = desc.with_clock(round(chip.clock_mhz * 1e6))
        if chip.cpu == "iss":  # the ARM build in time (engines.py: SimPy engine only), packets preempt
            from s2eprop.emulator.chip.timed_iss import IssTimedChip
            from s2eprop.emulator.runners.iss import IssRunner

            return EmulatorTransport(n_cores, chip=IssTimedChip(n_cores, desc, chip.mode, runner=IssRunner(
                None, n_cores, desc.sram_bytes_per_core)))
        return EmulatorTransport(n_cores, chip=timed_chip(n_cores, desc, chip.mode, chip.engine,
                                                          threads=chip.n_threads()))
    if target.startswith("udp://"):
        from s2eprop.host.transport.udp import UdpTransport, read_key

        transport = UdpTransport(target, key=read_key(key_file), patience_s=link_patience_s)
        if transport.n_cores < n_cores:
            transport.close()
            raise ConfigError(f"the network needs {n_cores} cores, the board at {target} has {transport.n_cores}")
        return transport
    raise ConfigError(f"unknown board target {target!r}; use 'emulator' or 'udp://HOST:PORT'")
