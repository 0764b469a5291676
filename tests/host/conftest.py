"""Fixtures of the host tests: a small features .npz in the CLI's format, matching initial weights, and a
Ctrl-C in the middle of training."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2eprop.host.config import NetworkConfig
from s2eprop.host.weights import init_weights


@pytest.fixture(scope="session")
def features_npz(tmp_path_factory) -> Path:
    """4 training samples (inputs 3 * N(0, 1), so that the network spikes), labels 0..11, no test split."""
    rng = np.random.default_rng(2024)
    path = tmp_path_factory.mktemp("data") / "features.npz"
    np.savez(path, x=(3 * rng.standard_normal((4, 100, 80))).astype(np.float32),
             y=np.array([3, 11, 0, 7], dtype=np.int64))
    return path


@pytest.fixture(scope="session")
def weights_npz(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "init.npz"
    w = init_weights(NetworkConfig(), seed=3)
    np.savez(path, w_in=w.w_in, w_rec=w.w_rec, w_out=w.w_out)
    return path



@pytest.fixture
def interrupt_training(monkeypatch):
    """arm(trainer_class, call_no): make `trainer_class.train_batch` raise KeyboardInterrupt (a Ctrl-C) on
    its call number `call_no`; arm returns the function that restores it."""
    def arm(trainer_class: type, call_no: int):
        original = trainer_class.train_batch
        calls = {"n": 0}

        def interrupted(self, x, y):
            calls["n"] += 1
            if calls["n"] == call_no:
                raise KeyboardInterrupt
            return original(self, x, y)

        monkeypatch.setattr(trainer_class, "train_batch", interrupted)
        return lambda: monkeypatch.setattr(trainer_class, "train_batch", original)

    return arm
