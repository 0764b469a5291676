"""Emulator benchmark: one training sample through the whole host path on 12 cores (timed by
pytest-benchmark with --benchmark-enable; the speed goal is stated in `s2eprop bench`, not asserted)."""
from __future__ import annotations

import numpy as np

from s2eprop.host.cli.bench import bench_emulator
from s2eprop.host.config import ExperimentConfig
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.weights import init_weights


def test_bench_emulator_structure() -> None:
    """bench_emulator reports ms per sample of the training session's path, on 12 cores, and the
    real-time factor: 101 emulated ms per sample over the wall time per sample."""
    result = bench_emulator(n_samples=2)
    assert result["emulator_cores"] == 12 and result["emulator_backend"] == "c"
    assert result["emulator_ms_per_sample"] > 0
    assert abs(result["emulator_realtime_factor"] * result["emulator_ms_per_sample"] - 101) < 1e-6


def test_train_one_sample_on_chip(benchmark) -> None:
    """One on-chip training sample (100 steps + update) returns a result for every call."""
    cfg = ExperimentConfig().validate()
    board = BoardTrainer(cfg, init_weights(cfg.network, 0))
    x = (3 * np.random.default_rng(0).standard_normal((1, 100, 80))).astype(np.float32)
    result = benchmark(board.train_batch, x, np.array([4]))
    assert result.pred.shape == (1,) and result.spikes[0] > 0


def test_bench_emulator_times_trained_weights_of_a_run(tmp_path, monkeypatch) -> None:
    """Rule: `bench emulator --weights RUN_DIR` times training from the run's weights.npz beside fresh
    weights and reports the file and the ratio; without --weights it takes the demo's
    runs/demo/weights.npz where it exists, else says how to get trained weights; a folder without
    weights.npz is refused, naming the path it looked for."""
    import pytest

    from s2eprop.host.errors import HostError

    cfg = ExperimentConfig().validate()
    run = tmp_path / "run"
    run.mkdir()
    init_weights(cfg.network, 5).save(run / "weights.npz")
    result = bench_emulator(n_samples=1, trained=run)
    assert result["emulator_trained_weights"] == str(run / "weights.npz")
    assert result["emulator_trained_ms_per_sample"] > 0
    assert result["emulator_trained_over_fresh"] == pytest.approx(
        result["emulator_trained_ms_per_sample"] / result["emulator_ms_per_sample"])
    assert abs(result["emulator_trained_realtime_factor"] * result["emulator_trained_ms_per_sample"] - 101) < 1e-6
    monkeypatch.chdir(tmp_path)
    assert "make demo" in bench_emulator(n_samples=1)["emulator_trained"]
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    init_weights(cfg.network, 6).save(tmp_path / "runs" / "demo" / "weights.npz")
    assert bench_emulator(n_samples=1)["emulator_trained_weights"] == "runs/demo/weights.npz"
    with pytest.raises(HostError, match=str(tmp_path / "empty" / "weights.npz")):
        (tmp_path / "empty").mkdir()
        bench_emulator(n_samples=1, trained=tmp_path / "empty")


def test_bench_threads_reach_the_chip(monkeypatch) -> None:
    """Rule: `bench --threads N` runs the chip's C event loop on N host threads (reported), functional or timed,
    in `bench emulator` and in the copies' runs; the SimPy engine runs on one."""
    from s2eprop.emulator.chip.functional import FunctionalChip
    from s2eprop.host.cli.bench import bench_copies

    seen: list[int] = []
    init = FunctionalChip.__init__

    def spy(self, *a, **kw):
        init(self, *a, **kw)
        seen.append(self.threads)

    monkeypatch.setattr(FunctionalChip, "__init__", spy)
    assert bench_emulator(n_samples=1, threads=2, trained=None)["emulator_threads"] == 2 and set(seen) == {2}
    seen.clear()
    out = bench_copies(copies=(1, 2), modes=("functional",), n_samples=1, threads=2)
    assert out["functional"]["threads"] == 2 and set(seen) == {2}
    seen.clear()
    assert bench_emulator(n_samples=1, mode="timed", threads=2, trained=None)["emulator_threads"] == 2 and set(seen) == {2}
    seen.clear()
    out = bench_copies(copies=(1,), modes=("timed",), n_samples=1, threads=2)
    assert out["timed"]["threads"] == 2 and set(seen) == {2}
    assert bench_emulator(n_samples=1, mode="timed", engine="simpy", threads=2, trained=None)["emulator_threads"] == 1
