"""Golden-model benchmark: structure of its result (timed by pytest-benchmark when enabled)."""
from __future__ import annotations

from host.bench import bench_golden


def test_bench_golden(benchmark) -> None:
    """bench_golden returns ms per sample for each batch size, on a network that spikes."""
    result = benchmark(bench_golden, batch_sizes=(1, 2), n_samples=2, seed=1)
    assert set(result["golden_ms_per_sample"]) == {"1", "2"}
    assert all(ms > 0 for ms in result["golden_ms_per_sample"].values())
    assert result["network"] == "80-120-12" and result["n_steps"] == 100 and result["n_samples"] == 2
    assert result["mean_spikes_per_sample"] > 0
