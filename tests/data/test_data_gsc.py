"""GSC loader on a small tree in the real folder layout."""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

import s2eprop.host.data.gsc as gsc
from s2eprop.host.config import DatasetConfig
from s2eprop.host.data.dataset import KWS_LABELS
from s2eprop.host.data.gsc import (GscOptions, gsc_split_clips, load_gsc_official_test, load_gsc_split, silence_crops, format_balance)
from s2eprop.host.data.loader import load_dataset
from s2eprop.host.errors import DataError

N_WORDS = 12  # conftest: the 10 keywords + bed, cat


def _rel(clip):
    return f"{clip.path.parent.name}/{clip.path.name}"


def test_split_membership_follows_list_files(gsc_root):
    """testing_list -> testing, validation_list -> validation, every other word WAV -> train."""
    clips = gsc_split_clips(gsc_root)
    listed_test = set((gsc_root / "testing_list.txt").read_text().split())
    listed_val = set((gsc_root / "validation_list.txt").read_text().split())
    words = {s: {_rel(c) for c in clips[s] if c.offset is None} for s in clips}
    assert words["testing"] == listed_test
    assert words["validation"] == listed_val
    assert len(words["train"]) == N_WORDS and not words["train"] & (listed_test | listed_val)
    assert all("_background_noise_" not in w for s in words for w in words[s])


def test_labels_follow_kws_order(gsc_root):
    """Keyword folders get their KWS_LABELS index, other words 'unknown', noise crops 'silence'."""
    for split, clips in gsc_split_clips(gsc_root).items():
        for c in clips:
            if c.offset is not None:
                assert c.label == KWS_LABELS.index("silence")
            elif c.path.parent.name in KWS_LABELS[:10]:
                assert KWS_LABELS[c.label] == c.path.parent.name
            else:
                assert KWS_LABELS[c.label] == "unknown"
        # ceil(0.1 x 12 word clips) = 2 silence clips per split
        assert sum(c.offset is not None for c in clips) == 2


def test_silence_crops_reproducible_and_split_disjoint(gsc_root):
    """Same seed -> same crops; another seed -> others; each split crops its own stretch of noise."""
    noise = sorted((gsc_root / "_background_noise_").glob("*.wav"))
    a = silence_crops(noise, "train", 20, seed=3)
    assert a == silence_crops(noise, "train", 20, seed=3)
    assert a != silence_crops(noise, "train", 20, seed=4)
    n = 12 * 16000
    assert all(c.offset + 16000 <= 0.8 * n for c in a)
    assert all(0.8 * n <= c.offset and c.offset + 16000 <= 0.9 * n for c in silence_crops(noise, "validation", 20, 3))
    assert all(0.9 * n <= c.offset and c.offset + 16000 <= n for c in silence_crops(noise, "testing", 20, 3))


def test_load_dataset_shapes_labels_and_balance(gsc_root, cache_dir, capsys):
    """load_dataset: float32 (N,100,80), int64 labels, all 12 classes in train, testing split as x_test."""
    with pytest.warns(UserWarning, match="cat/.*sample rate 8000 Hz"):
        ds = load_dataset(DatasetConfig(kind="gsc", path=str(gsc_root)), cache_dir=cache_dir, progress=True)
    assert ds.labels == KWS_LABELS
    assert ds.x_train.shape == (14, 100, 80) and ds.x_train.dtype == np.float32
    assert ds.y_train.dtype == np.int64 and sorted(set(ds.y_train.tolist())) == list(range(12))
    assert ds.x_test.shape == (14, 100, 80)
    assert np.bincount(ds.y_test, minlength=12).tolist() == [1] * 10 + [2, 2]
    err = capsys.readouterr().err
    assert "train: 14 clips" in err and "silence 2 (14.3%)" in err


