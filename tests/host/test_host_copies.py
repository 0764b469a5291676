"""Copies of the paper's network side by side on one chip: each learns what it learns alone."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from s2eprop.host.config import ChipConfig, ExperimentConfig
from s2eprop.host.session.copies import ChipCopies
from s2eprop.host.errors import ConfigError
from s2eprop.host.mapping.routing import routing_table
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.weights import init_weights


def _samples(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return (3 * rng.standard_normal((n, 100, 80))).astype(np.float32), rng.integers(0, 12, n)


@pytest.mark.parametrize("mode, threads", [("functional", 1), ("functional", 3), ("timed", 1), ("timed", 3)])
def test_each_copy_learns_what_it_learns_alone(mode, threads) -> None:
    """Rule: 3 copies (36 cores, past one 32-core word of a route's destinations) on 1 or 3 host threads (each
    run on them: a thread's cores straddle the word) learn the bits of each network alone on one thread."""
    base = ExperimentConfig()
    cfgs = [dataclasses.replace(base, train=dataclasses.replace(base.train, lr=lr, on_loss="count"),
                                chip=ChipConfig(mode=mode, threads=threads)).validate() for lr in (0.01, 0.003, 0.02)]
    weights = [init_weights(c.network, seed=s) for c, s in zip(cfgs, (1, 2, 3))]
    data = [_samples(2, seed=10 + i) for i in range(3)]
    chip = ChipCopies(cfgs, weights)
    if threads > 1:
        chip.transport.chip._chip.threads_forced = 1
    assert [t.plan.cores[0].core_id for t in chip.trainers] == [0, 12, 24]
    for k in range(2):
        res = chip.train_step([d[0][k] for d in data], [int(d[1][k]) for d in data])
        assert all(r.pred[0] >= 0 for r in res)
    for i, (cfg, w) in enumerate(zip(cfgs, weights)):
        alone = BoardTrainer(dataclasses.replace(cfg, chip=ChipConfig(threads=1)), w)
        for k in range(2):
            alone.train_batch(data[i][0][k], data[i][1][k:k + 1])
        got, want = chip.trainers[i].weights, alone.weights
        for name in ("w_in", "w_rec", "w_out"):
            assert np.array_equal(getattr(got, name).view(np.uint32), getattr(want, name).view(np.uint32)), \
                f"copy {i} ({mode}): {name} differs from the same network trained alone"
        assert not any(chip.trainers[i].provenance().values())


def test_copies_keep_their_packets_apart() -> None:
    cfg = ExperimentConfig()
    from s2eprop.host.mapping.partition import plan_partition

    tables = [routing_table(cfg.network, plan_partition(cfg.network, cfg.partition, i, 3)) for i in range(3)]
    for i, table in enumerate(tables):
        spike_key = table[0].key | 5  # neuron 5 of copy i, any tag
        for j, other in enumerate(tables):
            hit = [e for e in other if e.matches(spike_key | 0x00ab0000)]
            assert bool(hit) == (i == j)
    assert set(tables[1][0].cores) == set(range(12, 24))


def test_copies_beyond_the_chip_are_refused() -> None:
    cfg = ExperimentConfig()
    with pytest.raises(ConfigError, match="13 copies of 120 neurons at 10 per core need 156 cores"):
        ChipCopies([cfg] * 13, [init_weights(cfg.network, seed=0)] * 13)
