"""SEND_MANY (protocol 5; since 6 a sample's go in its ADVANCE): the host messages of a sample, one to each core, go up in one datagram, executed at
most once (damaged: dropped; repeated: answered from the reply cache), all or none, held for SYNC with HOLD."""
from __future__ import annotations

import struct
from collections import Counter

import numpy as np

from s2eprop.emulator.board import protocol as sdp
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport.udp import UdpTransport
from s2eprop.host.weights import init_weights

from board_data import counting_config, random_samples
from test_board_integrity import CLIENT, _greeted


def _count_datagrams(t: UdpTransport) -> Counter:
    """Count the datagrams `t` sends (retransmissions too), by cmd."""
    sent, original = Counter(), t._send

    def send(raw: bytes) -> None:
        sent[sdp.peek_cmd(raw)] += 1
        original(raw)

    t._send = send  # type: ignore[method-assign]
    return sent


def test_a_samples_messages_go_up_in_one_datagram(board) -> None:
    """Rule: training a sample sends its SAMPLE message to every core (12 with the paper's config) in one
    datagram, and no SEND: since protocol 6 in its ADVANCE (the messages SEND_MANY would carry, in its data)."""
    cfg = counting_config()
    x, y = random_samples(3)
    trainer = BoardTrainer(cfg, init_weights(cfg.network, seed=3), transport=UdpTransport(board.target))
    trainer.train_batch(x[:1], y[:1])
    sent = _count_datagrams(trainer.transport)
    trainer.train_batch(x[1:], y[1:])
    assert len(trainer.streamer.cores) == 12
    assert sent[sdp.CMD_SEND_MANY] == 0 and sent[sdp.CMD_SEND] == 0, dict(sent)
    assert sent[sdp.CMD_ADVANCE] - trainer.transport.link.retransmits <= 2 <= sent[sdp.CMD_ADVANCE], dict(sent)
    assert trainer.transport.link.advance_messages == 12 * 3
    trainer.close()


def test_messages_that_do_not_fit_one_datagram_go_in_several_in_order(board) -> None:
    """Rule: 12 messages of 64 words (264 B each with core and length) fill SEND_MANY datagrams of at most 1,024 B:
    3 each, so 4 datagrams; a run of held messages and one of plain ones go apart. The board holds them in
    the host's order."""
    t = UdpTransport(board.target)
    sent = _count_datagrams(t)
    msgs = [(c, np.full(64, 0xDEAD0000 + c, dtype=np.uint32)) for c in range(12)]
    t.send_many(msgs, hold=True)
    t.flush()
    assert sent[sdp.CMD_SEND_MANY] == 4
    assert [(c, w.tolist()) for c, w in board.server._held] == [(c, w.tolist()) for c, w in msgs]
    before = sent[sdp.CMD_SEND_MANY]
    t.send(0, np.array([0xDEAD, 1], np.uint32))
    t.send(1, np.array([0xDEAD, 2], np.uint32), hold=True)
    t.flush()
    assert sent[sdp.CMD_SEND_MANY] - before == 2 and len(board.server._held) == 13
    t.close()


def _send_many_raw(seq: int, messages: list[tuple[int, list[int]]], hold: bool) -> bytes:
    """A SEND_MANY datagram, its data packed here ([core, n, words]* u32), not by protocol.py."""
    data = b"".join(struct.pack(f"<2I{len(w)}I", c, len(w), *w) for c, w in messages)
    return sdp.pack(sdp.sealed(sdp.Scp(sdp.CMD_SEND_MANY, seq, int(hold), len(messages), 0, data)), src=(0, 0, 31))


def test_a_damaged_or_repeated_send_many_executes_once() -> None:
    """Rule: a SEND_MANY damaged in any bit of 2 per byte is dropped (or refused) and delivers nothing; its clean
    copy delivers every message once, and its repeat is answered from the reply cache, delivering nothing again.
    Held or not."""
    server = _greeted()
    delivered: list[tuple[int, list[int]]] = []
    server.chip.host_send = lambda core, words: delivered.append((core, list(map(int, words))))
    try:
        messages = [(0, [0xDEAD, 1]), (1, [0xDEAD, 2, 3]), (3, [0xDEAD])]
        for seq, hold in ((2, False), (3, True)):
            raw = _send_many_raw(seq, messages, hold)
            for i in range(len(raw)):
                for bit in (0, 7):
                    bad = raw[:i] + bytes([raw[i] ^ (1 << bit)]) + raw[i + 1:]
                    reply = server.handle(bad, CLIENT)
                    assert reply is None or sdp.unpack(reply).cmd == sdp.RC_CMD, f"byte {i} bit {bit}"
            assert delivered == ([] if not hold else messages) and server._held == []
            first = server.handle(raw, CLIENT)
            assert sdp.unpack(first).cmd == sdp.RC_OK and sdp.unpack(first).arg1 == 3
            assert server.handle(raw, CLIENT) == first  # the retransmission is answered from the cache
            got = [(c, list(map(int, w))) for c, w in server._held] if hold else list(delivered)
            assert got == messages
        assert delivered == messages and len(server._held) == 3
    finally:
        server.sock.close()


def test_a_send_many_with_one_refused_message_delivers_none() -> None:
    """Rule: all or none: a message to a core the board lacks, or data longer than its messages, refuses the whole
    SEND_MANY (RC_CPU, RC_LEN) before any message is delivered."""
    server = _greeted(cores=4)
    delivered: list[int] = []
    server.chip.host_send = lambda core, words: delivered.append(core)
    try:
        bad_core = server.handle(_send_many_raw(2, [(0, [0xDEAD]), (4, [0xDEAD])], False), CLIENT)
        assert sdp.unpack(bad_core).cmd == sdp.RC_CPU
        data = struct.pack("<3I", 0, 1, 0xDEAD) + b"\0\0\0\0"
        long = sdp.pack(sdp.sealed(sdp.Scp(sdp.CMD_SEND_MANY, 3, 0, 1, 0, data)), src=(0, 0, 31))
        assert sdp.unpack(server.handle(long, CLIENT)).cmd == sdp.RC_LEN
        assert delivered == [] and server._held == []
    finally:
        server.sock.close()
