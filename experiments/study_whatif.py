"""The whatif study of the paper's discussion (host/studies/; docs/studies.md): OUT/result.json and figures.

    python experiments/study_whatif.py --out runs/study_whatif     (= s2eprop study whatif --out runs/study_whatif)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from host.studies.cli import main_for  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_for("whatif"))
