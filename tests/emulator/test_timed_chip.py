"""The timed chip against hand-computed times.

Cores that were never started (status not FW_RUNNING) return from every handler at once with no work,
so each handler costs exactly interrupt entry + exit + its base cycles; a side effect placed in such
a core's outbox leaves when its next handler ends. With the costs of the chip file below every time
in these tests is a sum of a few numbers."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from s2eprop.emulator.chip.description import DEFAULT_CHIP, load_chip
from s2eprop.emulator.errors import EmulatorError
from s2eprop.firmware.abi import Firmware
from s2eprop.firmware.routes import RouteEntry
from s2eprop.emulator.chip.timed import ENGINES, TimedChip, timed_chip
from core_outbox import put_outbox

CYCLE_PS = 3333          # 300 MHz
IRQ = 12 + 10            # interrupt entry + exit cycles of the default chip file
HOP_PS, ROUTER_PS, PACKET_PS = 16667, 10000, 3333
DMA_LATENCY_PS, DMA_BYTES_PER_S = 300000, 1200000000
TICK_PS = 10 ** 9


def chip_file(tmp_path: Path, timer_cycles: float = 100, packet_cycles: float = 30, **chip_changes) -> Path:
    costs = {"provenance": {"source": "test"},
             "handler_base_cycles": {"timer": timer_cycles, "mc_packet": packet_cycles, "dma_done": 50,
                                     "host_msg": 60, "user_event": 80},
             "per_count_cycles": {k: 0 for k in Firmware().count_fields}}
    (tmp_path / "costs.yaml").write_text(yaml.safe_dump(costs))
    chip = yaml.safe_load(DEFAULT_CHIP.read_text())
    chip.update(cycle_costs_file="costs.yaml", **chip_changes)
    path = tmp_path / "chip.yaml"
    path.write_text(yaml.safe_dump(chip))
    return path


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    """The rules hold on both engines: the C event loop and the SimPy model it is the fast path of."""
    return request.param


def stopped_chip(tmp_path: Path, n_cores: int = 12, mode: str = "timed", engine: str = "c", **kw) -> TimedChip:
    """Cores whose firmware never started, with their timers running."""
    chip = timed_chip(n_cores, load_chip(chip_file(tmp_path, **kw)), mode=mode, engine=engine)
    for c in range(n_cores):
        chip.enable_timer(c)
    return chip


def handlers(chip: TimedChip, core: int, kind: str) -> np.ndarray:
    log = chip.compliance.last_logs()  # the handlers of the last advance
    k = {v: k for k, v in chip.compliance.kinds.items()}[kind]
    return log[(log["core"] == core) & (log["kind"] == k)]


def timer_end(cycles: float = 100) -> int:
    return (IRQ + int(cycles)) * CYCLE_PS


def test_packet_arrives_after_router_and_hop_latency(tmp_path, engine) -> None:
    chip = stopped_chip(tmp_path, engine=engine)
    src, dst = 0, 5  # QPE (7,6) and QPE (6,6): one hop apart
    assert chip.hops[src, dst] == 1 and chip.hops[0, 9] == 2
    chip.load_routes([RouteEntry(0x01000000, 0xff000000, (dst, 9))])
    put_outbox(chip, src, [1, 0x01000007, 42])  # HAL_OUT_MC: key, payload
    chip.run(1)
    sent = timer_end()  # core 0's timer handler ends: the packet leaves
    for core, hops in ((dst, 1), (9, 2)):
        got = handlers(chip, core, "mc_packet")
        assert len(got) == 1
        assert got["start_ps"][0] == sent + ROUTER_PS + hops * HOP_PS + PACKET_PS
        assert got["end_ps"][0] - got["start_ps"][0] == (IRQ + 30) * CYCLE_PS
    assert chip.stats().delivered == 2 and chip.stats().dropped == 0


def test_dma_completes_after_latency_plus_bytes_over_bandwidth(tmp_path, engine) -> None:
    chip = stopped_chip(tmp_path, engine=engine)
    data = np.arange(1000, dtype=np.uint32)  # 4,000 B
    chip.write_sdram(0x200000, data)
    put_outbox(chip, 3, [3, 0x200000, 8192, 4000, 77])  # HAL_OUT_DMA: sdram, sram offset, bytes, tag
    chip.run(1)
    transfer = -(-4000 * 10 ** 12 // DMA_BYTES_PER_S)  # ceil: 3,333,334 ps
    done = handlers(chip, 3, "dma_done")
    assert len(done) == 1
    assert done["start_ps"][0] == timer_end() + DMA_LATENCY_PS + transfer
    assert np.array_equal(np.frombuffer(chip.read_sram(3, 8192, 4000), np.uint32), data)
    assert chip.stats().dma_bytes == 4000


def test_a_handler_longer_than_a_tick_overruns_and_delays_the_next_timer(tmp_path, engine) -> None:
    long = 400_000  # cycles: 1.333 ms at 300 MHz
    chip = stopped_chip(tmp_path, engine=engine, n_cores=1, timer_cycles=long)
    chip.run(3)
    timers = handlers(chip, 0, "timer")
    dur = (IRQ + long) * CYCLE_PS
    assert list(timers["start_ps"]) == [0, dur, 2 * dur]  # each starts when the previous one ends
    chip.run(1)  # closes tick 2
    rec = chip.compliance.window()
    assert len(rec) == 3 and list(rec["overrun"]) == [1, 1, 1]
    assert list(rec["timer_delay_ps"]) == [0, dur - TICK_PS, 2 * dur - 2 * TICK_PS]
    assert chip.core_timing(0).overruns == 3


def test_a_packet_during_a_timer_handler_is_served_after_it_and_before_the_next_timer(tmp_path, engine) -> None:
    chip = stopped_chip(tmp_path, engine=engine, n_cores=1, timer_cycles=150_000)  # 500 us timers
    chip.load_routes([RouteEntry(0x01000000, 0xff000000, (0,))])
    chip.run(1)
    chip.inject(0x01000001)  # at 1 ms, as the timer of tick 1 starts
    chip.run(1)
    packet, timers = handlers(chip, 0, "mc_packet"), handlers(chip, 0, "timer")
    assert timers["start_ps"][0] == TICK_PS
    arrival = TICK_PS + ROUTER_PS + PACKET_PS
    assert arrival < timers["end_ps"][0]                 # it arrived while the timer handler ran
    assert packet["start_ps"][0] == timers["end_ps"][0]  # served as soon as that handler ended
    assert packet["end_ps"][0] < 2 * TICK_PS             # before the timer of tick 2
    chip.run(1)
    assert handlers(chip, 0, "timer")["start_ps"][0] == 2 * TICK_PS


def test_a_packet_is_served_before_a_timer_that_waits_with_it(tmp_path, engine) -> None:
    chip = stopped_chip(tmp_path, engine=engine, n_cores=1, timer_cycles=400_000)  # 1.33 ms: still busy when tick 1 fires
    chip.load_routes([RouteEntry(0x01000000, 0xff000000, (0,))])
    chip.run(1)
    chip.inject(0x01000001)  # arrives at 1 ms + 13 ns, after the timer of tick 1 fired
    chip.run(1)
    packet, timers = handlers(chip, 0, "mc_packet"), handlers(chip, 0, "timer")
    first_end = (IRQ + 400_000) * CYCLE_PS
    assert packet["start_ps"][0] == first_end          # packet first ...
    assert timers["start_ps"][0] == packet["end_ps"][0]  # ... then the late timer of tick 1


def test_an_arrival_at_the_instant_a_handler_ends_is_served_by_priority(tmp_path, engine) -> None:
    """Rule: at one instant, arrivals come before a core looks for its next handler: a packet arriving
    exactly when a long timer handler ends is served before the timer of the next tick that waited."""
    end_cycles = 300_034  # x 3,333 ps = 1,000,013,322 ps = 1 ms + router 9,989 ps + one packet 3,333 ps
    chip = stopped_chip(tmp_path, engine=engine, n_cores=1, timer_cycles=end_cycles - IRQ, router_latency_ps=9989)
    chip.load_routes([RouteEntry(0x01000000, 0xff000000, (0,))])
    chip.run(1)
    chip.inject(0x01000001)  # at 1 ms: arrives at 1 ms + 9,989 + 3,333 ps, as the timer handler of tick 0 ends
    chip.run(1)
    packet, timers = handlers(chip, 0, "mc_packet"), handlers(chip, 0, "timer")
    assert packet["start_ps"][0] == end_cycles * CYCLE_PS
    assert timers["start_ps"][0] == packet["end_ps"][0] and timers["tick"][0] == 1


def test_a_core_never_started_has_no_timer_and_one_started_later_ticks_from_the_next_tick(tmp_path, engine) -> None:
    chip = timed_chip(2, load_chip(chip_file(tmp_path)), engine=engine)
    chip.run(2)
    assert len(chip.compliance.last_logs()) == 0
    chip.enable_timer(1)
    chip.run(2)
    assert list(handlers(chip, 1, "timer")["start_ps"]) == [2 * TICK_PS, 3 * TICK_PS]
    assert len(handlers(chip, 0, "timer")) == 0


def test_an_unrouted_key_is_dropped_and_counted(tmp_path, engine) -> None:
    chip = stopped_chip(tmp_path, engine=engine)
    chip.load_routes([RouteEntry(0x01000000, 0xff000000, (1,))])
    chip.inject(0x05000000)
    put_outbox(chip, 2, [1, 0x06000003, 0])
    chip.run(1)
    st = chip.stats()
    assert st.dropped == 2 and st.delivered == 0
    assert st.last_drop == (2, 0x06000003)


PACKET_HANDLER_PS = (IRQ + 30) * CYCLE_PS  # a stopped core's packet handler


@pytest.mark.parametrize("timeout_ps, dropped", [(0, 2), (PACKET_HANDLER_PS // 2, 1), (2 * PACKET_HANDLER_PS, 0)])
def test_a_packet_waits_at_the_router_for_room_then_is_dropped(tmp_path, engine, timeout_ps, dropped) -> None:
    """Rule: a burst of 6 meets a receive queue of 4: packets 5 and 6 wait at the router; each packet handler
    that starts takes one from the queue and the oldest waiting packet enters, unless it waited longer than
    router_drop_timeout_ps, when the router dropped and counted it. Core 1 is idle when the burst arrives at T,
    so packet 5 enters at T and packet 6 at T + one handler: a timeout of 0 drops both at once, half a handler
    drops packet 6, two handlers drop none; the handlers that run follow each other with no gap."""
    chip = stopped_chip(tmp_path, engine=engine, n_cores=2, receive_queue_packets=4, router_drop_timeout_ps=timeout_ps)
    chip.load_routes([RouteEntry(0x01000000, 0xff000000, (1,))])
    put_outbox(chip, 0, [w for i in range(6) for w in (1, 0x01000000 + i, 0)])  # one burst of 6
    chip.run(1)
    assert chip.stats().rx_queue_overflows == dropped
    ran = handlers(chip, 1, "mc_packet")
    arrival = timer_end() + ROUTER_PS + 6 * PACKET_PS
    assert len(ran) == 6 - dropped
    assert ran["start_ps"].tolist() == [arrival + i * PACKET_HANDLER_PS for i in range(6 - dropped)]


@pytest.mark.parametrize("key, value, says", [
    ("noc_hop_latency_ps", -5, "noc_hop_latency_ps must be >= 0"),
    ("clock_hz", 200000000, "clock_hz is 200,000,000 Hz, not one of clock_levels_hz"),
    ("router_entries", "many", "router_entries must be a number"),
    ("qpes", [[1, 1], [1, 1]], "qpes lists QPE [1, 1] twice"),
    ("tick_us", 0, "tick_us must lie in"),
    ("bogus_key", 1, "bogus_key is not a chip-file key"),
])
def test_a_bad_chip_file_is_refused_naming_the_key(tmp_path, key, value, says) -> None:
    path = chip_file(tmp_path, **{key: value})
    with pytest.raises(EmulatorError, match=re.escape(says)):
        load_chip(path)


def test_bad_cycle_costs_are_refused_naming_the_key(tmp_path) -> None:
    path = chip_file(tmp_path)
    costs = yaml.safe_load((tmp_path / "costs.yaml").read_text())
    del costs["per_count_cycles"]["trace_updates"]
    (tmp_path / "costs.yaml").write_text(yaml.safe_dump(costs))
    with pytest.raises(EmulatorError, match="per_count_cycles.trace_updates is missing"):
        load_chip(path)


def test_clock_must_be_a_level_of_the_chip() -> None:
    chip = load_chip()
    assert chip.with_clock(150_000_000).cycle_ps() == 6667
    with pytest.raises(EmulatorError, match="200 MHz is not one of the chip's levels"):
        chip.with_clock(200_000_000)


def test_the_default_chip_is_spinnaker2() -> None:
    chip = load_chip()
    assert chip.n_cores == 152 and len(chip.qpes) == 38 and chip.router_entries == 16384
    assert chip.sram_bytes_per_core == 128 * 1024 and chip.clock_levels_hz == (150_000_000, 300_000_000)
    holes = {(4, 3), (4, 4), (7, 3), (7, 4)}
    assert set(chip.qpes) == {(x, y) for x in range(1, 8) for y in range(1, 7)} - holes


class FakeClock:
    """A wall clock that moves only when slept on, when the host works (`host_s`), and by
    `compute_s` at every reading (a chip slower than real time)."""

    def __init__(self, compute_s: float = 0.0) -> None:
        self.t_s = 100.0
        self.compute_s = compute_s

    def now_s(self) -> float:
        self.t_s += self.compute_s
        return self.t_s

    def sleep_s(self, seconds: float) -> None:
        assert seconds > 0, f"slept {seconds} s"
        self.t_s += seconds

    def host_s(self, seconds: float) -> None:
        self.t_s += seconds


def test_realtime_advances_each_take_their_own_ticks_of_wall_time(tmp_path, engine) -> None:
    """Rule: in realtime mode an advance of n ticks takes n ms of wall clock however many came before,
    and the host's time between advances is neither waited for again nor counted as lag."""
    clock = FakeClock()
    chip = timed_chip(2, load_chip(chip_file(tmp_path)), mode="realtime", engine=engine, wall_clock=clock)
    for c in range(2):
        chip.enable_timer(c)
    took_s = []
    for _ in range(10):  # ten samples of 101 ticks, 40 ms of host work each
        t0 = clock.t_s
        chip.run(101)
        took_s.append(clock.t_s - t0)
        clock.host_s(0.040)
    assert took_s == pytest.approx([0.101] * 10, abs=1e-9)
    assert chip.lag.ticks == 1010 and chip.lag.max_s == pytest.approx(0, abs=1e-9) and chip.lag.ticks_behind == 0