def test_second_load_hits_the_cache(gsc_root, cache_dir, monkeypatch):
    """The second run reads the memory-mapped cache and computes no features."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = load_dataset(DatasetConfig(kind="gsc", path=str(gsc_root)), cache_dir=cache_dir, progress=False)
    monkeypatch.setattr(gsc, "features_from_waves", lambda *a, **k: pytest.fail("recomputed"))
    second = load_dataset(DatasetConfig(kind="gsc", path=str(gsc_root)), cache_dir=cache_dir, progress=False)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_test, second.y_test)
    assert isinstance(second.x_train, np.memmap)


def test_silence_features_reproducible_across_caches(gsc_root, tmp_path):
    """Two fresh runs (separate caches) give identical features, silence crops included."""
    runs = []
    for k in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runs.append(load_gsc_split(gsc_root, "train", cache_dir=tmp_path / f"c{k}", progress=False))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_validation_split_on_request(gsc_root, cache_dir):
    """test_split: validation puts the validation list in x_test; load_gsc_split gives any split."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dataset(DatasetConfig(kind="gsc", path=str(gsc_root), options={"test_split": "validation"}),
                          cache_dir=cache_dir, progress=False)
        x_val, y_val = load_gsc_split(gsc_root, "validation", cache_dir=cache_dir, progress=False)
    np.testing.assert_array_equal(ds.x_test, x_val)
    np.testing.assert_array_equal(ds.y_test, y_val)


def test_options_subsample_and_unknown_fraction(gsc_root, cache_dir):
    """max_train draws a seeded subset; unknown_fraction 0 drops unknown words; silence_fraction 0 drops silence."""
    clips = gsc_split_clips(gsc_root, {"unknown_fraction": 0.0, "silence_fraction": 0.0})
    assert all(c.label < 10 for s in clips.values() for c in s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dataset(DatasetConfig(kind="gsc", path=str(gsc_root), options={"max_train": 5, "max_test": 3}),
                          cache_dir=cache_dir, progress=False)
    assert len(ds.x_train) == 5 and len(ds.x_test) == 3
    with pytest.raises(DataError, match="unknown gsc dataset option.*bogus"):
        GscOptions.from_mapping({"bogus": 1})


def test_not_a_gsc_folder(tmp_path):
    """A file, an empty folder and a folder of unrelated WAVs are rejected with the expected layout."""
    with pytest.raises(DataError, match="not a folder"):
        gsc_split_clips(tmp_path / "nothing")
    with pytest.raises(DataError, match="not a Google Speech Commands folder.*testing_list.txt"):
        gsc_split_clips(tmp_path)


def test_missing_list_file(gsc_root, tmp_path):
    """A GSC-like tree without testing_list.txt names the missing file."""
    root = tmp_path / "copy"
    shutil.copytree(gsc_root, root)
    (root / "testing_list.txt").unlink()
    with pytest.raises(DataError, match="lacks the list file testing_list.txt"):
        gsc_split_clips(root)


def test_unreadable_wav_is_named(gsc_root, tmp_path):
    """A corrupt WAV gives a DataError with its file name."""
    root = tmp_path / "copy"
    shutil.copytree(gsc_root, root)
    bad = next((root / "go").glob("*_2.wav"))
    bad.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(DataError, match=f"cannot read WAV .*{bad.name}"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_gsc_split(root, "train", cache_dir=tmp_path / "cache", progress=False)


def test_official_test_layout(tmp_path, make_gsc_tree, make_official_test_tree):
    """_silence_/_unknown_ folders: load_dataset refuses it as training data, the test loader reads it."""
    root = make_official_test_tree(tmp_path / "test_set")
    with pytest.raises(DataError, match="official GSC test set.*test set"):
        load_dataset(DatasetConfig(kind="gsc", path=str(root)), cache_dir=tmp_path / "c", progress=False)
    x, y = load_gsc_official_test(root, cache_dir=tmp_path / "c", progress=False)
    assert x.shape == (7, 100, 80) and x.dtype == np.float32
    names = sorted(KWS_LABELS[i] for i in y)
    assert names == sorted(["yes", "yes", "go", "unknown", "unknown", "silence", "silence"])
    with pytest.raises(DataError, match="not the official GSC test set"):
        load_gsc_official_test(make_gsc_tree(tmp_path / "train_tree"), cache_dir=tmp_path / "c", progress=False)


def test_format_balance_lists_every_class():
    """The balance line names all 12 classes in KWS order with counts and shares."""
    line = format_balance("x", np.array([0, 0, 11, 10]))
    assert line.startswith("x: 4 clips; yes 2 (50.0%), no 0 (0.0%)") and line.endswith("silence 1 (25.0%)")
