"""Calibration (host/cli/calibrate.py): the cost model fitted to the ISS predicts held-out handler calls."""
from __future__ import annotations

import json

import numpy as np
import pytest

from s2eprop.host.cli import calibrate as cal


def test_nnls_keeps_coefficients_non_negative() -> None:
    """Rule: NNLS recovers exact non-negative coefficients, and where least squares wants a negative one
    it gives 0 and the best fit of the rest."""
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (200, 4))
    x = np.array([3.0, 0.0, 1.5, 7.0])
    assert np.allclose(cal.nnls(a, a @ x), x, atol=1e-9)
    b = a @ np.array([2.0, -1.0, 0.5, 1.0])
    got = cal.nnls(a, b)
    assert got.min() >= 0 and got[1] == 0
    assert np.allclose(got[[0, 2, 3]], np.linalg.lstsq(a[:, [0, 2, 3]], b, rcond=None)[0])


@pytest.fixture(scope="module")
def quick(arm_elf):
    return cal.calibrate(cal.QUICK_SHAPES, elf=arm_elf)


def test_model_predicts_held_out_calls(quick) -> None:
    """Rule: on held-out samples (other seeds) every dma_done, host_msg and user_event call (the neuron
    step, the sample message, Adam: the bulk of the cycles) is predicted within 10 %, the median call
    within 3 %, and 90 % of all cycles lie in calls within 10 %. The rest are timer and packet calls
    whose paths the nine work counts do not tell apart (docs/arm.md: the trace reset at a sample's
    start, the readout's reduction, packet kinds)."""
    model, fields, held = quick["model"], quick["fields"], quick["held_out"]
    rel = np.abs(model.predict(held, fields) - held.cycles) / held.cycles
    for name in ("dma_done", "host_msg", "user_event"):
        sel = held.handler == cal.HANDLERS.index(name)
        assert sel.any() and rel[sel].max() <= 0.10, (name, rel[sel].max())
    assert np.median(rel) <= 0.03
    assert held.cycles[rel <= 0.10].sum() >= 0.90 * held.cycles.sum()
    assert quick["held_out_residuals"]["calls"] == rel.size and "mc_received" in model.folded


def test_cost_file_is_what_the_timed_chip_reads(quick, tmp_path) -> None:
    """Rule: the written cycle_costs.yaml loads with the chip's own loader, with the fitted numbers."""
    from s2eprop.emulator.chip.description import load_costs

    path = cal.write_cost_file(quick["model"], quick, tmp_path / "cycle_costs.yaml")
    costs = load_costs(path)
    assert dict(costs.handler_base_cycles) == quick["model"].handler_base_cycles
    assert dict(costs.per_count_cycles) == quick["model"].per_count_cycles
    assert costs.provenance["source"] == "calibrated"


def test_cli_writes_calibration_and_costs(arm_elf, tmp_path, monkeypatch) -> None:
    """Rule: `s2eprop calibrate --out DIR --quick --write-costs` writes calibration.json, residuals.png
    and the cost file (here redirected into tmp_path), exit 0."""
    from s2eprop.host.cli.main import main

    monkeypatch.setattr(cal, "COST_FILE", tmp_path / "costs.yaml")
    assert main(["calibrate", "--out", str(tmp_path / "cal"), "--quick", "--write-costs"]) == 0
    summary = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    from s2eprop.firmware.abi import Firmware

    assert sorted(summary["per_count_cycles"]) == sorted(Firmware().count_fields)  # JSON keys sorted
    assert summary["held_out_residuals"]["calls"] > 0 and summary["iss"]["instructions_per_s"] > 0
    assert (tmp_path / "cal" / "residuals.png").stat().st_size > 1000
    assert (tmp_path / "costs.yaml").read_text().startswith("# Cycle costs")
