"""Emulator layer: the core runner over the native (cffi) build of the firmware.

Each core's SRAM is a NumPy array; a handler runs on it in place, and what it queued in its outbox
(hal.h: HAL_OUT_*) is parsed into `Effects` and the outbox emptied, as a board's hardware would send it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emulator.errors import EmulatorError
from emulator.fw_bridge import Firmware


@dataclass(frozen=True)
class DmaRead:
    """SDRAM -> SRAM transfer a handler asked for; fw_on_dma_done(tag) follows its completion."""

    sdram_addr: int
    sram_offset: int
    n_bytes: int
    tag: int


@dataclass
class Effects:
    """Side effects of one handler call, in the order the firmware made them."""

    packets: list[tuple[int, int]] = field(default_factory=list)   # (key, payload)
    host: list[np.ndarray] = field(default_factory=list)           # messages to the host, uint32 words
    dma: list[DmaRead] = field(default_factory=list)
    user_event: bool = False
    counts: np.ndarray | None = None                                # work counts, fields of fw_counts_t


class NativeRunner:
    """Runs firmware handlers of `n_cores` cores, each on its own `sram_bytes` of memory."""

    def __init__(self, firmware: Firmware, n_cores: int, sram_bytes: int) -> None:
        self.fw = firmware
        self.n_cores = n_cores
        self.sram_bytes = sram_bytes
        self.sram = [np.zeros(sram_bytes, dtype=np.uint8) for _ in range(n_cores)]
        ffi = firmware.ffi
        self.arena_ptrs = [ffi.cast("uint8_t *", ffi.from_buffer(a)) for a in self.sram]
        self._headers = [ffi.cast("fw_header_t *", p) for p in self.arena_ptrs]
        lib = firmware.lib
        self._tags = (int(lib.HAL_OUT_MC), int(lib.HAL_OUT_HOST), int(lib.HAL_OUT_DMA), int(lib.HAL_OUT_USER))
        self._dma_words = int(lib.HAL_DMA_WORDS)

    def init(self, core: int, arena_bytes: int) -> int:
        return int(self.fw.lib.fw_init(self.arena_ptrs[core], arena_bytes))

    def on_timer(self, core: int, tick: int) -> Effects:
        return self._effects(core, self.fw.lib.fw_on_timer(self.arena_ptrs[core], tick & 0xFFFFFFFF))

    def on_mc_packet(self, core: int, key: int, payload: int) -> Effects:
        return self._effects(core, self.fw.lib.fw_on_mc_packet(self.arena_ptrs[core], key, payload))

    def on_dma_done(self, core: int, tag: int) -> Effects:
        return self._effects(core, self.fw.lib.fw_on_dma_done(self.arena_ptrs[core], tag))

    def on_host_msg(self, core: int, words: np.ndarray) -> Effects:
        words = np.ascontiguousarray(words, dtype=np.uint32)
        ffi = self.fw.ffi
        return self._effects(core, self.fw.lib.fw_on_host_msg(self.arena_ptrs[core],
                                                              ffi.cast("uint32_t *", ffi.from_buffer(words)), words.size))

    def on_user_event(self, core: int) -> Effects:
        return self._effects(core, self.fw.lib.fw_on_user_event(self.arena_ptrs[core]))

    def _effects(self, core: int, counts) -> Effects:
        out = Effects(counts=np.array([getattr(counts, f) for f in self.fw.count_fields], dtype=np.uint64))
        hdr = self._headers[core]
        n = int(hdr.state.outbox_count)
        if n == 0:
            return out
        off = int(hdr.layout.outbox)
        box = self.sram[core][off:off + 4 * n].view(np.uint32)
        mc, host, dma, user = self._tags
        at = 0
        while at < n:
            tag = int(box[at]) & 0xFF
            if tag == mc:
                out.packets.append((int(box[at + 1]), int(box[at + 2])))
                at += 3
            elif tag == host:
                size = int(box[at]) >> 8
                out.host.append(box[at + 1:at + 1 + size].copy())
                at += size + 1
            elif tag == dma:
                out.dma.append(DmaRead(*(int(w) for w in box[at + 1:at + self._dma_words])))
                at += self._dma_words
            elif tag == user:
                out.user_event = True
                at += 1
            else:
                raise EmulatorError(f"core {core}: outbox entry {at} has unknown tag {tag} (firmware bug)")
        hdr.state.outbox_count = 0
        return out
