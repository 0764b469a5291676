"""The firmware counts every loss it can see and never mixes a wrong packet or frame in (fw_abi.h
fw_counters_t): one test per counter provokes its fault on the 12-core chip and sees the counter move,
and with train.on_loss "stop" the host ends the run naming the core, the counter and the sample."""
from __future__ import annotations

import re

import numpy as np
import pytest

from s2eprop.emulator.chip.functional import FunctionalChip, PacketFault
from s2eprop.firmware.routes import RouteEntry
from s2eprop.host.errors import TransportError
from s2eprop.firmware.messages import frame_slots
from s2eprop.host.mapping.routing import FIELD_MASK, KEY_COUNT, KEY_PARTIAL, KEY_SPIKE, routing_table
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport import EmulatorTransport

N_STEPS = 100
TAG_SHIFT = 16


def _board(cfg, w, with_options=None, on_loss="stop", **chip_kwargs) -> BoardTrainer:
    if with_options is not None:
        cfg = with_options(cfg, train={"on_loss": on_loss})
    transport = EmulatorTransport(12, chip=FunctionalChip(12, **chip_kwargs)) if chip_kwargs else None
    return BoardTrainer(cfg, w.copy(), transport=transport)


def _grew(board: BoardTrainer, before: dict[int, dict[str, int]]) -> dict[tuple[int, str], int]:
    """(core, counter) -> how much it grew since `before`."""
    now = board.core_counters()
    return {(c, k): v - before[c][k] for c, d in now.items() for k, v in d.items() if v != before[c][k]}


def _assert_stop_names(info, counter: str, sample: int) -> None:
    msg = str(info.value)
    assert re.search(rf"core \d+ {counter} now \d+", msg), msg
    assert f"sample {sample}" in msg, msg


def test_spike_one_tick_late_is_counted_and_stops(cfg, init_w, sample_maker, with_options) -> None:
    """Rule: core 3's spikes delivered one tick late are late at every neuron core (late_packets moves,
    never mixed in), and with on_loss "stop" the first sample ends in an error naming a core,
    late_packets and sample 0."""
    x, y = sample_maker(1, seed=21)
    fault = PacketFault(src=3, key=KEY_SPIKE, mask=FIELD_MASK, delay_ticks=1)
    board = _board(cfg, init_w, with_options, "stop", backend="python", faults=(fault,))
    with pytest.raises(TransportError) as info:
        board.train_batch(x, y)
    _assert_stop_names(info, "late_packets", 0)
    counters = board.core_counters()
    late = {c: d["late_packets"] for c, d in counters.items()}
    assert all(v > 0 for v in late.values()), late
    assert len(set(late.values())) == 1, late  # every neuron core threw away the same spikes
    assert board.provenance()["early_packets"] == 0


def test_spike_one_tick_early_is_kept_for_its_step(cfg, init_w, sample_maker, weights_identical) -> None:
    """Rule: with each core's packets delivered right after its own timer ("eager"), cores after it
    receive them a tick early (checked: more than 1,000 such deliveries); they are kept for their own
    step, so 3 samples give bit-identical weights to the usual order, with no loss counted."""
    x, y = sample_maker(3, seed=22)
    ref = _board(cfg, init_w)
    eager = _board(cfg, init_w, backend="python", schedule="eager")
    runner = eager.transport.chip.runner
    early = []
    deliver = runner.on_mc_packet

    def spy(core, key, payload):
        last = int(runner._headers[core].state.tick)
        if key & FIELD_MASK == KEY_SPIKE and ((key >> TAG_SHIFT) - last) & 0xFF == 1:
            early.append(core)
        return deliver(core, key, payload)

    runner.on_mc_packet = spy
    for i in range(3):
        ref.train_batch(x[i:i + 1], y[i:i + 1])
        eager.train_batch(x[i:i + 1], y[i:i + 1])
    assert len(early) > 1000, len(early)
    weights_identical(eager.weights, ref.weights, "eager vs batched delivery")
    assert all(v == 0 for v in eager.provenance().values()), eager.provenance()


