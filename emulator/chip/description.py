"""Emulator layer: the chip description of the timed model (emulator/chip/configs/spinnaker2.yaml), loaded
and validated: every key known, every value of the right kind and range, errors naming file and key.

The handler costs live in a file of their own (`cycle_costs_file`, written by `s2eprop calibrate`):
cycles of one handler call = interrupt entry + exit + handler_base_cycles[handler]
                             + sum over work counts of per_count_cycles[count] x count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from s2eprop.emulator.errors import EmulatorError

DEFAULT_CHIP = Path(__file__).resolve().parent / "configs" / "spinnaker2.yaml"
HANDLERS = ("mc_packet", "dma_done", "host_msg", "timer", "user_event")  # priority order, highest first
# each handler's kind in the timed C loop (timed_loop.h EMU_H_*)
C_KIND_OF_HANDLER = {"mc_packet": "EMU_H_PACKET", "dma_done": "EMU_H_DMA", "host_msg": "EMU_H_HOST",
                     "timer": "EMU_H_TIMER", "user_event": "EMU_H_USER"}
PHASES = ("neuron_update", "trace_update", "packet_handling", "learning_update", "overhead")
# where the cycles of each work count (fw_counts_t) and of each handler's fixed part are reported
PHASE_OF_COUNT = {"neuron_updates": "neuron_update", "synapse_mults": "neuron_update", "exp_calls": "neuron_update",
                  "trace_updates": "trace_update", "adam_updates": "learning_update", "mc_sent": "packet_handling",
                  "mc_received": "packet_handling", "host_words": "packet_handling", "dma_bytes": "overhead",
                  "words_cleared": "trace_update", "partials_reduced": "neuron_update", "w2_terms": "learning_update",
                  "spikes_received": "packet_handling", "partials_received": "packet_handling"}
PHASE_OF_HANDLER = {"mc_packet": "packet_handling", "dma_done": "overhead", "host_msg": "packet_handling",
                    "timer": "overhead", "user_event": "learning_update"}

_INT_KEYS = ("sram_bytes_per_core", "sdram_bytes", "router_entries", "mc_key_bits", "mc_payload_bits",
             "cores_per_qpe", "noc_hop_latency_ps", "router_latency_ps", "router_drop_timeout_ps", "packet_interval_ps",
             "receive_queue_packets", "dma_setup_latency_ps", "dma_bandwidth_bytes_per_s", "host_link_latency_ps",
             "host_link_bandwidth_bytes_per_s", "interrupt_entry_cycles", "interrupt_exit_cycles", "clock_hz")
_POSITIVE = ("sram_bytes_per_core", "sdram_bytes", "router_entries", "cores_per_qpe", "receive_queue_packets",
             "dma_bandwidth_bytes_per_s", "host_link_bandwidth_bytes_per_s", "clock_hz")
_KEYS = {"name", "tick_us", "clock_levels_hz", "qpes", "timer_skew_us", "cycle_costs_file", *_INT_KEYS}


@dataclass(frozen=True)
class CycleCosts:
    handler_base_cycles: Mapping[str, float]
    per_count_cycles: Mapping[str, float]
    provenance: Mapping[str, Any] = field(default_factory=dict)
    path: str = ""


@dataclass(frozen=True)
class ChipDescription:
    name: str
    path: str
    tick_us: float
    clock_levels_hz: tuple[int, ...]
    clock_hz: int
    sram_bytes_per_core: int
    sdram_bytes: int
    router_entries: int
    mc_key_bits: int
    mc_payload_bits: int
    cores_per_qpe: int
    qpes: tuple[tuple[int, int], ...]
    noc_hop_latency_ps: int
    router_latency_ps: int
    router_drop_timeout_ps: int  # a packet waits this long at a full receive queue, then is dropped (0: at once)
    packet_interval_ps: int
    receive_queue_packets: int
    dma_setup_latency_ps: int
    dma_bandwidth_bytes_per_s: int
    host_link_latency_ps: int
    host_link_bandwidth_bytes_per_s: int
    interrupt_entry_cycles: int
    interrupt_exit_cycles: int
    timer_skew_us: tuple[float, ...] | float
    costs: CycleCosts

    @property
    def n_cores(self) -> int:
        return len(self.qpes) * self.cores_per_qpe

    @property
    def tick_ps(self) -> int:
        return round(self.tick_us * 1e6)

    def cycle_ps(self, clock_hz: int | None = None) -> int:
        return round(1e12 / (clock_hz or self.clock_hz))

    def with_clock(self, clock_hz: int) -> "ChipDescription":
        if clock_hz not in self.clock_levels_hz:
            levels = ", ".join(f"{f / 1e6:g}" for f in self.clock_levels_hz)
            raise EmulatorError(f"{self.path}: a clock of {clock_hz / 1e6:g} MHz is not one of the chip's levels "
                                f"({levels} MHz): pick one of them or add it to clock_levels_hz")
        return replace(self, clock_hz=clock_hz)

    def placement(self, core: int) -> tuple[int, int, int]:
        """(qx, qy, slot) of emulator core `core`: 4 per QPE, QPEs in the file's order."""
        if not 0 <= core < self.n_cores:
            raise EmulatorError(f"core {core} does not exist on {self.name} ({self.n_cores} cores)")
        qx, qy = self.qpes[core // self.cores_per_qpe]
        return qx, qy, core % self.cores_per_qpe

    def hops(self, a: int, b: int) -> int:
        """NoC hops between two cores' QPEs (XY routing: Manhattan distance; 0 inside a QPE)."""
        ax, ay, _ = self.placement(a)
        bx, by, _ = self.placement(b)
        return abs(ax - bx) + abs(ay - by)

    def hop_table(self, n_cores: int) -> np.ndarray:
        """hops(a, b) for the first n_cores cores, as a [n_cores][n_cores] uint8 array."""
        if n_cores > self.n_cores:
            raise EmulatorError(f"{n_cores} cores do not fit {self.name} ({self.n_cores} cores)")
        xy = np.array([self.qpes[c // self.cores_per_qpe] for c in range(n_cores)], dtype=np.int64).reshape(-1, 2)
        return np.abs(xy[:, None, :] - xy[None, :, :]).sum(axis=2).astype(np.uint8)

    def skew_ps(self, core: int) -> int:
        skew = self.timer_skew_us
        us = skew[core] if isinstance(skew, tuple) else core * skew
        return round(us * 1e6)


def _fail(path: Path | str, key: str, why: str) -> EmulatorError:
    return EmulatorError(f"{path}: {key} {why}")


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EmulatorError(f"{what} {path}: no such file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise EmulatorError(f"{what} {path}: cannot be read as YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise EmulatorError(f"{what} {path}: must be a mapping of keys to values")
    return data


def _number(path: Path, key: str, value: Any, integer: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(path, key, f"must be a number, got {value!r}")
    if integer and value != int(value):
        raise _fail(path, key, f"must be a whole number, got {value!r}")
    return int(value) if integer else float(value)


def load_costs(path: Path) -> CycleCosts:
    data = _read_yaml(path, "cycle costs")
    from s2eprop.firmware.abi import Firmware

    fields = Firmware().count_fields
    unknown = set(data) - {"provenance", "handler_base_cycles", "per_count_cycles"}
    if unknown:
        raise _fail(path, sorted(unknown)[0], "is not a cycle-cost key (provenance, handler_base_cycles, per_count_cycles)")
    out: dict[str, dict[str, float]] = {}
    for section, names in (("handler_base_cycles", HANDLERS), ("per_count_cycles", fields)):
        given = data.get(section)
        if not isinstance(given, dict):
            raise _fail(path, section, f"must map each of {', '.join(names)} to cycles")
        extra, missing = set(given) - set(names), [n for n in names if n not in given]
        if extra:
            raise _fail(path, f"{section}.{sorted(extra)[0]}", f"is not one of {', '.join(names)}")
        if missing:
            raise _fail(path, f"{section}.{missing[0]}", "is missing")
        out[section] = {}
        for name in names:
            v = _number(path, f"{section}.{name}", given[name], integer=False)
            if v < 0:
                raise _fail(path, f"{section}.{name}", f"must be >= 0 cycles, got {v}")
            out[section][name] = v
    prov = data.get("provenance") or {}
    if not isinstance(prov, dict):
        raise _fail(path, "provenance", "must be a mapping")
    return CycleCosts(out["handler_base_cycles"], out["per_count_cycles"], prov, str(path))


@lru_cache(maxsize=1)
def default_chip() -> ChipDescription:
    """The default chip file, read once: where a number of cores, SRAM or SDRAM is needed without a chip
    file, it comes from here."""
    return load_chip(None)


def load_chip(path: Path | str | None = None) -> ChipDescription:
    """The chip file at `path` (default: emulator/chip/configs/spinnaker2.yaml), validated."""
    path = Path(path) if path is not None else DEFAULT_CHIP
    data = _read_yaml(path, "chip file")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise _fail(path, unknown[0], f"is not a chip-file key (known: {', '.join(sorted(_KEYS))})")
    missing = sorted(_KEYS - set(data) - {"timer_skew_us", "name", "router_drop_timeout_ps"})
    if missing:
        raise _fail(path, missing[0], "is missing")
    data = {"router_drop_timeout_ps": 0, **data}  # a file without it: dropped at once, as before it existed
    v: dict[str, Any] = {k: _number(path, k, data[k], integer=True) for k in _INT_KEYS}
    for k in _INT_KEYS:
        if v[k] < 0 or (k in _POSITIVE and v[k] == 0):
            raise _fail(path, k, f"must be {'> 0' if k in _POSITIVE else '>= 0'}, got {v[k]}")
    tick_us = _number(path, "tick_us", data["tick_us"], integer=False)
    if not 1 <= tick_us <= 1e6:
        raise _fail(path, "tick_us", f"must lie in 1..1,000,000 us, got {tick_us}")
    levels = data["clock_levels_hz"]
    if not isinstance(levels, list) or not levels:
        raise _fail(path, "clock_levels_hz", f"must be a list of clock frequencies in Hz, got {levels!r}")
    levels = tuple(int(_number(path, "clock_levels_hz", f, integer=True)) for f in levels)
    if any(f <= 0 for f in levels):
        raise _fail(path, "clock_levels_hz", f"must be > 0 Hz each, got {list(levels)}")
    if v["clock_hz"] not in levels:
        raise _fail(path, "clock_hz", f"is {v['clock_hz']:,} Hz, not one of clock_levels_hz {list(levels)}")
    qpes = data["qpes"]
    if not isinstance(qpes, list) or not qpes or not all(
            isinstance(q, list) and len(q) == 2 and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0
                                                       for c in q) for q in qpes):
        raise _fail(path, "qpes", "must be a list of [qx, qy] pairs of non-negative integers")
    coords = tuple((int(q[0]), int(q[1])) for q in qpes)
    dup = next((q for i, q in enumerate(coords) if q in coords[:i]), None)
    if dup is not None:
        raise _fail(path, "qpes", f"lists QPE {list(dup)} twice")
    if v["mc_key_bits"] != 32 or v["mc_payload_bits"] not in (0, 32):
        raise _fail(path, "mc_key_bits", "must be 32 and mc_payload_bits 0 or 32: the firmware's packets are 32-bit "
                                         "keys with a 32-bit payload")
    from s2eprop.firmware.routes import MAX_ENTRIES

    n_cores = len(coords) * v["cores_per_qpe"]
    skew_raw = data.get("timer_skew_us", 0.0)
    if isinstance(skew_raw, list):
        if len(skew_raw) != n_cores:
            raise _fail(path, "timer_skew_us", f"lists {len(skew_raw)} values; give one per core ({n_cores}) or one "
                                               f"number (core c starts c x it late)")
        skew: tuple[float, ...] | float = tuple(_number(path, "timer_skew_us", s, integer=False) for s in skew_raw)
        worst = max(skew)
    else:
        skew = _number(path, "timer_skew_us", skew_raw, integer=False)
        worst = skew * (n_cores - 1)
    if (min(skew) if isinstance(skew, tuple) else skew) < 0 or worst >= tick_us:
        raise _fail(path, "timer_skew_us", f"must keep every core's start skew in [0, tick_us) = [0, {tick_us:g}) us")
    costs_name = data["cycle_costs_file"]
    if not isinstance(costs_name, str) or not costs_name:
        raise _fail(path, "cycle_costs_file", f"must name a file, got {costs_name!r}")
    if v["router_entries"] > MAX_ENTRIES:
        raise _fail(path, "router_entries", f"is {v['router_entries']:,}; the emulator's router holds at most "
                                            f"{MAX_ENTRIES:,}")
    costs_path = (path.parent / costs_name).resolve()
    packaged = DEFAULT_CHIP.parent / costs_name
    if not costs_path.is_file() and not Path(costs_name).is_absolute() and packaged.is_file():
        costs_path = packaged  # a chip file copied elsewhere keeps the packaged, calibrated costs
    costs = load_costs(costs_path)
    return ChipDescription(name=str(data.get("name", path.stem)), path=str(path), tick_us=tick_us,
                           clock_levels_hz=levels, qpes=coords, timer_skew_us=skew, costs=costs, **v)
