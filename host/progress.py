"""Host layer: progress bars for long work (training, features, synthesis). On a terminal, tqdm as
usual; when stderr is a file or a pipe (`make demo > log 2>&1`), a record at most every
LOG_INTERVAL_S seconds, so that a long run writes a short log."""
from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

LOG_INTERVAL_S = 30.0


def progress_bar(total: int, desc: str, unit: str, enabled: bool = True, **kwargs: Any) -> tqdm:
    interval = {} if sys.stderr.isatty() else {"mininterval": LOG_INTERVAL_S, "maxinterval": LOG_INTERVAL_S}
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, **interval, **kwargs)