def test_realtime_lag_says_how_late_a_slow_chip_ran(tmp_path, engine) -> None:
    """Rule: a chip whose ticks take 3 ms of wall time each starts tick k of an advance
    (k + 1) x 3 - k ms late (its first reading of the clock costs 3 ms too): the lag report says so."""
    clock = FakeClock(compute_s=0.003)
    chip = timed_chip(1, load_chip(chip_file(tmp_path)), mode="realtime", engine=engine, wall_clock=clock)
    chip.enable_timer(0)
    chip.run(10)
    assert chip.lag.ticks == 10 and chip.lag.ticks_behind == 10
    assert chip.lag.max_s == pytest.approx(0.003 * 10 - 0.001 * 9)
    clock.compute_s = 0.0
    chip.run(5)  # a new advance is anchored afresh: on time again
    assert chip.lag.ticks == 15 and chip.lag.ticks_behind == 10


def test_timer_skew_shifts_each_core(tmp_path, engine) -> None:
    chip = stopped_chip(tmp_path, engine=engine, n_cores=3, timer_skew_us=2.5)
    chip.run(1)
    starts = [int(handlers(chip, c, "timer")["start_ps"][0]) for c in range(3)]
    assert starts == [0, 2_500_000, 5_000_000]


def test_functional_and_timed_training_give_the_same_bits(cfg, init_w, samples20, weights_identical) -> None:
    from s2eprop.host.session.runtime import BoardTrainer
    from s2eprop.host.transport.inproc import EmulatorTransport

    x, y = samples20
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, on_loss="count"))
    functional = BoardTrainer(cfg, init_w)
    chip = TimedChip(12)
    timed = BoardTrainer(cfg, init_w, transport=EmulatorTransport(12, chip=chip))
    for i in range(3):
        functional.train_batch(x[i], y[i:i + 1])
        timed.train_batch(x[i], y[i:i + 1])
    assert not any(timed.provenance().values()), timed.provenance()
    assert chip.compliance.overruns_seen == 0
    weights_identical(timed.weights, functional.weights, "timed vs functional")
    # the timed chip took one tick more per sample: the host's SAMPLE message takes the link's latency
    assert timed.ticks_train == functional.ticks_train + 3


