"""Emulator layer: pacing a timed chip to the wall clock (realtime mode).

Each advance of the clock is anchored to the wall clock when it starts: tick boundary `t` (ps of
virtual time) of that advance falls due at `anchor_wall_s + (t - anchor_ps) x 1e-12`. Before a tick
runs, the pacer sleeps until the tick is due, or, when the wall clock is already past it, records by
how much (the lag). Each tick is paced once, so N ticks take N ms of wall time plus whatever the host
does between advances (which is not counted as lag: the next advance is anchored afresh).

SimPy's RealtimeEnvironment is not used for this: its `sync()` resets the real start but not the
virtual one, so every advance after the first waited again for all the virtual time run so far.
The wall clock is injected (`WallClock`), so that tests run on a fake one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class WallClock(Protocol):
    """The wall clock a realtime chip keeps pace with."""

    def now_s(self) -> float: ...              # seconds, monotonic
    def sleep_s(self, seconds: float) -> None: ...


class SystemClock:
    """The machine's monotonic clock."""

    def now_s(self) -> float:
        return time.perf_counter()

    def sleep_s(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class Lag:
    """Realtime mode: how far the wall clock ran ahead of the emulated one at the start of a tick."""

    ticks: int = 0
    max_s: float = 0.0
    ticks_behind: int = 0  # ticks that started more than one tick late

    def noted(self, lag_s: float, tick_s: float) -> "Lag":
        return Lag(self.ticks + 1, max(self.max_s, lag_s), self.ticks_behind + (lag_s > tick_s))


class Pacer:
    """Holds a timed chip's ticks to the wall clock; `lag` says how far behind they started."""

    def __init__(self, tick_ps: int, clock: WallClock | None = None) -> None:
        self.tick_ps = tick_ps
        self.clock: WallClock = clock or SystemClock()
        self.lag = Lag()
        self._anchor_s = 0.0
        self._anchor_ps = 0

    def anchor(self, now_ps: int) -> None:
        """An advance starts at virtual time now_ps: it is due now on the wall clock."""
        self._anchor_s = self.clock.now_s()
        self._anchor_ps = now_ps

    def due_s(self, at_ps: int) -> float:
        return self._anchor_s + (at_ps - self._anchor_ps) * 1e-12

    def wait_until(self, at_ps: int) -> float:
        """Sleep until virtual time at_ps is due; returns how late it already was (s, >= 0)."""
        late_s = self.clock.now_s() - self.due_s(at_ps)
        if late_s < 0:
            self.clock.sleep_s(-late_s)
            return 0.0
        return late_s

    def start_tick(self, at_ps: int) -> None:
        """A tick starts at at_ps: wait for it, and note its lag."""
        self.lag = self.lag.noted(self.wait_until(at_ps), self.tick_ps * 1e-12)
