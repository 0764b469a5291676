"""`--data` parsing, load_dataset dispatch and the `data synth` / `data export` commands."""
from __future__ import annotations

import argparse
import json
import shutil
import warnings

import numpy as np
import pytest

from s2eprop.host.config import DatasetConfig
from s2eprop.host.cli.data import add_data_commands
from s2eprop.host.data.dataset import KWS_LABELS, Dataset, load_npz_dataset
from s2eprop.host.data.loader import dataset_config_from_arg, load_dataset
from s2eprop.host.errors import DataError


def _parse(argv):
    parser = argparse.ArgumentParser(prog="s2eprop")
    add_data_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_data_arg_forms(tmp_path):
    """Folder -> gsc, *.npz -> npz, 'synth' -> synth; options pass through."""
    npz = tmp_path / "f.npz"
    npz.write_bytes(b"")
    assert dataset_config_from_arg(str(tmp_path)) == DatasetConfig(kind="gsc", path=str(tmp_path))
    assert dataset_config_from_arg(str(npz)).kind == "npz"
    cfg = dataset_config_from_arg("synth", {"n_train": 12})
    assert cfg.kind == "synth" and cfg.path is None and cfg.options == {"n_train": 12}


@pytest.mark.parametrize("arg", ["missing_folder", "missing.npz", "notes.txt"])
def test_data_arg_errors_name_path_and_forms(tmp_path, arg):
    """A missing path or a file that is not .npz names the path and the three accepted forms."""
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=f"{arg}.*Google Speech Commands.*\\.npz.*'synth'"):
        dataset_config_from_arg(str(tmp_path / arg))


def test_load_dataset_npz_roundtrip(tmp_path):
    """kind npz loads a features file as written by Dataset.save_npz."""
    rng = np.random.default_rng(0)
    ds = Dataset(rng.standard_normal((5, 100, 80)).astype(np.float32), np.arange(5, dtype=np.int64), KWS_LABELS)
    ds.save_npz(tmp_path / "d.npz")
    back = load_dataset(DatasetConfig(kind="npz", path=str(tmp_path / "d.npz")))
    np.testing.assert_array_equal(back.x_train, ds.x_train)
    with pytest.raises(DataError, match="takes no options"):
        load_dataset(DatasetConfig(kind="npz", path=str(tmp_path / "d.npz"), options={"seed": 1}))


def test_export_gsc_folder(gsc_root, tmp_path, capsys):
    """data export --data GSC --out F.npz writes x/y/labels/x_test/y_test that load back."""
    args = _parse(["data", "export", "--data", str(gsc_root), "--out", str(tmp_path / "g.npz"),
                   "--cache-dir", str(tmp_path / "c")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert args.func(args) == 0
    ds = load_npz_dataset(tmp_path / "g.npz")
    assert ds.labels == KWS_LABELS and ds.x_train.shape == (14, 100, 80) and ds.x_test.shape == (14, 100, 80)
    assert "silence 2" in capsys.readouterr().out


def test_export_official_test_set(tmp_path, make_official_test_tree):
    """The official test layout exports as x_test/y_test with an empty train split."""
    root = make_official_test_tree(tmp_path / "test_set")
    args = _parse(["data", "export", "--data", str(root), "--out", str(tmp_path / "t.npz"),
                   "--cache-dir", str(tmp_path / "c")])
    assert args.func(args) == 0
    ds = load_npz_dataset(tmp_path / "t.npz")
    assert len(ds.y_train) == 0 and len(ds.y_test) == 7


def test_export_rejects_other_suffix(tmp_path):
    """--out must be a .npz file."""
    args = _parse(["data", "export", "--data", "synth", "--out", str(tmp_path / "f.csv")])
    with pytest.raises(DataError, match="must end in .npz"):
        args.func(args)


@pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("flite") is None,
                    reason="espeak-ng or flite not installed")
def test_data_synth_writes_npz_recipes_and_wavs(tmp_path, capsys):
    """data synth --out DIR --wav: features file, recipes and one WAV per clip; which synthesiser
    spoke how many words (24 training clips of seed 0: 2 silence, 2 words by flite)."""
    args = _parse(["data", "synth", "--out", str(tmp_path / "o"), "--n-train", "24", "--n-test", "12",
                   "--workers", "1", "--wav"])
    assert args.func(args) == 0
    ds = load_npz_dataset(tmp_path / "o" / "synth_kws.npz")
    assert ds.x_train.shape == (24, 100, 80) and ds.labels == KWS_LABELS
    recipes = json.loads((tmp_path / "o" / "recipes.json").read_text())
    assert len(recipes) == 36
    assert len(list((tmp_path / "o" / "wav").rglob("*.wav"))) == 36
    printed = capsys.readouterr().out
    assert "train: 24 clips" in printed
    assert sum(r.get("synth") == "flite" for r in recipes if r["split"] == "train") == 2
    assert "train words: espeak-ng 20 (91 %), flite 2 (9 %)" in printed
    assert "test words: espeak-ng 11 (100 %)" in printed


def test_subcommand_required():
    """`s2eprop data` alone is a usage error."""
    with pytest.raises(SystemExit):
        _parse(["data"])
