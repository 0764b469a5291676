"""One host owns a board at a time: another is refused as busy at once, bystanders (VER, board status)
never take or evict the owner's session, and plain SC&MP WRITEs from anyone else are refused."""
from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from s2eprop.emulator.board import protocol as sdp
from s2eprop.host.errors import TransportError
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport.udp import UdpTransport
from s2eprop.host.weights import init_weights

from board_data import counting_config, random_samples


def _ask(address: tuple[str, int], msg: sdp.Scp, has_args: bool = True) -> sdp.Scp:
    """One SC&MP request from a fresh socket (a tool with no session), and its reply."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(address)
        s.settimeout(2.0)
        s.send(sdp.pack(msg))
        return sdp.unpack(s.recv(2048), has_args=has_args)


def test_a_second_host_is_refused_as_busy_at_once_and_gets_the_board_when_the_first_ends(board) -> None:
    first = UdpTransport(board.target)
    t0 = time.monotonic()
    with pytest.raises(TransportError, match=r"board busy: owned by 127\.0\.0\.1:\d+ since .*S2EPROP_TAKE_BOARD"):
        UdpTransport(board.target)
    assert time.monotonic() - t0 < 1.0
    looker = UdpTransport(board.target, claim=False)  # board status: never refused, never the owner
    assert looker.board_status()["owner"]["host"].startswith("127.0.0.1:")
    looker.close()
    first.close()  # BYE: free at once
    second = UdpTransport(board.target)
    assert second.board_status()["owner"]["host"] == "%s:%d" % second.sock.getsockname()
    second.close()


def test_a_host_may_take_over_a_dead_owners_board_and_a_silent_owner_lapses(serve) -> None:
    board = serve()
    board.server.lease_s = 0.3
    dead = UdpTransport(board.target)
    taker = UdpTransport(board.target, take_over=True)  # that host died: take it now
    with pytest.raises(TransportError, match="busy"):
        dead.advance(1)
    time.sleep(0.5)  # the taker is silent past the lease: the board is free again
    dead.advance(1)
    dead.close()
    taker.close()


def test_writes_from_a_non_owner_are_refused_and_change_nothing(board) -> None:
    owner = UdpTransport(board.target)
    at = board.server.desc.placement(2)
    before = _ask(board.server.address, sdp.Scp(sdp.CMD_READ, 1, 64, 8, 0, b"", *at), has_args=False).data
    r = _ask(board.server.address, sdp.Scp(sdp.CMD_WRITE, 2, 64, 8, 0, b"\xff" * 8, *at))
    assert r.cmd == sdp.RC_PORT and b"busy" in r.data
    assert _ask(board.server.address, sdp.Scp(sdp.CMD_READ, 3, 64, 8, 0, b"", *at), has_args=False).data == before
    owner.close()
    r = _ask(board.server.address, sdp.Scp(sdp.CMD_WRITE, 4, 64, 8, 0, b"\xff" * 8, *at), has_args=False)
    assert r.cmd == sdp.RC_OK  # a free board takes plain SC&MP WRITEs (and is still free)
    assert board.server.owner() is None


def test_80_status_calls_and_80_vers_from_other_sockets_during_a_training_leave_it_running(board, monkeypatch) -> None:
    """The board kept 64 client addresses and evicted the oldest: 64 VERs or the 65th `board status` ended
    a training ("no session"). Bystanders now never take or evict the owner's session, even when the status
    sessions (left open, as by tools that died) overflow the board's table of sessions (16 here)."""
    from s2eprop.emulator.board import server as server_module

    monkeypatch.setattr(server_module, "MAX_CLIENTS", 16)
    cfg = counting_config()
    w0 = init_weights(cfg.network, seed=3)
    x, y = random_samples(4)
    over_udp, local = BoardTrainer(cfg, w0, transport=UdpTransport(board.target)), BoardTrainer(cfg, w0)
    failures: list[str] = []

    def bystanders() -> None:
        for i in range(80):
            try:
                assert _ask(board.server.address, sdp.Scp(sdp.CMD_VER, i)).cmd == sdp.RC_OK
                t = UdpTransport(board.target, claim=False)
                assert t.board_status()["owner"] is not None
                t.sock.close()  # no BYE: the session stays until it is evicted
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append(repr(exc))

    th = threading.Thread(target=bystanders)
    th.start()
    for i in range(4):
        a, b = over_udp.train_batch(x[i], y[i:i + 1]), local.train_batch(x[i], y[i:i + 1])
        assert a.loss[0] == b.loss[0]
    th.join()
    assert not failures
    assert board.server.link.datagrams > 80 * 4
    for k in ("w_in", "w_rec", "w_out"):
        assert np.array_equal(getattr(over_udp.weights, k).view(np.uint32), getattr(local.weights, k).view(np.uint32))
    over_udp.close()
