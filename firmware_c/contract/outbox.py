"""Emulator layer: the side effects of one handler call, as every core runner returns them.

The firmware's HAL (hal.h: HAL_OUT_*) queues them in the arena's outbox; `drain_outbox` parses them in
the order they were made and empties the outbox, as a board's hardware would send them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from s2eprop.firmware.abi import Firmware


@dataclass(frozen=True)
class DmaTransfer:
    """SDRAM -> SRAM read (or, `write`, SRAM -> SDRAM) a handler asked for; fw_on_dma_done(tag) follows
    its completion."""

    sdram_addr: int
    sram_offset: int   # from the arena's start (host offset 0)
    n_bytes: int
    tag: int
    write: bool = False


@dataclass
class Effects:
    """Side effects of one handler call, in the order the firmware made them."""

    packets: list[tuple[int, int]] = field(default_factory=list)   # (key, payload)
    host: list[np.ndarray] = field(default_factory=list)           # messages to the host, uint32 words
    dma: list[DmaTransfer] = field(default_factory=list)
    user_event: bool = False
    counts: np.ndarray | None = None                                # work counts, fields of fw_counts_t


class OutboxReader:
    """Parses and empties a core's outbox through a cffi view of its arena header."""

    def __init__(self, firmware: Firmware) -> None:
        lib = firmware.lib
        self._tags = (int(lib.HAL_OUT_MC), int(lib.HAL_OUT_HOST), int(lib.HAL_OUT_DMA), int(lib.HAL_OUT_USER),
                      int(lib.HAL_OUT_DMA_WRITE))
        self._dma_words = int(lib.HAL_DMA_WORDS)
        self._running = int(lib.FW_RUNNING)

    def drain(self, core: int, header: Any, arena: np.ndarray, counts: np.ndarray) -> Effects | None:
        """The outbox's effects, emptied; None when its count or an entry lies past the outbox or the arena
        (the core's memory is not to be trusted: chip_loop.c's drain stops it, EMU_RTE_OUTBOX)."""
        out = Effects(counts=counts)
        n = int(header.state.outbox_count)
        header.state.outbox_count = 0
        if n == 0:
            return out
        off = int(header.layout.outbox)
        # a core not running has no config to trust (tests fill its outbox by hand): its SRAM bounds it
        cap = int(header.config.outbox_words) if int(header.status) == self._running else n
        if n > cap or off % 4 or off + 4 * n > arena.size:
            return None
        box = arena[off:off + 4 * n].view(np.uint32)
        mc, host, dma, user, dma_write = self._tags
        at = 0
        while at < n:
            tag = int(box[at]) & 0xFF
            size = int(box[at]) >> 8
            words = 3 if tag == mc else size + 1 if tag == host else self._dma_words if tag in (dma, dma_write) \
                else 1 if tag == user else 0
            if words == 0 or at + words > n:
                return None
            if tag == mc:
                out.packets.append((int(box[at + 1]), int(box[at + 2])))
                at += 3
            elif tag == host:
                out.host.append(box[at + 1:at + 1 + size].copy())
                at += size + 1
            elif tag == dma or tag == dma_write:
                out.dma.append(DmaTransfer(*(int(w) for w in box[at + 1:at + self._dma_words]), write=tag == dma_write))
                at += self._dma_words
            else:
                out.user_event = True
                at += 1
        return out
