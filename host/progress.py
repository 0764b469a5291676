"""Host layer: progress bars for long work (training, features, synthesis). On a terminal, tqdm as
usual; when stderr is a file or a pipe (`make demo > log 2>&1`), a record at most every
LOG_INTERVAL_S seconds, so that a long run writes a short log."""
from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

LOG_INTERVAL_S = 30.0


def progress_bar(total: int, desc: str, unit: str, enabled: bool = True, **kwargs: Any) -> tqdm:
    if sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, **kwargs)
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=LineLog(sys.stderr),
                mininterval=LOG_INTERVAL_S, maxinterval=LOG_INTERVAL_S, **kwargs)


class LineLog:
    """stderr as a log file sees it: each of tqdm's in-place updates (a carriage return, then the bar) on a
    line of its own, so that records and error messages never share a line."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        record = text.replace("\r", "").rstrip("\n")
        if record.strip():
            self.stream.write(record + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()
