"""Test helper: keep every tick record and handler log a timed chip hands its compliance record."""
from __future__ import annotations

import numpy as np


def record_every_advance(chip) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(tick records, handler logs) of each advance from now on, appended as the chip runs."""
    recs: list[np.ndarray] = []
    logs: list[np.ndarray] = []
    keep = chip.compliance.add

    def add(r: np.ndarray, log: np.ndarray) -> None:
        recs.append(r)
        logs.append(log.copy())  # a view of the C loop's buffer, valid during the call
        keep(r, log)

    chip.compliance.add = add
    return recs, logs
