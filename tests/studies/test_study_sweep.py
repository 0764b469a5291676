"""The sweep: its grid, a failed run reported not raised, runs done before skipped, and (slow) 12 runs
on local Ray workers with the 4 that cannot fit a core reported."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2eprop.host.config import ExperimentConfig
from s2eprop.host.errors import HostError
from s2eprop.host.files import write_json
from s2eprop.host.studies import sweep


def test_grid_parsing() -> None:
    assert sweep.parse_grid(["seed=0,1", "lr=0.01"]) == {"seed": [0, 1], "lr": [0.01]}
    assert len(sweep.points({"seed": [0, 1, 2], "lr": [0.1, 0.2]})) == 6
    with pytest.raises(HostError, match="NAME one of seed"):
        sweep.parse_grid(["speed=1"])
    with pytest.raises(HostError, match="takes int"):
        sweep.parse_grid(["seed=a"])


def test_failed_run_is_a_row(tmp_path: Path) -> None:
    """A point whose arena does not fit a core gives a failed row and error.json naming the error."""
    row = sweep.run_one(ExperimentConfig(), {"neurons_per_core": 60}, tmp_path / "r", 1, 0)
    assert row["status"] == "failed" and "neurons_per_core" in row["error"]
    assert "Traceback" in json.loads((tmp_path / "r" / "error.json").read_text())["traceback"]


def test_done_runs_are_skipped(tmp_path: Path) -> None:
    """A sweep whose runs all have result.json starts no worker (Ray is not even imported)."""
    grid = {"seed": [0, 1]}
    for p in sweep.points(grid):
        write_json(tmp_path / "runs" / sweep.run_name(p) / "result.json",
                   {"run": sweep.run_name(p), "params": p, "status": "ok", "train_loss_online": 2.0, "loss_after": 1.0})
    r = sweep.run(tmp_path, grid=grid)
    assert r["ran_now"] == 0 and r["runs"] == 2 and all(row["skipped"] for row in r["table"])


@pytest.mark.slow
def test_twelve_runs_on_local_ray(tmp_path: Path) -> None:
    """4 seeds x 3 partitions on local Ray workers: 8 runs complete, the 4 of 60 neurons per core fail and are
    reported; the same seed learns the same on 10 and 12 neurons per core; a restart runs nothing again."""
    pytest.importorskip("ray")
    grid = {"seed": [0, 1, 2, 3], "neurons_per_core": [10, 12, 60]}
    r = sweep.run(tmp_path, grid=grid, n_samples=2)
    ok = [row for row in r["table"] if row["status"] == "ok"]
    assert len(ok) == 8 and r["failed"] == 4
    by = {(row["params"]["seed"], row["params"]["neurons_per_core"]): row for row in ok}
    assert all(by[(s, 10)]["loss_after"] == by[(s, 12)]["loss_after"] for s in range(4))
    again = sweep.run(tmp_path, grid=grid, n_samples=2)
    assert again["ran_now"] == 4  # only the failed runs are tried again
