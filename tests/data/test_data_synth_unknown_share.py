"""Built-in spoken keyword set: the `unknown_share` option (a larger share of "unknown" training clips)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from s2eprop.host.data.dataset import KWS_LABELS
from s2eprop.host.data.synth import SynthOptions, generate_synth, split_labels
from s2eprop.host.errors import DataError

needs_synths = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("flite") is None,
                                  reason="espeak-ng or flite not installed")
UNKNOWN = KWS_LABELS.index("unknown")


@pytest.mark.parametrize("n, share", [(8000, 0.25), (100, 3 / 14), (37, 0.5), (12, 0.01)])
def test_unknown_share_counts(n, share):
    """round(share x n) unknown labels; the other 11 classes balanced over the rest (differ by <= 1)."""
    counts = np.bincount(split_labels(n, 0, "train", share), minlength=12)
    assert counts.sum() == n and counts[UNKNOWN] == round(share * n)
    others = np.delete(counts, UNKNOWN)
    assert others.max() - others.min() <= 1


def test_no_share_is_the_balanced_order():
    """unknown_share None gives exactly the balanced labels (the same set as before the option)."""
    np.testing.assert_array_equal(split_labels(500, 3, "train", None), split_labels(500, 3, "train"))
    shared = split_labels(500, 3, "train", 0.25)
    assert not np.array_equal(shared, np.arange(500) % 12)


def test_unknown_share_is_checked():
    """The share must be null or a number strictly between 0 and 1."""
    for bad in (0, 1, 1.5, -0.1, True, "0.25"):
        with pytest.raises(DataError, match="unknown_share"):
            SynthOptions.from_mapping({"unknown_share": bad})
    assert SynthOptions.from_mapping({"unknown_share": 0.25}).unknown_share == 0.25
    assert SynthOptions.from_mapping({"unknown_share": None}).unknown_share is None


def test_unknown_share_is_in_the_cache_key_only_when_set():
    """A share changes the cache key; null keeps the key the set had before the option existed."""
    assert "unknown_share" not in SynthOptions(unknown_share=None).cache_spec()
    assert SynthOptions(unknown_share=0.25).cache_spec()["unknown_share"] == 0.25


@needs_synths
def test_unknown_share_changes_training_split_only():
    """The share applies to the training labels; the test split (labels and clips) is unchanged and balanced."""
    base = {"n_train": 24, "n_test": 12, "workers": 1}
    shared = generate_synth(dict(base, unknown_share=0.5), progress=False)
    balanced = generate_synth(dict(base, unknown_share=None), progress=False)
    assert np.bincount(shared["y"], minlength=12)[UNKNOWN] == 12
    assert shared["y"].tolist() == [KWS_LABELS.index(r["label"]) for r in shared["recipes"] if r["split"] == "train"]
    np.testing.assert_array_equal(shared["y_test"], balanced["y_test"])
    np.testing.assert_array_equal(shared["x_test"], balanced["x_test"])
    assert np.bincount(shared["y_test"], minlength=12).tolist() == [1] * 12


@needs_synths
def test_data_synth_command_takes_the_share(tmp_path):
    """`s2eprop data synth --unknown-share 0.5` writes a training split that is half 'unknown'; a share
    outside (0, 1) is refused naming the option."""
    from s2eprop.host.cli.main import main
    from s2eprop.host.data.dataset import load_npz_dataset

    out = tmp_path / "o"
    assert main(["data", "synth", "--out", str(out), "--n-train", "12", "--n-test", "0", "--workers", "1",
                 "--unknown-share", "0.5", "--cache-dir", str(tmp_path / "cache")]) == 0
    ds = load_npz_dataset(out / "synth_kws.npz")
    assert int(np.sum(ds.y_train == UNKNOWN)) == 6
    assert main(["data", "synth", "--n-train", "12", "--unknown-share", "1.5"]) == 2
