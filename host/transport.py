"""Host layer: the `Transport` between the host runtime and a board, and its in-process emulator form.

The same runtime drives the in-process emulator or (later) a board over UDP: it only writes and reads
core memory, loads the routing table, starts cores, sends host messages, streams samples and
receives the cores' messages.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from emulator.chip import FunctionalChip
from emulator.router import RouteEntry
from host.errors import TransportError


class Transport(Protocol):
    n_cores: int

    def write_memory(self, core: int, offset: int, data: bytes | np.ndarray) -> None: ...
    def read_memory(self, core: int, offset: int, n_bytes: int) -> bytes: ...
    def load_routes(self, entries: list[RouteEntry]) -> None: ...
    def start(self, core: int, arena_bytes: int) -> None: ...
    def send(self, core: int, words: np.ndarray) -> None: ...
    def stream_sample(self, sample_id: int, label: int, train: bool, frames: np.ndarray,
                      neuron_cores: list[int], lookahead: int, max_ticks: int) -> int: ...
    def receive(self) -> list[tuple[int, np.ndarray]]: ...
    def packets_dropped(self) -> tuple[int, tuple[int, int] | None]: ...
    def status(self) -> dict[str, Any]: ...


FW_STATUS = {1: "bad magic", 2: "ABI version mismatch", 3: "arena size mismatch", 4: "layout mismatch",
             5: "config rejected"}


class EmulatorTransport:
    """Transport to an in-process functional chip (C or Python tick loop)."""

    def __init__(self, n_cores: int, backend: str = "c") -> None:
        self.chip = FunctionalChip(n_cores, backend=backend)
        self.n_cores = n_cores

    def write_memory(self, core: int, offset: int, data: bytes | np.ndarray) -> None:
        self.chip.write(core, offset, data)

    def read_memory(self, core: int, offset: int, n_bytes: int) -> bytes:
        return self.chip.read(core, offset, n_bytes)

    def load_routes(self, entries: list[RouteEntry]) -> None:
        self.chip.load_routes(entries)

    def start(self, core: int, arena_bytes: int) -> None:
        code = self.chip.init_core(core, arena_bytes)
        if code != int(self.chip.fw.lib.FW_RUNNING):
            raise TransportError(f"core {core}: firmware refused its image ({FW_STATUS.get(code, code)})")

    def send(self, core: int, words: np.ndarray) -> None:
        self.chip.host_send(core, words)

    def stream_sample(self, sample_id: int, label: int, train: bool, frames: np.ndarray,
                      neuron_cores: list[int], lookahead: int, max_ticks: int) -> int:
        return self.chip.run_sample(sample_id, label, train, frames, neuron_cores, lookahead, max_ticks)

    def receive(self) -> list[tuple[int, np.ndarray]]:
        return self.chip.take_host_messages()

    def packets_dropped(self) -> tuple[int, tuple[int, int] | None]:
        """Packets the router dropped so far, and (source core, key) of the last one."""
        r = self.chip.router_stats()
        return r.dropped, r.last_drop

    def status(self) -> dict[str, Any]:
        r = self.chip.router_stats()
        return {"ticks": self.chip.tick_count, "packets_delivered": r.delivered, "packets_dropped": r.dropped,
                "dropped_from": r.dropped_from, "last_drop": r.last_drop, "queue_overflows": r.queue_overflows,
                "work": self.chip.work_counts()}
