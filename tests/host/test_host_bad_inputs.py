"""Bad input never ends in a traceback or a silently wrong run: each case below is one line on stderr
naming the input and the fix, exit code 2."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2eprop.host.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, (n, err)
    return err


def _features(path: Path, y, **extra) -> Path:
    x = (3 * np.random.default_rng(1).standard_normal((len(y), 100, 80))).astype(np.float32)
    np.savez(path, x=x, y=np.asarray(y), **extra)
    return path


@pytest.mark.parametrize("content, needle", [
    (b"train:\n  lr: \xff\n", "not UTF-8"),
    (b"train:\n  lr: 0.1\ntrain:\n  lr: 0.2\n", "'train' is given twice (lines 1 and 3)"),
])
def test_bad_yaml(tmp_path, capsys, content, needle) -> None:
    """Rule: a YAML that is not UTF-8, or gives a top-level key twice (PyYAML would keep the last), is refused."""
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(content)
    assert main(["memory", "--config", str(cfg)]) == 2
    _one_line_error(capsys, str(cfg), needle)


def test_folder_as_config(tmp_path, capsys) -> None:
    """Rule: a folder given as --config is named as a folder, not as missing."""
    assert main(["memory", "--config", str(tmp_path)]) == 2
    _one_line_error(capsys, "is a folder")


@pytest.mark.parametrize("y, needle", [
    (["yes", "no"], "integer class indices"),
    ([1.5, 2.0], "not a whole number (1.5)"),
    ([3, 12], "label 12 is out of range 0..11"),
])
def test_bad_labels(tmp_path, capsys, y, needle) -> None:
    """Rule: string labels, fractional labels (once truncated silently) and a label past the 12 classes
    (once reported as "13 classes") are refused naming the label."""
    data = _features(tmp_path / "f.npz", y)
    assert main(["train", "--target", "golden", "--data", str(data), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    _one_line_error(capsys, str(data), needle)


def test_whole_float_labels_are_taken(tmp_path) -> None:
    """Rule: float labels holding whole numbers are class indices (1.0 is class 1)."""
    data = _features(tmp_path / "f.npz", [1.0, 2.0])
    assert main(["train", "--target", "golden", "--data", str(data), "--out", str(tmp_path / "r"), "--quiet"]) == 0


def test_npy_renamed_npz(tmp_path, capsys) -> None:
    """Rule: a .npy file renamed .npz is named as one array, with how to save a features file."""
    path = tmp_path / "f.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros((2, 100, 80), np.float32))
    assert main(["train", "--target", "golden", "--data", str(path), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    _one_line_error(capsys, "one array", "numpy.savez")


@pytest.fixture()
def golden_checkpoint(tmp_path, features_npz, weights_npz) -> Path:
    out = tmp_path / "run"
    assert main(["train", "--target", "golden", "--data", str(features_npz), "--out", str(out), "--quiet",
                 "--init-weights", str(weights_npz)]) == 0
    return out / "checkpoint.npz"


def _damaged(src: Path, dst: Path, **changes) -> Path:
    with np.load(src) as f:
        arrays = {k: f[k] for k in f.files}
    arrays.update(changes)
    np.savez(dst, **arrays)
    return dst


@pytest.mark.parametrize("change, needle", [
    ({"session": "{not json"}, "damaged session"),
    ({"adam_t": -3}, "adam_t -3"),
    ({"adam_m_w_in": np.zeros((80, 119), np.float32)}, "adam_m_w_in has shape (80, 119)"),
])
def test_damaged_checkpoint(tmp_path, capsys, features_npz, golden_checkpoint, change, needle) -> None:
    """Rule: a checkpoint whose session record does not parse, whose adam_t is negative or whose Adam
    moments do not have the weights' shape (the emulator trained on with it) is refused."""
    bad = _damaged(golden_checkpoint, tmp_path / "bad.npz", **change)
    assert main(["train", "--target", "golden", "--data", str(features_npz), "--out", str(tmp_path / "r2"),
                 "--quiet", "--resume", str(bad), "--epochs", "2"]) == 2
    _one_line_error(capsys, str(bad), needle)


def test_resume_on_another_target_or_data(tmp_path, capsys, features_npz, golden_checkpoint) -> None:
    """Rule: a golden checkpoint resumed on the emulator, or with other training data, is refused naming
    what differs and the --init-weights way to start from its weights."""
    assert main(["train", "--target", "emulator", "--data", str(features_npz), "--out", str(tmp_path / "e"),
                 "--quiet", "--resume", str(golden_checkpoint), "--epochs", "2"]) == 2
    _one_line_error(capsys, "made on target golden", "--init-weights")
    other = _features(tmp_path / "other.npz", [0, 1, 2, 3])
    assert main(["train", "--target", "golden", "--data", str(other), "--out", str(tmp_path / "o"),
                 "--quiet", "--resume", str(golden_checkpoint), "--epochs", "2"]) == 2
    _one_line_error(capsys, "other data", "--init-weights")


def test_resume_with_init_weights(tmp_path, capsys, features_npz, weights_npz, golden_checkpoint) -> None:
    """Rule: --resume and --init-weights together are refused: one continues a run, the other starts one."""
    assert main(["train", "--target", "golden", "--data", str(features_npz), "--out", str(tmp_path / "r"),
                 "--quiet", "--resume", str(golden_checkpoint), "--init-weights", str(weights_npz)]) == 2
    _one_line_error(capsys, "--resume", "--init-weights")


def test_config_dataset_options_stay_with_their_dataset(tmp_path, features_npz) -> None:
    """Rule: --data replacing the config's synth dataset by a features file does not receive the synth
    options (n_train, ...) of the config: the recipe config trains on the file."""
    cfg = ROOT / "experiments" / "configs" / "kws_synth_golden.yaml"
    assert main(["train", "--target", "golden", "--config", str(cfg), "--data", str(features_npz), "--out",
                 str(tmp_path / "r"), "--quiet", "--epochs", "1", "--max-samples", "2"]) == 0
