"""Patient, and cheap under loss: a lost datagram costs a retransmission timeout taken from the measured
round trips (RFC 6298), not a fixed quarter second, and the host waits out an outage of 5 s (its link
patience is 10 s) to end with the bits of a run that saw none."""
from __future__ import annotations

import select
import socket
import threading
import time

import numpy as np
import pytest

from s2eprop.emulator.board import protocol as sdp
from s2eprop.host.errors import ConfigError
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport.udp import UdpTransport
from s2eprop.host.weights import init_weights

from board_data import counting_config, random_samples


class Proxy:
    """Passes datagrams between one host and a board; `drop_next(cmd)` drops the host's next request of
    that command once, `outage(s)` drops everything both ways for that long."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.client: tuple[str, int] | None = None
        self.target = f"udp://127.0.0.1:{self.front.getsockname()[1]}"
        self._drop_cmd: int | None = None
        self._dark_until = 0.0
        self.dropped = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def drop_next(self, cmd: int) -> None:
        self._drop_cmd = cmd

    def outage(self, seconds: float) -> None:
        self._dark_until = time.monotonic() + seconds

    def _run(self) -> None:
        while not self._stop:
            ready, _, _ = select.select([self.front, self.back], [], [], 0.05)
            for sock in ready:
                raw, addr = sock.recvfrom(4096)
                if time.monotonic() < self._dark_until:
                    self.dropped += 1
                    continue
                if sock is self.front:
                    self.client = addr
                    if self._drop_cmd is not None and sdp.peek_cmd(raw) == self._drop_cmd:
                        self._drop_cmd = None
                        self.dropped += 1
                        continue
                    self.back.sendto(raw, self.server)
                elif self.client is not None:
                    self.front.sendto(raw, self.client)

    def close(self) -> None:
        self._stop = True
        self.thread.join(timeout=2)
        self.front.close()
        self.back.close()


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