def test_spike_two_ticks_early_is_counted(cfg, init_w, sample_maker) -> None:
    """Rule: a spike tagged two ticks ahead of the receivers' last tick is counted as early_packets at
    each of the 12 neuron cores and changes nothing else (no late, no duplicate)."""
    board = _board(cfg, init_w)
    chip = board.transport.chip
    chip.run(5)  # the cores have handled ticks 0..4
    before = board.core_counters()
    chip.inject(KEY_SPIKE | ((4 + 2) << TAG_SHIFT) | 17)
    assert _grew(board, before) == {(c, "early_packets"): 1 for c in range(12)}
    chip.inject(KEY_SPIKE | ((4 + 1) << TAG_SHIFT) | 17)  # one tick ahead: kept
    chip.inject(KEY_SPIKE | ((4 - 1) << TAG_SHIFT) | 17)  # a tick already used: late
    assert _grew(board, before) == {**{(c, "early_packets"): 1 for c in range(12)},
                                    **{(c, "late_packets"): 1 for c in range(12)}}


def _spike_keys_of(cfg, w, x, y, core: int) -> list[int]:
    """The spike keys `core` sends in a clean Python-loop training of sample x[0] (in order)."""
    chip = FunctionalChip(12, backend="python")
    board = BoardTrainer(cfg, w.copy(), transport=EmulatorTransport(12, chip=chip))
    keys: list[int] = []
    step = chip.runner.on_dma_done

    def spy(c, tag):
        effects = step(c, tag)
        if c == core:
            keys.extend(k for k, _ in effects.packets if k & FIELD_MASK == KEY_SPIKE)
        return effects

    chip.runner.on_dma_done = spy
    board.train_batch(x[:1], y[:1])
    return keys


def test_a_dropped_spike_is_counted_and_stops(cfg, init_w, sample_maker, with_options) -> None:
    """Rule: one spike packet of core 5 lost in the router (PacketFault drop, nothing else counts it)
    is missing at each of the 12 neuron cores when they compare the spikes they filed with the spike
    counts the senders announce: spikes_missing is 1 on every core and every other counter 0 (with
    on_loss "count", 2 samples); with "stop" the host ends the run naming a core, spikes_missing and
    sample 0."""
    x, y = sample_maker(2, seed=21)
    keys = _spike_keys_of(cfg, init_w, x, y, core=5)
    assert keys, "core 5 sent no spike in sample 0"
    fault = PacketFault(src=5, key=keys[0], mask=0xFFFF_FFFF, drop=True)
    counting = _board(cfg, init_w, with_options, "count", backend="python", faults=(fault,))
    for i in range(2):
        counting.train_batch(x[i:i + 1], y[i:i + 1])
    grew = {(c, k): v for c, d in counting.core_counters().items() for k, v in d.items() if v}
    assert grew == {(c, "spikes_missing"): 1 for c in range(12)}, grew
    assert counting.transport.status().packets_dropped == 0  # the router saw nothing: only the cores can tell
    stopping = _board(cfg, init_w, with_options, "stop", backend="python", faults=(fault,))
    with pytest.raises(TransportError) as info:
        stopping.train_batch(x[:1], y[:1])
    _assert_stop_names(info, "spikes_missing", 0)


def test_a_dropped_spike_count_is_counted_and_changes_nothing_else(cfg, init_w, sample_maker, with_options,
                                                                   weights_identical) -> None:
    """Rule: core 5's spike count packets lost (one a sample) are counted as spike_counts_missing, one per
    sample on each of the 12 neuron cores, spikes_missing stays 0 (a sum without core 5's count cannot be
    compared), and the weights are those of a clean run (the counts are checked, never used)."""
    x, y = sample_maker(2, seed=24)
    fault = PacketFault(src=5, key=KEY_COUNT, mask=FIELD_MASK, drop=True)
    clean = _board(cfg, init_w)
    faulty = _board(cfg, init_w, with_options, "count", backend="python", faults=(fault,))
    for i in range(2):
        clean.train_batch(x[i:i + 1], y[i:i + 1])
        faulty.train_batch(x[i:i + 1], y[i:i + 1])
    grew = {(c, k): v for c, d in faulty.core_counters().items() for k, v in d.items() if v}
    assert grew == {(c, "spike_counts_missing"): 2 for c in range(12)}, grew
    weights_identical(faulty.weights, clean.weights, "spike counts of core 5 lost vs clean")
    stopping = _board(cfg, init_w, with_options, "stop", backend="python", faults=(fault,))
    with pytest.raises(TransportError) as info:
        stopping.train_batch(x[:1], y[:1])
    _assert_stop_names(info, "spike_counts_missing", 0)


