"""Host layer: the `Transport` protocol: the operations a SpiNNaker 2 board offers the host.

Every call takes a timeout (seconds; None: the transport's default) and raises TransportError when
the board does not answer in time or refuses. The per-sample and per-tick policy (what to write
where, when to advance, which messages to wait for) is not here: it is written once, above every
transport, in host/session/streamer.py and host/session/runtime.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from s2eprop.firmware.abi import abi
from s2eprop.firmware.routes import RouteEntry

# fw_init's refusals (fw_abi.h FW_ERR_*), for the message of a core that does not start
FW_STATUS = {int(abi().FW_ERR_MAGIC): "bad magic", int(abi().FW_ERR_VERSION): "ABI version mismatch",
             int(abi().FW_ERR_SIZE): "arena size mismatch", int(abi().FW_ERR_LAYOUT): "layout mismatch",
             int(abi().FW_ERR_CONFIG): "config rejected"}


class TimingRecord(Protocol):
    """A timed chip's real-time compliance record (docs/timing.md), as a transport hands it to the host:
    the host reads time only through this, never through the chip model."""

    budget_cycles: float   # cycles of one core in one tick
    overruns_seen: int     # ticks that overran, so far

    def record(self, keep: bool) -> None: ...                         # keep the next ticks' per-tick records
    def part(self, name: str) -> None: ...                            # the next ticks run "train" or "inference"
    def arrays(self, part: str = "train") -> dict[str, np.ndarray]: ...  # per-core arrays of one part's ticks
    def window(self) -> np.ndarray: ...                               # the training ticks' records kept
    def summary(self, late_packets: int, part: str = "train") -> dict[str, Any]: ...  # report.json `timing`
    def save(self, path: Path) -> None: ...                           # timing.npz (training; inference apart)


@dataclass(frozen=True)
class TransportStatus:
    """The board's clock and its chip-level counters (the firmware's own are read from core memory)."""

    ticks: int                      # timer ticks run since the board started
    packets_delivered: int
    packets_dropped: int            # packets no routing entry matched
    dropped_from: dict[int, int] = field(default_factory=dict)  # source core -> packets dropped
    last_drop: tuple[int, int] | None = None                   # (source core, key) of the last drop
    losses: dict[str, int] = field(default_factory=dict)       # other chip or link losses; all should stay 0
    # cores stopped by a run-time error (their memory was made invalid while they ran) -> why; each must be
    # loaded and started again
    core_errors: dict[int, str] = field(default_factory=dict)


class Transport(Protocol):
    n_cores: int

    def write_sram(self, core: int, offset: int, data: bytes | np.ndarray, timeout_s: float | None = None) -> None: ...
    def read_sram(self, core: int, offset: int, n_bytes: int, timeout_s: float | None = None) -> bytes: ...
    def write_sdram(self, addr: int, data: bytes | np.ndarray, timeout_s: float | None = None) -> None: ...
    def read_sdram(self, addr: int, n_bytes: int, timeout_s: float | None = None) -> bytes: ...
    def load_routes(self, entries: list[RouteEntry], timeout_s: float | None = None) -> None: ...
    def start(self, core: int, arena_bytes: int, timeout_s: float | None = None) -> None: ...
    def stop(self, core: int, timeout_s: float | None = None) -> None: ...
    def send(self, core: int, words: np.ndarray, timeout_s: float | None = None) -> None: ...
    # send() of each (core, words) in order, together (a board: in as few datagrams as hold them); `hold`: kept on
    # the board until sync() (only where starts_together is True)
    def send_many(self, messages: list[tuple[int, np.ndarray]], timeout_s: float | None = None,
                  hold: bool = False) -> None: ...
    def poll(self, timeout_s: float | None = None) -> list[tuple[int, np.ndarray]]: ...
    def advance(self, ticks: int, timeout_s: float | None = None) -> int: ...
    # advance in two halves: between them the host may write SDRAM that the running ticks do not read (the next
    # sample's input), which a board takes while it runs; any other call waits for the advance to end
    def start_advance(self, ticks: int, timeout_s: float | None = None) -> None: ...
    def finish_advance(self, timeout_s: float | None = None) -> int: ...
    def status(self, timeout_s: float | None = None) -> TransportStatus: ...
    def close(self) -> None: ...
