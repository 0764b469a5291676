"""Studies layer: the `s2eprop study NAME --out DIR` subcommand (added to host/cli/main.py's parser)."""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

# study name -> its module in s2eprop.host.studies (each has run(out_dir, cfg, **options) and summary_lines(result))
STUDIES = {"memory": "memory", "time": "time_profile", "energy": "energy", "whatif": "whatif",
           "curve": "learning_curve", "sweep": "sweep"}


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _options(args: argparse.Namespace) -> dict[str, Any]:
    if args.name == "sweep":
        from s2eprop.host.studies.sweep import parse_grid

        return {"grid": parse_grid(args.grid or []), "n_samples": _or(args.samples, 4), "ray_address": args.ray_address}
    if args.name == "curve":
        return {"epochs": args.epochs, "max_samples": args.max_samples}
    if args.name == "whatif":
        return {"n_samples": _or(args.samples, 10), "accuracy_samples": args.accuracy_samples}
    if args.name in ("time", "energy"):
        opts: dict[str, Any] = {"n_samples": _or(args.samples, 10)}
        if args.clock_mhz:
            opts["clocks_mhz"] = tuple(args.clock_mhz)
        if args.name == "energy":
            opts["gpu"] = not args.no_gpu
        return opts
    return {}


def _run(args: argparse.Namespace) -> int:
    from s2eprop.host.cli.common import config_from_args

    cfg = config_from_args(args)  # --config, then --data over its dataset
    module = importlib.import_module(f"s2eprop.host.studies.{STUDIES[args.name]}")
    result = module.run(args.out, cfg, **_options(args))
    print("\n".join(module.summary_lines(result)))
    print(f"result: {args.out / 'result.json'}; figures: "
          f"{', '.join(str(args.out / f) for f in result['figures'].values())}")
    return 0


def add_study_command(sub: Any) -> None:
    s = sub.add_parser("study", help="the paper's studies: memory (byte map, E-prop vs BPTT), time (cycles by "
                                      "phase on the timed chip), energy (chip energy per sample against a V100), whatif (modified "
                                      "chips), curve (learning curve, chip and golden model), sweep (a grid of runs on Ray)")
    s.add_argument("name", choices=tuple(STUDIES))
    s.add_argument("--out", type=Path, required=True, help="run folder (result.json and PNG figures)")
    s.add_argument("--config", type=Path, help="experiment YAML (network, partition); default: the paper's")
    s.add_argument("--data", help="whatif, curve: a GSC folder, a features .npz or 'synth' (default: the config's)")
    s.add_argument("--epochs", type=int, default=3, help="curve: epochs (default 3)")
    s.add_argument("--max-samples", type=int, default=1000, help="curve: training samples per epoch (default 1000)")
    s.add_argument("--samples", type=int, help="time, energy, whatif: samples on the timed chip (default 10); sweep: per run (default 4)")
    s.add_argument("--clock-mhz", type=float, action="append",
                   help="time, energy: a clock level (repeat; default 150 and 300)")
    s.add_argument("--accuracy-samples", type=int, default=2000,
                   help="whatif: training samples of each 16-bit-trace accuracy run on the golden model (0: none)")
    s.add_argument("--grid", action="append", help="sweep: NAME=V1,V2,... (seed, lr, neurons_per_core, clock_mhz; "
                                                   "repeat for a product)")
    s.add_argument("--ray-address", help="sweep: a Ray cluster (default: local worker processes)")
    s.add_argument("--no-gpu", action="store_true", help="energy: leave out the V100 estimate (it needs PyTorch)")
    s.set_defaults(func=_run)
