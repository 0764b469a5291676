"""The time study: its arithmetic on a hand-made compliance record, and one sample on the timed chip."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from s2eprop.emulator.chip.description import PHASES
from s2eprop.host.studies import time_profile


def _window(cycles: list[tuple[int, int, int]]) -> np.ndarray:
    w = np.zeros(len(cycles), dtype=[("core", "<u4"), ("tick", "<u4"), ("cycles", "<u4")])
    for i, rec in enumerate(cycles):
        w[i] = rec
    return w


def test_profile_arithmetic() -> None:
    """Per sample = phase cycles / samples, per tick = / ticks, utilisation = cycles / budget, dominant = argmax."""
    phase = np.array([[100.0, 800, 50, 30, 20], [100.0, 600, 10, 30, 20]])
    arrays = {"phase_cycles": phase, "ticks": np.array([4, 4]), "overruns": np.array([1, 0]),
              "worst_cycles": np.array([600, 200])}
    w = _window([(0, 0, 100), (0, 1, 600), (1, 0, 100), (1, 1, 200)])
    summary = {"overruns": 1, "ticks": 8, "max_tick_utilisation": 1.2, "p99_tick_utilisation": 1.2,
               "late_packets": 0, "cycle_costs_source": "test"}
    p = time_profile.profile_from_arrays(arrays, w, 500.0, 2, summary, [3, 1])
    assert p["cycles_per_sample_by_phase"]["trace_update"] == 700.0
    assert p["per_core"][0]["cycles_per_tick_mean"]["neuron_update"] == 25.0
    assert p["per_core"][0]["max_tick_utilisation"] == 1.2
    assert p["per_core"][1]["median_tick_utilisation"] == 0.3
    assert p["per_core"][0]["role"] == "neuron+readout"
    assert p["dominant_phase"] == "trace_update" and p["dominant_phase_paper_name"] == "eligibility traces"
    assert p["phase_share"]["trace_update"] == pytest.approx(1400 / sum(phase.sum(axis=0)), abs=1e-4)
    assert not p["real_time"]


def test_one_sample_on_the_timed_chip(tmp_path: Path) -> None:
    """One sample at 300 MHz: the phases add up to the cores' busy cycles, the result and figures are written."""
    r = time_profile.run(tmp_path, n_samples=1, clocks_mhz=(300,))
    p = r["by_clock_mhz"]["300"]
    assert json.loads((tmp_path / "result.json").read_text())["study"] == "time"
    assert set(p["cycles_per_sample_by_phase"]) == set(PHASES)
    assert p["budget_cycles_per_tick"] == pytest.approx(300e3, rel=1e-4)
    assert p["real_time"] and p["dominant_phase"] == "trace_update"
    assert max(c["max_tick_utilisation"] for c in p["per_core"]) == p["max_tick_utilisation"]
    for name in r["figures"].values():
        assert (tmp_path / name).stat().st_size > 1000
