"""`s2eprop study NAME`: a study from the command line, and its one-line refusals."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2eprop.host.cli.main import main


def test_study_time_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "time", "--out", str(tmp_path), "--samples", "1", "--clock-mhz", "300"]) == 0
    assert "300 MHz" in capsys.readouterr().out
    assert json.loads((tmp_path / "result.json").read_text())["clocks_mhz"] == [300.0]


@pytest.mark.parametrize("argv, message", [
    (["study", "time", "--samples", "0"], "--samples must be >= 1, got 0"),
    (["study", "sweep", "--grid", "speed=1"], "NAME one of seed"),
    (["study", "sweep", "--grid", "seed=0", "--samples", "0"], "study sweep: --samples must be >= 1, got 0"),
    (["study", "whatif", "--accuracy-samples", "-1"], "--accuracy-samples >= 0"),
    (["study", "curve", "--epochs", "0"], "--epochs: 0: must be 1 or more"),
    (["study", "time", "--grid", "seed=0,1"], "study time does not take --grid"),
])
def test_refusals_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
