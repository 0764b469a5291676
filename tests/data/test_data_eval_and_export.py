"""Evaluation and export take what a user has: the official GSC test set is evaluated (not refused), a
WAV holding NaN is named, and a bad export path is refused before any feature is computed."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from s2eprop.host.cli.main import main
from s2eprop.host.config import NetworkConfig
from s2eprop.host.data.gsc import load_gsc_official_test
from s2eprop.host.reference.golden import GoldenModel
from s2eprop.host.config import TrainConfig
from s2eprop.host.weights import init_weights


def _one_line(capsys, *needles: str) -> None:
    """The command's error is one line (progress bars before it aside), naming every needle."""
    err = capsys.readouterr().err.strip()
    errors = [ln for ln in err.splitlines() if "error" in ln]
    assert "Traceback" not in err and len(errors) == 1 and errors[0].startswith("s2eprop data: error: "), err
    for n in needles:
        assert n in errors[0], (n, err)


def test_eval_on_the_official_test_set(tmp_path, capsys, monkeypatch, make_official_test_tree) -> None:
    """Rule: `eval --data FOLDER` on the official test-set layout (_silence_, _unknown_) evaluates its 7
    clips, with the accuracy the golden model's forward pass gives on the same features."""
    monkeypatch.setenv("S2EPROP_CACHE", str(tmp_path / "cache"))
    root = make_official_test_tree(tmp_path / "test_set")
    w = init_weights(NetworkConfig(), seed=4)
    wfile = tmp_path / "w.npz"
    np.savez(wfile, w_in=w.w_in, w_rec=w.w_rec, w_out=w.w_out)
    assert main(["eval", "--target", "golden", "--weights", str(wfile), "--data", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    m = re.search(r"test split on \S+: accuracy ([\d.]+) % over (\d+) samples", out)
    assert m and int(m.group(2)) == 7, out
    x, y = load_gsc_official_test(root, cache_dir=tmp_path / "c2", progress=False)
    pred = GoldenModel(NetworkConfig(), TrainConfig(), w).forward(x, y).pred
    assert float(m.group(1)) == pytest.approx(100 * float(np.mean(pred == y)), abs=0.005)


def test_wav_with_nan_is_named(tmp_path, capsys, gsc_root) -> None:
    """Rule: a float WAV holding a NaN sample is refused naming the file and the sample (librosa would
    raise its own error)."""
    root = tmp_path / "gsc"
    shutil.copytree(gsc_root, root)
    wav = sorted((root / "yes").glob("*.wav"))[-1]
    wave = np.full(8000, 0.1, np.float32)
    wave[123] = np.nan
    sf.write(wav, wave, 16000, subtype="FLOAT")
    assert main(["data", "export", "--data", str(root), "--out", str(tmp_path / "f.npz"),
                 "--cache-dir", str(tmp_path / "cache")]) == 2
    _one_line(capsys, str(wav), "NaN", "sample 123")


@pytest.mark.parametrize("where", ["folder", "under_file"])
def test_export_to_a_bad_path(tmp_path, capsys, gsc_root, where) -> None:
    """Rule: `data export --out` naming an existing folder, or a path under a file, exits 2 with one
    line before any feature is computed (no cache is written)."""
    if where == "folder":
        out = tmp_path / "f.npz"
        out.mkdir()
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "f.npz"
    cache = tmp_path / "cache"
    assert main(["data", "export", "--data", str(gsc_root), "--out", str(out), "--cache-dir", str(cache)]) == 2
    _one_line(capsys, str(out))
    assert not cache.exists()
