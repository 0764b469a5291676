"""Emulator layer: the real-time compliance record of a timed run.

Over the whole run, per core (kept in C, emu_tcore_t): ticks, overruns, a histogram of tick
utilisation (1 % bins), the worst tick, cycles by phase, the deepest receive queue. Per core and tick
(emu_tickrec_t), only a bounded window: the ticks of the samples the host marks (`recording`), and
every tick with an overrun, up to `max_records` (a demo run has millions of core-ticks). Handler
timelines (emu_hlog_t) of two ticks for the Gantt chart: the worst one seen and a typical one (the
median of the first recorded sample). NumPy arrays throughout, never a Python object per tick.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from s2eprop.emulator.chip.description import C_KIND_OF_HANDLER, HANDLERS, PHASES, ChipDescription
from s2eprop.firmware.abi import Firmware

UTIL_BIN_PERCENT = 1  # width of a utilisation histogram bin


def _dtype(ffi: Any, struct: str, fields: list[tuple[str, str]]) -> np.dtype:
    """A NumPy dtype with the C struct's own offsets and size (no layout copied by hand)."""
    return np.dtype({"names": [f for f, _ in fields], "formats": [t for _, t in fields],
                     "offsets": [ffi.offsetof(struct, f) for f, _ in fields], "itemsize": ffi.sizeof(struct)})