@pytest.mark.parametrize("backend", ["c", "python"])
def test_clean_runs_count_no_spike_missing(cfg, init_w, sample_maker, with_options, backend) -> None:
    """Rule: without faults every neuron core's spikes filed match the senders' counts: 3 samples (two
    trained, one inference) leave every counter at 0 in both functional loops, and each core sent one
    spike count per sample (mc_sent is the spikes, the partial sums and the counts)."""
    x, y = sample_maker(3, seed=25)
    board = _board(cfg, init_w, with_options, "count", backend=backend)
    for i in range(2):
        board.train_batch(x[i:i + 1], y[i:i + 1])
    board.forward(x[2:3], y[2:3])
    assert not any(board.provenance().values()), board.provenance()
    assert all(not any(d.values()) for d in board.core_counters().values())


def test_a_duplicated_spike_count_is_counted(cfg, init_w, sample_maker) -> None:
    """Rule: a spike count delivered twice counts one duplicate_packets on each neuron core and is added
    once (no spikes_missing)."""
    x, y = sample_maker(1, seed=26)
    fault = PacketFault(src=5, key=KEY_COUNT, mask=FIELD_MASK, duplicate=True)
    board = _board(cfg, init_w, None, backend="python", faults=(fault,))
    with pytest.raises(TransportError):
        board.train_batch(x, y)
    grew = {(c, k): v for c, d in board.core_counters().items() for k, v in d.items() if v}
    assert grew == {(c, "duplicate_packets"): 1 for c in range(12)}, grew


class _RingWriteFault(EmulatorTransport):
    """Passes SDRAM writes on, except that frame `step` of each sample is left out or given another id."""

    def __init__(self, chip: FunctionalChip, ring, step: int, mode: str) -> None:
        super().__init__(chip.n_cores, chip=chip)
        self.ring, self.step, self.mode = ring, step, mode

    def write_sdram(self, addr, data, timeout_s=None):
        slots = np.array(data, dtype=np.uint32).reshape(-1, self.ring.slot_words)
        if self.mode == "missing":
            first = (addr - self.ring.sdram_addr) // (4 * self.ring.slot_words)
            for k in range(len(slots)):
                if int(slots[k, 2]) != self.step:
                    super().write_sdram(self.ring.sdram_addr + 4 * self.ring.slot_words * (first + k), slots[k])
            return
        slots[slots[:, 2] == self.step, 1] += 1000  # another sample's frame
        super().write_sdram(addr, slots)


@pytest.mark.parametrize("mode", ["missing", "other_sample"])
def test_bad_frame_is_an_underrun_with_zero_input(cfg, init_w, sample_maker, with_options,
                                                  weights_identical, mode) -> None:
    """Rule: a frame slot never written (DMA of SDRAM holding zeros) or holding another sample's frame
    is counted as one input_underrun on each of the 12 neuron cores and its step runs with zero input:
    with on_loss "count", 2 samples give bit-identical weights to a clean board fed that frame as
    zeros; with "stop" the host names a core, input_underruns and sample 0."""
    x, y = sample_maker(2, seed=23)
    x0 = x.copy()
    x0[:, 40] = 0.0
    clean = _board(cfg, init_w)
    probe = _board(cfg, init_w)
    ring = probe.streamer.ring
    counting = with_options(cfg, train={"on_loss": "count"})
    faulty = BoardTrainer(counting, init_w.copy(), transport=_RingWriteFault(FunctionalChip(12), ring, 40, mode))
    for i in range(2):
        clean.train_batch(x0[i:i + 1], y[i:i + 1])
        faulty.train_batch(x[i:i + 1], y[i:i + 1])
    assert {c: d["input_underruns"] for c, d in faulty.core_counters().items()} == dict.fromkeys(range(12), 2)
    weights_identical(faulty.weights, clean.weights, f"frame 40 {mode} vs zeros")
    stopping = BoardTrainer(cfg, init_w.copy(), transport=_RingWriteFault(FunctionalChip(12), ring, 40, mode))
    with pytest.raises(TransportError) as info:
        stopping.train_batch(x[:1], y[:1])
    _assert_stop_names(info, "input_underruns", 0)


