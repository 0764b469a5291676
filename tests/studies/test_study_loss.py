"""The loss study: one epoch per spike-loss rate on the functional chip (chip.faults), test accuracy per rate."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from s2eprop.host.data.dataset import Dataset
from s2eprop.host.studies import loss_rate


def _tiny() -> Dataset:
    rng = np.random.default_rng(0)
    labels = tuple(f"c{i}" for i in range(12))
    return Dataset((3 * rng.standard_normal((3, 100, 80))).astype(np.float32), rng.integers(0, 12, 3), labels,
                   (3 * rng.standard_normal((4, 100, 80))).astype(np.float32), rng.integers(0, 12, 4), name="tiny")


def test_each_rate_drops_its_share_of_spike_packets_and_counts_them(tmp_path: Path) -> None:
    """Rule: at rate 0 nothing is dropped or counted; at rate 0.3 about 30 % of the spike packets sent in
    training are dropped (binomial: within 5 standard deviations) and the cores count spikes_missing; the
    runs go on (on_loss: count); result.json and loss.png are written."""
    r = loss_rate.run(tmp_path, rates=(0.0, 0.3), data=_tiny())
    clean, lossy = r["rows"]
    assert clean["spike_packets_dropped_training"] == 0 and clean["losses_counted"] == {}
    n, k = lossy["spike_packets_sent_training"], lossy["spike_packets_dropped_training"]
    assert n > 100 and abs(k - 0.3 * n) < 5 * np.sqrt(n * 0.3 * 0.7), (k, n)
    assert lossy["losses_counted"].get("spikes_missing", 0) > 0, lossy["losses_counted"]
    assert json.loads((tmp_path / "result.json").read_text())["study"] == "loss"
    assert (tmp_path / "loss.png").stat().st_size > 1000
