"""Router faults a user injects (`chip.faults`, emulator/chip/faults.py): the decision per packet is written
once in C and mirrored in Python, so the same packets are hit in every loop, and the loops keep giving the
same bits as each other under faults: C functional == Python functional, C timed == SimPy timed event for
event. And what the firmware counts for one dropped, delayed or duplicated spike packet."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from s2eprop.emulator.chip.description import load_chip
from s2eprop.emulator.chip.faults import RouterFault, RouterFaults, fault_hash
from s2eprop.emulator.chip.timed import timed_chip
from s2eprop.firmware.abi import Firmware
from s2eprop.host.engines import check_engine, engine_of
from s2eprop.host.errors import ConfigError, TransportError
from s2eprop.host.fault_config import FaultConfig
from s2eprop.host.mapping.resolve import config_from_dict
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport import EmulatorTransport
from s2eprop.host.weights import init_weights
from timed_records import record_every_advance

# one of each action on each kind the network sends, at rates that hit some packets of 2 samples
MIXED = (FaultConfig("spike", "drop", rate=0.02, seed=1), FaultConfig("spike", "duplicate", rate=0.02, seed=2),
         FaultConfig("spike", "delay", rate=0.02, ticks=1, seed=3), FaultConfig("partial", "drop", rate=0.002, seed=4),
         FaultConfig("partial", "delay", rate=0.002, ticks=2, seed=5),
         FaultConfig("partial", "duplicate", rate=0.002, seed=6), FaultConfig("error", "duplicate", count=3, core=0))


def _with_faults(cfg, faults, on_loss="count"):
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, on_loss=on_loss),
                               chip=dataclasses.replace(cfg.chip, faults=tuple(faults))).validate()


def test_the_c_and_python_decisions_are_the_same() -> None:
    """Rule: emu_fault_hash (C) equals fault_hash (Python) on any input, and emu_faults_apply makes the
    same decision as RouterFaults.apply packet after packet, counters included (drop, duplicate, delay;
    count and rate; any source and one source)."""
    fw = Firmware()
    lib, ffi = fw.lib, fw.ffi
    rng = np.random.default_rng(5)
    for seed, src, n in zip(rng.integers(0, 2**32, 500), rng.integers(0, 161, 500), rng.integers(0, 2**40, 500)):
        assert lib.emu_fault_hash(int(seed), int(src), int(n)) == fault_hash(int(seed), int(src), int(n))
    faults = (RouterFault(0x0100_0000, 0xFF00_0000, "drop", rate=0.1, seed=9),
              RouterFault(0x0100_0000, 0xFF00_0000, "delay", rate=0.3, delay_ticks=2, seed=9),
              RouterFault(0x0200_0000, 0xFF00_0000, "duplicate", count=5, src=3),
              RouterFault(0x0200_0000, 0xFF00_0000, "drop", rate=1.0))
    c = ffi.new("emu_fault_t[]", len(faults))
    for i, f in enumerate(faults):
        f.fill(c[i])
    py = RouterFaults(faults)
    delay = ffi.new("uint32_t *")
    names = {int(lib.EMU_FAULT_NONE): None, int(lib.EMU_FAULT_DROP): "drop", int(lib.EMU_FAULT_DUPLICATE): "duplicate",
             int(lib.EMU_FAULT_DELAY): "delay"}
    actions = []
    for src, kind in zip(rng.integers(0, 6, 3000), rng.integers(1, 4, 3000)):
        key = int(kind) << 24 | int(rng.integers(0, 1 << 24))
        delay[0] = 0
        got_c = names[int(lib.emu_faults_apply(c, len(faults), int(src), key, delay))]
        got_py, ticks = py.apply(int(src), key)
        assert (got_c, int(delay[0]) if got_c else 0) == (got_py, ticks if got_py else 0)
        actions.append(got_py)
    assert [int(c[i].hits) for i in range(len(faults))] == py.hits
    assert py.hits[2] == 5 and 0 < py.hits[0] < py.hits[1] and py.hits[3] > 0  # each fault did its part
    assert lib.emu_faults_apply(c, len(faults), 0xFFFFFFFF, 0x0200_0000, delay) == lib.EMU_FAULT_NONE  # injected


def test_the_functional_loops_give_the_same_bits_under_faults(cfg, init_w, sample_maker, weights_identical) -> None:
    """Rule: under drops, duplicates and delays of spikes, partial sums and errors, the C loop and the Python
    loop hit the same packets (hits per fault), deliver the same (router statistics, work counts), count the
    same losses and learn the same bits over 2 samples."""
    x, y = sample_maker(2, seed=31)
    faulty = _with_faults(cfg, MIXED)
    runs = {}
    for backend in ("c", "python"):
        board = BoardTrainer(faulty, init_w.copy(), backend=backend)
        results = [board.train_batch(x[i:i + 1], y[i:i + 1]) for i in range(2)]
        runs[backend] = board, results
    (bc, rc), (bp, rp) = runs["c"], runs["python"]
    weights_identical(bc.weights, bp.weights, "functional c vs python under faults")
    hits = bc.transport.fault_hits()
    assert hits == bp.transport.fault_hits() and all(h > 0 for h in hits), hits
    assert bc.transport.chip.stats() == bp.transport.chip.stats()
    assert bc.provenance() == bp.provenance() and bc.core_counters() == bp.core_counters()
    for k, v in bc.transport.chip.work_counts().items():
        np.testing.assert_array_equal(v, bp.transport.chip.work_counts()[k], err_msg=k)
    assert [r.loss.tobytes() for r in rc] == [r.loss.tobytes() for r in rp]
    lost = bc.provenance()
    assert lost["spikes_missing"] > 0 and lost["duplicate_packets"] > 0 and lost["late_packets"] > 0 \
        and lost["partials_incomplete"] > 0, lost
    assert bc.report()["faults_injected"] == {
        "spike": {a: h for a, h in zip(("drop", "duplicate", "delay"), hits[:3])},
        "partial": {"drop": hits[3], "delay": hits[4], "duplicate": hits[5]}, "error": {"duplicate": 3}}


def _timed_run(engine: str, cfg, init_w, x, y) -> dict:
    chip = timed_chip(12, load_chip(), engine=engine)
    recs, logs = record_every_advance(chip)
    board = BoardTrainer(cfg, init_w.copy(), transport=EmulatorTransport(12, chip=chip))
    board.train_batch(x, y)
    return {"weights": board.weights, "handlers": np.concatenate(logs), "ticks": np.concatenate(recs),
            "stats": chip.stats(), "provenance": board.provenance(), "hits": chip.fault_hits(),
            "work": chip.work_counts()}


def test_the_timed_engines_agree_event_for_event_under_faults(cfg, init_w, sample_maker) -> None:
    """Rule: with the same faults, the timed C loop and its SimPy model hit the same packets and make the
    same handler calls at the same picoseconds (a delayed packet arrives a whole tick later, a duplicate
    twice in its burst), keep the same records and counters and learn the same bits (1 sample)."""
    x, y = sample_maker(1, seed=32)
    faulty = _with_faults(cfg, MIXED)
    c, s = (_timed_run(engine, faulty, init_w, x, y) for engine in ("c", "simpy"))
    assert c["hits"] == s["hits"] and sum(c["hits"]) > 0, (c["hits"], s["hits"])
    assert len(c["handlers"]) == len(s["handlers"]) > 10_000
    first = np.flatnonzero(c["handlers"] != s["handlers"])
    assert not len(first), f"first different handler call: C {c['handlers'][first[:1]]}, SimPy {s['handlers'][first[:1]]}"
    np.testing.assert_array_equal(s["ticks"], c["ticks"])
    assert s["stats"] == c["stats"] and s["provenance"] == c["provenance"]
    for k in c["work"]:
        np.testing.assert_array_equal(s["work"][k], c["work"][k], err_msg=k)
    for k in ("w_in", "w_rec", "w_out"):
        np.testing.assert_array_equal(getattr(s["weights"], k).view(np.uint32), getattr(c["weights"], k).view(np.uint32))
    assert c["provenance"]["spikes_missing"] > 0 and c["provenance"]["duplicate_packets"] > 0


ONE_SPIKE = {  # one spike packet of core 5 (the first it sends), and what the firmware counts for it
    "drop": (FaultConfig("spike", "drop", count=1, core=5), "spikes_missing"),
    "delay": (FaultConfig("spike", "delay", count=1, ticks=1, core=5), "late_packets"),
    "duplicate": (FaultConfig("spike", "duplicate", count=1, core=5), "duplicate_packets"),
}


@pytest.mark.parametrize("action", list(ONE_SPIKE))
def test_one_faulty_spike_packet_stops_functional_training_naming_its_counter(action, cfg, init_w,
                                                                              sample_maker) -> None:
    """Rule: one spike packet dropped, delayed a tick or duplicated by chip.faults (count: 1) ends functional
    training (train.on_loss: stop) at sample 0 with an error naming the counter that saw it: spikes_missing
    for the drop; late_packets (and spikes_missing: the late spike is never filed) for the delay;
    duplicate_packets for the duplicate (a duplicate sets no new bit, so spikes_missing stays 0). Without
    the fault the same sample trains clean."""
    fault, counter = ONE_SPIKE[action]
    x, y = sample_maker(1, seed=33)
    clean = BoardTrainer(_with_faults(cfg, (), "stop"), init_w.copy())
    clean.train_batch(x, y)
    assert not any(clean.provenance().values())
    board = BoardTrainer(_with_faults(cfg, (fault,), "stop"), init_w.copy())
    with pytest.raises(TransportError, match=rf"sample 0: the cores counted losses \(core \d+ {counter} now \d+"):
        board.train_batch(x, y)
    lost = {k: v for k, v in board.provenance().items() if v}
    assert board.transport.fault_hits() == [1]
    n_neuron_cores = 12
    if action == "drop":
        assert lost == {"spikes_missing": n_neuron_cores}, lost  # 1 on every neuron core
    elif action == "delay":
        assert lost == {"late_packets": n_neuron_cores, "spikes_missing": n_neuron_cores}, lost
    else:
        assert lost == {"duplicate_packets": n_neuron_cores}, lost


@pytest.mark.parametrize("action", list(ONE_SPIKE))
def test_one_faulty_spike_packet_is_counted_by_the_timed_chip(action, cfg, init_w, sample_maker) -> None:
    """Rule: the same single fault on the timed chip (C loop) is counted the same way, and the run goes on."""
    fault, counter = ONE_SPIKE[action]
    x, y = sample_maker(1, seed=33)
    board = BoardTrainer(_with_faults(cfg, (fault,), "stop"),
                         init_w.copy(), transport=EmulatorTransport(12, chip=timed_chip(12, load_chip())))
    board.train_batch(x, y)
    lost = {k: v for k, v in board.provenance().items() if v}
    assert board.transport.fault_hits() == [1]
    assert lost.get(counter) == 12, lost
    assert board.report()["faults_injected"] == {"spike": {action: 1}}


def test_chip_faults_errors_name_the_field_and_the_fix() -> None:
    """Rule: a bad chip.faults entry is refused naming the entry, the field, the value and the fix."""
    bad = {
        "packets": ({"packets": "spikes", "action": "drop", "count": 1}, r"chip.faults\[0\].packets is 'spikes'; choose one of spike"),
        "action": ({"packets": "spike", "action": "lose", "count": 1}, r"chip.faults\[0\].action is 'lose'"),
        "neither": ({"packets": "spike", "action": "drop"}, "needs exactly one of count .* and rate"),
        "rate": ({"packets": "spike", "action": "drop", "rate": 1.5}, r"rate is 1.5: give a fraction .* in \[0, 1\]"),
        "ticks": ({"packets": "spike", "action": "drop", "count": 1, "ticks": 2}, "only a delay takes ticks"),
        "unknown": ({"packets": "spike", "action": "drop", "count": 1, "prob": 1}, "unknown key.*prob; known: packets"),
        "count": ({"packets": "spike", "action": "drop", "count": 0}, r"count is 0: give a whole number of packets >= 1"),
    }
    for name, (entry, message) in bad.items():
        with pytest.raises(ConfigError, match=message):
            config_from_dict({"chip": {"faults": [entry]}})
    with pytest.raises(ConfigError, match=r"chip.faults\[0\].core is 12; the chip runs the network on cores 0..11"):
        BoardTrainer(config_from_dict({"chip": {"faults": [{"packets": "spike", "action": "drop", "count": 1,
                                                             "core": 12}]}}),
                     init_weights(config_from_dict(None).network, seed=1))
    with pytest.raises(ConfigError, match="injected by the in-process emulator's router; target golden"):
        check_engine(engine_of(config_from_dict({"chip": {"faults": [{"packets": "spike", "action": "drop",
                                                                      "rate": 0.01}]}}), "golden"))


def test_a_fault_of_rate_0_hits_nothing(cfg, init_w, sample_maker) -> None:
    """Rule: a fault of rate 0 hits nothing and changes no bit."""
    x, y = sample_maker(1, seed=34)
    plain = BoardTrainer(cfg, init_w.copy())
    plain.train_batch(x, y)
    zero = BoardTrainer(_with_faults(cfg, (FaultConfig("spike", "drop", rate=0.0),), "stop"), init_w.copy())
    zero.train_batch(x, y)
    assert zero.transport.fault_hits() == [0]
    for k in ("w_in", "w_rec", "w_out"):
        np.testing.assert_array_equal(getattr(plain.weights, k).view(np.uint32), getattr(zero.weights, k).view(np.uint32))
