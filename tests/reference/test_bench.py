"""Golden-model benchmark: what its result accounts for (timed by pytest-benchmark when enabled)."""
from __future__ import annotations

import dataclasses

import numpy as np

from s2eprop.host.cli.bench import bench_golden
from s2eprop.host.config import NetworkConfig, TrainConfig
from s2eprop.host.reference.bptt import BPTTModel
from s2eprop.host.reference.golden import GoldenModel
from s2eprop.host.weights import init_weights


def test_bench_golden(benchmark) -> None:
    """Rule: bench_golden times n_samples rounded up to whole batches (3 samples: 3 at batch 1, 4 at batch
    2), after an untimed warm-up batch, and reports the mean spike count of the timed samples, which
    equals an independent count by BPTTModel's forward pass on the weights before each timed batch."""
    net = dataclasses.replace(NetworkConfig(), n_rec=50, n_steps=40)
    seed, n = 1, 3
    result = benchmark(bench_golden, batch_sizes=(1, 2), n_samples=n, seed=seed, net=net)
    assert set(result["golden_ms_per_sample"]) == {"1", "2"}
    assert all(ms > 0 for ms in result["golden_ms_per_sample"].values())
    assert result["network"] == "80-50-12" and result["n_steps"] == 40 and result["n_samples"] == 3
    assert result["golden_samples_timed"] == {"1": 3, "2": 4}

    # the documented inputs (3 * N(0, 1), random labels from the same seeded generator), batches wrapping
    # around the data: batch 1 -> [0], [1], [2]; batch 2 -> [0, 1], [2, 0]; each after a warm-up batch
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((n, net.n_steps, net.n_in))).astype(np.float32)
    y = rng.integers(0, net.n_out, n)
    counts: list[int] = []
    for batch, batches in ((1, [[0], [1], [2]]), (2, [[0, 1], [2, 0]])):
        train = dataclasses.replace(TrainConfig(), batch_size=batch, seed=seed)
        model = GoldenModel(net, train, init_weights(net, seed))
        model.train_batch(x[batches[0]], y[batches[0]])  # the warm-up
        for idx in batches:
            # BPTT's forward pass (a second implementation of the ALIF network) on the current weights
            counts.extend(BPTTModel(net, train, model.weights.copy()).train_batch(x[idx], y[idx]).spikes.tolist())
            model.train_batch(x[idx], y[idx])
    assert len(counts) == 7 and min(counts) > 0, counts
    assert result["mean_spikes_per_sample"] == sum(counts) / 7
