"""Partition sizing (`partition.neurons_per_core: auto`): the most neurons per core whose every core's arena
(the firmware's own fw_layout) fits the host's arena budget (arm_size.arena_budget); the paper's 10 stay
the default; a number that does not fit is refused, naming the core, the bytes and the fix."""
from __future__ import annotations

import re
from typing import Any

import pytest

from s2eprop.firmware.abi import Firmware
from s2eprop.firmware.arm_size import arena_budget
from s2eprop.host.cli.main import main
from s2eprop.host.config import ExperimentConfig
from s2eprop.host.mapping.resolve import config_from_dict
from s2eprop.host.errors import ConfigError
from s2eprop.host.mapping.images import core_config_fields
from s2eprop.host.mapping.partition import plan_partition
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.weights import init_weights

SHD_NET = {"n_in": 700, "n_rec": 120, "n_out": 20, "n_steps": 100}
SPIKES = {"kind": "spikes", "encoder": "none"}


def _largest_arena(cfg: ExperimentConfig, npc: int) -> int:
    """The largest arena of the partition of `npc` neurons per core, straight from fw_layout per core."""
    import dataclasses

    cfg = dataclasses.replace(cfg, partition=dataclasses.replace(cfg.partition, neurons_per_core=npc))
    fw = Firmware()
    plan = plan_partition(cfg.network, cfg.partition)
    return max(fw.layout(fw.new_config(core_config_fields(cfg, plan, core, None))).arena_bytes for core in plan.cores)


def test_default_is_the_papers_partition_and_auto_takes_the_most_that_fit() -> None:
    """Rule: without a partition the paper's network keeps the paper's 10 neurons per core (12 cores); `auto`
    is not the paper's partition but the fewest cores: the largest number whose arenas fit (the paper's
    10 leave room: 22 fit the ARM build's arena room), and one more does not fit."""
    paper = config_from_dict({})
    assert paper.partition.neurons_per_core == 10 and plan_partition(paper.network, paper.partition).n_cores == 12
    auto = config_from_dict({"partition": {"neurons_per_core": "auto"}})
    npc, limit = auto.partition.neurons_per_core, arena_budget(auto.partition.arena_limit_bytes)[0]
    assert npc > 10
    assert _largest_arena(auto, npc) <= limit < _largest_arena(auto, npc + 1)


@pytest.mark.parametrize("limit_bytes", [96 * 1024, 64 * 1024])
def test_auto_for_700_inputs_fits_and_one_more_does_not(limit_bytes: int) -> None:
    """Rule: for 700 inputs, 120 neurons, 20 outputs (training state included, as the images always hold
    it) `auto` gives a number whose every core's arena fits the budget and whose next does not, for the
    ARM build's arena room (or the default) and for a smaller configured limit."""
    cfg = config_from_dict({"network": SHD_NET, "input": SPIKES,
                            "partition": {"neurons_per_core": "auto", "arena_limit_bytes": limit_bytes}})
    npc, limit = cfg.partition.neurons_per_core, arena_budget(limit_bytes)[0]
    assert 1 <= npc < 10
    assert _largest_arena(cfg, npc) <= limit < _largest_arena(cfg, npc + 1), (npc, limit)


def test_explicit_number_that_does_not_fit_names_core_bytes_and_fix() -> None:
    """Rule: the paper's 10 neurons per core with 700 inputs are refused when the board is built: the error
    names core 0, the bytes it needs and has, the largest number that fits and `auto`."""
    cfg = config_from_dict({"network": SHD_NET, "input": SPIKES, "partition": {"neurons_per_core": 10}})
    most = config_from_dict({"network": SHD_NET, "input": SPIKES,
                             "partition": {"neurons_per_core": "auto"}}).partition.neurons_per_core
    limit = arena_budget(cfg.partition.arena_limit_bytes)[0]
    with pytest.raises(ConfigError) as info:
        BoardTrainer(cfg, init_weights(cfg.network, seed=0))
    msg = str(info.value)
    need = re.search(r"core 0 needs ([\d,]+) B", msg)
    assert need and int(need.group(1).replace(",", "")) == _largest_arena(cfg, 10) > limit, msg
    assert f"has {limit:,} B" in msg, msg
    assert f"partition.neurons_per_core (now 10) to {most} or less" in msg and "auto" in msg, msg


@pytest.mark.parametrize("value", ["Auto", "max", ""])
def test_other_words_are_refused(value: Any) -> None:
    """Rule: neurons_per_core takes an integer or the word auto; another word is refused, naming the key."""
    with pytest.raises(ConfigError, match=r"partition\.neurons_per_core must be an integer or auto"):
        config_from_dict({"partition": {"neurons_per_core": value}})


def test_nothing_fits_is_refused() -> None:
    """Rule: when not even 1 neuron per core fits (a 16 KiB limit for 1,000 inputs), `auto` is refused,
    naming the key, the bytes and the budget."""
    with pytest.raises(ConfigError, match=r"neurons_per_core auto: even 1 neuron per core needs [\d,]+ B .* 16,384 B"):
        config_from_dict({"network": {"n_in": 1000}, "partition": {"neurons_per_core": "auto",
                                                                   "arena_limit_bytes": 16 * 1024}})


def test_memory_and_report_show_the_resolved_number(tmp_path, capsys) -> None:
    """Rule: `s2eprop memory` of an `auto` config prints the resolved neurons per core, the cores and each
    core's bytes, and the board's report (report.json) records the resolved number."""
    yaml_file = tmp_path / "auto.yaml"
    yaml_file.write_text("network: {n_in: 700, n_out: 20}\ninput: {kind: spikes, encoder: none}\n"
                         "partition: {neurons_per_core: auto}\n")
    cfg = config_from_dict({"network": {"n_in": 700, "n_out": 20}, "input": SPIKES,
                            "partition": {"neurons_per_core": "auto"}})
    npc = cfg.partition.neurons_per_core
    cores = -(-120 // npc)
    assert main(["memory", "--config", str(yaml_file)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{cores} cores, {npc} neurons per neuron core (at most {npc} fit"), text.splitlines()[0]
    assert len(re.findall(r"^core +\d+ .* arena +[\d,]+ B", text, flags=re.M)) == cores
    assert "DOES NOT FIT" not in text
    rep = BoardTrainer(cfg, init_weights(cfg.network, seed=0)).report()
    assert rep["neurons_per_core"] == npc and rep["cores"] == cores
    assert max(rep["sram_bytes_per_core"]) == _largest_arena(cfg, npc)
