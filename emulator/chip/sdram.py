"""Emulator layer: the chip's SDRAM, shared by all cores: written by the host, read by the cores' DMA
engines. Sparse: 64 KiB pages come into being when first written; a page never written reads as
zeros. The C event loop reads the same pages through a table of pointers (`c_pages`)."""
from __future__ import annotations

from typing import Any

import numpy as np

from s2eprop.emulator.errors import EmulatorError

PAGE_BITS = 16


class Sdram:
    def __init__(self, size_bytes: int, ffi: Any | None = None) -> None:
        if size_bytes <= 0 or size_bytes % (1 << PAGE_BITS) or size_bytes > 1 << 32:
            raise EmulatorError(f"SDRAM size must be a positive multiple of {1 << PAGE_BITS:,} B up to 4 GiB, "
                                f"got {size_bytes:,} B")
        self.size_bytes = size_bytes
        self.page_bits = PAGE_BITS
        self.n_pages = size_bytes >> PAGE_BITS
        self._pages: dict[int, np.ndarray] = {}
        self._ffi = ffi
        self.c_pages = ffi.new("uint8_t *[]", self.n_pages) if ffi is not None else None

    def _check(self, addr: int, n_bytes: int) -> None:
        if addr < 0 or n_bytes < 0 or addr + n_bytes > self.size_bytes:
            raise EmulatorError(f"SDRAM access [0x{addr:08x}, 0x{addr + n_bytes:08x}) outside the chip's "
                                f"{self.size_bytes:,} B of SDRAM")

    def _page(self, index: int) -> np.ndarray:
        page = self._pages.get(index)
        if page is None:
            page = self._pages[index] = np.zeros(1 << self.page_bits, dtype=np.uint8)
            if self.c_pages is not None:
                self.c_pages[index] = self._ffi.cast("uint8_t *", self._ffi.from_buffer(page))
        return page

    def _chunks(self, addr: int, n_bytes: int):
        """(page index, offset in page, offset in the data, length) covering [addr, addr + n_bytes)."""
        size = 1 << self.page_bits
        done = 0
        while done < n_bytes:
            at = addr + done
            index, off = at >> self.page_bits, at & (size - 1)
            n = min(n_bytes - done, size - off)
            yield index, off, done, n
            done += n

    def write(self, addr: int, data: bytes | np.ndarray) -> None:
        raw = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
        self._check(addr, raw.size)
        if raw.size == 0:  # nothing to write (at the very end of SDRAM there is no page to touch)
            return
        off = addr & ((1 << self.page_bits) - 1)
        if off + raw.size <= 1 << self.page_bits:  # inside one page (a datagram's write): no loop
            self._page(addr >> self.page_bits)[off:off + raw.size] = raw
            return
        for index, off, at, n in self._chunks(addr, raw.size):
            self._page(index)[off:off + n] = raw[at:at + n]

    def backed(self, addr: int, n_bytes: int) -> bool:
        """Whether every page of [addr, addr + n_bytes) has been written (the cores' DMA writes go only there)."""
        if n_bytes <= 0:
            return True
        return all(p in self._pages for p in range(addr >> self.page_bits, ((addr + n_bytes - 1) >> self.page_bits) + 1))

    def read(self, addr: int, n_bytes: int) -> bytes:
        self._check(addr, n_bytes)
        out = np.zeros(n_bytes, dtype=np.uint8)
        for index, off, at, n in self._chunks(addr, n_bytes):
            page = self._pages.get(index)
            if page is not None:
                out[at:at + n] = page[off:off + n]
        return out.tobytes()

