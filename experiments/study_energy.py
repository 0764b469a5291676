"""The energy study of the paper's discussion (host/studies/; docs/studies.md): OUT/result.json and figures.

    python experiments/study_energy.py --out runs/study_energy     (= s2eprop study energy --out runs/study_energy)
"""
import sys

from s2eprop.host.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["study", "energy", *sys.argv[1:]]))
