"""Host layer: several copies of one network side by side on one chip, trained at once.

The honest full-chip case: an all-to-all 1,520-neuron network does not fit 152 cores' SRAM, but 12
copies of the paper's 12-core network fill 144 cores, each a run of a sweep (seeds, learning rates)
with its own cores, routing keys (the copy in the index's high byte, host/mapping/routing.py), SDRAM input
ring, weights and results. Every sample step runs one sample on every copy on one chip clock
(host/streamer.run_samples); each copy learns exactly what it would learn alone.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from s2eprop.host.config import ExperimentConfig
from s2eprop.host.errors import ConfigError
from s2eprop.host.mapping.partition import cores_needed
from s2eprop.host.reference.golden import BatchResult
from s2eprop.host.session.runtime import BoardTrainer, SampleResults
from s2eprop.host.session.streamer import run_samples
from s2eprop.host.transport import Transport, open_transport
from s2eprop.host.weights import Weights


class ChipCopies:
    def __init__(self, cfgs: Sequence[ExperimentConfig], weights: Sequence[Weights], transport: Transport | None = None,
                 ) -> None:
        if not cfgs or len(cfgs) != len(weights):
            raise ConfigError(f"copies need one config and one set of weights each, got {len(cfgs)} and {len(weights)}")
        first = cfgs[0]
        for i, c in enumerate(cfgs):
            if (c.network, c.partition, c.train.input_mode, c.chip) != (first.network, first.partition,
                                                                        first.train.input_mode, first.chip):
                raise ConfigError(f"copy {i} differs from copy 0 in network, partition, input mode or chip: copies "
                                  f"on one chip share those (they may differ in seed, learning rate and the like)")
        per_copy = cores_needed(first.network, first.partition)
        n = len(cfgs)
        self.transport = transport or open_transport("emulator", per_copy * n, chip=first.chip)
        self.trainers = [BoardTrainer(c, w, transport=self.transport, copy=i, copies=n)
                         for i, (c, w) in enumerate(zip(cfgs, weights))]
        self.transport.load_routes([r for t in self.trainers for r in t.routes])

    def train_step(self, x: Sequence[np.ndarray], y: Sequence[int]) -> list[BatchResult]:
        """One training sample on every copy at once: x[i] (n_steps, n_in), y[i] its label."""
        return self._step(x, y, train=True)

    def forward_step(self, x: Sequence[np.ndarray]) -> list[BatchResult]:
        return self._step(x, None, train=False)

    def _step(self, x: Sequence[np.ndarray], y: Sequence[int] | None, train: bool) -> list[BatchResult]:
        if len(x) != len(self.trainers) or (y is not None and len(y) != len(x)):
            raise ConfigError(f"one sample per copy: {len(self.trainers)} copies, got {len(x)} samples")
        items, accs = [], []
        for i, t in enumerate(self.trainers):
            xi, labels = t.check_batch(x[i][None], None if y is None else np.array([y[i]]), train)
            items.append((t.next_sample_id(), int(labels[0]), train, xi[0]))
            accs.append(SampleResults(1, t.net.n_out, t._l2_term if train else 0.0))
        outcomes = run_samples([t.streamer for t in self.trainers], items)
        for t, o, acc in zip(self.trainers, outcomes, accs):
            t.account(o, train, acc, 0)
        return [acc.result(labels_given=y is not None) for acc in accs]

    def close(self) -> None:
        for t in self.trainers:
            for img in t.images:
                self.transport.stop(img.plan.core_id)
        self.transport.close()
