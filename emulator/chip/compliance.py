"""Emulator layer: the real-time compliance record of a timed run.

Over the whole run, per core (kept in C, emu_tcore_t): ticks, overruns, a histogram of tick
utilisation (1 % bins), the worst tick, cycles by phase, the deepest receive queue. Per core and tick
(emu_tickrec_t), only a bounded window: the ticks of the samples the host marks (`recording`), and
every tick with an overrun, up to `max_records` (a demo run has millions of core-ticks). Handler
timelines (emu_hlog_t) of two ticks for the Gantt chart: the worst one seen and a typical one (the
median of the first recorded sample). NumPy arrays throughout, never a Python object per tick.

A run has parts: the host says which ticks train and which run inference (`set_part`); each part
has its own per-core totals (`PartTotals`, summed from the tick records, with the cycles by phase
taken from the chip's running totals when the part changes). The summary, the window of tick
records and the Gantt ticks describe the training ticks; inference has its own summary.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from s2eprop.emulator.chip.description import C_KIND_OF_HANDLER, HANDLERS, PHASES, ChipDescription
from s2eprop.firmware.abi import Firmware

UTIL_BIN_PERCENT = 1  # width of a utilisation histogram bin
PARTS = ("train", "inference")  # what the host runs: training samples, or inference (test set, eval)
N_UTIL_BINS = 202               # 0..200 %, then one bin for more (EMU_UTIL_BINS)


@dataclass
class PartTotals:
    """The per-core totals of one part of a run, with the keys and meaning of `Compliance.per_core`,
    summed from its tick records as the C loop sums a whole run (close_tick in timed_loop.c)."""

    n_cores: int
    budget_cycles: float
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.n_cores
        self.arrays = {k: np.zeros(n, dtype=np.int64) for k in (
            "ticks", "overruns", "busy_cycles", "worst_cycles", "worst_tick", "max_queue", "max_timer_delay_ps",
            "packets_received")}
        self.arrays["util_hist"] = np.zeros((n, N_UTIL_BINS), dtype=np.int64)
        self.arrays["phase_cycles"] = np.zeros((n, len(PHASES)))

    def add(self, recs: np.ndarray) -> None:
        if not len(recs):
            return
        a = self.arrays
        core = recs["core"].astype(np.intp)
        cycles = recs["cycles"].astype(np.int64)
        # the worst tick of each core: the first of the most cycles, as the C loop keeps it
        order = np.lexsort((np.arange(len(core)), -cycles, core))
        run_start = np.flatnonzero(np.r_[True, core[order][1:] != core[order][:-1]])  # each core's run in order
        first = order[run_start]
        c = core[first]
        better = (a["ticks"][c] == 0) | (cycles[first] > a["worst_cycles"][c])
        a["worst_cycles"][c[better]] = cycles[first][better]
        a["worst_tick"][c[better]] = recs["tick"][first][better]
        n = self.n_cores

        def total(x: np.ndarray) -> np.ndarray:  # per core, exact: each advance's sums stay far below 2^53
            return np.bincount(core, weights=x, minlength=n).astype(np.int64)

        a["ticks"] += np.bincount(core, minlength=n)
        a["overruns"] += total(recs["overrun"])
        a["busy_cycles"] += total(cycles)
        a["packets_received"] += total(recs["packets"])
        for key, field in (("max_queue", "max_queue"), ("max_timer_delay_ps", "timer_delay_ps")):
            most = np.maximum.reduceat(recs[field].astype(np.int64)[order], run_start)
            a[key][c] = np.maximum(a[key][c], most)
        bins = np.minimum((cycles.astype(np.float64) * 100.0 / self.budget_cycles).astype(np.int64), N_UTIL_BINS - 1)
        a["util_hist"] += np.bincount(core * N_UTIL_BINS + bins, minlength=n * N_UTIL_BINS).reshape(n, N_UTIL_BINS)


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
        self._last_logs = self._prev_logs
        self._closed = np.full(n_cores, -1, dtype=np.int64)  # per core, the last tick whose record came
        self.no_tick = int(fw.lib.EMU_NO_TICK)
        self.worst: tuple[float, int, np.ndarray] | None = None    # (utilisation, tick, handler log)
        self.typical: tuple[float, int, np.ndarray] | None = None
        self.parts = {name: PartTotals(n_cores, self.budget_cycles) for name in PARTS}
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # (tick records, their parts) not summed yet
        self._pending_records = 0
        self._part_from: list[tuple[int, str]] = [(0, "train")]  # (first tick, part), ticks ascending
        self._phase_mark = np.zeros((n_cores, len(PHASES)))      # the chip's phase cycles when the part began

    # -- parts of the run ----------------------------------------------------------------------------
    @property
    def part(self) -> str:
        return self._part_from[-1][1]

    def set_part(self, name: str, tick: int, phase_cycles: np.ndarray) -> None:
        """Ticks from `tick` on belong to part `name`; phase_cycles: the chip's running totals by phase now."""
        if name not in PARTS:
            raise ValueError(f"part of a timed run must be one of {', '.join(PARTS)}, got {name!r}")
        if name == self.part:
            return
        self.parts[self.part].arrays["phase_cycles"] += phase_cycles - self._phase_mark
        self._phase_mark = np.array(phase_cycles, dtype=np.float64)
        if self._part_from[-1][0] == tick:
            self._part_from[-1] = (tick, name)
        else:
            self._part_from.append((tick, name))

    def _sum_pending(self) -> None:
        """The tick records added since the last call, into their parts' totals (in the order they came)."""
        if not self._pending:
            return
        recs = np.concatenate([r for r, _ in self._pending])
        part = np.concatenate([p for _, p in self._pending])
        self._pending, self._pending_records = [], 0
        for i, name in enumerate(PARTS):
            self.parts[name].add(recs[part == i])

    def _parts_of(self, ticks: np.ndarray) -> np.ndarray:
        """The index into PARTS of each tick."""
        starts = np.array([t for t, _ in self._part_from], dtype=np.int64)
        names = np.array([PARTS.index(n) for _, n in self._part_from])
        return names[np.searchsorted(starts, ticks.astype(np.int64), side="right") - 1]

    def part_arrays(self, name: str, phase_cycles: np.ndarray) -> dict[str, np.ndarray]:
        """Per-core totals of one part (phase_cycles: the chip's running totals by phase now)."""
        self._sum_pending()
        out = {k: v.copy() for k, v in self.parts[name].arrays.items()}
        if name == self.part:
            out["phase_cycles"] += phase_cycles - self._phase_mark
        return out

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
        """The tick records and handler logs of one advance of the clock (`logs` may be a view of the C
        loop's buffer, valid only during the call: what is kept is copied)."""
        self.overruns_seen += int(np.count_nonzero(recs["overrun"]))
        np.maximum.at(self._closed, recs["core"].astype(np.intp), recs["tick"].astype(np.int64))
        part = self._parts_of(recs["tick"])
        self._pending.append((recs, part))  # the parts' totals are summed when read (a few NumPy calls a sample)
        self._pending_records += len(recs)
        if self._pending_records > 200_000:
            self._sum_pending()
        recs = recs[part == PARTS.index("train")]  # the window and the Gantt ticks show training
        windowed = self._in_windows(recs["tick"])
        keep = recs[windowed | (recs["overrun"] != 0)]
        room = self.max_records - self.records_kept
        if len(keep) > room:
            self.records_dropped += len(keep) - room
            keep = keep[:room]
        if len(keep):
            self._kept.append(keep)
            self.records_kept += len(keep)
        # a tick closes on the next timer, maybe an advance later: its handlers' logs may span two advances.
        # `logs` may be a view of the loop's buffer: only copies of the ticks needed are kept.
        prev = self._prev_logs
        self._last_logs = logs

        def logs_of(tick: int) -> np.ndarray:
            return np.concatenate([prev[prev["tick"] == tick], logs[logs["tick"] == tick]])

        self._prev_logs = np.concatenate([self._open_logs(prev), self._open_logs(logs)])
        if not len(recs):
            return
        i = int(np.argmax(recs["cycles"]))
        util = float(recs["cycles"][i]) / self.budget_cycles
        if self.worst is None or util > self.worst[0]:
            tick = int(recs["tick"][i])
            self.worst = (util, tick, logs_of(tick))
        if self.typical is None and windowed.any():
            ticks, at = np.unique(recs["tick"][windowed], return_inverse=True)
            busiest = np.zeros(len(ticks), dtype=np.int64)
            np.maximum.at(busiest, at, recs["cycles"][windowed])
            i = int(np.argsort(busiest, kind="stable")[len(ticks) // 2])
            tick = int(ticks[i])
            self.typical = (int(busiest[i]) / self.budget_cycles, tick, logs_of(tick))

    def last_logs(self) -> np.ndarray:
        """A copy of the handler logs of the last advance of the clock (tests, diagnostics)."""
        return self._last_logs.copy()

    def _open_logs(self, logs: np.ndarray) -> np.ndarray:
        """The logs of ticks that their core has not closed yet (a handler before a core's first timer has
        no tick and never closes one)."""
        tick = logs["tick"].astype(np.int64)
        return logs[(tick > self._closed[logs["core"].astype(np.intp)]) & (tick != self.no_tick)]

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

    def summary(self, arrays: dict[str, np.ndarray], late_packets: int, mode: str, lag: Any,
                part: str = "train") -> dict[str, Any]:
        hist = arrays["util_hist"].sum(axis=0)
        ticks = int(hist.sum())
        p99 = None
        if ticks:
            at = int(np.searchsorted(np.cumsum(hist), 0.99 * ticks))
            p99 = (at + 1) * UTIL_BIN_PERCENT / 100  # upper edge of the bin holding the 99th percentile
        phases = arrays["phase_cycles"].sum(axis=0)
        busiest = int(np.argmax(arrays["worst_cycles"])) if len(arrays["worst_cycles"]) else 0
        out: dict[str, Any] = {
            "part": part,
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

    def npz_contents(self, arrays: dict[str, np.ndarray],
                     inference: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """What timing.npz holds: the training part's per-core arrays (`core_*`; inference's as
        `inference_core_*`), the window of training tick records, the two Gantt ticks."""
        w = self.window()
        out: dict[str, np.ndarray] = {f"core_{k}": v for k, v in arrays.items()}
        out.update({f"inference_core_{k}": v for k, v in (inference or {}).items()})
        out.update({f"tick_{name}": w[name] for name in w.dtype.names})
        out["tick_utilisation"] = w["cycles"] / self.budget_cycles
        out["sample_start_ticks"] = np.array([lo for lo, _ in self._windows], dtype=np.int64)  # recorded spans
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
        return out

    def npz_bytes(self, arrays: dict[str, np.ndarray], inference: dict[str, np.ndarray] | None = None) -> bytes:
        """timing.npz as bytes (what a board sends its host: docs/protocol.md, TIMING)."""
        buf = io.BytesIO()
        np.savez_compressed(buf, **self.npz_contents(arrays, inference))
        return buf.getvalue()
