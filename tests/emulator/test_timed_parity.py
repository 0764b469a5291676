"""The timed chip's two engines, event for event: its SimPy model (emulator/chip/timed_spec.py) and the C
event loop (emulator/chip/csrc/timed_loop.c) train the same samples to the same bits, through the same
handler calls (core, kind, tick, start and end in ps, cycles), tick records and counters, in four
regimes: the default chip; 150 MHz, where ticks overrun and a short receive queue overflows (packets
dropped at once, and packets waiting at the router up to 50 us); a starved DMA engine with skewed timers. And `s2eprop train --mode timed --engine simpy | c` write the same
weights and timing arrays."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from s2eprop.emulator.chip.description import DEFAULT_CHIP, load_chip
from s2eprop.emulator.chip.timed import ENGINES, TimedChip, timed_chip
from s2eprop.emulator.errors import EmulatorError
from timed_records import record_every_advance

REGIMES = {
    "default": {},
    "150MHz_overflows": {"clock_hz": 150_000_000, "receive_queue_packets": 12, "router_drop_timeout_ps": 0},
    # packets wait at the router for room (thousands enter after waiting, the rest are dropped at 50 us)
    "150MHz_router_waits": {"clock_hz": 150_000_000, "receive_queue_packets": 12, "router_drop_timeout_ps": 50_000_000},
    "starved_dma_skew": {"dma_setup_latency_ps": 700_000_000, "dma_bandwidth_bytes_per_s": 2_000_000,
                         "timer_skew_us": 3.5},
}


def regime_chip(tmp_path: Path, changes: dict) -> Path:
    chip = yaml.safe_load(DEFAULT_CHIP.read_text())
    chip["cycle_costs_file"] = str(DEFAULT_CHIP.parent / chip["cycle_costs_file"])
    chip.update(changes)
    path = tmp_path / "chip.yaml"
    path.write_text(yaml.safe_dump(chip))
    return path


def train_on(engine: str, chip_path: Path, cfg, init_w, x, y, threads: int = 1) -> dict:
    """Train on one engine (the C loop on `threads` threads, every run on them); every handler call and tick
    record of the run, the totals, the counters."""
    from s2eprop.host.session.runtime import BoardTrainer
    from s2eprop.host.transport.inproc import EmulatorTransport

    chip = timed_chip(12, load_chip(chip_path), engine=engine, threads=threads)
    if threads > 1:  # the runs go on the threads (faster when last timed), whatever this machine's load
        chip._chip.threads_forced = 1
    recs, logs = record_every_advance(chip)
    board = BoardTrainer(cfg, init_w, transport=EmulatorTransport(12, chip=chip))
    board.train_batch(x, y)
    board.forward(x[:1], y[:1])
    return {"weights": board.weights, "handlers": np.concatenate(logs), "ticks": np.concatenate(recs),
            "whole": chip.whole_run_arrays(), "train": chip.timing_arrays("train"), "stats": chip.stats(),
            "provenance": board.provenance(), "work": chip.work_counts(), "host_ticks": chip.tick_count,
            "gantt": (chip.compliance.worst, chip.compliance.typical)}


@pytest.fixture(scope="module")
def two_samples(samples20):
    x, y = samples20
    return x[:2], y[:2]


@pytest.mark.parametrize("regime,threads", [(r, 1) for r in REGIMES] + [("default", 3), ("150MHz_router_waits", 2)])
def test_the_simpy_model_and_the_c_loop_agree_event_for_event(regime, threads, tmp_path, cfg, init_w, two_samples) -> None:
    """Rule: both engines make the same handler calls at the same picoseconds, charge the same cycles,
    keep the same records and counters, and learn the same bits; the C loop on one thread or on several
    (the handlers that start at one time on several cores called on the threads)."""
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, on_loss="count"))
    path = regime_chip(tmp_path, REGIMES[regime])
    c, s = train_on("c", path, cfg, init_w, *two_samples, threads=threads), train_on("simpy", path, cfg, init_w,
                                                                                      *two_samples)
    assert len(c["handlers"]) > 10_000 and s["host_ticks"] == c["host_ticks"]
    first = np.flatnonzero(c["handlers"][:len(s["handlers"])] != s["handlers"][:len(c["handlers"])])
    assert len(s["handlers"]) == len(c["handlers"]) and not len(first), \
        f"first different handler call: C {c['handlers'][first[:1]]}, SimPy {s['handlers'][first[:1]]}"
    np.testing.assert_array_equal(s["ticks"], c["ticks"])
    for part in ("whole", "train", "work"):
        for k in c[part]:
            np.testing.assert_array_equal(s[part][k], c[part][k], err_msg=f"{part} {k}")
    assert s["stats"] == c["stats"] and s["provenance"] == c["provenance"]
    for k in ("w_in", "w_rec", "w_out"):
        np.testing.assert_array_equal(getattr(s["weights"], k).view(np.uint32), getattr(c["weights"], k).view(np.uint32))
    # the worst and the typical tick's Gantt chart: every handler of that tick, though its calls span advances
    for run in (c, s):
        assert run["gantt"][0] is not None
        for _, tick, log in filter(None, run["gantt"]):
            np.testing.assert_array_equal(log, run["handlers"][run["handlers"]["tick"] == tick])
    # the regime does what it is for
    losses = {k: v for k, v in c["provenance"].items() if v}
    if regime in ("150MHz_overflows", "150MHz_router_waits"):
        assert c["whole"]["overruns"].sum() > 0 and c["stats"].rx_queue_overflows > 0 and losses
    if regime == "starved_dma_skew":
        assert c["whole"]["max_timer_delay_ps"].max() > 0 and losses.get("input_underruns", 0) > 0


@pytest.mark.parametrize("clock_mhz", [300, 150])
def test_train_with_either_engine_writes_the_same_run(clock_mhz, tmp_path, features_2) -> None:
    """Rule: `s2eprop train --mode timed --engine simpy` and `--engine c` on the same 2 samples write
    bit-identical weights and equal timing arrays (train.on_loss: count)."""
    from s2eprop.host.cli.main import main

    config = tmp_path / "count.yaml"
    config.write_text(yaml.safe_dump({"train": {"on_loss": "count"}}))
    runs = {}
    for engine in ("c", "simpy"):
        out = tmp_path / engine
        assert main(["train", "--data", str(features_2), "--config", str(config), "--mode", "timed", "--engine", engine,
                     "--clock-mhz", str(clock_mhz), "--out", str(out), "--quiet"]) == 0
        runs[engine] = out
    with np.load(runs["c"] / "weights.npz") as wc, np.load(runs["simpy"] / "weights.npz") as ws:
        for k in ("w_in", "w_rec", "w_out"):
            np.testing.assert_array_equal(ws[k].view(np.uint32), wc[k].view(np.uint32), err_msg=k)
    with np.load(runs["c"] / "timing.npz") as tc, np.load(runs["simpy"] / "timing.npz") as ts:
        assert sorted(tc.files) == sorted(ts.files)
        for k in tc.files:
            np.testing.assert_array_equal(ts[k], tc[k], err_msg=k)
    reports = [json.loads((runs[e] / "report.json").read_text()) for e in ("c", "simpy")]
    assert reports[0]["timing"] == reports[1]["timing"] and reports[0]["provenance"] == reports[1]["provenance"]


@pytest.fixture(scope="module")
def features_2(tmp_path_factory, samples20) -> Path:
    x, y = samples20
    path = tmp_path_factory.mktemp("data") / "two.npz"
    np.savez(path, x=x[:2], y=y[:2])
    return path


def test_an_unknown_engine_is_refused() -> None:
    assert ENGINES == ("c", "simpy")
    with pytest.raises(EmulatorError, match="engine must be one of c, simpy, got 'python'"):
        timed_chip(2, engine="python")
    assert type(timed_chip(2)) is TimedChip


class CallingRunner:
    """A core runner around the native one that notes every handler call: (core, handler)."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, []
        self.sram, self.init = inner.sram, inner.init

    def __getattr__(self, name: str):
        handler = getattr(self.inner, name)

        def call(core: int, *args):
            self.calls.append((core, name))
            return handler(core, *args)
        return call


