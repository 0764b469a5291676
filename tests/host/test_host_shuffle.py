"""train.shuffle: a new, seeded order of the training samples every epoch, that survives a resume."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import s2eprop.host.session.runtime
from s2eprop.host.cli.main import main
from s2eprop.host.config import ExperimentConfig, TrainConfig
from s2eprop.host.mapping.resolve import config_from_dict
from s2eprop.host.errors import ConfigError
from s2eprop.host.reference.golden import GoldenModel

EPOCHS = 3
LABELS = [3, 11, 0, 7]  # the labels of the 4 samples of features_npz: each names its sample


def _train(out: Path, features: Path, target: str, config: Path, *extra: str) -> int:
    return main(["train", "--target", target, "--data", str(features), "--out", str(out), "--quiet",
                 "--config", str(config), "--epochs", str(EPOCHS), *extra])


def _config(tmp_path: Path, shuffle: bool, seed: int = 0) -> Path:
    path = tmp_path / f"shuffle_{shuffle}_{seed}.yaml"
    path.write_text(f"train:\n  shuffle: {str(shuffle).lower()}\n  seed: {seed}\n")
    return path


def _orders(monkeypatch, tmp_path, features_npz, weights_npz, shuffle: bool, seed: int = 0) -> list[list[int]]:
    """The labels the trainer saw, epoch by epoch."""
    seen: list[int] = []
    original = GoldenModel.train_batch

    def recording(self, x, y):
        seen.extend(int(v) for v in y)
        return original(self, x, y)

    monkeypatch.setattr(GoldenModel, "train_batch", recording)
    out = tmp_path / f"run_{shuffle}_{seed}"
    assert _train(out, features_npz, "golden", _config(tmp_path, shuffle, seed), "--init-weights", str(weights_npz),
                  "--overwrite") == 0  # the same run twice in one folder
    monkeypatch.setattr(GoldenModel, "train_batch", original)
    return [seen[i:i + 4] for i in range(0, len(seen), 4)]


def test_shuffle_visits_every_sample_once_per_epoch_in_a_seeded_order(monkeypatch, tmp_path, features_npz,
                                                                     weights_npz) -> None:
    """Rule: without shuffle every epoch is the file's order; with it every epoch is a permutation of the
    samples, the epochs' orders are not all the same, the same seed gives the same orders and another
    seed other ones."""
    assert _orders(monkeypatch, tmp_path, features_npz, weights_npz, False) == [LABELS] * EPOCHS
    shuffled = _orders(monkeypatch, tmp_path, features_npz, weights_npz, True)
    assert all(sorted(epoch) == sorted(LABELS) for epoch in shuffled)
    assert len({tuple(epoch) for epoch in shuffled}) > 1
    assert _orders(monkeypatch, tmp_path, features_npz, weights_npz, True) == shuffled
    assert _orders(monkeypatch, tmp_path, features_npz, weights_npz, True, seed=1) != shuffled


@pytest.mark.parametrize("target", ["golden", "emulator"])
def test_shuffled_run_resumed_mid_epoch_gives_the_same_bits(target, interrupt_training, tmp_path, features_npz,
                                                            weights_npz) -> None:
    """Rule: a shuffled run interrupted during sample 7 and resumed from its checkpoint after sample 6 ends
    with the weight bits of the uninterrupted shuffled run (the order is a function of seed and epoch)."""
    config = _config(tmp_path, True)
    full = tmp_path / "full"
    assert _train(full, features_npz, target, config, "--init-weights", str(weights_npz)) == 0
    cls = GoldenModel if target == "golden" else s2eprop.host.session.runtime.BoardTrainer
    restore = interrupt_training(cls, 7)
    part = tmp_path / "part"
    assert _train(part, features_npz, target, config, "--init-weights", str(weights_npz),
                  "--checkpoint-every", "2") == 130
    restore()
    resumed = tmp_path / "resumed"
    assert _train(resumed, features_npz, target, config, "--resume", str(part / "checkpoint.npz"),
                  "--checkpoint-every", "2") == 0
    with np.load(full / "weights.npz") as a, np.load(resumed / "weights.npz") as b:
        for k in ("w_in", "w_rec", "w_out"):
            assert np.array_equal(a[k].view(np.uint32), b[k].view(np.uint32)), k


def test_shuffle_must_be_a_boolean() -> None:
    """Rule: train.shuffle is true or false, in YAML and when the dataclass is built in code."""
    with pytest.raises(ConfigError, match="train.shuffle must be true or false, got 'yes'"):
        config_from_dict({"train": {"shuffle": "yes"}})
    with pytest.raises(ConfigError, match="train.shuffle must be true or false, got 1"):
        ExperimentConfig(train=TrainConfig(shuffle=1)).validate()  # type: ignore[arg-type]
