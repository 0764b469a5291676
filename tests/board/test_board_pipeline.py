"""Pipelined input: the next sample's frames go up to the board while the current sample runs.

The board takes SDRAM streams while an ADVANCE runs (and keeps every other datagram for the run's end,
in order); the host writes ahead only what the running ticks do not read, and a sample written ahead
that does not come next is written again, so the bits are those of training in-process."""
from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest

from s2eprop.emulator.board import protocol as sdp
from s2eprop.host.config import ExperimentConfig
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport.udp import UdpTransport
from s2eprop.host.weights import init_weights

from board_data import counting_config, random_samples


def _held_runs(board):
    """Make the board's chip wait, at the start of every run of ticks, until the returned event is set."""
    release, original = threading.Event(), board.server.chip.run

    def run(n_ticks: int) -> None:
        if n_ticks:
            assert release.wait(30), "the test never released the run"
        original(n_ticks)

    board.server.chip.run = run
    return release


def _wait_for(cond, what: str) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < 10, f"waited 10 s for {what}"
        time.sleep(0.005)


def test_the_board_takes_sdram_streams_while_an_advance_runs_and_keeps_the_rest_for_its_end(board) -> None:
    """Rule: while an ADVANCE runs, SDRAM stream chunks and their STREAM_ACK are handled (the host's write
    completes although the run has not ended); any other datagram is answered only after the run's answer."""
    release = _held_runs(board)
    t = UdpTransport(board.target, patience_s=3.0, stream_chunk_bytes=sdp.MAX_BULK_DATA_BYTES)
    tick0 = t.advance(0)
    data = np.arange(3000, dtype=np.uint32)  # 12,000 B: 12 chunks of 1,024 B
    t.start_advance(7)
    _wait_for(lambda: board.server._run is not None, "the board to start the run")
    t.write_sdram(0x0020_0000, data)  # STREAM_ACK answered: every chunk is in, while the run is held
    assert board.server.chip.read_sdram(0x0020_0000, data.nbytes) == data.tobytes()
    assert board.server.chip.tick_count == tick0
    assert t.link.stream_during_advance == 12 and board.server.link.stream_during_run >= 13
    # a bystander's VER waits for the run to end
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.connect(board.server.address)
    other.send(sdp.pack(sdp.Scp(sdp.CMD_VER, 9)))
    _wait_for(lambda: board.server.link.deferred >= 1, "the board to keep the VER")
    other.setblocking(False)
    with pytest.raises(BlockingIOError):
        other.recv(4096)
    release.set()
    assert t.finish_advance() == tick0 + 7
    other.setblocking(True)
    other.settimeout(5)
    assert sdp.unpack(other.recv(4096), has_args=False).cmd == sdp.RC_OK
    other.close()
    t.close()


def test_a_host_command_after_start_advance_waits_for_the_advance(board) -> None:
    """Rule: the host sends nothing but SDRAM streams while its ADVANCE is in flight: a POLL first waits for the
    ADVANCE's answer, so the board runs them in the host's order even if the ADVANCE datagram were lost."""
    release = _held_runs(board)
    t = UdpTransport(board.target, patience_s=3.0)
    t.advance(0)
    t.start_advance(3)
    _wait_for(lambda: board.server._run is not None, "the board to start the run")
    polled = []
    th = threading.Thread(target=lambda: polled.append(t.poll()))
    th.start()
    time.sleep(0.2)
    assert not polled and board.server.link.deferred == 0  # the POLL was not even sent
    release.set()
    th.join(10)
    assert polled == [[]] and t._advancing is None
    t.close()


@pytest.mark.parametrize("mode", ["functional", "timed"])
def test_pipelined_training_over_udp_gives_the_in_process_bits(serve, mode) -> None:
    cfg = counting_config()
    w0 = init_weights(cfg.network, seed=3)
    x, y = random_samples(4)
    board = serve(mode=mode)
    over_udp = BoardTrainer(cfg, w0, transport=UdpTransport(board.target))
    if mode == "timed":
        from s2eprop.emulator.chip.timed import TimedChip
        from s2eprop.host.transport.inproc import EmulatorTransport

        local = BoardTrainer(cfg, w0, transport=EmulatorTransport(12, chip=TimedChip(12)))
    else:
        local = BoardTrainer(cfg, w0)
    a = over_udp.train_batch(x, y)  # samples 1..3 written while the one before runs
    for i in range(4):  # one at a time, nothing written ahead
        b = local.train_batch(x[i], y[i:i + 1])
        assert a.pred[i] == b.pred[0] and a.loss[i] == b.loss[0]
    for k in ("w_in", "w_rec", "w_out"):
        assert np.array_equal(getattr(over_udp.weights, k).view(np.uint32), getattr(local.weights, k).view(np.uint32))
    assert over_udp.streamer.staged_used == 3 and local.streamer.staged_used == 0
    per_sample = -(-100 * over_udp.streamer.ring.slot_words * 4 // over_udp.transport.stream_chunk_bytes)
    assert over_udp.transport.link.stream_during_advance == 3 * per_sample
    assert not any(over_udp.provenance().values())
    over_udp.close()


def test_a_sample_written_ahead_that_does_not_come_is_written_again() -> None:
    """Rule: `expect` is a hint: the frames written ahead are used only if the next sample is that one; another
    sample runs on its own frames (the bits of a trainer never told)."""
    cfg = ExperimentConfig().validate()
    w0 = init_weights(cfg.network, seed=3)
    x, y = random_samples(3)
    hinted, plain = BoardTrainer(cfg, w0), BoardTrainer(cfg, w0)
    hinted.expect(x[2])            # says x[2] comes after x[0] ...
    hinted.train_batch(x[0], y[0:1])
    hinted.expect(x[2])
    hinted.train_batch(x[1], y[1:2])  # ... but x[1] comes
    hinted.train_batch(x[2], y[2:3])  # and then x[2], as told
    for i in range(3):
        plain.train_batch(x[i], y[i:i + 1])
    assert (hinted.streamer.staged_wasted, hinted.streamer.staged_used) == (1, 1)
    for k in ("w_in", "w_rec", "w_out"):
        assert np.array_equal(getattr(hinted.weights, k).view(np.uint32), getattr(plain.weights, k).view(np.uint32))


def test_the_status_a_host_checks_after_every_sample_is_one_datagram_each_way(board) -> None:
    """Rule: STATUS with the BRIEF flag answers the clock, chip counters and cores in error (the fields of the
    full STATUS, same values) in one page; the host's per-sample `status()` asks for it."""
    t = UdpTransport(board.target)
    full = t.board_status()
    sent = t.link.sent
    brief = t.board_status(brief=True)
    assert t.link.sent - sent == 1 and len(json.dumps(full)) > sdp.MAX_DATA_BYTES
    assert set(brief) == {"ticks", "delivered", "dropped", "last_drop", "losses", "core_errors"}
    assert all(brief[k] == full[k] for k in brief)
    sent = t.link.sent
    st = t.status()
    assert t.link.sent - sent == 1 and st.ticks == full["ticks"] and st.losses == full["losses"]
    t.close()
