"""The memory study of the paper's discussion (host/studies/; docs/studies.md): OUT/result.json and figures.

    python experiments/study_memory.py --out runs/study_memory     (= s2eprop study memory --out runs/study_memory)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from host.studies.cli import main_for  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_for("memory"))
