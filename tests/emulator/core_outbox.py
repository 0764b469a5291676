"""Test helper: side effects queued by hand in a core's outbox (what a stopped core releases at the end of
its next handler), for the functional and timed chips' tests of the loops alone."""
from __future__ import annotations

import numpy as np


def put_outbox(chip, core: int, words: list[int]) -> None:
    """Point the core's layout.outbox at SRAM offset 4096, write `words` there and their count."""
    ffi = chip.fw.ffi
    outbox = 4096
    chip.write_sram(core, ffi.offsetof("fw_header_t", "layout") + ffi.offsetof("fw_layout_t", "outbox"),
                    np.array([outbox], np.uint32))
    chip.write_sram(core, ffi.offsetof("fw_header_t", "state") + ffi.offsetof("fw_state_t", "outbox_count"),
                    np.array([len(words)], np.uint32))
    chip.write_sram(core, outbox, np.array(words, np.uint32))
