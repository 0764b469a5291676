"""A sweep of short training runs on Ray (host/studies/sweep.py; docs/studies.md): OUT/runs/*, result.json, sweep.png.

    python experiments/study_sweep.py --out runs/sweep --grid seed=0,1,2,3 --grid lr=0.01,0.003
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from host.studies.cli import main_for  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_for("sweep"))
