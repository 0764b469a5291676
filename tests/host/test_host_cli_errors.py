"""User errors on the command line (host/cli/main.py): exit code 2 and one line on stderr that names the
offending thing, never a traceback."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2eprop.host.cli.main import main


def _train(tmp_path: Path, *extra: str, data: Path | str | None = None) -> list[str]:
    argv = ["train", "--out", str(tmp_path / "run"), "--epochs", "1", "--quiet"]
    if data is not None:
        argv += ["--data", str(data)]
    return argv + list(extra)


def _expect_user_error(capsys, argv: list[str], *names: str) -> str:
    rc = main(argv)
    out = capsys.readouterr()
    assert rc == 2, f"exit code {rc}; stderr: {out.err}"
    assert "Traceback" not in out.err and "Traceback" not in out.out
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    line = lines[0]
    assert line.startswith(f"s2eprop {argv[0]}: error: "), line
    for name in names:
        assert name in line, f"{name!r} not named in: {line}"
    return line


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, names", [
    ("network:\n  n_hiden: 100\n", ("n_hiden", "network")),                 # unknown key in a section
    ("trian:\n  lr: 0.01\n", ("trian",)),                                     # unknown section
    ("train:\n  lr: fast\n", ("train.lr", "fast")),                           # wrong type
    ("network:\n  surrogate: box\n", ("network.surrogate", "box")),          # unknown choice
    ("dataset:\n  path: features.npz\n", ("dataset", "kind")),                # missing required key
    ("partition: 12\n", ("partition", "mapping")),                            # section not a mapping
])
def test_bad_config_key(tmp_path, capsys, features_npz, text, names) -> None:
    """Rule: a YAML (--config) with an unknown, mistyped or missing key is refused in one line naming it."""
    _expect_user_error(capsys, _train(tmp_path, "--config", str(_yaml(tmp_path, text)), data=features_npz), *names)


def test_config_file_missing(tmp_path, capsys, features_npz) -> None:
    """Rule: --config of a file that does not exist is refused in one line naming the file."""
    missing = tmp_path / "nope.yaml"
    _expect_user_error(capsys, _train(tmp_path, "--config", str(missing), data=features_npz), str(missing))


def test_core_that_does_not_fit(tmp_path, capsys, features_npz) -> None:
    """Rule: partition.neurons_per_core 60 overflows a core's 96 KiB arena: one line naming the core,
    its bytes and neurons_per_core; no run folder results are written."""
    cfg = _yaml(tmp_path, "partition:\n  neurons_per_core: 60\n")
    line = _expect_user_error(capsys, _train(tmp_path, "--config", str(cfg), "--target", "emulator", data=features_npz),
                              "neurons_per_core", "core 0")
    assert any(ch.isdigit() for ch in line.split("core 0", 1)[1])
    assert not (tmp_path / "run" / "weights.npz").exists()


def test_dataset_that_does_not_exist(tmp_path, capsys) -> None:
    """Rule: --data of a path that does not exist is refused in one line naming the path."""
    _expect_user_error(capsys, _train(tmp_path, data="/nonexistent.npz"), "/nonexistent.npz")


def test_weights_of_the_wrong_shape(tmp_path, capsys, features_npz) -> None:
    """Rule: --init-weights whose w_in has shape (10, 120) is refused in one line naming w_in and both
    shapes."""
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad_weights.npz"
    np.savez(bad, w_in=rng.standard_normal((10, 120)).astype(np.float32),
             w_rec=rng.standard_normal((120, 120)).astype(np.float32),
             w_out=rng.standard_normal((120, 12)).astype(np.float32))
    _expect_user_error(capsys, _train(tmp_path, "--init-weights", str(bad), data=features_npz),
                       "w_in", "(10, 120)", "(80, 120)")


def test_weights_file_missing(tmp_path, capsys, features_npz) -> None:
    """Rule: --init-weights of a file that does not exist is refused in one line naming the file."""
    missing = tmp_path / "none.npz"
    _expect_user_error(capsys, _train(tmp_path, "--init-weights", str(missing), data=features_npz), str(missing))


def test_emulator_with_batch_size_4(tmp_path, capsys, features_npz) -> None:
    """Rule: --target emulator --batch-size 4 is refused (the chip learns one sample at a time) in one
    line naming the batch size."""
    _expect_user_error(capsys, _train(tmp_path, "--target", "emulator", "--batch-size", "4", data=features_npz),
                       "batch size", "4")


def test_resume_from_a_weights_file(tmp_path, capsys, features_npz, weights_npz) -> None:
    """Rule: --resume of a plain weights file (no Adam state, no position) is refused in one line that
    says it is not a checkpoint."""
    _expect_user_error(capsys, _train(tmp_path, "--resume", str(weights_npz), "--target", "golden",
                                      data=features_npz), "checkpoint")
