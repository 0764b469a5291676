"""Config validation: every bad value is refused with a ConfigError naming the key, before any work."""
from __future__ import annotations

from pathlib import Path

import pytest

from s2eprop.host.mapping.resolve import config_from_dict
from s2eprop.host.errors import ConfigError


@pytest.mark.parametrize("raw, key", [
    ({"train": {"adam_b1": 1.0}}, "train.adam_b1"),
    ({"train": {"adam_eps": 0.0}}, "train.adam_eps"),
    ({"train": {"lr_decay_every_epochs": 0}}, "train.lr_decay_every_epochs"),
    ({"train": {"lr_decay": 1.5}}, "train.lr_decay"),
    ({"train": {"max_samples": "abc"}}, "train.max_samples"),
    ({"train": {"max_samples": 1.5}}, "train.max_samples"),
    ({"train": {"seed": -1}}, "train.seed"),
    ({"network": {"mg_sigma": 0.0}}, "network.mg_sigma"),
    ({"network": {"n_out": 100}}, "network.n_out"),
    ({"network": {"n_in": 5_000_000_000}}, "network.n_in"),
    ({"network": {"tau_m_ms": "fast"}}, "network.tau_m_ms"),
    ({"partition": {"neurons_per_core": 300}}, "partition.neurons_per_core"),
    ({"partition": {"arena_limit_bytes": 1_000_000}}, "partition.arena_limit_bytes"),
    ({"network": {"v_th": float("nan")}}, "network.v_th"),
    ({"network": {"surrogate": "sigmoid"}}, "network.surrogate"),
    ({"network": {"surrogate_beta": 0.0}}, "network.surrogate_beta"),
    ({"network": {"n_regular": 121}}, "network.n_regular"),
    ({"train": {"optimizer": "rmsprop"}}, "train.optimizer"),
    ({"train": {"momentum": 0.9}}, "train.momentum"),  # momentum is sgd's
    ({"train": {"optimizer": "sgd", "momentum": 1.0}}, "train.momentum"),
    ({"train": {"rate_reg": {"c_reg": -1.0}}}, "train.rate_reg.c_reg"),
    ({"train": {"rate_reg": {"target_hz": 2000.0}}}, "train.rate_reg.target_hz"),
    ({"train": {"rate_reg": {"c_reg": 1.0, "f_target": 10}}}, "train.rate_reg"),  # NEST's name, not ours
    ({"train": {"rate_reg": 3.0}}, "train.rate_reg"),
])
def test_bad_values_name_their_key(raw, key) -> None:
    """Rule: a value the network, optimiser or firmware cannot take is refused, naming its key."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_from_dict(raw)


def test_options_read_from_a_mapping() -> None:
    """Rule: issue 27's options read from YAML's mapping form, nested train.rate_reg included."""
    cfg = config_from_dict({"network": {"surrogate": "arctan", "surrogate_beta": 2, "n_regular": 60},
                            "train": {"optimizer": "sgd", "momentum": 0.5, "feedback": "adaptive",
                                      "rate_reg": {"c_reg": 50, "target_hz": 5}}})
    assert (cfg.network.surrogate, cfg.network.surrogate_beta, cfg.network.n_regular) == ("arctan", 2.0, 60)
    assert (cfg.train.optimizer, cfg.train.momentum, cfg.train.feedback) == ("sgd", 0.5, "adaptive")
    assert (cfg.train.rate_reg.c_reg, cfg.train.rate_reg.target_hz) == (50.0, 5.0)
    assert cfg.train.rate_reg.f_target_per_step(cfg.network.dt_ms) == 0.005


def test_yaml_exponent_without_dot_is_a_number() -> None:
    """Rule: `lr: 1e-3` (which YAML 1.1 reads as a string) is taken as the number 0.001."""
    assert config_from_dict({"train": {"lr": "1e-3"}}).train.lr == 0.001


CONFIGS = sorted((Path(__file__).resolve().parents[2] / "experiments" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_experiment_configs_load(path) -> None:
    """Every config in experiments/configs validates, and its synth dataset options are known ones."""
    from s2eprop.host.mapping.resolve import load_config
    from s2eprop.host.data.synth import SynthOptions

    cfg = load_config(path)
    if cfg.dataset.kind == "synth":
        SynthOptions.from_mapping(cfg.dataset.options)

