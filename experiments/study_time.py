"""The time study of the paper's discussion (host/studies/; docs/studies.md): OUT/result.json and figures.

    python experiments/study_time.py --out runs/study_time     (= s2eprop study time --out runs/study_time)
"""
import sys

from s2eprop.host.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["study", "time", *sys.argv[1:]]))
