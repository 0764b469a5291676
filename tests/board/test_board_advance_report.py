"""Protocol 6: a sample is one round trip. Its host messages go up inside its ADVANCE (all delivered before the
ticks run, or none and no tick), and the ADVANCE's reply brings back the cores' messages and the brief status
(ADVANCE_REPORT), so the host neither POLLs nor asks STATUS after a sample; SDRAM streams go in datagrams of up to
60 KiB on loopback. At most once as every own command: a repeat is answered from the reply cache."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from s2eprop.emulator.board import protocol as sdp
from s2eprop.host.errors import TransportError
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport.udp import UdpTransport
from s2eprop.host.weights import init_weights

from board_data import counting_config, random_samples
from test_board_integrity import CLIENT, _greeted
from test_board_send_many import _count_datagrams


def _advance(seq: int, ticks: int, messages: list[tuple[int, list[int]]], report: bool = True) -> bytes:
    data, n = sdp.pack_messages(messages, sdp.MAX_BULK_DATA_BYTES)
    assert n == len(messages)
    msg = sdp.Scp(sdp.CMD_ADVANCE, seq, ticks, n | (sdp.ADVANCE_REPORT if report else 0), 0, data)
    return sdp.pack(sdp.sealed(msg))


def _report(raw: bytes) -> tuple[int, int, dict | None, list[tuple[int, list[int]]], int]:
    """(tick, messages still queued, status, messages, result code) of an ADVANCE reply, parsed here by hand."""
    body = raw[26:]
    rc, tick = struct.unpack_from("<H", raw, 10)[0], struct.unpack_from("<I", raw, 14)[0]
    if rc != sdp.RC_OK:
        return tick, 0, None, [], rc
    n, queued, status_bytes = struct.unpack_from("<III", body)
    status = json.loads(body[12:12 + status_bytes]) if status_bytes else None
    out, at = [], 12 + status_bytes
    for _ in range(n):
        core, k = struct.unpack_from("<II", body, at)
        out.append((core, list(struct.unpack_from(f"<{k}I", body, at + 8))))
        at += 8 + 4 * k
    assert at == len(body)
    return tick, queued, status, out, rc


def test_training_over_udp_is_one_advance_a_sample_with_the_in_process_bits(board) -> None:
    """Rule: after the first, each sample sends one ADVANCE (its SAMPLE messages inside), its frames (one chunk on
    loopback) and their STREAM_ACK: no SEND_MANY, POLL or STATUS; the weights equal in-process training's."""
    cfg = counting_config()
    w0 = init_weights(cfg.network, seed=3)
    x, y = random_samples(4)
    over_udp = BoardTrainer(cfg, w0, transport=UdpTransport(board.target))
    local = BoardTrainer(cfg, w0)
    over_udp.train_batch(x[:1], y[:1])
    sent = _count_datagrams(over_udp.transport)
    a = over_udp.train_batch(x[1:], y[1:])
    sent = {c: n for c, n in sent.items() if n}  # before the weights are read back
    for i in range(4):
        b = local.train_batch(x[i], y[i:i + 1])
        if i:
            assert a.pred[i - 1] == b.pred[0] and a.loss[i - 1] == b.loss[0]
    for k in ("w_in", "w_rec", "w_out"):
        assert np.array_equal(getattr(over_udp.weights, k).view(np.uint32), getattr(local.weights, k).view(np.uint32))
    assert over_udp.transport.stream_chunk_bytes == sdp.MAX_STREAM_DATA_BYTES
    assert sent == {sdp.CMD_ADVANCE: 3, sdp.CMD_STREAM: 3, sdp.CMD_STREAM_ACK: 3} or over_udp.transport.link.retransmits, sent
    assert over_udp.transport.link.reports_used >= 6  # each sample's POLL and STATUS answered by its report
    over_udp.close()


def test_an_advance_delivers_its_messages_all_or_none_and_runs_once() -> None:
    """Rule: an ADVANCE's messages reach their cores before its ticks; one refused (no such core) delivers none and
    runs no tick; a repeat of an answered ADVANCE gets the same bytes and runs nothing again."""
    server = _greeted(cores=4)
    tick0 = server.chip.tick_count
    refused = server.handle(_advance(2, 5, [(1, [7, 7]), (9, [1])]), CLIENT)
    tick, _q, _st, _m, rc = _report(refused)
    assert rc == sdp.RC_CPU and server.chip.tick_count == tick0
    assert b"core 9" in refused and b"nothing delivered" in refused
    sent: list[tuple[int, list[int]]] = []
    server.chip.host_send = lambda core, words: sent.append((core, [int(w) for w in words]))  # type: ignore[method-assign]
    raw = _advance(3, 5, [(1, [7, 7]), (2, [8])])
    first = server.handle(raw, CLIENT)
    tick, queued, status, messages, rc = _report(first)
    assert rc == sdp.RC_OK and tick == tick0 + 5 and sent == [(1, [7, 7]), (2, [8])]
    assert status is not None and status["ticks"] == tick0 + 5 and queued == 0 and messages == []
    assert server.handle(raw, CLIENT) == first  # the repeat: answered from the cache
    assert server.chip.tick_count == tick0 + 5 and len(sent) == 2


def test_a_report_takes_the_messages_that_fit_and_leaves_the_rest_for_poll(board) -> None:
    """Rule: the report carries the cores' queued messages that fit one reply after the status, each once; the rest
    stay queued (the report says how many) and the host's poll fetches them: every message comes once, in order."""
    server = board.server
    t = UdpTransport(board.target)
    t.advance(0)
    queued = [(c % 4, list(range(c, c + 40))) for c in range(30)]  # 30 x 168 B: several replies' worth
    server._outbox.extend(queued)  # as if the cores had sent them
    t.advance(1)
    assert t.link.reports == 2 and 0 < len(t._inbox) < 30 and t._report is not None and t._report[1] > 0
    got = t.poll()
    assert [(c, [int(v) for v in w]) for c, w in got] == queued
    assert t.poll() == []
    t.close()


def test_a_host_that_does_not_own_the_board_cannot_take_its_messages_with_an_advance(board) -> None:
    """Rule: an ADVANCE of 0 ticks that asks a report (or carries messages) drives the board: refused as busy to a
    host that does not own it, and the owner's messages stay for the owner."""
    owner = UdpTransport(board.target)
    owner.advance(0)
    board.server._outbox.append((1, [5, 6]))
    other = UdpTransport(board.target, claim=False)
    with pytest.raises(TransportError, match="busy"):
        other.advance(0)
    owner.advance(0)
    assert [(c, [int(v) for v in w]) for c, w in owner.poll()] == [(1, [5, 6])]
    other.close()
    owner.close()


@pytest.mark.parametrize("data", [b"", b"\x01\x00\x00\x00", struct.pack("<III", 1, 0, 0), struct.pack("<III", 0, 0, 99),
                                  struct.pack("<III", 0, 0, 4) + b"[1,2"])
def test_a_garbled_report_is_a_transport_error_naming_it(board, data) -> None:
    """Rule: whatever bytes an ADVANCE reply carries, the host raises a TransportError naming the report, never
    another exception."""
    t = UdpTransport(board.target)
    reply = sdp.Scp(sdp.RC_OK, 1, 5, 0, 0, data)
    with pytest.raises(TransportError, match="ADVANCE report is garbled"):
        t._advanced(reply)
    t.close()
