"""Preemption in the ISS (docs/chip.md section 10): a packet interrupt raised at a chosen instruction of a
running handler, the packet handler nested there as the Cortex-M4F would run it, the handler resumed.
The race test: a spike tagged tick + 1 arriving inside the timer's swap of the receive buffers (found
through the ELF's line table) gives the same bits as when it arrives after the timer, because the swap
runs with the packet interrupt masked (hal_irq_disable) and the interrupt is taken where it is unmasked.
The same for a sender's spike count arriving between the timer's store of the tick and its step++ (race 7):
the packet handler reads one word (count_tag) the timer sets, never tick and step."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2eprop.emulator.chip.functional import FunctionalChip
from s2eprop.firmware.abi import Firmware
from s2eprop.firmware.arm_image import SRAM_BYTES
from s2eprop.host.mapping.routing import KEY_COUNT, KEY_SPIKE
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport.inproc import EmulatorTransport

SWAP_LINE = "for (uint32_t w = 0; w < zw; ++w) { z_prev[w] = z_rx[w]; z_rx[w] = 0u; }"
CHECK_LINE = "if (cfg->role & FW_ROLE_NEURON) check_spikes(h, filed);"  # after the masked store of the tick


def line_addresses(elf: Path, source: str, text: str) -> list[int]:
    """Addresses the ELF's line table gives the line of `source` (a file of firmware_c/src) holding `text`."""
    from elftools.elf.elffile import ELFFile

    src = Path(__file__).resolve().parents[2] / "firmware_c" / "src" / source
    line = next(i for i, ln in enumerate(src.read_text().splitlines(), 1) if text in ln)
    out = []
    with open(elf, "rb") as f:
        dwarf = ELFFile(f).get_dwarf_info()
        for cu in dwarf.iter_CUs():
            prog = dwarf.line_program_for_CU(cu)
            files = prog["file_entry"]
            for entry in prog.get_entries():
                st = entry.state
                if st is None or st.end_sequence or st.line != line:
                    continue
                name = files[st.file - 1].name if prog.header.version < 5 else files[st.file].name
                if (name.decode() if isinstance(name, bytes) else name) == source:
                    out.append(st.address)
    assert out, f"no address for {source}:{line} in {elf}'s line table (built without -g?)"
    return sorted(set(out))


class PreemptAt:
    """A core runner over an IssRunner that, at core `core`'s timer of tick `tick`, raises a packet
    interrupt: at the instruction `address` (preempt=True: the packet handler nests there, or where the
    timer unmasks the interrupt), or after the timer returns (preempt=False: the run-to-completion order).
    It keeps the core's SRAM right after both handlers."""

    def __init__(self, runner, core: int, tick: int, key: int, address: int, preempt: bool) -> None:
        self.runner, self.sram = runner, runner.sram
        self.core, self.tick, self.key, self.address, self.preempt = core, tick, key, address, preempt
        self.after: np.ndarray | None = None
        self.masked_at_address: bool | None = None
        self.nested_packets = 0

    def __getattr__(self, name):
        return getattr(self.runner, name)

    def on_timer(self, core, tick):
        if (core, tick) != (self.core, self.tick):
            return self.runner.on_timer(core, tick)
        r = self.runner
        if not self.preempt:
            out = r.on_timer(core, tick)
            packet = r.on_mc_packet(core, self.key, 0)
        else:
            r.begin(core, "timer", (tick,))
            r.resume_to(core, self.address)
            assert not r.done(core), "the timer never reached the chosen instruction"
            self.masked_at_address = r.masked(core)
            r.run_to_unmask(core)     # a masked interrupt is taken where it is unmasked
            r.nest_packet(core, self.key, 0)
            self.nested_packets += 1
            while not r.done(core):
                r.resume(core)
            out = r.finish(core)
            packet = None
        self.after = self.runner.sram[core].copy()
        if packet is not None:
            assert not packet.packets and not packet.host
        return out


@pytest.fixture(scope="module")
def small_cfg(cfg, with_options):
    return with_options(cfg, network={"n_in": 16, "n_rec": 24, "n_out": 4, "n_steps": 30},
                        partition={"neurons_per_core": 8}, train={"on_loss": "count"})


