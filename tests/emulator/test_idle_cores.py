"""The functional loop skips the timer phase of cores not running (emu_chip_t.core_asleep, marked once a run): the
same bits as running their handlers, which return at once. A stopped core's outbox filled by a host write is still
released (as every handler of it releases it), and the idle cores of a larger chip change nothing."""
from __future__ import annotations

from s2eprop.emulator.chip.functional import FunctionalChip
from core_outbox import put_outbox


def test_a_stopped_cores_outbox_written_by_the_host_is_released_by_the_next_tick() -> None:
    chip = FunctionalChip(4)
    host = int(chip.fw.lib.HAL_OUT_HOST)
    chip.run(3)  # every core idle: marked asleep for these ticks
    put_outbox(chip, 2, [host | (2 << 8), 11, 12])  # a host message of 2 words, queued by hand
    chip.run(1)
    assert [(c, [int(v) for v in w]) for c, w in chip.take_host_messages()] == [(2, [11, 12])]
    chip.run(2)  # released once: the outbox count went back to 0
    assert chip.take_host_messages() == []
