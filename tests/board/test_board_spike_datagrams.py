"""Spike datagrams (CMD_SPIKES, docs/protocol.md): over UDP a step's input spikes travel as its active input
ids, EIEIO-style, split when they do not fit one datagram, and the board builds from them the ring slot the
host's bitmap (s2eprop.firmware.messages.spike_slots) would be; late, repeated, lost and bad ones are counted."""
from __future__ import annotations

import dataclasses
import socket

import numpy as np
import pytest

from s2eprop.emulator.board import protocol as sdp
from s2eprop.host.config import ExperimentConfig, InputConfig
from s2eprop.host.data.encoders import encode
from s2eprop.host.errors import TransportError
from s2eprop.firmware.messages import spike_slot_ids, spike_slots
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.firmware.sdram_map import INPUT_RING_ADDR
from s2eprop.host.transport.inproc import EmulatorTransport
from s2eprop.host.transport.udp import UdpTransport
from s2eprop.host.weights import init_weights
from test_board_faults import FaultyLink


def _raster(n_steps: int, n_in: int, p: float, seed: int) -> np.ndarray:
    spikes = (np.random.default_rng(seed).random((n_steps, n_in)) < p).astype(np.float32)
    spikes[1] = 0  # a silent step: its slot is written all the same
    return spikes


def _board_link(board) -> dict:
    return board.server.link.as_dict()


def test_spike_datagrams_write_the_bytes_bitmap_slots_write(serve) -> None:
    """Rule: a raster sent as spike datagrams (acknowledged or posted) leaves the SDRAM ring byte for byte as
    the in-process chip's direct write of spike_slots; a new sample in the same slots clears the old bits."""
    board = serve()
    t = UdpTransport(board.target)
    local = EmulatorTransport(4)
    for sample_id, seed in ((7, 1), (8, 2)):  # 8 overwrites 7's slots
        slots = spike_slots(sample_id, _raster(20, 80, 0.1, seed))
        t.write_spike_slots(INPUT_RING_ADDR, slots, 80)
        t.write_spike_slots(INPUT_RING_ADDR + 0x1000, slots, 80, posted=True)
        local.write_sdram(INPUT_RING_ADDR, slots)
        want = local.read_sdram(INPUT_RING_ADDR, slots.nbytes)
        assert want == slots.tobytes()
        assert t.read_sdram(INPUT_RING_ADDR, slots.nbytes) == want
        assert t.read_sdram(INPUT_RING_ADDR + 0x1000, slots.nbytes) == want
    link = _board_link(board)
    assert link["spikes_steps"] == link["spikes_parts"] == 4 * 20 and link["stream_chunks"] == 0
    assert t.link.spike_datagrams == 80 and t.link.spikes_posted == 40
    t.close()


def test_spike_datagrams_carry_the_session_mac(serve) -> None:
    """Rule: with a key, spike datagrams (acknowledged and posted) carry the session's MAC and are taken;
    without the key they are dropped as unauthenticated."""
    board = serve(key=b"spikes")
    t = UdpTransport(board.target, key=b"spikes")
    slots = spike_slots(2, _raster(8, 80, 0.2, 4))
    t.write_spike_slots(INPUT_RING_ADDR, slots, 80)
    t.write_spike_slots(INPUT_RING_ADDR + 0x1000, slots, 80, posted=True)
    assert t.read_sdram(INPUT_RING_ADDR, slots.nbytes) == t.read_sdram(INPUT_RING_ADDR + 0x1000, slots.nbytes) \
        == slots.tobytes()
    bad_mac = board.server.link.bad_mac
    t.key = b"another"
    t.write_spike_slots(INPUT_RING_ADDR + 0x2000, slots, 80, posted=True)
    t.key = b"spikes"
    assert t.read_sdram(INPUT_RING_ADDR + 0x2000, 4) == bytes(4)
    assert board.server.link.bad_mac == bad_mac + 8 and board.server.link.spikes_steps == 16
    t.close()


@pytest.mark.parametrize("n_in, p, limit, parts_min", [(700, 0.5, sdp.MAX_DATA_BYTES, 3), (700, 0.05, 40, 2),
                                                       (70_000, 0.002, sdp.MAX_DATA_BYTES, 3)])
