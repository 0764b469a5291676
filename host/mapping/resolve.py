"""Host layer, mapping: an experiment config as the chip will run it. Reads and validates a config
(s2eprop.host.config) and resolves what needs the memory planner: `partition.neurons_per_core: auto`,
the most neurons per core whose arenas fit (s2eprop.host.mapping.images.largest_neurons_per_core)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from s2eprop.host.config import ExperimentConfig, parse_config, read_config_file
from s2eprop.host.mapping.images import largest_neurons_per_core


def config_from_dict(raw: Mapping[str, Any] | None) -> ExperimentConfig:
    """The config a mapping describes (keys as in an experiment YAML), validated and resolved."""
    cfg, auto = parse_config(raw)
    if not auto:
        return cfg
    npc = largest_neurons_per_core(cfg)
    return dataclasses.replace(cfg, partition=dataclasses.replace(cfg.partition, neurons_per_core=npc)).validate()


def load_config(path: str | Path | None) -> ExperimentConfig:
    """Read, validate and resolve an experiment YAML; `None` gives the reference defaults."""
    if path is None:
        return ExperimentConfig().validate()
    return config_from_dict(read_config_file(path))
