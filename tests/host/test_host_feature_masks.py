"""SpecAugment-style feature masks (s2eprop.host.data.feature_masks, train.freq_masks / time_masks): what a mask
zeroes, how wide masks are, and that the trainer masks every training batch reproducibly."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from s2eprop.host.cli.main import main
from s2eprop.host.mapping.resolve import config_from_dict
from s2eprop.host.data.feature_masks import FeatureMasks, mask_features
from s2eprop.host.errors import ConfigError
from s2eprop.host.reference.golden import GoldenModel

N_MELS, STEPS = 40, 100


def _runs(flags: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(np.nonzero(edges == -1)[0] - np.nonzero(edges == 1)[0])


def _ones(batch: int) -> np.ndarray:
    return np.ones((batch, STEPS, 2 * N_MELS), np.float32)


def test_frequency_masks_zero_a_band_in_both_its_columns_at_every_step() -> None:
    """Rule: a frequency mask zeroes mel band k in column k and in its delta column 40 + k, for all 100
    steps; 2 masks of up to 6 bands make at most 2 runs of zeroed bands, none longer than 12."""
    out = mask_features(_ones(500), FeatureMasks(freq_masks=2, freq_mask_max_bands=6), np.random.default_rng(1))
    assert out.dtype == np.float32 and out.shape == (500, STEPS, 2 * N_MELS)
    zero = out == 0
    assert np.array_equal(zero, np.broadcast_to(zero[:, :1, :], zero.shape))  # the same at every step
    assert np.array_equal(zero[:, 0, :N_MELS], zero[:, 0, N_MELS:])           # band and its delta
    for row in zero[:, 0, :N_MELS]:
        runs = _runs(row)
        assert len(runs) <= 2 and sum(runs) <= 12
    assert zero.any() and not zero.all()


def test_time_masks_zero_whole_steps() -> None:
    """Rule: a time mask zeroes all 80 columns of a run of steps; 3 masks of up to 10 steps make at most 3 runs
    and zero at most 30 steps."""
    out = mask_features(_ones(500), FeatureMasks(time_masks=3, time_mask_max_steps=10), np.random.default_rng(2))
    zero = out == 0
    assert np.array_equal(zero, np.broadcast_to(zero[:, :, :1], zero.shape))  # all columns of a step
    for row in zero[:, :, 0]:
        runs = _runs(row)
        assert len(runs) <= 3 and sum(runs) <= 30


def test_one_mask_has_a_uniform_width_and_reaches_both_edges() -> None:
    """Rule: one mask of up to 8 bands has a width uniform in 0..8 (9 values, each about 1/9 of 9,000 draws,
    within 4 standard errors) and can start at the first band and end at the last."""
    out = mask_features(_ones(9000), FeatureMasks(freq_masks=1, freq_mask_max_bands=8), np.random.default_rng(3))
    zero = out[:, 0, :N_MELS] == 0
    counts = np.bincount(zero.sum(axis=1), minlength=9)
    assert len(counts) == 9
    expected, se = 1000, np.sqrt(9000 * (1 / 9) * (8 / 9))
    assert np.all(np.abs(counts - expected) < 4 * se), counts
    assert zero[:, 0].any() and zero[:, -1].any()


def test_masking_keeps_every_other_value_and_leaves_the_input_alone() -> None:
    """Rule: unmasked values are the input's bits; the input array is not changed; the same generator seed gives
    the same masks and another seed others; no masks configured gives the input's values."""
    x = np.random.default_rng(4).standard_normal((16, STEPS, 2 * N_MELS)).astype(np.float32) + 5.0  # never 0
    before = x.copy()
    masks = FeatureMasks(2, 5, 2, 8)
    out = mask_features(x, masks, np.random.default_rng(5))
    assert np.array_equal(x, before)
    kept = out != 0
    assert np.array_equal(out[kept], x[kept]) and (~kept).any()
    assert np.array_equal(out, mask_features(x, masks, np.random.default_rng(5)))
    assert not np.array_equal(out, mask_features(x, masks, np.random.default_rng(6)))
    assert not FeatureMasks().active and not FeatureMasks(freq_masks=2).active
    assert np.array_equal(mask_features(x, FeatureMasks(), np.random.default_rng(5)), x)


def test_mask_settings_are_checked() -> None:
    """Rule: negative counts or widths, and masks wider than the bands or steps, are config errors naming the key."""
    with pytest.raises(ConfigError, match="train.time_masks must be >= 0, got -1"):
        config_from_dict({"train": {"time_masks": -1}})
    with pytest.raises(ConfigError, match="train.freq_mask_max_bands is 41, more than the 40 mel bands"):
        config_from_dict({"train": {"freq_masks": 1, "freq_mask_max_bands": 41}})
    with pytest.raises(ConfigError, match="train.time_mask_max_steps is 101, more than the 100 steps"):
        config_from_dict({"train": {"time_masks": 1, "time_mask_max_steps": 101}})
    with pytest.raises(ValueError, match=r"features must be \(batch, steps, 2 x mel bands\)"):
        mask_features(np.ones((2, 100, 81), np.float32), FeatureMasks(1, 2), np.random.default_rng(0))