class PreemptAtLastStep(PreemptAt):
    """PreemptAt at core `core`'s timer that starts the sample's last step (phase RUN, step n_steps - 1
    before it), the packet a spike count of source `src` tagged with that tick (the sample's count tag).
    At the nested packet it keeps the state's tick and step (the race window: tick stored, step not yet
    moved) and whether the interrupt was masked."""

    def __init__(self, runner, core: int, src: int, n_spikes: int, address: int, preempt: bool) -> None:
        super().__init__(runner, core, -1, 0, address, preempt)
        self.src, self.n_spikes = src, n_spikes
        self.at_nest: tuple[int, int] | None = None
        self.state_after = None

    def on_timer(self, core, tick):
        st = self.runner._headers[core].state
        n_steps = self.runner._headers[core].config.n_steps
        if core != self.core or self.tick >= 0 or st.phase != 1 or st.step != n_steps - 1:
            return self.runner.on_timer(core, tick)
        self.tick, self.key = tick, KEY_COUNT | (tick & 0xFF) << 16 | self.src
        r = self.runner
        if not self.preempt:
            out = r.on_timer(core, tick)
            packet = r.on_mc_packet(core, self.key, self.n_spikes)
            assert not packet.packets and not packet.host
        else:
            r.begin(core, "timer", (tick,))
            r.resume_to(core, self.address)
            assert not r.done(core), "the timer never reached the chosen instruction"
            r.run_to_unmask(core)
            self.masked_at_address = r.masked(core)
            self.at_nest = (int(st.tick), int(st.step))
            r.nest_packet(core, self.key, self.n_spikes)
            self.nested_packets += 1
            while not r.done(core):
                r.resume(core)
            out = r.finish(core)
        self.after = self.runner.sram[core].copy()
        return out


def run_with(cfg, weights, x, y, elf, preempt: bool, address: int, core: int = 1, tick: int = 12, neuron: int = 3,
             count_src: int | None = None):
    from s2eprop.emulator.runners.iss import IssRunner

    fw = Firmware()
    iss = IssRunner(fw, 3, SRAM_BYTES, elf_path=elf)
    if count_src is not None:
        runner = PreemptAtLastStep(iss, core, count_src, 7, address, preempt)
        chip = FunctionalChip(3, backend="python", runner=runner, firmware=fw)
        board = BoardTrainer(cfg, weights.copy(), firmware=fw, transport=EmulatorTransport(3, chip=chip))
        board.train_batch(x, y)
        return board, runner
    runner = PreemptAt(iss, core, tick, 0, address, preempt)
    chip = FunctionalChip(3, backend="python", runner=runner, firmware=fw)
    board = BoardTrainer(cfg, weights.copy(), firmware=fw, transport=EmulatorTransport(3, chip=chip))
    runner.key = KEY_SPIKE | ((tick + 1) & 0xFF) << 16 | neuron   # a spike tagged tick + 1
    board.train_batch(x, y)
    return board, runner


def test_spike_of_next_tick_inside_the_swap_gives_the_bits_of_no_preemption(arm_elf, small_cfg, sample_maker) -> None:
    """Rule: a spike tagged tick + 1 raised at the first instruction of the timer's z_rx swap (ELF line
    table) is taken after the swap, so core 1's SRAM right after, and the weights after the sample, are
    those of the same spike arriving after the timer. Fails with hal_irq_disable a no-op on ARM (tried:
    the spike is copied into this tick's z_prev and its count zeroed)."""
    from s2eprop.host.weights import init_weights

    x, y = sample_maker(1, seed=5, n_steps=30, n_in=16, n_out=4)
    w = init_weights(small_cfg.network, seed=3)
    address = line_addresses(Path(arm_elf), "fw_main.c", SWAP_LINE)[0]
    ref, ref_run = run_with(small_cfg, w, x, y, arm_elf, preempt=False, address=address)
    got, got_run = run_with(small_cfg, w, x, y, arm_elf, preempt=True, address=address)
    assert got_run.nested_packets == 1 and ref_run.after is not None and got_run.after is not None
    diff = np.flatnonzero(ref_run.after != got_run.after)
    assert diff.size == 0, f"core 1's SRAM differs right after the timer in {diff.size} bytes"
    assert got_run.masked_at_address, "the chosen instruction is not in the masked swap"
    for k in ("w_in", "w_rec", "w_out"):
        assert (getattr(ref.weights, k).view(np.uint32) == getattr(got.weights, k).view(np.uint32)).all(), k


