"""Spike input over UDP: a board fed spike slots through the streamed SDRAM ring learns the bits the
in-process chip learns, written a whole sample ahead or a few ticks ahead of its clock."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from s2eprop.host.config import ExperimentConfig, InputConfig
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport.udp import UdpTransport
from s2eprop.host.weights import init_weights


@pytest.mark.parametrize("input_mode", ["prefetch", "realtime"])
def test_spike_input_over_udp_gives_the_same_bits(serve, input_mode) -> None:
    """Rule: 2 spike-input samples over UDP give the in-process chip's predictions, losses and weights
    bit for bit, with nothing lost or retransmitted on loopback."""
    base = ExperimentConfig()
    cfg = dataclasses.replace(base, input=InputConfig(kind="spikes", encoder="none"),
                              train=dataclasses.replace(base.train, input_mode=input_mode,
                                                        input_lookahead_ticks=3)).validate()
    w0 = init_weights(cfg.network, seed=3)
    w0 = dataclasses.replace(w0, w_in=(6 * w0.w_in).astype(np.float32))
    rng = np.random.default_rng(9)
    x = (rng.random((2, 100, 80)) < 0.2).astype(np.float32)
    y = rng.integers(0, 12, 2)
    over_udp = BoardTrainer(cfg, w0, transport=UdpTransport(serve().target))
    local = BoardTrainer(cfg, w0)
    for i in range(2):
        a, b = over_udp.train_batch(x[i], y[i:i + 1]), local.train_batch(x[i], y[i:i + 1])
        assert a.pred[0] == b.pred[0] and a.loss[0] == b.loss[0] and a.spikes[0] == b.spikes[0] > 0
    for k in ("w_in", "w_rec", "w_out"):
        assert np.array_equal(getattr(over_udp.weights, k).view(np.uint32), getattr(local.weights, k).view(np.uint32))
    assert not any(over_udp.provenance().values())
    over_udp.close()
