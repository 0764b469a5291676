"""Determinism (DESIGN section 3 and 4): the same inputs give the same bits, whatever tick loop
(C or Python) runs the chip and whatever optimisation flags built the firmware."""
from __future__ import annotations

import os
import shutil
import sysconfig

import numpy as np
import pytest

from s2eprop.emulator.chip.functional import FunctionalChip
from s2eprop.firmware.abi import Firmware, firmware_module
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport import EmulatorTransport

MATRICES = ("w_in", "w_rec", "w_out")


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def _run(cfg, w, x, y, **kwargs):
    board = BoardTrainer(cfg, w.copy(), **kwargs)
    results = [board.train_batch(x[i:i + 1], y[i:i + 1]) for i in range(len(x))]
    return board, results


def _assert_same_run(a, b, what: str, weights_identical) -> None:
    board_a, res_a = a
    board_b, res_b = b
    weights_identical(board_a.weights, board_b.weights, what)
    for i, (ra, rb) in enumerate(zip(res_a, res_b)):
        assert np.array_equal(_bits(ra.loss), _bits(rb.loss)), f"{what}: sample {i} loss {ra.loss} vs {rb.loss}"
        assert np.array_equal(_bits(ra.output_mean), _bits(rb.output_mean)), f"{what}: sample {i} output"
        assert ra.pred.tolist() == rb.pred.tolist() and ra.spikes.tolist() == rb.spikes.tolist(), f"{what}: {i}"
    ad_a, ad_b = board_a.adam, board_b.adam
    assert ad_a.t == ad_b.t and _bits(ad_a.lr) == _bits(ad_b.lr)
    for k in MATRICES:
        assert np.array_equal(_bits(ad_a.m[k]), _bits(ad_b.m[k])), f"{what}: Adam m[{k}]"
        assert np.array_equal(_bits(ad_a.v[k]), _bits(ad_b.v[k])), f"{what}: Adam v[{k}]"


def test_two_identical_runs_are_bit_identical(cfg, init_w, sample_maker, weights_identical) -> None:
    """Rule: two runs of the same 3 samples from the same weights give bit-identical weights, Adam
    state and per-sample results (loss, output mean, prediction, spikes)."""
    x, y = sample_maker(3, seed=3)
    a = _run(cfg, init_w, x, y)
    b = _run(cfg, init_w, x, y)
    _assert_same_run(a, b, "run 1 vs run 2", weights_identical)
    assert a[0].transport.status().ticks == b[0].transport.status().ticks


def test_c_and_python_tick_loops_are_bit_identical(cfg, init_w, sample_maker, weights_identical) -> None:
    """Rule: backend "c" (chip_loop.c) and backend "python" (chip.py, the readable specification of the
    order of events) give bit-identical weights, Adam state and results over 3 samples, the same
    number of ticks, the same router and DMA counts and the same per-core work counts."""
    x, y = sample_maker(3, seed=4)
    c_run = _run(cfg, init_w, x, y, backend="c")
    py_run = _run(cfg, init_w, x, y, backend="python")
    assert c_run[0].transport.chip.backend == "c" and py_run[0].transport.chip.backend == "python"
    _assert_same_run(c_run, py_run, "backend c vs python", weights_identical)
    st_c, st_py = c_run[0].transport.status(), py_run[0].transport.status()
    assert st_c == st_py, f"c {st_c} vs python {st_py}"
    assert st_c.packets_delivered > 0
    work_c, work_py = c_run[0].transport.chip.work_counts(), py_run[0].transport.chip.work_counts()
    for field, counts in work_c.items():
        assert np.array_equal(counts, work_py[field]), f"work count {field}"
    assert c_run[0].transport.chip.stats() == py_run[0].transport.chip.stats()
    assert c_run[0].ticks_train == py_run[0].ticks_train


def _c_compiler() -> str | None:
    """The C compiler a cffi build would run ($CC, Python's configured CC, cc or gcc), if one is found."""
    names = [os.environ.get("CC", ""), sysconfig.get_config_var("CC") or "", "cc", "gcc"]
    for name in names:
        if name.split() and shutil.which(name.split()[0]):
            return shutil.which(name.split()[0])
    return None


@pytest.fixture(scope="module")
def flag_variants():
    """The firmware built with -O2 and with -O3 -march=native (cached builds). Skipped only where no C
    compiler exists; with one, a build that fails is a test failure."""
    if _c_compiler() is None:
        pytest.skip("no C compiler ($CC, cc or gcc) to build firmware variants with")
    return {flags: firmware_module(flags) for flags in (("-O2",), ("-O3", "-march=native"))}


def test_optimisation_flags_do_not_change_the_bits(cfg, init_w, sample_maker, flag_variants,
                                                   weights_identical) -> None:
    """Rule: the firmware built with -O2, with -O3 -march=native and the installed build give
    bit-identical weights, Adam state and results over 3 samples (float32, fixed order, no FMA)."""
    x, y = sample_maker(3, seed=5)
    modules = dict(flag_variants, installed=firmware_module())
    assert len({m.__file__ for m in modules.values()}) == 3, "the variants are not distinct builds"
    runs = {}
    for name, module in modules.items():
        fw = Firmware(module)
        chip = FunctionalChip(12, firmware=fw)
        runs[name] = _run(cfg, init_w, x, y, transport=EmulatorTransport(12, chip=chip), firmware=fw)
        assert runs[name][0].fw.lib is module.lib and runs[name][0].transport.chip.fw.lib is module.lib
    base = runs.pop("installed")
    for name, run in runs.items():
        _assert_same_run(base, run, f"installed vs {' '.join(name)}", weights_identical)
