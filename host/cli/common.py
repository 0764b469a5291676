"""Host layer, CLI: what several commands read from their arguments."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from s2eprop.host.config import ExperimentConfig
from s2eprop.host.mapping.resolve import load_config


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """The config of --config (its defaults without), with --data over its dataset."""
    cfg = load_config(args.config)
    if args.data is not None:
        from s2eprop.host.data.loader import dataset_config_from_arg

        given = dataset_config_from_arg(args.data)
        # the config's dataset options belong to its dataset kind: kept for the same kind, not another
        options = cfg.dataset.options if given.kind == cfg.dataset.kind else {}
        cfg = dataclasses.replace(cfg, dataset=dataclasses.replace(given, options=options)).validate()
    return cfg


def port_number(value: str) -> int:
    """argparse type of a UDP port: 0 (any free one) to 65,535."""
    port = _int(value, "port")
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value}: a UDP port is 0..65535 (0: any free port)")
    return port


def positive_int(value: str) -> int:
    """argparse type of a count that must be at least 1."""
    n = _int(value, "count")
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be 1 or more")
    return n


def folder_path(value: str) -> Path:
    """argparse type of an output path: not empty (an empty one would write into the current folder)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty path: name a folder or file")
    return Path(value)


def _int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: a {what} is a whole number") from None
