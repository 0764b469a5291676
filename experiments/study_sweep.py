"""A sweep of short training runs on Ray (host/studies/sweep.py; docs/studies.md): OUT/runs/*, result.json, sweep.png.

    python experiments/study_sweep.py --out runs/sweep --grid seed=0,1,2,3 --grid lr=0.01,0.003
"""
import sys

from s2eprop.host.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["study", "sweep", *sys.argv[1:]]))
