"""Host layer: a timed board's real-time compliance record, fetched over the wire (docs/protocol.md, TIMING).

The board keeps the record (its timed chip's, as the in-process chip keeps its own); this TimingRecord
(transport/base.py) asks for each part of it when the host wants it: the same summary, arrays, window and
timing.npz bytes that the in-process record gives, so that a run over UDP writes the same `timing` block,
timing.npz and figures. Marking which ticks to keep (`record`) and which part they run (`part`) are
commands, in order with the ADVANCEs around them, so the board marks the same ticks as an in-process chip.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from s2eprop.emulator.board import protocol as sdp
from s2eprop.host.errors import TransportError
from s2eprop.host.files import atomic_write


class TimingLink(Protocol):
    """What BoardTiming needs of a transport (UdpTransport)."""

    target: str

    def timing_ctl(self, op: int, arg: int = 0, data: bytes = b"") -> None: ...
    def timing_snapshot(self, what: str) -> bytes: ...
    def last_overruns_seen(self) -> int | None: ...


class BoardTiming:
    """A timed or realtime board's compliance record, as a TimingRecord."""

    def __init__(self, link: TimingLink) -> None:
        self._link = link
        self._state: dict[str, Any] | None = None

    def _json(self, what: str) -> dict[str, Any]:
        raw = self._link.timing_snapshot(what)
        try:
            out = json.loads(raw)
        except ValueError:
            raise TransportError(f"board at {self._link.target}: its TIMING {what!r} is not JSON") from None
        if not isinstance(out, dict):
            raise TransportError(f"board at {self._link.target}: its TIMING {what!r} is not a JSON object")
        return out

    def _npz(self, what: str) -> dict[str, np.ndarray]:
        raw = self._link.timing_snapshot(what)
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (ValueError, OSError, EOFError) as exc:
            raise TransportError(f"board at {self._link.target}: its TIMING {what!r} is not an .npz ({exc})") from None

    @property
    def budget_cycles(self) -> float:
        if self._state is None:
            self._state = self._json("state")
        return float(self._state["budget_cycles"])

    @property
    def overruns_seen(self) -> int:
        """As of the board's last STATUS (the host asks for one after every sample), else asked now."""
        seen = self._link.last_overruns_seen()
        return int(self._json("state")["overruns_seen"]) if seen is None else seen

    def record(self, keep: bool) -> None:
        self._link.timing_ctl(sdp.TIMING_RECORD, int(keep))

    def part(self, name: str) -> None:
        self._link.timing_ctl(sdp.TIMING_PART, 0, name.encode("ascii"))

    def arrays(self, part: str = "train") -> dict[str, np.ndarray]:
        return self._npz(f"arrays {part}")

    def window(self) -> np.ndarray:
        return self._npz("window")["window"]

    def summary(self, late_packets: int, part: str = "train") -> dict[str, Any]:
        out = self._json(f"summary {part}")
        out["late_packets"] = late_packets  # counted by the cores, read by the host from their memory
        return out

    def save(self, path: Path) -> None:
        blob = self._link.timing_snapshot("npz")
        atomic_write(path, lambda f: f.write(blob))
