"""A realtime board starts the cores of one sample on one tick: the host holds their SAMPLE messages on the
board and one SYNC delivers them together (SpiNNaker's SYNC signal), so a SAMPLE lost and sent again starts
no core late (docs/protocol.md, SYNC)."""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from s2eprop.emulator.board import protocol as sdp
from s2eprop.host.config import ExperimentConfig
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport.udp import UdpTransport
from s2eprop.host.weights import init_weights

from board_data import random_samples
from lossy_proxy import Proxy


def _start_ticks(trainer: BoardTrainer) -> dict[int, int]:
    """Each core's start tick of the sample it runs: its last tick handled less its step (fw_state_t)."""
    out = {}
    for core in trainer.streamer.cores:
        st = trainer.core_state(core)
        out[core] = int(st["tick"]) - int(st["step"])
    return out


def test_a_lost_sample_message_starts_no_core_late(serve) -> None:
    """Rule: with the SAMPLE messages lost on the way (their SEND_MANY, sent again after a retransmission timeout of
    several ticks), every core of the sample starts on the same tick of the realtime board, mid-sample too."""
    cfg = dataclasses.replace(ExperimentConfig(), train=dataclasses.replace(
        ExperimentConfig().train, input_mode="realtime", on_loss="count")).validate()
    w0 = init_weights(cfg.network, seed=3)
    x, y = random_samples(3)
    board = serve(mode="realtime", cores=12)
    proxy = Proxy(board.server.address)
    try:
        trainer = BoardTrainer(cfg, w0, transport=UdpTransport(proxy.target))
        assert trainer.transport.starts_together
        trainer.train_batch(x[0], y[:1])  # round trips measured
        for i in (1, 2):
            proxy.drop_next(sdp.CMD_SEND_MANY)
            dropped = proxy.dropped
            streamer = trainer.streamer
            pending = [streamer.begin(trainer.next_sample_id(), int(y[i]), True, x[i])]
            trainer.transport.sync()
            assert proxy.dropped == dropped + 1  # the SAMPLE messages were lost, and sent again before SYNC
            time.sleep(0.03)  # mid-sample (100 ticks of 1 ms)
            starts = _start_ticks(trainer)
            assert len(set(starts.values())) == 1, starts
            trainer.transport.advance(cfg.network.n_steps + 20)
            trainer.transport.poll()
            del pending
        assert board.server.link.held_dropped == 0
        trainer.close()
    finally:
        proxy.close()


def test_sync_delivers_the_held_messages_in_order_and_once(serve) -> None:
    """Rule: held SENDs wait for SYNC; SYNC delivers them all (its repeat, answered from the reply cache, delivers
    nothing again); a host that leaves drops what it held (counted)."""
    board = serve(mode="realtime", cores=4)
    t = UdpTransport(board.target)
    words = np.array([0xDEAD, 1, 2], dtype=np.uint32)  # not a message the firmware knows: counted, harmless
    for core in range(3):
        t.send(core, words, hold=True)
    t.flush()
    assert len(board.server._held) == 3
    assert t.sync() == 3 and board.server._held == []
    assert t.sync() == 0
    t.send(0, words, hold=True)
    t.close()
    assert board.server.link.held_dropped == 1 and board.server._held == []