def _masked_config(tmp_path: Path) -> Path:
    path = tmp_path / "masks.yaml"
    path.write_text("train:\n  shuffle: true\n  freq_masks: 2\n  freq_mask_max_bands: 8\n"
                    "  time_masks: 2\n  time_mask_max_steps: 20\n")
    return path


def _plain(tmp_path: Path) -> Path:
    path = tmp_path / "plain.yaml"
    path.write_text("train:\n  shuffle: true\n")
    return path


def _train(out: Path, features: Path, config: Path, *extra: str, epochs: int = 2) -> int:
    return main(["train", "--target", "golden", "--data", str(features), "--out", str(out), "--quiet",
                 "--config", str(config), "--epochs", str(epochs), *extra])


def test_the_trainer_masks_each_training_batch(monkeypatch, tmp_path, features_npz, weights_npz) -> None:
    """Rule: with masks configured, every training sample the model gets is its file sample with whole mel
    bands (both columns) and whole steps zeroed, masks differ between epochs, and the run's weights differ
    from an unmasked run's."""
    seen: list[tuple[int, np.ndarray]] = []
    original = GoldenModel.train_batch

    def recording(self, x, y):
        seen.extend((int(label), sample.copy()) for label, sample in zip(y, x))
        return original(self, x, y)

    monkeypatch.setattr(GoldenModel, "train_batch", recording)
    assert _train(tmp_path / "masked", features_npz, _masked_config(tmp_path), "--init-weights", str(weights_npz)) == 0
    monkeypatch.setattr(GoldenModel, "train_batch", original)
    with np.load(features_npz) as f:
        by_label = {int(label): x for label, x in zip(f["y"], f["x"])}
    assert len(seen) == 8
    masks_seen = {}
    for label, x in seen:
        zero = x == 0
        assert np.array_equal(x[~zero], by_label[label][~zero])
        steps = zero.all(axis=1)
        bands = zero[~steps][:, :N_MELS].all(axis=0) if (~steps).any() else np.zeros(N_MELS, bool)
        expected = steps[:, None] | np.concatenate([bands, bands])[None, :]
        assert np.array_equal(zero, expected)
        masks_seen.setdefault(label, []).append(zero)
    assert any(not np.array_equal(*pair) for pair in masks_seen.values())
    assert _train(tmp_path / "plain", features_npz, _plain(tmp_path),
                  "--init-weights", str(weights_npz)) == 0
    with np.load(tmp_path / "masked/weights.npz") as a, np.load(tmp_path / "plain/weights.npz") as b:
        assert not np.array_equal(a["w_in"], b["w_in"])


def test_masked_run_resumed_mid_epoch_gives_the_same_bits(interrupt_training, tmp_path, features_npz,
                                                          weights_npz) -> None:
    """Rule: the masks are a function of (seed, epoch, batch start), so a masked run interrupted during sample 7
    and resumed from its checkpoint after sample 6 ends with the uninterrupted run's weight bits."""
    config = _masked_config(tmp_path)
    assert _train(tmp_path / "full", features_npz, config, "--init-weights", str(weights_npz)) == 0
    restore = interrupt_training(GoldenModel, 7)
    assert _train(tmp_path / "part", features_npz, config, "--init-weights", str(weights_npz),
                  "--checkpoint-every", "2") == 130
    restore()
    assert _train(tmp_path / "resumed", features_npz, config, "--resume", str(tmp_path / "part/checkpoint.npz"),
                  "--checkpoint-every", "2") == 0
    with np.load(tmp_path / "full/weights.npz") as a, np.load(tmp_path / "resumed/weights.npz") as b:
        for k in ("w_in", "w_rec", "w_out"):
            assert np.array_equal(a[k].view(np.uint32), b[k].view(np.uint32)), k


def test_a_checkpoint_from_before_the_mask_settings_resumes(tmp_path, features_npz, weights_npz) -> None:
    """Rule: a checkpoint whose stored config lacks the mask settings (made before they existed) resumes
    under a config that leaves them at their defaults, and is refused under one that sets them."""
    plain = _plain(tmp_path)
    assert _train(tmp_path / "old", features_npz, plain, "--init-weights", str(weights_npz)) == 0
    ckpt = tmp_path / "old/checkpoint.npz"
    with np.load(ckpt, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    config = json.loads(str(arrays["config"]))
    for key in ("freq_masks", "freq_mask_max_bands", "time_masks", "time_mask_max_steps"):
        del config["train"][key]
    arrays["config"] = np.array(json.dumps(config))
    np.savez(ckpt, **arrays)
    assert _train(tmp_path / "resumed", features_npz, plain, "--resume", str(ckpt), epochs=3) == 0
    assert _train(tmp_path / "refused", features_npz, _masked_config(tmp_path), "--resume", str(ckpt),
                  epochs=3) != 0
