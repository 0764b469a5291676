"""What several board tests train on: the paper's config with losses counted (a timed or lossy run goes
on), and seeded samples of 3 N(0, 1) frames, so that the network spikes."""
from __future__ import annotations

import dataclasses

import numpy as np

from s2eprop.host.config import ExperimentConfig


def counting_config() -> ExperimentConfig:
    return dataclasses.replace(ExperimentConfig(), train=dataclasses.replace(ExperimentConfig().train,
                                                                            on_loss="count")).validate()


def random_samples(n: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (3 * rng.standard_normal((n, 100, 80))).astype(np.float32), rng.integers(0, 12, n)