def test_spike_count_between_tick_and_step_gives_the_bits_of_no_preemption(arm_elf, small_cfg, sample_maker) -> None:
    """Rule: a sender's spike count tagged with the sample's last step, raised in the timer of that step
    after the masked store of the tick and before step++ (the check_spikes line, ELF line table), is
    filed as when it arrives after the timer: core 1's SRAM right after the timer, its counters after
    the sample and the weights are the same. Fails with the expected tag computed from tick and step
    (tried: 3 bytes of core 1's SRAM differ right after the timer)."""
    from s2eprop.host.weights import init_weights

    x, y = sample_maker(1, seed=5, n_steps=30, n_in=16, n_out=4)
    w = init_weights(small_cfg.network, seed=3)
    address = line_addresses(Path(arm_elf), "fw_main.c", CHECK_LINE)[0]
    runs = [run_with(small_cfg, w, x, y, arm_elf, preempt=p, address=address, count_src=2) for p in (False, True)]
    (ref, ref_run), (got, got_run) = runs
    assert got_run.nested_packets == 1 and ref_run.after is not None and got_run.after is not None
    assert got_run.masked_at_address is False
    assert got_run.at_nest == (got_run.tick, 29), f"not inside the window (tick, step) = {got_run.at_nest}"
    assert ref_run.tick == got_run.tick
    diff = np.flatnonzero(ref_run.after != got_run.after)
    assert diff.size == 0, f"core 1's SRAM differs right after the timer in {diff.size} bytes"
    c_ref, c_got = (r.runner._headers[1].state.counters for r in (ref_run, got_run))
    names = [f[0] for f in ref_run.runner.fw.ffi.typeof("fw_counters_t").fields]
    assert {n: getattr(c_got, n) for n in names} == {n: getattr(c_ref, n) for n in names}
    assert c_ref.late_packets == 0  # the count was in time in both orders
    for k in ("w_in", "w_rec", "w_out"):
        assert (getattr(ref.weights, k).view(np.uint32) == getattr(got.weights, k).view(np.uint32)).all(), k


def test_nested_packet_handler_leaves_the_preempted_handler_intact(arm_elf, small_cfg, sample_maker) -> None:
    """Rule: a packet nested at every 7th block boundary of a neuron step (fw_on_dma_done, interrupts
    unmasked there) leaves the step's registers and stack as they were: the weights after the sample
    equal those of the packet arriving after the step (a spike of the current tick: filed either way)."""
    from s2eprop.emulator.runners.iss import IssRunner
    from s2eprop.host.weights import init_weights

    x, y = sample_maker(1, seed=5, n_steps=30, n_in=16, n_out=4)
    w = init_weights(small_cfg.network, seed=3)

    class EveryBudget(PreemptAt):
        def on_dma_done(self, core, tag):
            r = self.runner
            if not self.preempt or core != 2:
                return r.on_dma_done(core, tag)
            r.begin(core, "dma_done", (tag,))
            while not r.done(core):
                r.resume(core, 500)
                if not r.done(core):
                    r.run_to_unmask(core)
                if not r.done(core):
                    r.nest_packet(core, KEY_SPIKE | 0xFFFF, 0)
                    self.nested_packets += 1
            return r.finish(core)

        def on_timer(self, core, tick):
            return self.runner.on_timer(core, tick)

    boards = []
    for preempt in (False, True):
        fw = Firmware()
        runner = EveryBudget(IssRunner(fw, 3, SRAM_BYTES, elf_path=arm_elf), 2, 0, 0, 0, preempt)
        chip = FunctionalChip(3, backend="python", runner=runner, firmware=fw)
        board = BoardTrainer(small_cfg, w.copy(), firmware=fw, transport=EmulatorTransport(3, chip=chip))
        board.train_batch(x, y)
        boards.append((board, runner))
    (ref, _), (got, run) = boards
    assert run.nested_packets > 100
    assert run.runner.stack_use[2].nested_calls > 0 and run.runner.stack_use[2].nested_bytes > 0
    for k in ("w_in", "w_rec", "w_out"):
        assert (getattr(ref.weights, k).view(np.uint32) == getattr(got.weights, k).view(np.uint32)).all(), k
