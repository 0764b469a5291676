"""A lossy link: a proxy on loopback that drops, duplicates and reorders 5 % of the datagrams each way
and corrupts 1 %; training through it learns the same bits, and the counters show what was recovered."""
from __future__ import annotations

import dataclasses
import random
import select
import socket
import threading

import numpy as np

from s2eprop.emulator.board import protocol as sdp
from s2eprop.host.config import ExperimentConfig
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport.udp import UdpTransport
from s2eprop.host.weights import init_weights


class FaultyLink:
    def __init__(self, server: tuple[str, int], seed: int, p_drop=0.05, p_dup=0.05, p_reorder=0.05,
                 p_corrupt=0.01) -> None:
        self.server = server
        self.rng = random.Random(seed)
        self.p = (p_drop, p_dup, p_reorder, p_corrupt)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.client: tuple[str, int] | None = None
        self.seen = {"dropped": 0, "duplicated": 0, "reordered": 0, "corrupted": 0, "passed": 0}
        self._held = {id(self.front): None, id(self.back): None}
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def target(self) -> str:
        return f"udp://127.0.0.1:{self.front.getsockname()[1]}"

    def _send(self, sock: socket.socket, raw: bytes, to) -> None:
        drop, dup, reorder, corrupt = self.p
        r = self.rng.random()
        if r < drop:
            self.seen["dropped"] += 1
            return
        if self.rng.random() < corrupt:
            i = self.rng.randrange(len(raw))
            raw = raw[:i] + bytes([raw[i] ^ (1 << self.rng.randrange(8))]) + raw[i + 1:]
            self.seen["corrupted"] += 1
        held = self._held[id(sock)]
        if held is None and self.rng.random() < reorder:
            self._held[id(sock)] = (raw, to)  # goes out after the next one
            self.seen["reordered"] += 1
            return
        sock.sendto(raw, to)
        self.seen["passed"] += 1
        if self.rng.random() < dup:
            sock.sendto(raw, to)
            self.seen["duplicated"] += 1
        if held is not None:
            self._held[id(sock)] = None
            sock.sendto(*held)

    def _run(self) -> None:
        while not self._stop:
            ready, _, _ = select.select([self.front, self.back], [], [], 0.05)
            for sock in ready:
                raw, addr = sock.recvfrom(sdp.MAX_DATAGRAM_BYTES + 1)
                if sock is self.front:
                    self.client = addr
                    self._send(self.back, raw, self.server)
                elif self.client is not None:
                    self._send(self.front, raw, self.client)

    def close(self) -> None:
        self._stop = True
        self.thread.join(timeout=2)
        self.front.close()
        self.back.close()


def test_training_through_a_lossy_link_learns_the_same_bits(serve) -> None:
    cfg = dataclasses.replace(ExperimentConfig(), train=dataclasses.replace(ExperimentConfig().train,
                                                                            on_loss="count")).validate()
    w0 = init_weights(cfg.network, seed=4)
    rng = np.random.default_rng(8)
    x, y = (3 * rng.standard_normal((3, 100, 80))).astype(np.float32), rng.integers(0, 12, 3)
    board = serve()
    link = FaultyLink(board.server.address, seed=11)
    try:
        lossy = BoardTrainer(cfg, w0, transport=UdpTransport(link.target, timeout_s=0.02, retries=40,
                                                                stream_chunk_bytes=sdp.MAX_BULK_DATA_BYTES))  # a network's chunks
        local = BoardTrainer(cfg, w0)
        lossy.train_batch(x, y)  # pipelined: samples 1 and 2 go up while the one before runs
        for i in range(3):
            local.train_batch(x[i], y[i:i + 1])
        for k in ("w_in", "w_rec", "w_out"):
            assert np.array_equal(getattr(lossy.weights, k).view(np.uint32), getattr(local.weights, k).view(np.uint32))
        assert not any(lossy.provenance().values())
        host, served = lossy.transport.link.as_dict(), board.server.link.as_dict()
    finally:
        link.close()
    assert min(link.seen.values()) > 0, link.seen
    assert host["stream_during_advance"] > 0
    assert host["retransmits"] > 0 and host["stream_lost"] > 0
    assert served["duplicates"] > 0 and served["stream_duplicates"] > 0
    assert served["bad_crc"] + served["malformed"] + host["foreign"] > 0  # the corrupted ones were caught