class Compliance:
    def __init__(self, fw: Firmware, desc: ChipDescription, n_cores: int, hops: np.ndarray,
                 max_records: int = 1_000_000) -> None:
        ffi = fw.ffi
        self.tick_dtype = _dtype(ffi, "emu_tickrec_t", [
            ("core", "<u4"), ("tick", "<u4"), ("cycles", "<u4"), ("packets", "<u4"), ("max_queue", "<u4"),
            ("overrun", "<u4"), ("dma_wait_ps", "<i8"), ("timer_delay_ps", "<i8")])
        self.log_dtype = _dtype(ffi, "emu_hlog_t", [
            ("start_ps", "<i8"), ("end_ps", "<i8"), ("core", "<u4"), ("kind", "<u4"), ("tick", "<u4"),
            ("cycles", "<u4")])
        self.kinds = {int(getattr(fw.lib, C_KIND_OF_HANDLER[h])): h for h in HANDLERS}
        self.desc = desc
        self.n_cores = n_cores
        self.hops = hops
        self.budget_cycles = desc.tick_ps / desc.cycle_ps()
        self.max_records = max_records
        self._windows: list[list[int]] = []  # [first tick, end tick or -1 while open] of recorded spans
        self._kept: list[np.ndarray] = []
        self.records_kept = 0
        self.records_dropped = 0  # window records beyond max_records
        self.overruns_seen = 0
        self._prev_logs = np.zeros(0, dtype=self.log_dtype)
        self.worst: tuple[float, int, np.ndarray] | None = None    # (utilisation, tick, handler log)
        self.typical: tuple[float, int, np.ndarray] | None = None

    @property
    def recording(self) -> bool:
        return bool(self._windows) and self._windows[-1][1] < 0

    def record(self, on: bool, tick: int) -> None:
        """Keep every core's record of the ticks from `tick` on (on) or up to before it (off)."""
        if on and not self.recording:
            self._windows.append([tick, -1])
        elif not on and self.recording:
            self._windows[-1][1] = tick

    def _in_windows(self, ticks: np.ndarray) -> np.ndarray:
        keep = np.zeros(len(ticks), dtype=bool)
        for lo, hi in self._windows[-4:]:  # a tick's record comes at most an advance after it ran
            keep |= (ticks >= lo) & ((ticks < hi) | (hi < 0))
        return keep

    def add(self, recs: np.ndarray, logs: np.ndarray) -> None:
        """The tick records and handler logs of one advance of the clock."""
        self.overruns_seen += int(np.count_nonzero(recs["overrun"]))
        windowed = self._in_windows(recs["tick"])
        keep = recs[windowed | (recs["overrun"] != 0)]
        room = self.max_records - self.records_kept
        if len(keep) > room:
            self.records_dropped += len(keep) - room
            keep = keep[:room]
        if len(keep):
            self._kept.append(keep)
            self.records_kept += len(keep)
        both = np.concatenate([self._prev_logs, logs])  # a tick closes on the next timer, maybe an advance later
        self._prev_logs = logs
        if not len(recs):
            return
        i = int(np.argmax(recs["cycles"]))
        util = float(recs["cycles"][i]) / self.budget_cycles
        if self.worst is None or util > self.worst[0]:
            tick = int(recs["tick"][i])
            self.worst = (util, tick, both[both["tick"] == tick])
        if self.typical is None and windowed.any():
            ticks, at = np.unique(recs["tick"][windowed], return_inverse=True)
            busiest = np.zeros(len(ticks), dtype=np.int64)
            np.maximum.at(busiest, at, recs["cycles"][windowed])
            i = int(np.argsort(busiest, kind="stable")[len(ticks) // 2])
            tick = int(ticks[i])
            self.typical = (int(busiest[i]) / self.budget_cycles, tick, both[both["tick"] == tick])

    def window(self) -> np.ndarray:
        return np.concatenate(self._kept) if self._kept else np.zeros(0, dtype=self.tick_dtype)

    # -- the summary -------------------------------------------------------------------------------
    def per_core(self, cores: list[Any]) -> dict[str, np.ndarray]:
        """Whole-run arrays from the C per-core records (emu_tcore_t)."""
        n_bins = len(cores[0].util_hist) if cores else 0
        return {
            "ticks": np.array([c.ticks for c in cores], dtype=np.int64),
            "overruns": np.array([c.overruns for c in cores], dtype=np.int64),
            "busy_cycles": np.array([c.busy_cycles for c in cores], dtype=np.int64),
            "worst_cycles": np.array([c.worst_cycles for c in cores], dtype=np.int64),
            "worst_tick": np.array([c.worst_tick for c in cores], dtype=np.int64),
            "max_queue": np.array([c.max_queue for c in cores], dtype=np.int64),
            "max_timer_delay_ps": np.array([c.max_timer_delay_ps for c in cores], dtype=np.int64),
            "packets_received": np.array([c.packets_received for c in cores], dtype=np.int64),
            "util_hist": np.array([[c.util_hist[b] for b in range(n_bins)] for c in cores], dtype=np.int64),
            "phase_cycles": np.array([[c.phase_cycles[p] for p in range(len(PHASES))] for c in cores]),
        }

    def summary(self, arrays: dict[str, np.ndarray], late_packets: int, mode: str, lag: Any) -> dict[str, Any]:
        hist = arrays["util_hist"].sum(axis=0)
        ticks = int(hist.sum())
        p99 = None
        if ticks:
            at = int(np.searchsorted(np.cumsum(hist), 0.99 * ticks))
            p99 = (at + 1) * UTIL_BIN_PERCENT / 100  # upper edge of the bin holding the 99th percentile
        phases = arrays["phase_cycles"].sum(axis=0)
        busiest = int(np.argmax(arrays["worst_cycles"])) if len(arrays["worst_cycles"]) else 0
        out: dict[str, Any] = {
            "mode": mode,
            "chip_file": self.desc.path,
            "cycle_costs_file": self.desc.costs.path,
            "cycle_costs_source": str(self.desc.costs.provenance.get("source", "unknown")),
            "clock_hz": self.desc.clock_hz,
            "tick_us": self.desc.tick_us,
            "ticks": ticks,
            "overruns": int(arrays["overruns"].sum()),
            "max_tick_utilisation": round(float(arrays["worst_cycles"].max(initial=0)) / self.budget_cycles, 4),
            "p99_tick_utilisation": p99,
            "busiest_core": busiest,
            "worst_tick": int(arrays["worst_tick"][busiest]) if ticks else None,
            "late_packets": late_packets,
            "max_receive_queue": int(arrays["max_queue"].max(initial=0)),
            "max_timer_delay_us": round(float(arrays["max_timer_delay_ps"].max(initial=0)) / 1e6, 3),
            "cycles_by_phase": {p: int(round(v)) for p, v in zip(PHASES, phases)},
            "dominant_phase": PHASES[int(np.argmax(phases))] if phases.sum() else None,
            "placement": {"qpe_of_core": [list(self.desc.placement(c)) for c in range(self.n_cores)],
                          "mean_hops": round(float(self.hops.mean()), 3), "max_hops": int(self.hops.max(initial=0))},
            "records_kept": self.records_kept,
            "records_dropped": self.records_dropped,
        }
        if mode == "realtime":
            out["realtime_lag"] = {"ticks": lag.ticks, "max_ms": round(lag.max_s * 1e3, 3),
                                   "ticks_behind": lag.ticks_behind}
        return out

    def save(self, path: Path, arrays: dict[str, np.ndarray]) -> None:
        """timing.npz: the whole-run arrays, the window of tick records, the two Gantt ticks (atomic)."""
        w = self.window()
        out: dict[str, np.ndarray] = {f"core_{k}": v for k, v in arrays.items()}
        out.update({f"tick_{name}": w[name] for name in w.dtype.names})
        out["tick_utilisation"] = w["cycles"] / self.budget_cycles
        out["phases"] = np.array(PHASES)
        out["handlers"] = np.array(HANDLERS)
        out["util_bin_percent"] = np.array(UTIL_BIN_PERCENT)
        out["budget_cycles"] = np.array(self.budget_cycles)
        out["clock_hz"] = np.array(self.desc.clock_hz)
        out["tick_ps"] = np.array(self.desc.tick_ps)
        out["placement"] = np.array([self.desc.placement(c) for c in range(self.n_cores)], dtype=np.int64)
        for name, got in (("worst", self.worst), ("typical", self.typical)):
            if got is None:
                continue
            util, tick, log = got
            out[f"gantt_{name}_at_tick"] = np.array(tick)
            out[f"gantt_{name}_utilisation"] = np.array(util)
            for f in log.dtype.names:
                out[f"gantt_{name}_{f}"] = log[f]
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **out)
        tmp.replace(path)