def _timed_board(cfg, init_w, chip_path):
    from s2eprop.host.session.runtime import BoardTrainer
    from s2eprop.host.transport.inproc import EmulatorTransport

    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, on_loss="count"))
    chip = TimedChip(12, load_chip(chip_path))
    return BoardTrainer(cfg, init_w, transport=EmulatorTransport(12, chip=chip)), chip


def test_a_frame_that_comes_after_the_next_tick_is_counted_and_its_step_skipped(cfg, init_w, samples20,
                                                                                 tmp_path) -> None:
    # 100 kB/s: a frame slot of 84 words takes 3.36 ms, so every fetch is still running at the next tick
    board, chip = _timed_board(cfg, init_w, chip_file(tmp_path, dma_bandwidth_bytes_per_s=100_000))
    x, y = samples20
    board.train_batch(x[0], y[:1])
    per_core = board.core_counters()
    # steps 0..98 are skipped when the next timer finds their fetch running, step 99 when the sample ends
    assert [per_core[c]["input_underruns"] for c in range(12)] == [100] * 12
    assert chip.compliance.overruns_seen == 0  # the cores idle while they wait: late input, not overrun


def test_overruns_bring_late_packets_and_move_the_weights(cfg, init_w, samples20, tmp_path) -> None:
    from s2eprop.host.session.runtime import BoardTrainer

    x, y = samples20
    slow = chip_file(tmp_path, clock_levels_hz=[20_000_000], clock_hz=20_000_000)
    costs = yaml.safe_load((tmp_path / "costs.yaml").read_text())
    costs["per_count_cycles"]["trace_updates"] = 20  # 2,000 trace updates a step: 2 ms at 20 MHz
    (tmp_path / "costs.yaml").write_text(yaml.safe_dump(costs))
    board, chip = _timed_board(cfg, init_w, slow)
    functional = BoardTrainer(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, on_loss="count")),
                              init_w)
    for i in range(2):
        board.train_batch(x[i], y[i:i + 1])
        functional.train_batch(x[i], y[i:i + 1])
    assert chip.compliance.overruns_seen > 100
    assert sum(c["late_packets"] for c in board.core_counters().values()) > 0
    assert not np.array_equal(board.weights.w_rec, functional.weights.w_rec)


