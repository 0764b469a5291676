"""Host layer: `chip.faults`, the packets the emulated chip's router should lose, duplicate or delay.

One entry of the YAML list:
    {packets: spike|partial|error|spike_count, action: drop|duplicate|delay, count: N | rate: p,
     ticks: D (delay only), core: C (source core; default any), seed: S (rate only; default 0)}
`count: N` hits the first N such packets the router sees (from core C, or from any core); `rate: p` each
with probability p, decided per packet by a seeded hash (emulator/chip/faults.py), the same packets in every
loop (functional Python and C, timed C and SimPy). The chip applies them in list order: a packet is hit by
the first entry that decides so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from s2eprop.host.errors import ConfigError

FAULT_PACKETS = ("spike", "partial", "error", "spike_count")
FAULT_ACTIONS = ("drop", "duplicate", "delay")
_KEYS = ("packets", "action", "count", "rate", "ticks", "core", "seed")


@dataclass(frozen=True)
class FaultConfig:
    packets: str
    action: str
    count: int | None = None   # the first N packets ...
    rate: float | None = None  # ... or each with probability p
    ticks: int | None = None   # delay: ticks late (default 1)
    core: int | None = None    # packets of this source core only (default: any core)
    seed: int = 0              # rate: the seed of the per-packet decision

    @property
    def delay_ticks(self) -> int:
        return (self.ticks or 1) if self.action == "delay" else 0

    def check(self, where: str) -> "FaultConfig":
        """ConfigError naming the field, its value and the fix."""
        if self.packets not in FAULT_PACKETS:
            raise ConfigError(f"{where}.packets is {self.packets!r}; choose one of {', '.join(FAULT_PACKETS)}")
        if self.action not in FAULT_ACTIONS:
            raise ConfigError(f"{where}.action is {self.action!r}; choose one of {', '.join(FAULT_ACTIONS)}")
        if (self.count is None) == (self.rate is None):
            raise ConfigError(f"{where} needs exactly one of count (the first N packets) and rate (a fraction "
                              f"of them), got " + ("both" if self.count is not None else "neither"))
        if self.count is not None and (isinstance(self.count, bool) or not isinstance(self.count, int)
                                       or self.count < 1):
            raise ConfigError(f"{where}.count is {self.count!r}: give a whole number of packets >= 1")
        if self.rate is not None and (isinstance(self.rate, bool) or not isinstance(self.rate, (int, float))
                                      or not math.isfinite(self.rate) or not 0 <= self.rate <= 1):
            raise ConfigError(f"{where}.rate is {self.rate!r}: give a fraction of the packets in [0, 1] "
                              f"(0.01 is 1 %)")
        if self.ticks is not None:
            if self.action != "delay":
                raise ConfigError(f"{where}.ticks is {self.ticks!r}, but only a delay takes ticks: drop it "
                                  f"(or set action: delay)")
            if isinstance(self.ticks, bool) or not isinstance(self.ticks, int) or self.ticks < 1:
                raise ConfigError(f"{where}.ticks is {self.ticks!r}: give a whole number of ticks >= 1")
        if self.core is not None and (isinstance(self.core, bool) or not isinstance(self.core, int) or self.core < 0):
            raise ConfigError(f"{where}.core is {self.core!r}: give a core id >= 0 (or leave it out: any core)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= 0xFFFFFFFF:
            raise ConfigError(f"{where}.seed is {self.seed!r}: give a whole number in 0..4294967295")
        if self.rate is None and self.seed != 0:
            raise ConfigError(f"{where}.seed is {self.seed}, but a count picks the first packets, no seed: drop it "
                              f"(or give a rate)")
        return self


def parse_faults(raw: Any) -> tuple[FaultConfig, ...]:
    """chip.faults of a YAML file: a list of mappings, each checked."""
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)):
        raise ConfigError(f"chip.faults must be a list of faults ({{packets, action, count | rate, ...}}), "
                          f"got {type(raw).__name__}")
    out = []
    for i, entry in enumerate(raw):
        where = f"chip.faults[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} must be a mapping such as {{packets: spike, action: drop, count: 1}}, "
                              f"got {entry!r}")
        unknown = sorted(set(entry) - set(_KEYS))
        if unknown:
            raise ConfigError(f"unknown key(s) in {where}: {', '.join(map(str, unknown))}; known: {', '.join(_KEYS)}")
        for key in ("packets", "action"):
            if key not in entry:
                raise ConfigError(f"{where} needs {key} (one of {', '.join(FAULT_PACKETS if key == 'packets' else FAULT_ACTIONS)})")
        rate = entry.get("rate")
        if isinstance(rate, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                rate = float(rate)
            except ValueError:
                raise ConfigError(f"{where}.rate is {rate!r}: give a fraction of the packets in [0, 1]") from None
        out.append(FaultConfig(packets=entry["packets"], action=entry["action"], count=entry.get("count"),
                               rate=rate, ticks=entry.get("ticks"), core=entry.get("core"),
                               seed=entry.get("seed", 0)).check(where))
    return tuple(out)


def injected(faults: tuple[FaultConfig, ...], hits: list[int]) -> dict[str, dict[str, int]]:
    """Packets hit, per kind and action (report.json `faults_injected`)."""
    out: dict[str, dict[str, int]] = {}
    for f, n in zip(faults, hits):
        out.setdefault(f.packets, {}).setdefault(f.action, 0)
        out[f.packets][f.action] += n
    return out
