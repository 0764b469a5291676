"""The energy study against hand calculations: one tick's energy from the published chip figures, the
V100 pricing of a made-up kernel trace, the traced matrix products against their FLOP count."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2eprop.host.config import NetworkConfig
from s2eprop.host.errors import ConfigError
from s2eprop.host.studies import energy
from s2eprop.host.studies import gpu_estimate

E_CYCLE_300 = (1.248 - 0.075) / 152 / 300e6  # J per PE cycle at 0.8 V, from the chip's published powers


def test_one_tick_by_hand() -> None:
    """Two PEs busy 150,000 and 60,000 cycles of a 1 ms tick at 300 MHz, the chip's static power besides."""
    p = energy.ChipPower.at(energy.load_constants()["chip"], 300e6)
    e = energy.chip_energy([150_000, 60_000], 1e-3, p)
    assert e["active_j"] == pytest.approx(210_000 * E_CYCLE_300)
    idle_s = (1e-3 - 150_000 / 300e6) + (1e-3 - 60_000 / 300e6)
    assert e["idle_j"] == pytest.approx(idle_s * 0.1 * E_CYCLE_300 * 300e6)
    assert e["static_j"] == pytest.approx(0.075e-3)
    assert e["total_j"] == pytest.approx(210_000 * E_CYCLE_300 + idle_s * 0.1 * E_CYCLE_300 * 300e6 + 0.075e-3)


def test_lower_clock_scales_energy_per_cycle_by_voltage_squared() -> None:
    chip = energy.load_constants()["chip"]
    assert energy.ChipPower.at(chip, 150e6).energy_per_cycle_j == pytest.approx(E_CYCLE_300 * (0.5 / 0.8) ** 2)
    with pytest.raises(ConfigError, match="200 MHz"):
        energy.ChipPower.at(chip, 200e6)


def test_constants_file_names_a_missing_key(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("chip: {static_power_w: 0.075}\ngpu: {}\nworkload: {}\n")
    with pytest.raises(ConfigError, match="chip.all_pes_active_power_w is missing"):
        energy.load_constants(bad)


def test_gpu_pricing_by_hand() -> None:
    """10 kernels, 8 GB, 1 GFLOP on 900 GB/s x 0.8, 15.7 TFLOPS x 0.5, 5 us launches, 300 W, batch 10."""
    gpu = energy.load_constants()["gpu"]
    trace = gpu_estimate.OpTrace(kernels=10, bytes_moved=8_000_000_000, flops=10**9, matmul_flops=0, by_op={})
    r = gpu_estimate.price(trace, gpu, 10)
    s = 10 * 5e-6 + 8e9 / (900e9 * 0.8)
    assert r["s_per_batch"] == pytest.approx(s)
    assert r["energy_j_per_sample"] == pytest.approx(300 * s / 10)


def test_traced_matrix_products_are_the_networks() -> None:
    """The port's step runs 3 products per time step and one for the learning signal: their FLOPs by hand."""
    pytest.importorskip("torch")
    net = NetworkConfig(n_in=6, n_rec=8, n_out=3, n_steps=5)
    b = 4
    tr = gpu_estimate.trace_training_step(net, b)
    assert tr.by_op["mm"] == 3 * net.n_steps + 1
    per_step = net.n_in * net.n_rec + net.n_rec * net.n_rec + net.n_rec * net.n_out
    assert tr.matmul_flops == 2 * b * (net.n_steps * per_step + net.n_out * net.n_rec)
    assert tr.bytes_moved > net.n_steps * b * (net.n_in + net.n_rec) * net.n_rec * 4  # at least a trace pass a step


def test_run_without_gpu(tmp_path: Path) -> None:
    """One sample at 300 MHz: result.json, the figure, energy per epoch = per sample x samples per epoch."""
    r = energy.run(tmp_path, n_samples=1, clocks_mhz=(300,), gpu=False)
    c = r["chip"]["300"]
    assert json.loads((tmp_path / "result.json").read_text())["study"] == "energy"
    assert c["energy_j_per_epoch"] == pytest.approx(c["energy_j_per_sample"]["total_j"] * 55_948)
    assert c["energy_j_per_sample"]["static_j"] == pytest.approx(0.075 * c["sample_s"])
    assert (tmp_path / "energy.png").stat().st_size > 1000