def test_the_hop_table_is_the_xy_distance_of_the_qpes() -> None:
    chip = load_chip()
    table = chip.hop_table(152)
    for a, b in ((0, 1), (0, 4), (0, 151), (37, 99), (150, 3)):
        (ax, ay, _), (bx, by, _) = chip.placement(a), chip.placement(b)
        assert table[a, b] == table[b, a] == abs(ax - bx) + abs(ay - by) == chip.hops(a, b)
    assert table.max() == 11 and (np.diag(table) == 0).all()  # (7,6) to (1,1)


def test_the_parts_of_a_run_add_up_to_the_whole(cfg, init_w, samples20) -> None:
    """Rule: the training and inference parts of a timed run split its ticks: their per-core totals
    (summed in Python from the tick records) add up to the C loop's own whole-run totals."""
    from s2eprop.host.session.runtime import BoardTrainer
    from s2eprop.host.transport.inproc import EmulatorTransport

    x, y = samples20
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, on_loss="count"))
    chip = TimedChip(12, load_chip().with_clock(150_000_000))  # at 150 MHz some ticks overrun
    board = BoardTrainer(cfg, init_w, transport=EmulatorTransport(12, chip=chip))
    board.train_batch(x[:2], y[:2])
    board.forward(x[2:4], y[2:4])
    board.train_batch(x[4:5], y[4:5])
    board.forward(x[5:6], y[5:6])  # the last part is still open: its phases come from the running totals
    whole = chip.whole_run_arrays()
    train, inference = chip.timing_arrays("train"), chip.timing_arrays("inference")
    # the ticks the host advanced for each (each core's last tick never closes)
    assert train["ticks"].sum() == 12 * board.ticks_train and inference["ticks"].sum() == 12 * (board.ticks_eval - 1)
    assert whole["overruns"].sum() > 0
    for k in ("ticks", "overruns", "util_hist", "packets_received"):
        np.testing.assert_array_equal(train[k] + inference[k], whole[k], err_msg=k)
    for k in ("worst_cycles", "max_queue", "max_timer_delay_ps"):
        np.testing.assert_array_equal(np.maximum(train[k], inference[k]), whole[k], err_msg=k)
    untied = train["worst_cycles"] != inference["worst_cycles"]
    worst_tick = np.where(train["worst_cycles"] > inference["worst_cycles"], train["worst_tick"], inference["worst_tick"])
    np.testing.assert_array_equal(worst_tick[untied], whole["worst_tick"][untied])
    np.testing.assert_allclose(train["phase_cycles"] + inference["phase_cycles"], whole["phase_cycles"], rtol=1e-12)
    # inference updates no traces; at 150 MHz a training step that overran ends in the next advance
    assert (inference["phase_cycles"][:, 1] < 0.01 * train["phase_cycles"][:, 1]).all()
