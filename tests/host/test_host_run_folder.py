"""Run folders never lose work: a folder holding a run is refused unless resumed or overwritten, a bad
--out is found before training, Ctrl-C and SIGTERM leave a checkpoint and say how to resume, a killed
run's temp files are cleaned, and an empty test split leaves a consistent folder."""
from __future__ import annotations

import json
import os
import re
import shlex
import signal

import numpy as np
import pytest

from s2eprop.host.cli.main import main
from s2eprop.host.reference.golden import GoldenModel

MATRICES = ("w_in", "w_rec", "w_out")


def _train(out, data, *extra) -> int:
    return main(["train", "--target", "golden", "--data", str(data), "--out", str(out), "--quiet", *extra])


def _train_first(out, data, *extra) -> int:
    """As _train, with `extra` before the other options (so that --init-weights comes first)."""
    return main(["train", *extra, "--target", "golden", "--data", str(data), "--out", str(out), "--quiet"])


def _weights(path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k].copy() for k in MATRICES}


def test_rerun_over_a_run_is_refused_unless_overwrite(tmp_path, capsys, features_npz, weights_npz) -> None:
    """Rule: `train --out DIR` over a folder holding a finished run exits 2 naming --resume and --overwrite
    and leaves every file as it was; with --overwrite it trains anew (a one-epoch report again)."""
    out = tmp_path / "run"
    assert _train(out, features_npz, "--init-weights", str(weights_npz), "--epochs", "2") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert _train(out, features_npz, "--init-weights", str(weights_npz)) == 2
    err = capsys.readouterr().err
    assert "holds a run" in err and "--resume" in err and "--overwrite" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _train(out, features_npz, "--init-weights", str(weights_npz), "--overwrite") == 0
    assert len(json.loads((out / "report.json").read_text())["epochs"]) == 1


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_bad_out_is_refused_before_training(tmp_path, capsys, features_npz, monkeypatch, where) -> None:
    """Rule: an --out that is a file, or a path under a file, exits 2 with one line naming it, before
    any sample is trained."""
    f = tmp_path / "a_file"
    f.write_text("x")
    out = f if where == "file" else f / "run"
    monkeypatch.setattr(GoldenModel, "train_batch", lambda *a: pytest.fail("trained before checking --out"))
    assert _train(out, features_npz) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_read_only_out_is_refused_before_training(tmp_path, capsys, features_npz) -> None:
    """Rule: a folder the user cannot write exits 2 naming it, before training."""
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    assert _train(out, features_npz) == 2
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_leaves_a_checkpoint_and_the_resume_command(tmp_path, capsys, features_npz, weights_npz,
                                                           monkeypatch, signum) -> None:
    """Rule: with default settings, SIGINT or SIGTERM during sample 3 of 8 (2 epochs of 4) lets that
    sample finish, writes a checkpoint after it, exits 130 and prints the checkpoint and a resume
    command; that command ends with the bits of an uninterrupted run."""
    full = tmp_path / "full"
    assert _train(full, features_npz, "--init-weights", str(weights_npz), "--epochs", "2") == 0
    original, calls = GoldenModel.train_batch, {"n": 0}

    def signalled(self, x, y):
        calls["n"] += 1
        if calls["n"] == 3:
            signal.raise_signal(signum)
        return original(self, x, y)

    monkeypatch.setattr(GoldenModel, "train_batch", signalled)
    part = tmp_path / "part"
    capsys.readouterr()
    assert _train_first(part, features_npz, "--init-weights", str(weights_npz), "--epochs", "2") == 130
    monkeypatch.setattr(GoldenModel, "train_batch", original)
    err = capsys.readouterr().err
    assert signal.Signals(signum).name in err and str(part / "checkpoint.npz") in err, err
    with np.load(part / "checkpoint.npz") as ck:
        assert int(ck["samples_trained"]) == 3
    command = shlex.split(re.search(r"resume with: (.*)$", err.strip()).group(1))
    assert command == ["s2eprop", "train", "--epochs", "2", "--target", "golden", "--data", str(features_npz),
                       "--out", str(part), "--quiet", "--resume", str(part / "checkpoint.npz")]
    assert main(command[1:]) == 0
    got, want = _weights(part / "weights.npz"), _weights(full / "weights.npz")
    for k in MATRICES:
        assert np.array_equal(got[k].view(np.uint32), want[k].view(np.uint32)), k


