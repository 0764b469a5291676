"""ISS parity (DESIGN sections 3-4): the ARM build run in the instruction-set simulator computes the same
bits as the native build: every handler call's side effects and work counts, every core's whole SRAM,
the weights, losses and outputs: on a small 3-core network and on the paper's 12-core KWS network."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from s2eprop.emulator.chip.functional import FunctionalChip
from s2eprop.firmware.abi import Firmware
from s2eprop.firmware.arm_image import SRAM_BYTES
from s2eprop.firmware.outbox import Effects
from s2eprop.emulator.runners.native import NativeRunner
from s2eprop.host.mapping.partition import plan_partition
from s2eprop.host.config import ConnectivityConfig, RateRegConfig
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport.inproc import EmulatorTransport



class Recorder:
    """A core runner that logs every call and its effects, then passes them on."""

    def __init__(self, runner: Any) -> None:
        self.runner, self.sram, self.calls = runner, runner.sram, []

    def init(self, core: int, arena_bytes: int) -> int:
        status = self.runner.init(core, arena_bytes)
        self.calls.append(("init", core, arena_bytes, status))
        return status

    def _log(self, name: str, core: int, args: tuple, out: Effects) -> Effects:
        plain = tuple(a.tolist() if isinstance(a, np.ndarray) else a for a in args)
        self.calls.append((name, core, plain, tuple(out.packets), tuple(tuple(h.tolist()) for h in out.host),
                           tuple(out.dma), out.user_event, tuple(out.counts.tolist())))
        return out

    def on_timer(self, core, tick):
        return self._log("timer", core, (tick,), self.runner.on_timer(core, tick))

    def on_mc_packet(self, core, key, payload):
        return self._log("mc_packet", core, (key, payload), self.runner.on_mc_packet(core, key, payload))

    def on_dma_done(self, core, tag):
        return self._log("dma_done", core, (tag,), self.runner.on_dma_done(core, tag))

    def on_host_msg(self, core, words):
        return self._log("host_msg", core, (words,), self.runner.on_host_msg(core, words))

    def on_user_event(self, core):
        return self._log("user_event", core, (), self.runner.on_user_event(core))


def run_board(cfg, weights, x, y, runner_kind: str, elf=None, n_train: int | None = None):
    from s2eprop.emulator.runners.iss import IssRunner

    fw = Firmware()
    n = plan_partition(cfg.network, cfg.partition).n_cores
    runner = IssRunner(fw, n, SRAM_BYTES, elf_path=elf) if runner_kind == "iss" else NativeRunner(fw, n, SRAM_BYTES)
    rec = Recorder(runner)
    chip = FunctionalChip(n, backend="python", runner=rec, firmware=fw)
    board = BoardTrainer(cfg, weights.copy(), firmware=fw, transport=EmulatorTransport(n, chip=chip))
    n_train = len(x) if n_train is None else n_train
    results = [board.train_batch(x[i:i + 1], y[i:i + 1]) for i in range(n_train)]
    results += [board.forward(x[i:i + 1], y[i:i + 1]) for i in range(n_train, len(x))]
    return board, rec, results


def assert_same_bits(cfg, weights, x, y, elf, n_train=None) -> None:
    nat, nat_rec, nat_res = run_board(cfg, weights, x, y, "native", n_train=n_train)
    iss, iss_rec, iss_res = run_board(cfg, weights, x, y, "iss", elf, n_train=n_train)
    assert len(nat_rec.calls) == len(iss_rec.calls)
    for i, (a, b) in enumerate(zip(nat_rec.calls, iss_rec.calls)):
        assert a == b, f"handler call {i} differs:\n native {a}\n ISS    {b}"
    for core, (sa, sb) in enumerate(zip(nat_rec.sram, iss_rec.sram)):
        diff = np.flatnonzero(sa != sb)
        assert diff.size == 0, f"core {core}: SRAM differs in {diff.size} bytes, first at offset {diff[0]}"
    for k in ("w_in", "w_rec", "w_out"):
        assert (getattr(nat.weights, k).view(np.uint32) == getattr(iss.weights, k).view(np.uint32)).all(), k
    for ra, rb in zip(nat_res, iss_res):
        for field in ("loss", "pred", "output_mean", "spikes"):
            va, vb = np.asarray(getattr(ra, field)), np.asarray(getattr(rb, field))
            assert va.tobytes() == vb.tobytes(), field
    assert any(c[0] == "user_event" for c in iss_rec.calls), "no Adam update ran"


@pytest.fixture(scope="module")
def small_cfg(cfg, with_options):
    """16 inputs, 24 ALIF neurons, 4 outputs, 30 steps, 8 neurons per core: 3 cores."""
    return with_options(cfg, network={"n_in": 16, "n_rec": 24, "n_out": 4, "n_steps": 30},
                        partition={"neurons_per_core": 8})


def test_iss_matches_native_small(arm_elf, small_cfg, sample_maker) -> None:
    """Rule: on a 3-core network, 3 training samples and 1 inference sample give the same handler calls
    with the same effects and counts, the same SRAM bytes, weights and results on the ISS as natively."""
    from s2eprop.host.weights import init_weights

    x, y = sample_maker(4, seed=5, n_steps=30, n_in=16, n_out=4)
    assert_same_bits(small_cfg, init_weights(small_cfg.network, seed=3), x, y, arm_elf, n_train=3)


# every option of issue 27 (docs/options.md), each on the 3-core network
OPTIONS = [
    {"network": {"surrogate": "triangle", "surrogate_beta": 1.5}},
    {"network": {"surrogate": "exponential", "surrogate_beta": 0.8}},
    {"network": {"surrogate": "fast_sigmoid", "surrogate_beta": 2.0}},
    {"network": {"surrogate": "arctan", "surrogate_gamma": 0.5}},
    {"network": {"n_regular": 12}},  # core 1 holds 4 LIF and 4 ALIF neurons
    {"train": {"optimizer": "sgd", "lr": 0.02, "momentum": 0.9}},
    {"train": {"rate_reg": RateRegConfig(c_reg=50.0, target_hz=10.0)}},
    {"train": {"feedback": "adaptive"}},
    {"network": {"connectivity": ConnectivityConfig(p_in=0.5, p_rec=0.25)}},
    {"network": {"connectivity": ConnectivityConfig(p_in=0.3, p_rec=0.2, seed=4), "n_regular": 12},
     "train": {"rate_reg": RateRegConfig(c_reg=50.0, target_hz=10.0)}},
]


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for sec in o.values() for k, v in sec.items()))
def test_iss_matches_native_with_options(arm_elf, small_cfg, sample_maker, with_options, option) -> None:
    """Rule: with each option, the 3-core network's 3 training samples and 1 inference sample give the same
    handler calls, effects, counts, SRAM bytes, weights and results on the ISS as natively."""
    from s2eprop.host.weights import init_weights

    c = with_options(small_cfg, **option)
    x, y = sample_maker(4, seed=5, n_steps=30, n_in=16, n_out=4)
    assert_same_bits(c, init_weights(c.network, seed=3), x, y, arm_elf, n_train=3)


@pytest.mark.parametrize("n_in, n_rec, per_core", [(13, 21, 7), (10, 12, 4), (9, 34, 17)])
def test_iss_matches_native_any_trace_group(arm_elf, cfg, with_options, sample_maker, n_in, n_rec, per_core) -> None:
    """Rule: the native build's flat trace loop (eprop_trace.c: groups of rows making a multiple of 8
    synapses, leftover rows one by one) gives the ARM build's bits for row lengths that are odd (7: groups
    of 8 rows) or even (4: groups of 2), with leftover rows in the input and the recurrent blocks, and the
    row loop a core too wide for a group takes (17: 136 synapses)."""
    from s2eprop.host.weights import init_weights

    small = with_options(cfg, network={"n_in": n_in, "n_rec": n_rec, "n_out": 3, "n_steps": 20},
                         partition={"neurons_per_core": per_core})
    x, y = sample_maker(3, seed=9, n_steps=20, n_in=n_in, n_out=3)
    assert_same_bits(small, init_weights(small.network, seed=4), x, y, arm_elf, n_train=2)


def test_iss_records_cycles_per_call_and_function(arm_elf, small_cfg) -> None:
    """Rule: each handler call leaves its instruction and cycle figures; a timer tick of an idle core is
    short (the median one), the neuron step's dma_done calls long, and its cycles lie in the firmware's functions."""
    from s2eprop.emulator.runners.iss import IssRunner
    from s2eprop.host.weights import init_weights

    record: list = []
    fw = Firmware()
    board = BoardTrainer(small_cfg, init_weights(small_cfg.network, seed=3), firmware=fw,
                         transport=EmulatorTransport(3, chip=FunctionalChip(3, backend="python", firmware=fw,
                                                     runner=IssRunner(fw, 3, SRAM_BYTES, elf_path=arm_elf,
                                                                      record=record))))
    runner = board.transport.chip.runner
    x = np.ones((1, 30, 16), np.float32)
    board.train_batch(x, np.zeros(1, np.int64))
    assert runner.last_cycles == record[-1].cycles > 0 and runner.last_instructions == record[-1].instructions
    dma = [c for c in record if c.handler == "dma_done"]
    timers = [c for c in record if c.handler == "timer"]
    assert len(dma) == 3 * 30 and min(c.cycles for c in dma) > 5 * np.median([c.cycles for c in timers])
    step = dma[-1]
    names = dict(zip(runner.functions, step.function_cycles))
    assert step.function_cycles.sum() == step.cycles and names["?"] == 0
    assert names["neuron_step"] > 0 and names["trace_block"] > 0 and names["fw_on_dma_done"] > 0
    assert step.classes.sum() == step.instructions and step.instructions <= step.cycles


def test_iss_matches_native_kws(arm_elf, cfg, init_w, sample_maker) -> None:
    """Rule: the paper's 12-core KWS network, 5 training samples: bit-identical on the ISS (about 25 s)."""
    x, y = sample_maker(5, seed=11)
    assert_same_bits(cfg, init_w, x, y, arm_elf)


