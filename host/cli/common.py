"""Host layer, CLI: what several commands read from their arguments."""
from __future__ import annotations

import argparse
import dataclasses

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
