"""Host layer: the transport to an in-process functional chip (C or Python event loop).

Calls finish at once, so their timeouts never expire; the chip's clock moves only on `advance`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from s2eprop.emulator.chip.functional import FunctionalChip
from s2eprop.emulator.errors import EmulatorError
from s2eprop.firmware.routes import RouteEntry
from s2eprop.emulator.chip.timed import TimedChip
from s2eprop.host.errors import TransportError
from s2eprop.host.files import atomic_write
from s2eprop.host.fault_config import FaultConfig
from s2eprop.host.transport.faults import router_faults
from s2eprop.host.transport.base import FW_STATUS, TransportStatus


class EmulatorTransport:
    def __init__(self, n_cores: int, backend: str = "c", chip: FunctionalChip | None = None, threads: int = 1) -> None:
        self.chip = chip or FunctionalChip(n_cores, backend=backend, threads=threads)
        self.n_cores = self.chip.n_cores
        self._closed = False
        self._advanced_to: int | None = None  # the tick start_advance reached, until finish_advance

    def _open(self) -> FunctionalChip:
        if self._closed:
            raise TransportError("the emulator transport is closed")
        return self.chip

    def write_sram(self, core: int, offset: int, data: bytes | np.ndarray, timeout_s: float | None = None) -> None:
        self._open().write_sram(core, offset, data)

    def read_sram(self, core: int, offset: int, n_bytes: int, timeout_s: float | None = None) -> bytes:
        return self._open().read_sram(core, offset, n_bytes)

    def write_sdram(self, addr: int, data: bytes | np.ndarray, timeout_s: float | None = None) -> None:
        self._open().write_sdram(addr, data)

    def read_sdram(self, addr: int, n_bytes: int, timeout_s: float | None = None) -> bytes:
        return self._open().read_sdram(addr, n_bytes)

    def load_routes(self, entries: list[RouteEntry], timeout_s: float | None = None) -> None:
        self._open().load_routes(entries)

    def start(self, core: int, arena_bytes: int, timeout_s: float | None = None) -> None:
        chip = self._open()
        code = chip.init_core(core, arena_bytes)
        if code != int(chip.fw.lib.FW_RUNNING):
            raise TransportError(f"core {core}: firmware refused its image ({FW_STATUS.get(code, code)})")

    def stop(self, core: int, timeout_s: float | None = None) -> None:
        """Halt a core: its status word leaves FW_RUNNING, so its handlers do nothing until started again."""
        chip = self._open()
        chip.write_sram(core, chip.fw.ffi.offsetof("fw_header_t", "status"), np.zeros(1, np.uint32))

    def send(self, core: int, words: np.ndarray, timeout_s: float | None = None) -> None:
        try:
            self._open().host_send(core, words)
        except EmulatorError as exc:
            raise TransportError(str(exc)) from None

    def send_many(self, messages: list[tuple[int, np.ndarray]], timeout_s: float | None = None,
                  hold: bool = False) -> None:
        """send() of each (core, words), in order. `hold` (a board's: start together on its running clock) has no
        meaning for a chip that runs only when advanced: refused."""
        if hold:
            raise TransportError("send_many(hold=True): an in-process chip runs only when advanced, so its cores "
                                 "start together without holding (starts_together is False); send without hold")
        try:
            self._open().host_send_many(messages)
        except EmulatorError as exc:
            raise TransportError(str(exc)) from None

    def poll(self, timeout_s: float | None = None) -> list[tuple[int, np.ndarray]]:
        return self._open().take_host_messages()

    def advance(self, ticks: int, timeout_s: float | None = None) -> int:
        chip = self._open()
        chip.run(ticks)
        return chip.tick_count

    def start_advance(self, ticks: int, timeout_s: float | None = None) -> None:
        """advance(ticks), whole (an in-process chip runs as it is called); finish_advance gives its tick."""
        if self._advanced_to is not None:
            raise TransportError("start_advance while another advance is unfinished: call finish_advance first")
        self._advanced_to = self.advance(ticks)

    def finish_advance(self, timeout_s: float | None = None) -> int:
        tick, self._advanced_to = self._advanced_to, None
        if tick is None:
            raise TransportError("finish_advance without start_advance")
        return tick

    def set_faults(self, faults: tuple[FaultConfig, ...]) -> None:
        """The faults (a config's chip.faults) the chip's router injects from now on, their counters at 0."""
        chip = self._open()
        chip.set_router_faults(router_faults(faults, chip.n_cores))

    def fault_hits(self) -> list[int]:
        """Packets each router fault has hit so far."""
        return self._open().fault_hits()

    def status(self, timeout_s: float | None = None) -> TransportStatus:
        chip = self._open()
        st = chip.stats()
        losses = {"queue_overflows": st.queue_overflows, "dma_faults": st.dma_faults}
        if isinstance(chip, TimedChip):
            losses["rx_queue_overflows"] = st.rx_queue_overflows
        return TransportStatus(ticks=chip.tick_count, packets_delivered=st.delivered, packets_dropped=st.dropped,
                               dropped_from=dict(st.dropped_from), last_drop=st.last_drop, losses=losses,
                               core_errors=chip.core_errors())

    def timing(self) -> "ChipTiming | None":
        """The timed chip's compliance record (None when the chip is functional)."""
        return ChipTiming(self.chip) if isinstance(self.chip, TimedChip) else None

    def close(self) -> None:
        self._closed = True


class ChipTiming:
    """The in-process timed chip's compliance record, as a TimingRecord (transport/base.py)."""

    def __init__(self, chip: TimedChip) -> None:
        self._chip = chip

    @property
    def budget_cycles(self) -> float:
        return float(self._chip.compliance.budget_cycles)

    @property
    def overruns_seen(self) -> int:
        return int(self._chip.compliance.overruns_seen)

    def record(self, keep: bool) -> None:
        self._chip.record(keep)

    def part(self, name: str) -> None:
        self._chip.set_part(name)

    def arrays(self, part: str = "train") -> dict[str, np.ndarray]:
        return self._chip.timing_arrays(part)

    def window(self) -> np.ndarray:
        return self._chip.compliance.window()

    def summary(self, late_packets: int, part: str = "train") -> dict[str, Any]:
        out = self._chip.compliance.summary(self.arrays(part), late_packets, self._chip.mode, self._chip.lag, part)
        iss = getattr(self._chip, "iss_summary", None)  # the ARM build in time: preemptions, measured stack (whole run)
        if iss is not None:
            out.update(iss())
        return out

    def save(self, path: Path) -> None:
        blob = self._chip.timing_npz()
        atomic_write(path, lambda f: f.write(blob))
