"""The accuracy table of the learning options (host/studies/options.py; docs/options.md, docs/studies.md):
OUT/result.json, options.json (the rows) and options.png.

    python experiments/study_options.py --out runs/study_options   (= s2eprop study options --out runs/study_options)
"""
import sys

from s2eprop.host.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["study", "options", *sys.argv[1:]]))
