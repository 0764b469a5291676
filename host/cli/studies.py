"""Host layer, CLI: the `s2eprop study NAME --out DIR` subcommand (added to host/cli/main.py's parser)."""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from s2eprop.host.cli.common import folder_path, positive_int
from s2eprop.host.errors import HostError

# study name -> its module in s2eprop.host.studies (each has run(out_dir, cfg, **options) and summary_lines(result))
STUDIES = {"memory": "memory", "time": "time_profile", "energy": "energy", "whatif": "whatif",
           "curve": "learning_curve", "sweep": "sweep", "loss": "loss_rate", "options": "options"}


# the options each study takes (argparse dest names); another one given is refused, not ignored
TAKES = {"memory": {"config"}, "time": {"config", "samples", "clock_mhz"},
         "energy": {"config", "samples", "clock_mhz", "no_gpu"},
         "whatif": {"config", "data", "samples", "accuracy_samples"},
         "curve": {"config", "data", "epochs", "max_samples"},
         "sweep": {"config", "data", "samples", "grid", "ray_address"},
         "loss": {"config", "data", "max_samples"},
         "options": {"config", "data", "epochs", "max_samples", "variant"}}
OPTIONAL = ("config", "data", "epochs", "max_samples", "samples", "clock_mhz", "accuracy_samples", "grid",
            "ray_address", "no_gpu", "variant")


def _check_options(args: argparse.Namespace) -> None:
    given = [o for o in OPTIONAL if getattr(args, o) not in (None, False)]
    unused = [o for o in given if o not in TAKES[args.name]]
    if unused:
        flags = ", ".join("--" + o.replace("_", "-") for o in unused)
        takes = ", ".join("--" + o.replace("_", "-") for o in sorted(TAKES[args.name]))
        raise HostError(f"study {args.name} does not take {flags} (it takes {takes}): drop it")


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _options(args: argparse.Namespace) -> dict[str, Any]:
    if args.name == "sweep":
        from s2eprop.host.studies.sweep import parse_grid

        return {"grid": parse_grid(args.grid or []), "n_samples": _or(args.samples, 4), "ray_address": args.ray_address}
    if args.name == "curve":
        return {"epochs": _or(args.epochs, 3), "max_samples": _or(args.max_samples, 1000)}
    if args.name == "options":
        from s2eprop.host.studies.options import select

        return {"epochs": _or(args.epochs, 2), "max_samples": args.max_samples, "variants": select(args.variant)}
    if args.name == "loss":
        return {"max_samples": args.max_samples}
    if args.name == "whatif":
        return {"n_samples": _or(args.samples, 10), "accuracy_samples": _or(args.accuracy_samples, 2000)}
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
    from s2eprop.host.files import writable_folder

    _check_options(args)
    writable_folder(args.out, "--out")  # before the study's long work
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
                                      "chips), curve (learning curve, chip and golden model), sweep (a grid of runs on Ray), "
                                      "loss (accuracy after one epoch at 0, 0.1, 1 and 5 %% spike loss), options (held-out "
                                      "accuracy of each learning option after 2 epochs on the chip)")
    s.add_argument("name", choices=tuple(STUDIES))
    s.add_argument("--out", type=folder_path, required=True, help="run folder (result.json and PNG figures)")
    s.add_argument("--config", type=Path, help="experiment YAML (network, partition); default: the paper's")
    s.add_argument("--data", help="whatif, curve, loss, options: a GSC folder, a features .npz or 'synth' (default: the config's)")
    s.add_argument("--epochs", type=positive_int, help="curve: epochs (default 3); options: epochs (default 2)")
    s.add_argument("--max-samples", type=positive_int, help="curve: training samples per epoch (default 1000); "
                                                             "loss: training samples of the epoch (default all); "
                                                             "options: training samples per epoch (default all)")
    s.add_argument("--samples", type=int, help="time, energy, whatif: samples on the timed chip (default 10); sweep: per run (default 4)")
    s.add_argument("--clock-mhz", type=float, action="append",
                   help="time, energy: a clock level (repeat; default 150 and 300)")
    s.add_argument("--accuracy-samples", type=int,
                   help="whatif: training samples of each 16-bit-trace accuracy run on the golden model (0: none)")
    s.add_argument("--grid", action="append", help="sweep: NAME=V1,V2,... (seed, lr, neurons_per_core, clock_mhz; "
                                                   "repeat for a product)")
    s.add_argument("--ray-address", help="sweep: a Ray cluster (default: local worker processes)")
    s.add_argument("--variant", action="append",
                   help="options: a row of the table (repeat; default all): default, triangle, exponential, "
                        "fast_sigmoid, arctan, n_regular, rate_reg, p_rec")
    s.add_argument("--no-gpu", action="store_true", help="energy: leave out the V100 estimate (it needs PyTorch)")
    s.set_defaults(func=_run)