def test_a_step_that_does_not_fit_one_datagram_is_split(serve, n_in, p, limit, parts_min) -> None:
    """Rule: a step's ids are split over as many datagrams as they need (16-bit ids up to n_in 65,536, 32-bit
    beyond), each ORed into the slot, and the slot is the bitmap's exactly."""
    board = serve()
    t = UdpTransport(board.target, spike_limit_bytes=limit)
    slots = spike_slots(3, _raster(6, n_in, p, 5))
    t.write_spike_slots(INPUT_RING_ADDR, slots, n_in)
    assert t.read_sdram(INPUT_RING_ADDR, slots.nbytes) == slots.tobytes()
    link = _board_link(board)
    assert link["spikes_steps"] == 6 and link["spikes_parts"] >= 5 * parts_min and link["spikes_incomplete"] == 0
    t.close()


def test_spike_parts_round_trip_as_eieio_keys() -> None:
    """Rule: the wire form of a step's ids unpacks to the same ids, an EIEIO header of count and key type in
    front of them; ids past 16 bits go as 32-bit keys."""
    for n_in, ids in ((80, np.array([0, 5, 79])), (70_000, np.array([3, 65_536, 69_999]))):
        (data,) = sdp.spike_parts(12, n_in, ids)
        part = sdp.unpack_spikes(data)
        assert (part.step, part.n_in, part.part, part.parts) == (12, n_in, 0, 1)
        assert np.array_equal(part.ids, ids)
        count, flags = data[sdp.SPIKES_HEAD.size - 2:sdp.SPIKES_HEAD.size]
        assert count == 3 and flags >> 2 == (sdp.EIEIO_KEY_16_BIT if n_in <= 65_536 else sdp.EIEIO_KEY_32_BIT)
    slots = spike_slots(4, _raster(5, 700, 0.3, 1))
    samples, steps, ids = spike_slot_ids(slots, 700)
    assert samples.tolist() == [4] * 5 and steps.tolist() == list(range(5))
    assert all(np.array_equal(i, np.flatnonzero(r)) for i, r in zip(ids, _raster(5, 700, 0.3, 1)))


def test_repeated_and_bad_spike_datagrams_are_counted(serve) -> None:
    """Rule: a part received twice is counted and changes nothing; an id >= n_in is refused with a message
    naming it (acknowledged) or counted with its reason in STATUS (posted)."""
    board = serve()
    t = UdpTransport(board.target)
    slots = spike_slots(1, _raster(4, 80, 0.2, 3))
    t.write_spike_slots(INPUT_RING_ADDR, slots, 80, posted=True)
    t.write_spike_slots(INPUT_RING_ADDR, slots, 80, posted=True)
    assert t.read_sdram(INPUT_RING_ADDR, slots.nbytes) == slots.tobytes()
    bad = sdp.SPIKES_HEAD.pack(0, 80, 0, 1, 2, 0) + np.array([3, 80], "<u2").tobytes()
    with pytest.raises(TransportError, match="input id 80 >= n_in 80"):
        t._call(sdp.Scp(sdp.CMD_SPIKES, 0, INPUT_RING_ADDR, 1, 0, bad))
    posted = sdp.Scp(sdp.CMD_SPIKES, t._next_seq(), INPUT_RING_ADDR, 1, 0, bad[:-2] + b"\x51\x00",
                     flags=sdp.FLAGS_NO_REPLY)
    t.sock.send(sdp.pack(sdp.sealed(posted)))
    assert t.read_sdram(INPUT_RING_ADDR, slots.nbytes) == slots.tobytes()  # the refused ones wrote nothing
    status = t.board_status()
    link = status["link"]
    assert link["spikes_duplicates"] == 4 and link["spikes_parts"] == 4 and link["spikes_errors"] == 2
    assert "input id 81 >= n_in 80" in status["last_spike_error"]
    t.close()


def _config(input_mode: str = "prefetch", lookahead: int = 3, on_loss: str = "stop") -> ExperimentConfig:
    base = ExperimentConfig()
    return dataclasses.replace(base, input=InputConfig(kind="spikes", encoder="delta", threshold=0.5),
                               train=dataclasses.replace(base.train, input_mode=input_mode, on_loss=on_loss,
                                                         input_lookahead_ticks=lookahead)).validate()


def _delta_samples(cfg: ExperimentConfig, n: int, seed: int = 9):
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.standard_normal((n, 100, 80)), axis=1).astype(np.float32)
    return encode(x, cfg.input, cfg.network, 0), rng.integers(0, 12, n)


