"""The energy study of the paper's discussion (host/studies/; docs/studies.md): writes OUT/result.json and figures.

    python experiments/study_energy.py --out runs/study_energy     (the same as: s2eprop study energy --out runs/study_energy)
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from host.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["study", "energy", *sys.argv[1:]]))
