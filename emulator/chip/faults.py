"""Emulator layer: faults the router injects (a user's `chip.faults`), the same in every loop.

The rule is written once in C (emulator/chip/csrc/chip_loop.h `emu_fault_t`, router_faults.c) for the two
C loops; `RouterFaults` is its mirror for the Python functional loop and the SimPy timed model, and
`fault_hash` the mirror of `emu_fault_hash` (tests/emulator/test_emu_faults.py checks them equal). A
packet from a core whose key & mask equals a fault's key, from its source core (or any), is hit by the
first fault of the list that decides so: in count mode the first `count` such packets the router sees, in
rate mode each with probability `rate`, decided by a counter-based hash of (seed, source core, the
packet's index among that core's packets the fault has seen), so that the same packets are hit whatever
order the cores' packets interleave in (functional or timed). The chip knows nothing of packet kinds:
the host maps `spike`, `partial`, `error` to keys (host/mapping/faults.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from s2eprop.emulator.errors import EmulatorError
from s2eprop.firmware.abi import abi

ACTIONS = {"drop": int(abi().EMU_FAULT_DROP), "duplicate": int(abi().EMU_FAULT_DUPLICATE),
           "delay": int(abi().EMU_FAULT_DELAY)}
NONE = int(abi().EMU_FAULT_NONE)
ANY_SRC = int(abi().EMU_FAULT_ANY_SRC)
MAX_CORES = int(abi().FW_MAX_CORES)
_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment


def _mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def fault_hash(seed: int, src: int, n: int) -> int:
    """emu_fault_hash: splitmix64's finaliser over (seed, src) + the golden ratio, then over that + (n + 1) x
    the golden ratio; the high 32 bits."""
    base = _mix64(((((seed & 0xFFFFFFFF) << 32) | (src & 0xFFFFFFFF)) + _GOLDEN) & _M64)
    return _mix64((base + (n + 1) * _GOLDEN) & _M64) >> 32


def rate_threshold(rate: float) -> int:
    """A rate as the hash threshold: a packet is hit when its hash (32 bits) is below rate x 2^32."""
    if not 0.0 <= rate <= 1.0:
        raise EmulatorError(f"a fault's rate must lie in [0, 1], got {rate}")
    return round(rate * (1 << 32))


@dataclass(frozen=True)
class RouterFault:
    """One fault: packets with key & mask == key from core `src` (None: any core); `action` drop,
    duplicate or delay (by `delay_ticks`); the first `count` of them, or (count 0) each with `rate`."""

    key: int
    mask: int
    action: str
    count: int = 0
    rate: float = 0.0
    delay_ticks: int = 0
    src: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise EmulatorError(f"fault action {self.action!r}: choose one of {', '.join(ACTIONS)}")
        if self.count < 0:
            raise EmulatorError(f"fault count {self.count}: give a number of packets >= 1 (or a rate)")
        rate_threshold(self.rate)
        if self.action == "delay" and self.delay_ticks < 1:
            raise EmulatorError(f"a delay fault needs delay_ticks >= 1, got {self.delay_ticks}")
        if self.src is not None and not 0 <= self.src < MAX_CORES:
            raise EmulatorError(f"fault source core {self.src} does not exist (0..{MAX_CORES - 1})")
        if not 0 <= self.seed <= 0xFFFFFFFF:
            raise EmulatorError(f"fault seed {self.seed} must fit 32 bits")

    @property
    def threshold(self) -> int:
        return rate_threshold(self.rate)

    def fill(self, c_fault) -> None:
        """Write this fault into a C emu_fault_t (counters zeroed)."""
        c_fault.key, c_fault.mask = self.key & self.mask, self.mask
        c_fault.src = ANY_SRC if self.src is None else self.src
        c_fault.action = ACTIONS[self.action]
        c_fault.delay_ticks = self.delay_ticks
        c_fault.seed = self.seed
        c_fault.count = self.count
        c_fault.threshold = self.threshold
        c_fault.hits = 0
        for i in range(MAX_CORES):
            c_fault.seen[i] = 0


@dataclass
class RouterFaults:
    """The Python mirror of emu_faults_apply, with each fault's counters."""

    faults: tuple[RouterFault, ...] = ()
    seen: list[dict[int, int]] = field(default_factory=list)
    hits: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.faults = tuple(self.faults)
        self.seen = [{} for _ in self.faults]
        self.hits = [0] * len(self.faults)

    def apply(self, src: int, key: int) -> tuple[str | None, int]:
        """(action, delay_ticks) of the first fault that hits this packet from core src; (None, 0): none."""
        if not 0 <= src < MAX_CORES:
            return None, 0
        for i, f in enumerate(self.faults):
            if (key & f.mask) != (f.key & f.mask) or (f.src is not None and f.src != src):
                continue
            n = self.seen[i].get(src, 0)
            self.seen[i][src] = n + 1
            hit = self.hits[i] < f.count if f.count else fault_hash(f.seed, src, n) < f.threshold
            if hit:
                self.hits[i] += 1
                return f.action, f.delay_ticks
        return None, 0
