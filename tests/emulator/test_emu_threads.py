"""Threads of the functional C loop (chip_loop.h): the cores' timer phases run on N host threads, their
effects merged in core order, and the chip computes the same bits for any N: weights, every core's SRAM,
results, work counts and router and loss statistics, against the Python loop (the specification)."""
from __future__ import annotations

import numpy as np
import pytest

from s2eprop.emulator.chip.functional import FunctionalChip
from s2eprop.emulator.errors import EmulatorError
from s2eprop.host.config import ChipConfig, ExperimentConfig
from s2eprop.host.errors import ConfigError
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport.inproc import EmulatorTransport


def _run(cfg, weights, x, y, **chip_args):
    chip = FunctionalChip(12, **chip_args)
    if chip.threads > 1:  # every run on the threads (the pay rule would take one thread where it is faster)
        chip._chip.threads_forced = 1
    board = BoardTrainer(cfg, weights.copy(), transport=EmulatorTransport(12, chip=chip))
    results = [board.train_batch(x[i:i + 1], y[i:i + 1]) for i in range(len(x) - 1)]
    results.append(board.forward(x[-1:], y[-1:]))
    return board, chip, results


def _same(a, b, what: str) -> None:
    (board_a, chip_a, res_a), (board_b, chip_b, res_b) = a, b
    for k in ("w_in", "w_rec", "w_out"):
        assert getattr(board_a.weights, k).tobytes() == getattr(board_b.weights, k).tobytes(), f"{what}: {k}"
    for core in range(12):
        diff = np.flatnonzero(chip_a.runner.sram[core] != chip_b.runner.sram[core])
        assert diff.size == 0, f"{what}: core {core} SRAM differs in {diff.size} bytes"
    for ra, rb in zip(res_a, res_b):
        for field in ("loss", "pred", "output_mean", "spikes"):
            assert np.asarray(getattr(ra, field)).tobytes() == np.asarray(getattr(rb, field)).tobytes(), \
                f"{what}: {field}"
    assert chip_a.stats() == chip_b.stats(), what
    for k, v in chip_a.work_counts().items():
        assert (v == chip_b.work_counts()[k]).all(), f"{what}: work count {k}"


@pytest.mark.parametrize("threads", [2, 3, 12])
def test_threads_give_the_bits_of_the_python_loop(cfg, init_w, sample_maker, threads) -> None:
    """Rule: 12 cores on 1, 2, 3 or 12 threads of the C loop: 3 training samples and 1 inference sample give
    the Python loop's weights, SRAM bytes, results, work counts and chip statistics."""
    x, y = sample_maker(4, seed=31)
    spec = _run(cfg, init_w, x, y, backend="python")
    _same(_run(cfg, init_w, x, y, threads=1), spec, "1 thread")
    _same(_run(cfg, init_w, x, y, threads=threads), spec, f"{threads} threads")


def test_threads_keep_the_loss_rules_of_full_buffers(cfg, init_w, sample_maker, with_options) -> None:
    """Rule: with a packet FIFO of 40 packets (a tick sends more: some are lost and counted) 3 threads
    lose the packets one thread loses (the first 40 of a tick kept, in core order): same bits and the same
    overflow count."""
    x, y = sample_maker(2, seed=32)
    lossy = with_options(cfg, train={"on_loss": "count"})
    spec = _run(lossy, init_w, x, y, threads=1, packet_capacity=40)
    assert spec[1].stats().queue_overflows > 0
    _same(_run(lossy, init_w, x, y, threads=3, packet_capacity=40), spec, "3 threads, 40-packet FIFO")


def test_thread_counts_are_checked_and_default_to_the_cores_at_hand() -> None:
    """Rule: chip.threads is 0 unless set, which means the host cores this process may use; a count outside
    0..64 is refused by the config and the chip, naming the value."""
    import os

    assert ChipConfig().n_threads() == len(os.sched_getaffinity(0))
    assert ChipConfig(threads=0).n_threads() == len(os.sched_getaffinity(0))
    assert ChipConfig(threads=3).n_threads() == 3
    with pytest.raises(ConfigError, match="chip.threads must be in 0..64.*got 65"):
        ExperimentConfig(chip=ChipConfig(threads=65)).validate()
    with pytest.raises(EmulatorError, match="threads must be an integer in 1..64, got 0"):
        FunctionalChip(2, threads=0)


def test_train_threads_option_reaches_the_chip(tmp_path, sample_maker) -> None:
    """Rule: `s2eprop train --threads 3` runs the chip's C loop on 3 threads (config chip.threads) and
    writes the weights `--threads 1` writes, bit for bit."""
    from s2eprop.host.cli.main import main
    from s2eprop.host.transport import open_transport

    x, y = sample_maker(2, seed=33)
    data = tmp_path / "f.npz"
    np.savez(data, x=x, y=y)
    for n in (1, 3):
        assert main(["train", "--target", "emulator", "--data", str(data), "--out", str(tmp_path / f"t{n}"),
                     "--threads", str(n), "--quiet"]) == 0
    a, b = np.load(tmp_path / "t1" / "weights.npz"), np.load(tmp_path / "t3" / "weights.npz")
    for k in ("w_in", "w_rec", "w_out"):
        assert a[k].tobytes() == b[k].tobytes(), k
    transport = open_transport("emulator", 12, chip=ChipConfig(threads=3))
    assert transport.chip.threads == 3
    transport.close()