def test_iss_matches_native_where_subnormals_would_arise(arm_elf, subnormal_case) -> None:
    """Rule: on the network that makes tiny psi and starts with subnormal weights (conftest
    `subnormal_case`, test_emu_subnormals.py), 3 training samples and 1 inference sample give the same bits
    on the ISS as natively: the firmware's flush of tiny values is plain C, no FPU mode of either build."""
    small, w, x, y = subnormal_case
    assert_same_bits(small, w, x, y, arm_elf, n_train=3)


# network.connectivity's vector paths (native AVX2: eprop_trace.c trace_sparse_avx2, neuron_model.c
# add_rows_sparse_avx2, adam.c gradient_sparse_avx2): rows long enough for whole vectors, blocks of several
# spread chunks (128 entries) cut mid-row, columns picked by permutes (n_local <= 16) or by gathers (> 16)
SPARSE_VECTOR_CASES = {
    "permutes,long_rows,analog": ({"n_in": 40, "n_rec": 24, "n_out": 3, "n_steps": 20}, 12,
                                  ConnectivityConfig(p_in=1.0, p_rec=0.7, seed=2), None, False),
    "gathers,rate_reg,analog": ({"n_in": 20, "n_rec": 40, "n_out": 3, "n_steps": 20}, 20,
                                ConnectivityConfig(p_in=0.8, p_rec=0.6, seed=5),
                                RateRegConfig(c_reg=50.0, target_hz=10.0), False),
    "permutes,spike_input": ({"n_in": 32, "n_rec": 24, "n_out": 3, "n_steps": 20}, 12,
                             ConnectivityConfig(p_in=0.9, p_rec=0.5, seed=3), None, True),
}