@pytest.mark.parametrize("input_mode", ["prefetch", "realtime"])
def test_delta_spike_training_over_spike_datagrams_gives_the_same_bits(serve, input_mode) -> None:
    """Rule: delta-encoded samples trained over UDP, their input as spike datagrams, give the in-process
    chip's predictions, losses and weights bit for bit, with nothing lost (a functional board: its clock
    waits for the host, also when the host streams a few ticks ahead as a live source would)."""
    cfg = _config(input_mode)
    w0 = init_weights(cfg.network, seed=3)
    w0 = dataclasses.replace(w0, w_in=(6 * w0.w_in).astype(np.float32))
    x, y = _delta_samples(cfg, 3)
    assert 0 < x.mean() < 0.5
    board = serve()
    over_udp, local = BoardTrainer(cfg, w0, transport=UdpTransport(board.target)), BoardTrainer(cfg, w0)
    for i in range(3):
        a, b = over_udp.train_batch(x[i], y[i:i + 1]), local.train_batch(x[i], y[i:i + 1])
        assert a.pred[0] == b.pred[0] and a.loss[0] == b.loss[0] and a.spikes[0] == b.spikes[0] > 0
    for k in ("w_in", "w_rec", "w_out"):
        assert np.array_equal(getattr(over_udp.weights, k).view(np.uint32), getattr(local.weights, k).view(np.uint32))
    assert not any(over_udp.provenance().values())
    link = _board_link(board)
    assert link["spikes_steps"] == 300 and link["spikes_late"] == link["spikes_incomplete"] == 0
    over_udp.close()


class _DropSpikePart(FaultyLink):
    """Loses the n-th spike datagram from the host that is one part of several."""

    def __init__(self, server, n: int) -> None:
        super().__init__(server, seed=0, p_drop=0, p_dup=0, p_reorder=0, p_corrupt=0)
        for sock in (self.front, self.back):  # a burst of posted datagrams must not overflow the proxy
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.n, self.split_seen, self.lost = n, 0, 0

    def _send(self, sock, raw: bytes, to) -> None:
        if sock is self.back and sdp.peek_cmd(raw) == sdp.CMD_SPIKES:
            parts = sdp.SPIKES_HEAD.unpack_from(raw, sdp.HEADER_BYTES)[3]
            self.split_seen += parts > 1
            if parts > 1 and self.split_seen == self.n:
                self.lost += 1
                return
        super()._send(sock, raw, to)


def test_a_lost_posted_spike_part_is_an_input_underrun(serve) -> None:
    """Rule: posted spike input (live input to a realtime board) is never sent again; one part of a split
    step lost leaves that step's slot without its magic word, so every neuron core counts exactly one input
    underrun instead of running a partial bitmap. (Posted here to a functional board, whose clock waits
    for the host: a realtime board's own timing would add losses of its own.)"""
    cfg = _config(on_loss="count")
    w0 = init_weights(cfg.network, seed=3)
    x, y = _delta_samples(cfg, 2)
    board = serve()
    link = _DropSpikePart(board.server.address, n=20)
    try:
        t = UdpTransport(link.target, spike_limit_bytes=20)  # 3 ids a part: most steps are split
        write = t.write_spike_slots
        t.write_spike_slots = lambda addr, rows, n_in, posted=False: write(addr, rows, n_in, posted=True)
        trainer = BoardTrainer(cfg, w0, transport=t)
        for i in range(2):
            trainer.train_batch(x[i], y[i:i + 1])
        underruns = {c: n["input_underruns"] for c, n in trainer.core_counters().items()}
        served = _board_link(board)
        trainer.close()
    finally:
        link.close()
    assert link.lost == 1 and t.link.spikes_posted == t.link.spike_datagrams > 200
    assert set(underruns.values()) == {1} and len(underruns) >= 10  # once on each core (all read the ring)
    assert served["spikes_steps"] == 199
    assert served["spikes_parts"] == t.link.spikes_posted - 1


