"""The learning curve study (host/studies/learning_curve.py; docs/studies.md): OUT/result.json and curve.png.

    python experiments/study_curve.py --out runs/study_curve     (= s2eprop study curve --out runs/study_curve)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from host.studies.cli import main_for  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_for("curve"))