def test_ctrl_c_inside_a_sample_names_the_last_checkpoint(tmp_path, capsys, features_npz, weights_npz,
                                                          interrupt_training) -> None:
    """Rule: a Ctrl-C that lands inside sample 3 (with a checkpoint every 2 samples) exits 130 and names
    the checkpoint of sample 2 and the resume command; one before any checkpoint says there is none."""
    restore = interrupt_training(GoldenModel, 3)
    out = tmp_path / "run"
    assert _train(out, features_npz, "--init-weights", str(weights_npz), "--checkpoint-every", "2") == 130
    restore()
    err = capsys.readouterr().err
    assert f"checkpoint: {out / 'checkpoint.npz'}; resume with: " in err, err
    with np.load(out / "checkpoint.npz") as ck:
        assert int(ck["samples_trained"]) == 2
    restore = interrupt_training(GoldenModel, 1)
    assert _train(tmp_path / "early", features_npz, "--init-weights", str(weights_npz)) == 130
    restore()
    assert "no checkpoint was written yet" in capsys.readouterr().err


def test_orphan_temp_files_are_cleaned(tmp_path, features_npz, weights_npz) -> None:
    """Rule: temp files a killed run left (.checkpoint.npz.*.tmp) are removed when the run is resumed."""
    out = tmp_path / "run"
    assert _train(out, features_npz, "--init-weights", str(weights_npz)) == 0
    orphan = out / ".checkpoint.npz.k9x2.tmp"
    orphan.write_bytes(b"\0" * 1000)
    assert _train(out, features_npz, "--resume", str(out / "checkpoint.npz"), "--epochs", "2") == 0
    assert not orphan.exists()


def test_empty_test_split_leaves_a_consistent_folder(tmp_path, capsys, weights_npz) -> None:
    """Rule: a features file whose test split has 0 rows trains (exit 0) as one without a test split:
    report.json has test_accuracy null and no confusion figure, and describes the weights written;
    `eval` on that empty split exits 2 with one line."""
    rng = np.random.default_rng(8)
    data = tmp_path / "f.npz"
    np.savez(data, x=(3 * rng.standard_normal((3, 100, 80))).astype(np.float32), y=np.array([1, 2, 3]),
             x_test=np.zeros((0, 100, 80), np.float32), y_test=np.zeros(0, np.int64))
    out = tmp_path / "run"
    assert _train(out, data, "--init-weights", str(weights_npz)) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["test_accuracy"] is None and "confusion" not in report["figures"]
    assert not (out / "confusion.png").exists() and report["samples_trained"] == 3
    capsys.readouterr()
    assert main(["eval", "--target", "golden", "--weights", str(out / "weights.npz"), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "no samples" in err and "Traceback" not in err


def test_divergence_names_no_missing_checkpoint(tmp_path, capsys, features_npz) -> None:
    """Rule: training that diverges before any checkpoint says so instead of naming a file that does not exist."""
    cfg = tmp_path / "wild.yaml"
    cfg.write_text("train:\n  lr: 1.0e+30\n")
    with np.errstate(all="ignore"):
        code = _train(tmp_path / "run", features_npz, "--config", str(cfg), "--epochs", "3")
    err = capsys.readouterr().err
    assert code == 2 and "diverged at epoch 1" in err, err
    assert "no checkpoint was written yet" in err and not (tmp_path / "run" / "checkpoint.npz").exists()
