"""A wrong routing table never fails silently (DESIGN section 4): the router drops and counts the
packets no entry routes, and the host's training raises TransportError naming the lost key."""
from __future__ import annotations

import re

import pytest

from s2eprop.emulator.errors import EmulatorError
from s2eprop.firmware.routes import RouteEntry
from s2eprop.host.errors import TransportError
from s2eprop.host.mapping.routing import FIELD_MASK, KEY_COUNT, KEY_ERR, KEY_PARTIAL, KEY_SPIKE
from s2eprop.host.session.runtime import BoardTrainer

N_OUT = 12
N_STEPS = 100


def _board(cfg, init_w, backend: str) -> BoardTrainer:
    return BoardTrainer(cfg, init_w.copy(), backend=backend)


def _key_in(message: str, base: int) -> list[int]:
    """The keys 0x........ the message names that lie in the field of `base`."""
    keys = [int(k, 16) for k in re.findall(r"0x([0-9a-fA-F]{8})", message)]
    return [k for k in keys if k & FIELD_MASK == base]


@pytest.mark.parametrize("backend", ["c", "python"])
def test_missing_partial_sum_route(cfg, init_w, sample_maker, backend) -> None:
    """Rule: without the partial-sum route, every partial sum (12 neuron cores x 12 outputs x 100 steps)
    is dropped and counted, the readout core counts each of the 100 steps as incomplete, and
    train_batch raises TransportError whose message says packets were dropped and names a
    partial-sum key."""
    x, y = sample_maker(1, seed=11)
    board = _board(cfg, init_w, backend)
    plan = board.plan
    board.transport.load_routes([RouteEntry(KEY_SPIKE, FIELD_MASK, plan.neuron_cores),
                                 RouteEntry(KEY_ERR, FIELD_MASK, plan.neuron_cores),
                                 RouteEntry(KEY_COUNT, FIELD_MASK, plan.neuron_cores)])
    with pytest.raises(TransportError) as info:
        board.train_batch(x, y)
    status = board.transport.status()
    assert status.packets_dropped == len(plan.neuron_cores) * N_OUT * N_STEPS
    assert set(status.dropped_from) == set(plan.neuron_cores)
    msg = str(info.value)
    assert "dropped" in msg and str(status.packets_dropped) in msg, msg
    assert _key_in(msg, KEY_PARTIAL), f"message names no partial-sum key: {msg}"
    assert board.provenance()["packets_dropped"] == status.packets_dropped
    assert board.core_counters()[plan.readout_core]["partials_incomplete"] == N_STEPS


@pytest.mark.parametrize("backend", ["c", "python"])
def test_missing_error_route(cfg, init_w, sample_maker, backend) -> None:
    """Rule: without the output-error route, the 12 error packets of a training sample are dropped and
    counted, no weight changes, and training (2 samples) raises TransportError whose message says
    packets were dropped and names an error key."""
    x, y = sample_maker(2, seed=12)
    board = _board(cfg, init_w, backend)
    plan = board.plan
    board.transport.load_routes([RouteEntry(KEY_SPIKE, FIELD_MASK, plan.neuron_cores),
                                 RouteEntry(KEY_PARTIAL, FIELD_MASK, (plan.readout_core,)),
                                 RouteEntry(KEY_COUNT, FIELD_MASK, plan.neuron_cores)])
    with pytest.raises(TransportError) as info:
        for i in range(2):
            board.train_batch(x[i:i + 1], y[i:i + 1])
    status = board.transport.status()
    assert status.packets_dropped == N_OUT
    assert status.dropped_from == {plan.readout_core: N_OUT}
    msg = str(info.value)
    assert "dropped" in msg, msg
    assert _key_in(msg, KEY_ERR), f"message names no error key: {msg}"
    assert (board.weights.w_rec == init_w.w_rec).all()


def test_missing_spike_route_is_counted(cfg, init_w, sample_maker) -> None:
    """Rule: without the spike route, every spike is dropped and counted (the readout still reduces,
    so a result comes back), the sample raises TransportError naming a spike key, and the provenance
    reports the loss; packets_dropped equals the spikes the neurons emitted (work count mc_sent minus
    partial sums)."""
    x, y = sample_maker(1, seed=13)
    board = _board(cfg, init_w, "c")
    plan = board.plan
    board.transport.load_routes([RouteEntry(KEY_PARTIAL, FIELD_MASK, (plan.readout_core,)),
                                 RouteEntry(KEY_ERR, FIELD_MASK, plan.neuron_cores),
                                 RouteEntry(KEY_COUNT, FIELD_MASK, plan.neuron_cores)])
    with pytest.raises(TransportError) as info:
        board.forward(x, y)
    assert "dropped" in str(info.value) and _key_in(str(info.value), KEY_SPIKE), str(info.value)
    status = board.transport.status()
    sent = int(board.transport.chip.work_counts()["mc_sent"].sum())
    assert status.packets_dropped > 0
    n_counts = len(plan.neuron_cores)  # each neuron core's spike count of the sample (routed)
    assert status.packets_dropped == sent - len(plan.neuron_cores) * N_OUT * N_STEPS - n_counts
    assert board.provenance()["packets_dropped"] == status.packets_dropped
    assert status.last_drop[1] & FIELD_MASK == KEY_SPIKE


@pytest.mark.parametrize("backend", ["c", "python"])
def test_error_route_to_nowhere_is_refused(cfg, init_w, backend) -> None:
    """Rule: a routing entry with no destination core is refused when the table is loaded (EmulatorError
    naming the route's index and key), since every packet it matched would be lost."""
    board = _board(cfg, init_w, backend)
    plan = board.plan
    table = [RouteEntry(KEY_SPIKE, FIELD_MASK, plan.neuron_cores),
             RouteEntry(KEY_PARTIAL, FIELD_MASK, (plan.readout_core,)),
             RouteEntry(KEY_ERR, FIELD_MASK, ())]
    with pytest.raises(EmulatorError) as info:
        board.transport.load_routes(table)
    msg = str(info.value)
    assert "route 2" in msg and f"0x{KEY_ERR:08x}" in msg and "no destination" in msg, msg


@pytest.mark.parametrize("chip_kind", ["functional", "timed"])
def test_a_new_table_replaces_the_cached_routes_of_the_old(cfg, init_w, chip_kind) -> None:
    """The C router caches lookups; loading a table must forget them (and a key the new table does
    not route is dropped, not sent where the old one said). Kind 0x05 is no key of the firmware's:
    each core that receives one counts it in unknown_keys."""
    from s2eprop.emulator.chip.timed import TimedChip
    from s2eprop.host.transport.inproc import EmulatorTransport

    transport = EmulatorTransport(12, chip=TimedChip(12)) if chip_kind == "timed" else None
    board = BoardTrainer(cfg, init_w.copy(), transport=transport)
    chip = board.transport.chip

    def received() -> list[int]:
        return [c["unknown_keys"] for c in board.core_counters().values()][:4]

    chip.load_routes([RouteEntry(0x05000000, 0xff000000, (1,))])
    chip.inject(0x05000005)
    chip.run(1)
    assert received() == [0, 1, 0, 0]
    chip.load_routes([RouteEntry(0x05000000, 0xff000000, (2,)), RouteEntry(0x06000000, 0xff000000, (3,))])
    chip.inject(0x05000005)
    chip.inject(0x06000001)
    chip.run(1)
    assert received() == [0, 1, 1, 1]
    chip.load_routes([RouteEntry(0x06000000, 0xff000000, (3,))])
    chip.inject(0x05000005)
    chip.run(1)
    assert received() == [0, 1, 1, 1] and chip.stats().dropped == 1
