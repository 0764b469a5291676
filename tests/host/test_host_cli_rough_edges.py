"""Rough edges a new user met: --version, the same default target for train and eval, validation of
the neuron constants, run files that follow the user's umask, the bench's sample accounting."""
from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from s2eprop.host.cli.bench import bench_golden
from s2eprop.host.cli.main import build_parser, main
from s2eprop.host.mapping.resolve import config_from_dict
from s2eprop.host.errors import ConfigError
from s2eprop.host.files import write_json


def test_version(capsys) -> None:
    """Rule: `s2eprop --version` exits 0 and prints the version pyproject.toml declares."""
    assert main(["--version"]) == 0
    declared = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out.strip() == f"s2eprop {declared}"


def test_train_and_eval_default_to_the_same_target(weights_npz) -> None:
    """Rule: without --target, train and eval both run on the emulator."""
    p = build_parser()
    assert p.parse_args(["train", "--out", "x"]).target == "emulator"
    assert p.parse_args(["eval", "--weights", str(weights_npz)]).target == "emulator"


@pytest.mark.parametrize("key, value", [("beta", -0.1), ("mg_height", -1.0), ("mg_gamma", 0.0)])
def test_neuron_constants_are_validated(key, value) -> None:
    """Rule: a negative network.beta or mg_height, or an mg_gamma <= 0, is a ConfigError naming the key
    and the value; 0 is a valid beta (no adaptation) and mg_height (one Gaussian)."""
    with pytest.raises(ConfigError, match=rf"network\.{key} must be .* got {value}"):
        config_from_dict({"network": {key: value}})
    config_from_dict({"network": {"beta": 0.0, "mg_height": 0.0}})


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_run_files_follow_the_umask(tmp_path, umask, mode) -> None:
    """Rule: files written atomically (report.json, weights, checkpoints) get 0666 minus the umask, as
    a plain open() would, not the temp file's 0600."""
    old = os.umask(umask)
    try:
        path = write_json(tmp_path / "report.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_bench_golden_counts_whole_batches() -> None:
    """Rule: `bench` with 1 sample times one whole batch per batch size, and says so: 1 sample at batch
    1, 32 at batch 32."""
    result = bench_golden(batch_sizes=(1, 32), n_samples=1)
    assert result["golden_samples_timed"] == {"1": 1, "32": 32}
    assert result["n_samples"] == 1
