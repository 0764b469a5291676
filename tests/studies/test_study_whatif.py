"""The what-if study: cases become chip files the timed model loads, 16-bit rounding is what it says, the
golden model's trace hook changes nothing when it rounds nothing, projected memory by hand."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from s2eprop.emulator.chip.description import load_chip
from s2eprop.host.config import ExperimentConfig, NetworkConfig, TrainConfig
from s2eprop.host.data.dataset import Dataset
from s2eprop.host.errors import ConfigError
from s2eprop.host.reference.golden import GoldenModel
from s2eprop.host.studies import memory
from s2eprop.host.studies import trace_rounding
from s2eprop.host.studies import whatif
from s2eprop.host.studies.whatif_cases import Case, load_cases, projected_training_bytes, write_chip
from s2eprop.host.weights import init_weights


def test_case_chip_loads_with_its_costs(tmp_path: Path) -> None:
    """A case's chip file loads with the chip loader; its costs are the calibrated ones, replaced or scaled."""
    base = load_chip()
    case = Case("t", cost_per_count={"exp_calls": 4}, cost_scale={"trace_updates": 0.25})
    chip = load_chip(write_chip(case, tmp_path))
    assert chip.costs.per_count_cycles["exp_calls"] == 4
    assert chip.costs.per_count_cycles["trace_updates"] == pytest.approx(0.25 * base.costs.per_count_cycles["trace_updates"])
    assert chip.costs.per_count_cycles["adam_updates"] == base.costs.per_count_cycles["adam_updates"]
    with pytest.raises(ConfigError, match="no work count 'exps'"):
        write_chip(Case("bad", cost_scale={"exps": 2}), tmp_path)


def test_cases_file_is_checked(tmp_path: Path) -> None:
    assert len(load_cases()) >= 8
    bad = tmp_path / "c.yaml"
    bad.write_text(yaml.safe_dump({"cases": [{"name": "x", "trace_bits": 16}]}))
    with pytest.raises(ConfigError, match="trace_format"):
        load_cases(bad)
    bad.write_text(yaml.safe_dump({"cases": [{"name": "x", "clock": 1}]}))
    with pytest.raises(ConfigError, match="unknown key 'clock'"):
        load_cases(bad)


def test_16_bit_rounding() -> None:
    """bfloat16 keeps 8 significant bits (ties to even), float16 11; both in place."""
    a = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -9, -2.5, 1e-3], dtype=np.float32)
    b = a.copy()
    trace_rounding.round_bfloat16(b)
    assert b.tolist()[:4] == [1.0, 1 + 2 ** -6, 1.0, -2.5]
    assert b[4] == np.float32(131 * 2 ** -17)  # 1e-3 = 131.07 steps of 2^-17 (exponent -10, 7 mantissa bits)
    rng = np.random.default_rng(0)
    wide = (rng.standard_normal(20_000) * 10.0 ** rng.uniform(-9, 5.5, 20_000)).astype(np.float32)
    wide[:4] = [65519.0, 65520.0, -2.0 ** -25, 2.0 ** -25 * 3]  # the overflow edge, subnormal ties
    h = wide.copy()
    trace_rounding.round_float16(h)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(h, wide.astype(np.float16).astype(np.float32))


def test_trace_hook_identity_is_bit_exact() -> None:
    """A trace_round that leaves values as they are gives the golden model's bits; bfloat16 moves them."""
    net = NetworkConfig(n_in=6, n_rec=8, n_out=3, n_steps=20)
    rng = np.random.default_rng(0)
    x = (3 * rng.standard_normal((2, 20, 6))).astype(np.float32)
    y = rng.integers(0, 3, 2)
    w = init_weights(net, 1)
    plain, hooked, rounded = (GoldenModel(net, TrainConfig(), w) for _ in range(3))
    hooked.trace_round = lambda a: None
    rounded.trace_round = trace_rounding.round_bfloat16
    for m in (plain, hooked, rounded):
        m.train_batch(x, y)
    assert np.array_equal(plain.weights.w_in.view(np.uint32), hooked.weights.w_in.view(np.uint32))
    assert not np.array_equal(plain.weights.w_in, rounded.weights.w_in)


def test_projected_memory_by_hand() -> None:
    """16-bit traces halve the 3 per-synapse trace arrays; folding drops the filtered one (2,000 synapses a core)."""
    fm = memory.firmware_memory(ExperimentConfig())
    full = fm["training_state_bytes_total"]
    per_array = 12 * 200 * 10 * 4
    assert projected_training_bytes(fm, Case("a")) == full
    assert projected_training_bytes(fm, Case("b", trace_bits=16, trace_format="float16")) == full - 3 * per_array // 2
    assert projected_training_bytes(fm, Case("c", folded_trace=True)) == full - per_array


def test_run_small(tmp_path: Path) -> None:
    """Two cases, one sample, a tiny dataset for the accuracy runs: the table, the figure, the chip files."""
    cases = tmp_path / "cases.yaml"
    cases.write_text(yaml.safe_dump({"cases": [{"name": "paper"}, {"name": "bf16", "trace_bits": 16,
                                                                     "trace_format": "bfloat16"}]}))
    rng = np.random.default_rng(0)
    labels = tuple(f"c{i}" for i in range(12))
    data = Dataset(rng.standard_normal((4, 100, 80)).astype(np.float32), rng.integers(0, 12, 4), labels,
                   rng.standard_normal((3, 100, 80)).astype(np.float32), rng.integers(0, 12, 3))
    r = whatif.run(tmp_path / "out", n_samples=1, accuracy_samples=2, cases_file=cases, data=data)
    rows = {row["case"]: row for row in r["table"]}
    assert rows["paper"]["accuracy_change"] is None and rows["bf16"]["accuracy_change"] is not None
    assert rows["bf16"]["training_state_bytes"] < rows["paper"]["training_state_bytes"]
    assert json.loads((tmp_path / "out" / "result.json").read_text())["study"] == "whatif"
    assert (tmp_path / "out" / "chips" / "bf16.yaml").is_file() and (tmp_path / "out" / "whatif.png").is_file()
