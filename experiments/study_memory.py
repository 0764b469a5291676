"""The memory study of the paper's discussion (host/studies/; docs/studies.md): writes OUT/result.json and figures.

    python experiments/study_memory.py --out runs/study_memory     (the same as: s2eprop study memory --out runs/study_memory)
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from host.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["study", "memory", *sys.argv[1:]]))
