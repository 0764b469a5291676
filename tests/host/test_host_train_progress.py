"""What `s2eprop train` tells the user while it runs: one line per epoch with the numbers of the report."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from s2eprop.host.cli.main import main


def test_each_epoch_prints_its_accuracies_and_loss(tmp_path, capsys, weights_npz) -> None:
    """Rule: without --quiet, every epoch ends with a line 'epoch e/E: train accuracy (online) a %, loss l,
    test accuracy t %' whose numbers are those of the epoch's record in report.json."""
    rng = np.random.default_rng(5)
    data = tmp_path / "f.npz"
    np.savez(data, x=(3 * rng.standard_normal((3, 100, 80))).astype(np.float32), y=np.array([1, 4, 9]),
             x_test=(3 * rng.standard_normal((2, 100, 80))).astype(np.float32), y_test=np.array([4, 2]))
    out = tmp_path / "run"
    assert main(["train", "--target", "golden", "--data", str(data), "--out", str(out), "--epochs", "2",
                 "--init-weights", str(weights_npz)]) == 0
    lines = re.findall(r"epoch (\d)/2: train accuracy \(online\) ([\d.]+) %, loss ([\d.]+), test accuracy ([\d.]+) %",
                       capsys.readouterr().out)
    epochs = json.loads((out / "report.json").read_text())["epochs"]
    assert [int(e) for e, *_ in lines] == [1, 2]
    for (_, train, loss, test), record in zip(lines, epochs):
        assert float(train) == round(100 * record["train_accuracy"], 1)
        assert float(loss) == round(record["loss"], 4)
        assert float(test) == round(100 * record["test_accuracy"], 1)


def test_progress_to_a_log_file_is_short(tmp_path, capsys, weights_npz) -> None:
    """Rule: with stderr not a terminal (a log file, as in `make demo > log 2>&1`), a 200-sample epoch's
    progress bar writes a few records (start, end, one per 30 s at most), not one per sample; the
    per-epoch line still comes."""
    rng = np.random.default_rng(6)
    data = tmp_path / "f.npz"
    np.savez(data, x=(3 * rng.standard_normal((200, 100, 80))).astype(np.float32), y=rng.integers(0, 12, 200))
    assert main(["train", "--target", "golden", "--data", str(data), "--out", str(tmp_path / "run"),
                 "--init-weights", str(weights_npz)]) == 0
    captured = capsys.readouterr()
    records = [r for r in re.split(r"[\r\n]+", captured.err) if r.startswith("epoch 1/1")]
    assert 1 <= len(records) <= 4, records[:10]
    assert "epoch 1/1: train accuracy" in captured.out


def test_each_epoch_records_its_wall_time(tmp_path, capsys, weights_npz) -> None:
    """Rule: every epoch's record in report.json gives its wall time, the part spent in training samples
    (the epochs' parts add up to the report's train_wall_s) and ms per training sample, and the epoch's
    line prints them."""
    rng = np.random.default_rng(7)
    data = tmp_path / "f.npz"
    np.savez(data, x=(3 * rng.standard_normal((4, 100, 80))).astype(np.float32), y=np.array([1, 4, 9, 2]),
             x_test=(3 * rng.standard_normal((2, 100, 80))).astype(np.float32), y_test=np.array([4, 2]))
    out = tmp_path / "run"
    assert main(["train", "--target", "golden", "--data", str(data), "--out", str(out), "--epochs", "2",
                 "--init-weights", str(weights_npz)]) == 0
    report = json.loads((out / "report.json").read_text())
    printed = re.findall(r"\(([\d.]+) s, ([\d.]+) ms per training sample\)", capsys.readouterr().out)
    assert len(report["epochs"]) == len(printed) == 2
    for e, (wall, ms) in zip(report["epochs"], printed):
        assert e["samples_timed"] == e["samples"] == 4
        assert 0 < e["train_wall_s"] < e["wall_s"] < report["wall_s"]
        assert e["ms_per_training_sample"] == 1000 * e["train_wall_s"] / 4
        assert (float(wall), float(ms)) == (round(e["wall_s"], 1), round(e["ms_per_training_sample"], 2))
    assert sum(e["train_wall_s"] for e in report["epochs"]) == pytest.approx(report["train_wall_s"], rel=1e-9)
