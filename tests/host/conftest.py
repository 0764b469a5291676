"""Fixtures of the host tests: a small features .npz in the CLI's format and matching initial weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from host.config import NetworkConfig
from host.weights import init_weights


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