def test_frame_from_sdram_is_what_the_core_computes_with(cfg, init_w) -> None:
    """Rule: frames written into the SDRAM ring with a known pattern (at ring slot 37) are the ones a
    neuron core fetched into its DMA buffer, header included, and its input traces follow them:
    after steps 0 and 1, eps_v of the inputs is alpha * x0 + x1 (float32)."""
    board = _board(cfg, init_w)
    t, ring, lib = board.transport, board.streamer.ring, board.fw.lib
    frames = (np.arange(2 * 80, dtype=np.float32).reshape(2, 80) * np.float32(0.01) - np.float32(0.3))
    slots = frame_slots(9, frames)
    t.write_sdram(ring.sdram_addr + 4 * ring.slot_words * 37, slots)
    for core in range(12):
        t.send(core, np.array([lib.FW_MSG_SAMPLE, 9, 3, 1, 37], np.uint32))
    t.advance(2)
    img = board.images[4]
    buf = np.frombuffer(t.read_sram(4, img.layout.region("dma_buf"), 2 * 4 * ring.slot_words), np.uint32)
    assert np.array_equal(buf.reshape(2, -1), slots)
    ev_in = np.frombuffer(t.read_sram(4, img.layout.region("ev_in"), 4 * 80), np.float32)
    alpha = np.float32(cfg.network.decays()[0])
    assert np.array_equal(ev_in, alpha * frames[0] + frames[1])


def test_duplicate_partial_sum_is_counted_not_added(cfg, init_w, sample_maker, with_options,
                                                    weights_identical) -> None:
    """Rule: every partial sum of core 2 delivered twice is counted once per duplicate (12 outputs x 100
    steps of duplicate_packets on the readout core) and never added twice: with on_loss "count" the
    weights after 2 samples are bit-identical to a clean run; with "stop" the host names the readout
    core's duplicate_packets and sample 0."""
    x, y = sample_maker(2, seed=24)
    fault = PacketFault(src=2, key=KEY_PARTIAL, mask=FIELD_MASK, duplicate=True)
    clean = _board(cfg, init_w)
    dup = _board(cfg, init_w, with_options, "count", backend="python", faults=(fault,))
    for i in range(2):
        clean.train_batch(x[i:i + 1], y[i:i + 1])
        dup.train_batch(x[i:i + 1], y[i:i + 1])
    assert dup.core_counters()[0]["duplicate_packets"] == 2 * 12 * N_STEPS
    weights_identical(dup.weights, clean.weights, "duplicated partial sums vs clean")
    stop = _board(cfg, init_w, backend="python", faults=(fault,))
    with pytest.raises(TransportError) as info:
        stop.train_batch(x[:1], y[:1])
    assert "core 0 duplicate_packets now 1200" in str(info.value), str(info.value)


def test_late_partial_sums_make_steps_incomplete(cfg, init_w, sample_maker, with_options) -> None:
    """Rule: core 5's partial sums a tick late are late at the readout core and every step it reduces
    misses them: late_packets and partials_incomplete count 100 steps' worth on core 0, and the
    training goes on with on_loss "count" (2 samples, both with a result)."""
    x, y = sample_maker(2, seed=25)
    fault = PacketFault(src=5, key=KEY_PARTIAL, mask=FIELD_MASK, delay_ticks=1)
    board = _board(cfg, init_w, with_options, "count", backend="python", faults=(fault,))
    for i in range(2):
        r = board.train_batch(x[i:i + 1], y[i:i + 1])
        assert r.pred[0] >= 0
    c0 = board.core_counters()[0]
    assert c0["partials_incomplete"] == 2 * N_STEPS
    assert c0["late_packets"] == 2 * 12 * N_STEPS
    assert board.report()["provenance_per_core"]["0"]["partials_incomplete"] == 2 * N_STEPS


def test_outbox_overflow_is_counted(cfg, init_w, sample_maker) -> None:
    """Rule: an outbox of 16 words (5 packets) cannot hold a step's 12 partial sums: outbox_overflows
    counts the entries lost on every neuron core and the host stops naming the counter."""
    x, y = sample_maker(1, seed=26)
    board = BoardTrainer(cfg, init_w.copy(), outbox_words=16)
    with pytest.raises(TransportError) as info:
        board.train_batch(x, y)
    assert all(d["outbox_overflows"] >= N_STEPS for d in board.core_counters().values())
    assert "outbox_overflows" in str(info.value), str(info.value)


