"""The learning curve: chip and golden model from the same weights on one figure, per-epoch records."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from s2eprop.host.config import ExperimentConfig
from s2eprop.host.data.dataset import Dataset
from s2eprop.host.errors import HostError
from s2eprop.host.reference.golden import GoldenModel
from s2eprop.host.studies import learning_curve
from s2eprop.host.weights import init_weights


def _tiny() -> Dataset:
    rng = np.random.default_rng(0)
    labels = tuple(f"c{i}" for i in range(12))
    return Dataset((3 * rng.standard_normal((3, 100, 80))).astype(np.float32), rng.integers(0, 12, 3), labels,
                   (3 * rng.standard_normal((4, 100, 80))).astype(np.float32), rng.integers(0, 12, 4), name="tiny")


def test_chip_and_golden_curves(tmp_path: Path) -> None:
    """Two epochs of three samples on both targets: same accuracy (the chip learns the golden model's
    weights within 1e-6), result.json and curve.png written."""
    r = learning_curve.run(tmp_path, epochs=2, max_samples=3, data=_tiny())
    assert [row["epoch"] for row in r["curves"]["emulator"]] == [1, 2]
    for e, g in zip(r["curves"]["emulator"], r["curves"]["golden"]):
        assert e["test_accuracy"] == g["test_accuracy"]
        assert e["test_loss"] == pytest.approx(g["test_loss"], abs=1e-4)
        assert e["train_loss"] == pytest.approx(g["train_loss"], abs=1e-4)
    assert r["test_accuracy_emulator_minus_golden"] == {"epoch_1": 0.0, "epoch_2": 0.0}
    d = _tiny()  # the last test point, by hand: the golden model trained the same way, run on the test split
    cfg = ExperimentConfig()
    model = GoldenModel(cfg.network, cfg.train, init_weights(cfg.network, cfg.train.seed, d.labels))
    for epoch in range(2):
        model.start_epoch(epoch)
        for i in range(3):
            model.train_batch(d.x_train[i:i + 1], d.y_train[i:i + 1])
    out = model.forward(d.x_test, d.y_test)
    assert r["curves"]["golden"][-1]["test_accuracy"] == float(np.mean(out.pred == d.y_test))
    assert r["curves"]["golden"][-1]["test_loss"] == pytest.approx(float(np.mean(out.loss)), rel=1e-6)
    assert json.loads((tmp_path / "result.json").read_text())["study"] == "curve"
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_refuses_a_dataset_without_test_split(tmp_path: Path) -> None:
    d = _tiny()
    with pytest.raises(HostError, match="no test split"):
        learning_curve.run(tmp_path, epochs=1, max_samples=1,
                           data=Dataset(d.x_train, d.y_train, d.labels, name="no-test"))
