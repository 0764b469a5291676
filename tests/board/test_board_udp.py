"""Training over UDP on loopback is training in-process: the same bits."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from s2eprop.emulator.board import protocol as sdp
from s2eprop.host.config import ExperimentConfig
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport.inproc import EmulatorTransport
from s2eprop.host.transport.udp import UdpTransport
from s2eprop.host.weights import init_weights

from board_data import counting_config, random_samples


@pytest.mark.parametrize("mode, threads", [("functional", 1), ("timed", 1), ("functional", 2), ("timed", 2)])
def test_training_over_udp_gives_the_same_bits(serve, mode, threads) -> None:
    """Rule: a board over UDP (functional or timed, on 1 or 2 host threads) trains the in-process bits."""
    cfg = counting_config()
    w0 = init_weights(cfg.network, seed=3)
    x, y = random_samples(3)
    board = serve(mode=mode, threads=threads)
    assert board.server.chip.threads == threads
    over_udp = BoardTrainer(cfg, w0, transport=UdpTransport(board.target))
    if mode == "timed":
        from s2eprop.emulator.chip.timed import TimedChip

        local = BoardTrainer(cfg, w0, transport=EmulatorTransport(12, chip=TimedChip(12)))
    else:  # on one thread: workers of this process's own chip spinning between its runs would take the CPU the
        # board's thread needs, and this test bounds the retransmissions (the bits are the same for any number)
        local = BoardTrainer(cfg, w0, transport=EmulatorTransport(12, threads=1))
    for i in range(3):
        a = over_udp.train_batch(x[i], y[i:i + 1])
        b = local.train_batch(x[i], y[i:i + 1])
        assert a.pred[0] == b.pred[0] and a.loss[0] == b.loss[0]
    for k in ("w_in", "w_rec", "w_out"):
        assert np.array_equal(getattr(over_udp.weights, k).view(np.uint32), getattr(local.weights, k).view(np.uint32))
    assert over_udp.ticks_train == local.ticks_train
    assert not any(over_udp.provenance().values())
    report = over_udp.report()
    host, board_link = report["link"]["host"], report["link"]["board"]
    # on a clean link a retransmission is only a timeout measured too tight on a busy machine: rare, and each
    # answered from the reply cache (nothing ran twice). A board on 2 threads in this process shares the 2 cores
    # with the host, and its runs alternate one thread and two (the pay rule's probes): its ADVANCE round trips
    # vary more, so the timeouts measured from them are tighter
    assert host["retransmits"] <= (0.01 if threads == 1 else 0.05) * host["sent"]
    assert board_link["duplicates"] == host["retransmits"]
    assert board_link["malformed"] == 0
    over_udp.close()


def test_a_realtime_board_keeps_its_own_clock(serve) -> None:
    cfg = dataclasses.replace(ExperimentConfig(), train=dataclasses.replace(ExperimentConfig().train,
                                                                            input_mode="realtime")).validate()
    w0 = init_weights(cfg.network, seed=3)
    x, y = random_samples(2)
    board = serve(mode="realtime")
    import time

    trainer = BoardTrainer(cfg, w0, transport=UdpTransport(board.target))
    t0, tick0 = time.perf_counter(), board.server.chip.tick_count
    for i in range(2):
        r = trainer.train_batch(x[i], y[i:i + 1])
        assert r.pred[0] >= 0
    wall, ticks = time.perf_counter() - t0, board.server.chip.tick_count - tick0
    assert ticks >= 2 * 101 and abs(wall * 1000 - ticks) < 0.3 * ticks  # about 1 tick per ms of wall time
    link = trainer.report()["link"]
    assert "host_late_ticks" in link["host"] and link["board"]["ticks_behind"] == 0
    trainer.close()


def test_a_new_host_does_not_get_the_messages_of_a_killed_ones_sample(serve) -> None:
    """Rule: a host that dies mid-sample leaves its cores' RESULT and SAMPLE_DONE unpolled on the board; a
    new host loading and starting the cores again gets none of them (they are dropped and counted as
    stale_messages), so its first sample sees no stray message, and it learns what a fresh board learns."""
    cfg = ExperimentConfig().validate()
    w0 = init_weights(cfg.network, seed=3)
    x, y = random_samples(2)
    board = serve()
    first = BoardTrainer(cfg, w0, transport=UdpTransport(board.target))
    first.train_batch(x[:1], y[:1])
    # the host sends the next sample and the board runs it, but the host dies before it polls (an ADVANCE without
    # REPORT, whose reply would bring the messages along: they stay queued on the board)
    first.streamer.begin(first.next_sample_id(), int(y[1]), True, x[1])
    first.transport._call(sdp.Scp(sdp.CMD_ADVANCE, 0, cfg.network.n_steps + 1 + 16))
    queued = board.server.link.as_dict()["stale_messages"]
    # the first host never ended its session: the board is still its own, so the new host takes it over
    again = BoardTrainer(cfg, w0, transport=UdpTransport(board.target, take_over=True))
    r = again.train_batch(x[:1], y[:1])  # on_loss stop: a stray message would be an error
    assert board.server.link.as_dict()["stale_messages"] - queued == 13  # 12 SAMPLE_DONE and the RESULT
    fresh = BoardTrainer(cfg, w0)
    assert r.loss[0] == fresh.train_batch(x[:1], y[:1]).loss[0]
    assert not any(again.provenance().values())
    again.close()