def test_bad_host_message_is_counted(cfg, init_w, sample_maker) -> None:
    """Rule: a host message of unknown type, one of the wrong length and a SAMPLE naming a label out of
    range each count one bad_host_msgs on core 7 and are ignored; the next sample stops with an
    error naming core 7, bad_host_msgs now 3 and sample 0."""
    x, y = sample_maker(1, seed=27)
    board = _board(cfg, init_w)
    lib = board.fw.lib
    for words in ([99], [lib.FW_MSG_SCALE_LR], [lib.FW_MSG_SAMPLE, 0, 12, 1, 0]):
        board.transport.send(7, np.array(words, np.uint32))
    assert board.core_counters()[7]["bad_host_msgs"] == 3
    with pytest.raises(TransportError) as info:
        board.train_batch(x, y)
    assert "core 7 bad_host_msgs now 3" in str(info.value) and "sample 0" in str(info.value), str(info.value)


def test_unknown_key_is_counted(cfg, init_w, sample_maker) -> None:
    """Rule: a packet routed to core 3 whose key is none of spike, partial sum or error counts one
    unknown_keys there; the next sample stops naming core 3 and unknown_keys."""
    x, y = sample_maker(1, seed=28)
    board = _board(cfg, init_w)
    board.transport.load_routes(routing_table(cfg.network, board.plan) + [RouteEntry(0x7700_0000, FIELD_MASK, (3,))])
    board.transport.chip.inject(0x7700_0001, 5)
    assert {c: d["unknown_keys"] for c, d in board.core_counters().items() if d["unknown_keys"]} == {3: 1}
    with pytest.raises(TransportError) as info:
        board.train_batch(x, y)
    assert "core 3 unknown_keys now 1" in str(info.value), str(info.value)


def test_lost_errors_never_wedge_a_core(cfg, init_w, sample_maker, with_options) -> None:
    """Rule: without the error route (on_loss "count"), a training sample's errors never come: the host
    counts the sample as lost (no SAMPLE_DONE), and when the next sample is announced every neuron
    core gives up the update (errors_missing 1 each, weights unchanged) and runs it; it comes back
    with a result."""
    x, y = sample_maker(2, seed=29)
    board = _board(cfg, init_w, with_options, "count")
    board.transport.load_routes([RouteEntry(KEY_SPIKE, FIELD_MASK, board.plan.neuron_cores),
                                 RouteEntry(KEY_PARTIAL, FIELD_MASK, (0,)),
                                 RouteEntry(KEY_COUNT, FIELD_MASK, board.plan.neuron_cores)])
    board.train_batch(x[:1], y[:1])
    assert board.samples_lost == 1
    r = board.forward(x[1:2], y[1:2])
    assert r.pred[0] >= 0 and board.samples_lost == 1
    assert {c: d["errors_missing"] for c, d in board.core_counters().items()} == dict.fromkeys(range(12), 1)
    assert (board.weights.w_rec == init_w.w_rec).all()
    assert board.provenance()["packets_dropped"] == 12


def test_realtime_input_gives_the_same_bits(cfg, init_w, sample_maker, with_options, weights_identical) -> None:
    """Rule: streaming frames one tick ahead of the chip's clock (input_mode "realtime", lookahead 1)
    gives bit-identical weights and results to writing each sample whole before it starts, over 5
    samples (the ring of 4 samples' slots wraps), with no underrun."""
    x, y = sample_maker(5, seed=30)
    ref = _board(cfg, init_w)
    rt = BoardTrainer(with_options(cfg, train={"input_mode": "realtime", "input_lookahead_ticks": 1}), init_w.copy())
    for i in range(5):
        a, b = ref.train_batch(x[i:i + 1], y[i:i + 1]), rt.train_batch(x[i:i + 1], y[i:i + 1])
        assert a.loss.tobytes() == b.loss.tobytes() and a.spikes.tolist() == b.spikes.tolist()
    weights_identical(rt.weights, ref.weights, "realtime vs prefetch")
    assert rt.provenance()["input_underruns"] == 0