def test_the_simpy_model_runs_handlers_through_any_core_runner(cfg, init_w, two_samples) -> None:
    """Rule: the SimPy engine calls the firmware only through the core-runner seam (on_timer, on_mc_packet,
    ...), so another runner behind it is run in time: one call per handler the chip logs, same bits."""
    from s2eprop.emulator.chip.timed import SimpyTimedChip
    from s2eprop.emulator.runners.native import NativeRunner
    from s2eprop.firmware.abi import Firmware
    from s2eprop.host.session.runtime import BoardTrainer
    from s2eprop.host.transport.inproc import EmulatorTransport

    x, y = two_samples
    fw, desc = Firmware(), load_chip()
    runner = CallingRunner(NativeRunner(fw, 12, desc.sram_bytes_per_core))
    chip = SimpyTimedChip(12, desc, firmware=fw, runner=runner)
    logged = []
    keep = chip.compliance.add
    chip.compliance.add = lambda r, log: (logged.append(log), keep(r, log))
    board = BoardTrainer(cfg, init_w, transport=EmulatorTransport(12, chip=chip))
    board.train_batch(x[:1], y[:1])
    reference = BoardTrainer(cfg, init_w, transport=EmulatorTransport(12, chip=timed_chip(12, desc)))
    reference.train_batch(x[:1], y[:1])
    handlers = np.concatenate(logged)
    kinds = {0: "on_mc_packet", 1: "on_dma_done", 2: "on_host_msg", 3: "on_timer", 4: "on_user_event"}
    assert runner.calls == [(int(h["core"]), kinds[int(h["kind"])]) for h in handlers]
    for k in ("w_in", "w_rec", "w_out"):
        np.testing.assert_array_equal(getattr(board.weights, k).view(np.uint32), getattr(reference.weights, k).view(np.uint32))


def test_a_board_served_on_either_engine_trains_the_same_bits(two_samples) -> None:
    """Rule: `s2eprop serve --mode timed --engine simpy` is the same board as `--engine c` to a host on UDP."""
    from s2eprop.host.cli.local_board import LocalBoard

    import s2eprop

    x, y = two_samples
    weights = {}
    for engine in ENGINES:
        with LocalBoard(mode="timed", cores=12, engine=engine) as board, s2eprop.Session(target=board.target) as s:
            s.train_sample(x[0], int(y[0]))
            weights[engine] = s.weights
    for k in ("w_in", "w_rec", "w_out"):
        np.testing.assert_array_equal(weights["simpy"][k].view(np.uint32), weights["c"][k].view(np.uint32))