@pytest.mark.parametrize("case", list(SPARSE_VECTOR_CASES))
def test_iss_matches_native_sparse_vectors(arm_elf, cfg, with_options, sample_maker, case) -> None:
    """Rule: with sparse connectivity, the native build's 8-lane loops over the present synapses (traces with
    the self-connections kept, input currents from analog input and from spikes, the gradient with and
    without the rate term) give the ARM build's scalar bits: weights, SRAM, every handler's effects."""
    import dataclasses

    from s2eprop.host.config import InputConfig
    from s2eprop.host.weights import init_weights

    network, per_core, conn, rate_reg, spikes = SPARSE_VECTOR_CASES[case]
    c = with_options(cfg, network={**network, "connectivity": conn}, partition={"neurons_per_core": per_core},
                     train={"rate_reg": rate_reg} if rate_reg else {})
    x, y = sample_maker(3, seed=13, n_steps=network["n_steps"], n_in=network["n_in"], n_out=network["n_out"])
    if spikes:
        c = dataclasses.replace(c, input=InputConfig(kind="spikes", encoder="none")).validate()
        x = (np.random.default_rng(13).random(x.shape) < 0.3).astype(np.float32)
    assert_same_bits(c, init_weights(c.network, seed=6), x, y, arm_elf, n_train=2)
