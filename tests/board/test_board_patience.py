"""Patient, and cheap under loss: a lost datagram costs a retransmission timeout taken from the measured
round trips (RFC 6298), not a fixed quarter second, and the host waits out an outage of 5 s (its link
patience is 10 s) to end with the bits of a run that saw none."""
from __future__ import annotations

import time

import numpy as np
import pytest

from s2eprop.emulator.board import protocol as sdp
from s2eprop.host.errors import ConfigError
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport.udp import UdpTransport
from s2eprop.host.weights import init_weights

from board_data import counting_config, random_samples
from lossy_proxy import Proxy


def test_a_lost_request_costs_a_timeout_from_the_measured_round_trip(board) -> None:
    proxy = Proxy(board.server.address)
    try:
        t = UdpTransport(proxy.target)
        for _ in range(20):  # round trips measured
            t.poll()
        proxy.drop_next(sdp.CMD_POLL)
        t0 = time.perf_counter()
        t.poll()
        took = time.perf_counter() - t0
        assert proxy.dropped == 1 and t.link.retransmits >= 1
        assert took < 0.15, f"a lost POLL cost {took:.3f} s (a fixed timeout would cost 0.25 s)"
        t.close()
    finally:
        proxy.close()


def test_a_5_s_outage_is_waited_out_and_training_ends_with_the_same_bits(board) -> None:
    cfg = counting_config()
    w0 = init_weights(cfg.network, seed=3)
    x, y = random_samples(3)
    proxy = Proxy(board.server.address)
    try:
        over_udp, local = BoardTrainer(cfg, w0, transport=UdpTransport(proxy.target)), BoardTrainer(cfg, w0)
        for i in range(3):
            if i == 1:
                proxy.outage(5.0)
            a, b = over_udp.train_batch(x[i], y[i:i + 1]), local.train_batch(x[i], y[i:i + 1])
            assert a.loss[0] == b.loss[0]
        assert proxy.dropped > 0
        for k in ("w_in", "w_rec", "w_out"):
            assert np.array_equal(getattr(over_udp.weights, k).view(np.uint32), getattr(local.weights, k).view(np.uint32))
        over_udp.close()
    finally:
        proxy.close()


def test_link_patience_must_be_positive(board) -> None:
    with pytest.raises(ConfigError, match="link patience 0 s"):
        UdpTransport(board.target, patience_s=0)