def test_a_part_for_a_slot_already_read_is_late(serve) -> None:
    """Rule: a spike datagram for a step the cores have already fetched is dropped and counted late (on
    both ends), one for a step still ahead of them is taken; the sample runs on undisturbed."""
    cfg = _config()
    w0 = init_weights(cfg.network, seed=3)
    x, y = _delta_samples(cfg, 1)
    board = serve()
    trainer = BoardTrainer(cfg, w0, transport=UdpTransport(board.target))
    streamer, t = trainer.streamer, trainer.transport
    p = streamer.begin(trainer.next_sample_id(), int(y[0]), True, x[0])
    t.advance(30)
    streamer._write(p.slot0 + 10, p.slots[10:11])  # read at tick 11: late
    streamer._write(p.slot0 + 60, p.slots[60:61])  # not yet read: a repeat of what is there
    link = _board_link(board)
    assert link["spikes_late"] == t.link.spikes_late == 1 and link["spikes_duplicates"] >= 1
    t.advance(100 - 30 + 1 + 8)
    assert sum(c["input_underruns"] for c in trainer.core_counters().values()) == 0
    trainer.close()


def test_random_spike_datagrams_are_refused_or_counted() -> None:
    """Rule: sealed spike datagrams of random content (random bytes, or a header of random fields before
    random ids) never raise in the board: each acknowledged one is answered, each posted one counted."""
    from s2eprop.emulator.board.server import BoardServer
    from s2eprop.host.cli.board import build_board

    chip, desc = build_board(None, "functional", None, 4)
    server = BoardServer(chip, desc, port=0)
    try:
        addr = ("127.0.0.1", 9)
        server.handle(sdp.pack(sdp.sealed(sdp.Scp(sdp.CMD_HELLO, 1, sdp.PROTOCOL_VERSION, data=b"12345678"))), addr)
        rng = np.random.default_rng(15)
        answered = 0
        for i in range(3000):
            if i % 2:
                data = rng.integers(0, 256, int(rng.integers(0, 257)), dtype=np.uint8).tobytes()
            else:
                count = int(rng.integers(0, 20))
                data = sdp.SPIKES_HEAD.pack(int(rng.integers(0, 4)), int(rng.choice([0, 80, 80, 80, 70_000, 1 << 31])),
                                            int(rng.integers(0, 2)), int(rng.integers(1, 3)), count,
                                            int(rng.choice([0, 0, 0, 8, 1, 4, 0x80]))) \
                    + rng.integers(0, 81, count, dtype=np.uint16).tobytes()
            a1 = int(rng.choice([0x100000, 0x100000, 0x100002, (1 << 30) - 8, 0xFFFFFFFF]))
            flags = sdp.FLAGS_NO_REPLY if i % 3 else sdp.FLAGS_REPLY_EXPECTED
            raw = sdp.pack(sdp.sealed(sdp.Scp(sdp.CMD_SPIKES, 2 + i, a1, i, 0, data[:sdp.MAX_DATA_BYTES], flags=flags)))
            answered += server.handle(raw, addr) is not None
        link = server.link
        posted = sum(1 for i in range(3000) if i % 3)
        assert answered == 3000 - posted
        assert link.spikes_parts + link.spikes_duplicates + link.spikes_late + link.spikes_errors == 3000
        assert link.spikes_posted == posted and link.spikes_errors > 1000 and link.spikes_parts > 30
    finally:
        server.sock.close()


def test_recordings_read_over_udp_equal_the_in_process_chips(serve) -> None:
    """Rule: with a `record` section, a board over UDP (the host allocates the record regions with SDRAM
    writes and reads them back with MEM_READ) gives the in-process chip's records bit for bit, on delta
    spike input; an unmarked sample is not recorded."""
    from s2eprop.host.config import RecordConfig

    cfg = dataclasses.replace(_config(), record=RecordConfig(spikes=tuple(range(120)), v=(0, 57, 119),
                                                             train_every=1)).validate()
    w0 = init_weights(cfg.network, seed=3)
    w0 = dataclasses.replace(w0, w_in=(6 * w0.w_in).astype(np.float32))
    x, y = _delta_samples(cfg, 3)
    board = serve()
    over_udp, local = BoardTrainer(cfg, w0, transport=UdpTransport(board.target)), BoardTrainer(cfg, w0)
    marks = [True, False, True]
    for i in range(3):
        for t in (over_udp, local):
            t.train_batch(x[i], y[i:i + 1], record=np.array([marks[i]]))
    a, b = over_udp.recorded(), local.recorded()
    assert len(a) == len(b) == 2
    for ra, rb in zip(a, b):
        assert ra.missing == 0 and ra.spikes.sum() > 0
        for name in ("spikes", "v", "y"):
            assert np.array_equal(getattr(ra, name), getattr(rb, name)), name
    assert not any(over_udp.provenance().values())
    over_udp.close()
