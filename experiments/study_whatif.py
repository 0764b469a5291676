"""The whatif study of the paper's discussion (host/studies/; docs/studies.md): OUT/result.json and figures.

    python experiments/study_whatif.py --out runs/study_whatif     (= s2eprop study whatif --out runs/study_whatif)
"""
import sys

from s2eprop.host.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["study", "whatif", *sys.argv[1:]]))
