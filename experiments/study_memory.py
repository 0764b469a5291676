"""The memory study of the paper's discussion (host/studies/; docs/studies.md): OUT/result.json and figures.

    python experiments/study_memory.py --out runs/study_memory     (= s2eprop study memory --out runs/study_memory)
"""
import sys

from s2eprop.host.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["study", "memory", *sys.argv[1:]]))
