"""Host layer: the `Transport` between the host runtime and a board, and its implementations.

`open_transport(target, ...)` picks one from the target named on the command line."""
from __future__ import annotations

from host.errors import ConfigError
from host.transport.base import FW_STATUS, Transport, TransportStatus
from host.transport.inproc import EmulatorTransport

__all__ = ["FW_STATUS", "EmulatorTransport", "Transport", "TransportStatus", "open_transport"]


def open_transport(target: str, n_cores: int, backend: str = "c") -> Transport:
    """The transport to `target`: "emulator" (the in-process functional chip)."""
    if target == "emulator":
        return EmulatorTransport(n_cores, backend=backend)
    if target.startswith("udp://"):
        raise ConfigError(f"target {target}: boards over UDP are not supported yet; use --target emulator")
    raise ConfigError(f"unknown board target {target!r}; use 'emulator'")