def test_threads_give_the_bits_of_one_thread_under_router_faults(cfg, init_w, sample_maker, with_options) -> None:
    """Rule: under drops, duplicates and delays of spikes, partial sums and errors (decided in the one-thread
    order), 2 and 3 threads give one thread's bits, statistics and work counts; and no packet handler or user
    event of the firmware sends a packet (late_sends 0: the threaded order is the one-thread order)."""
    from s2eprop.host.fault_config import FaultConfig
    faults = (FaultConfig("spike", "drop", rate=0.02, seed=1), FaultConfig("spike", "duplicate", rate=0.02, seed=2),
              FaultConfig("spike", "delay", rate=0.02, ticks=1, seed=3), FaultConfig("partial", "delay", rate=0.01,
              ticks=2, seed=5), FaultConfig("error", "duplicate", count=3, core=0))
    faulty = with_options(cfg, train={"on_loss": "count"}, chip={"faults": faults})
    x, y = sample_maker(3, seed=33)
    spec = _run(faulty, init_w, x, y, threads=1)
    assert spec[1].stats().delivered > 0
    for n in (2, 3):
        run = _run(faulty, init_w, x, y, threads=n)
        _same(run, spec, f"{n} threads under faults")
        assert int(run[1]._chip.late_sends) == 0
    clean = _run(cfg, init_w, x, y, threads=2)
    assert int(clean[1]._chip.late_sends) == 0 and clean[1].stats().delivered > 0


def test_threads_count_the_drops_of_one_thread(cfg, init_w, sample_maker) -> None:
    """Rule: packets without a route (here every partial sum: its route removed) are dropped and counted on
    the threads as on one thread: the same count, the same count per source core and the same last drop."""
    from s2eprop.firmware.routes import RouteEntry
    from s2eprop.host.errors import TransportError
    from s2eprop.host.mapping.routing import FIELD_MASK, KEY_COUNT, KEY_ERR, KEY_SPIKE
    x, y = sample_maker(1, seed=34)
    stats = []
    for n in (1, 2, 3):
        chip = FunctionalChip(12, threads=n)
        board = BoardTrainer(cfg, init_w.copy(), transport=EmulatorTransport(12, chip=chip))
        keep = [RouteEntry(k, FIELD_MASK, board.plan.neuron_cores) for k in (KEY_SPIKE, KEY_ERR, KEY_COUNT)]
        board.transport.load_routes(keep)
        with pytest.raises(TransportError):
            board.train_batch(x, y)
        stats.append(chip.stats())
    assert stats[0].dropped > 0 and len(stats[0].dropped_from) == 12 and stats[0].last_drop is not None
    assert stats[1] == stats[0] and stats[2] == stats[0]


def test_a_forked_child_runs_the_threaded_chip_it_inherited(cfg, init_w, sample_maker) -> None:
    """Rule: a process forked after the chip's threads started (a sweep's workers) has none of them: its runs
    start threads of their own instead of waiting for the parent's, and learn the parent's bits."""
    import multiprocessing as mp

    x, y = sample_maker(2, seed=35)
    chip = FunctionalChip(12, threads=2)
    board = BoardTrainer(cfg, init_w.copy(), transport=EmulatorTransport(12, chip=chip))
    board.train_batch(x[:1], y[:1])  # the threads start here
    assert chip._chip.pool != chip.fw.ffi.NULL
    chip._chip.threads_forced = 1  # the next runs go on the threads
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=lambda: out.put(board.train_batch(x[1:], y[1:]) and board.weights.w_rec.tobytes()))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "the forked child hung or failed on the inherited chip"
    board.train_batch(x[1:], y[1:])
    assert out.get(timeout=5) == board.weights.w_rec.tobytes()


def test_the_pay_rule_times_each_way_per_class_of_run_length() -> None:
    """Rule: a run goes on the threads or on one thread by what each way cost per tick when last timed for runs
    of its length class (1, 2-3, 4-7, ... ticks; each way timed first), so that a timed sample's one-tick run
    with the update is not weighed against its 101-tick run."""
    chip = FunctionalChip(12, threads=2)
    c = chip._chip
    chip.run(101)  # class 6: the threads first
    assert c.tick_s_threads[6] > 0 and c.tick_s_one[6] == 0
    chip.run(1)    # class 0: apart
    assert c.tick_s_threads[0] > 0 and c.tick_s_one[0] == 0 and c.tick_s_one[6] == 0
    chip.run(100)  # class 6 again: now one thread
    assert c.tick_s_one[6] > 0
    c.threads_forced = -1
    before = c.tick_s_threads[6]
    chip.run(100)  # forced onto one thread: the threads' time stays
    assert c.tick_s_threads[6] == before
