"""The learning curve study (host/studies/learning_curve.py; docs/studies.md): OUT/result.json and curve.png.

    python experiments/study_curve.py --out runs/study_curve     (= s2eprop study curve --out runs/study_curve)
"""
import sys

from s2eprop.host.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["study", "curve", *sys.argv[1:]]))
