"""Studies layer: the `s2eprop study NAME --out DIR` subcommand (added to host/cli.py's parser)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

STUDIES = ("memory",)


def _run(args: argparse.Namespace) -> int:
    from host.config import load_config

    cfg = load_config(args.config)
    if args.name == "memory":
        from host.studies import memory

        result = memory.run(args.out, cfg)
        lines = memory.summary_lines(result)
    else:  # argparse's choices keep this out of reach
        raise AssertionError(args.name)
    print("\n".join(lines))
    print(f"result: {args.out / 'result.json'}; figures: "
          f"{', '.join(str(args.out / f) for f in result['figures'].values())}")
    return 0


def add_study_command(sub: Any) -> None:
    s = sub.add_parser("study", help="the paper's studies: memory (byte map, E-prop vs BPTT)")
    s.add_argument("name", choices=STUDIES)
    s.add_argument("--out", type=Path, required=True, help="run folder (result.json and PNG figures)")
    s.add_argument("--config", type=Path, help="experiment YAML (network, partition); default: the paper's")
    s.set_defaults(func=_run)
