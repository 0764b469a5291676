"""Firmware contract: the multicast router's key/mask table (first matching entry wins, no default route:
unmatched packets are dropped and counted, never silently)."""
from __future__ import annotations

from dataclasses import dataclass

from s2eprop.emulator.errors import EmulatorError

MAX_ENTRIES = 16384  # SpiNNaker 2 router: 16,384 associative entries


@dataclass(frozen=True)
class RouteEntry:
    key: int
    mask: int
    cores: tuple[int, ...]

    def matches(self, key: int) -> bool:
        return (key & self.mask) == self.key


def check_table(entries: list[RouteEntry], n_cores: int) -> None:
    if len(entries) > MAX_ENTRIES:
        raise EmulatorError(f"routing table has {len(entries)} entries, the router holds {MAX_ENTRIES}")
    for i, e in enumerate(entries):
        if e.key & ~e.mask & 0xFFFFFFFF:
            raise EmulatorError(f"route {i}: key 0x{e.key:08x} has bits outside mask 0x{e.mask:08x}")
        if not e.cores:
            raise EmulatorError(f"route {i} (key 0x{e.key:08x}): no destination core; a packet it matches would be lost")
        bad = [c for c in e.cores if not 0 <= c < n_cores]
        if bad:
            raise EmulatorError(f"route {i}: destination core(s) {bad} do not exist (chip has {n_cores})")


def lookup(entries: list[RouteEntry], key: int) -> RouteEntry | None:
    for e in entries:
        if e.matches(key):
            return e
    return None
