"""The whatif study of the paper's discussion (host/studies/; docs/studies.md): OUT/result.json and figures.

    python experiments/study_whatif.py --out runs/study_whatif     (= s2eprop study whatif --out runs/study_whatif)
"""
import sys

from s2eprop.host.cli.studies import main_for

if __name__ == "__main__":
    sys.exit(main_for("whatif"))
