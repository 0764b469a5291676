"""Studies layer: the what-if cases (host/studies/whatif_cases.yaml) as chip files and configs: each
case's chip YAML and cycle costs are written beside its results, so that every case is a chip the
timed model loads like the real one (`s2eprop train --mode timed --chip FILE` takes it too)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from s2eprop.emulator.chip.description import DEFAULT_CHIP
from s2eprop.host.config import ChipConfig, ExperimentConfig
from s2eprop.host.errors import ConfigError

CASES_FILE = Path(__file__).resolve().parent / "whatif_cases.yaml"
TRACE_FORMATS = ("float16", "bfloat16")
_KEYS = {"name", "clock_mhz", "neurons_per_core", "cost_per_count", "cost_scale", "trace_bits", "trace_format",
         "folded_trace"}


@dataclass(frozen=True)
class Case:
    name: str
    clock_mhz: float = 300.0
    neurons_per_core: int = 10
    cost_per_count: Mapping[str, float] = field(default_factory=dict)
    cost_scale: Mapping[str, float] = field(default_factory=dict)
    trace_bits: int = 32
    trace_format: str = ""
    folded_trace: bool = False

    @property
    def changes_arithmetic(self) -> bool:
        return self.trace_bits != 32

    @property
    def slug(self) -> str:
        return "".join(ch if ch.isalnum() else "_" for ch in self.name.lower()).strip("_")


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    """The cases of a what-if file, each key checked (an error names the file, the case and the key)."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"what-if cases {path}: cannot read ({exc})") from None
    cases = []
    for i, c in enumerate(raw.get("cases") or []):
        where = f"what-if cases {path}, case {i} ({c.get('name', '?')})"
        unknown = sorted(set(c) - _KEYS)
        if unknown or "name" not in c:
            raise ConfigError(f"{where}: " + (f"unknown key {unknown[0]!r}; keys: {', '.join(sorted(_KEYS))}"
                                               if unknown else "has no name"))
        case = Case(**c)
        if case.trace_bits not in (16, 32) or (case.trace_bits == 16) != (case.trace_format in TRACE_FORMATS):
            raise ConfigError(f"{where}: trace_bits {case.trace_bits} with trace_format {case.trace_format!r}: "
                              f"give trace_bits 16 with one of {', '.join(TRACE_FORMATS)}, or neither")
        cases.append(case)
    if not cases:
        raise ConfigError(f"what-if cases {path}: no cases")
    return cases


def write_chip(case: Case, folder: Path, base_chip: Path = DEFAULT_CHIP) -> Path:
    """The case's chip file and its cycle costs (per_count_cycles replaced or scaled) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    chip = yaml.safe_load(base_chip.read_text())
    costs = yaml.safe_load((base_chip.parent / chip["cycle_costs_file"]).read_text())
    per_count = costs["per_count_cycles"]
    for count, value in {**case.cost_per_count, **case.cost_scale}.items():
        if count not in per_count:
            raise ConfigError(f"what-if case {case.name!r}: no work count {count!r}; counts: {', '.join(per_count)}")
    per_count.update({k: float(v) for k, v in case.cost_per_count.items()})
    per_count.update({k: float(per_count[k]) * float(s) for k, s in case.cost_scale.items()})
    costs.setdefault("provenance", {})["what_if"] = {"case": case.name, "cost_per_count": dict(case.cost_per_count),
                                                     "cost_scale": dict(case.cost_scale)}
    costs_path = folder / f"{case.slug}_costs.yaml"
    costs_path.write_text(yaml.safe_dump(costs, sort_keys=False))
    chip.update(name=f"spinnaker2 ({case.name})", cycle_costs_file=costs_path.name)
    path = folder / f"{case.slug}.yaml"
    path.write_text(yaml.safe_dump(chip, sort_keys=False))
    return path


def case_config(base: ExperimentConfig, case: Case, chip_file: Path) -> ExperimentConfig:
    part = dataclasses.replace(base.partition, neurons_per_core=case.neurons_per_core)
    return dataclasses.replace(base, partition=part, chip=ChipConfig(mode="timed", clock_mhz=case.clock_mhz,
                                                                     file=str(chip_file))).validate()


def projected_training_bytes(fm: dict[str, Any], case: Case) -> int:
    """Training state with the case's trace storage: per-synapse trace regions (ea_*, eb_*, acc_*) halved in
    16 bits; the filtered trace (eb_*) dropped when folded. The firmware itself stores float32 traces."""
    total = int(fm["training_state_bytes_total"])
    for core in fm["per_core"]:
        per_syn = {r["region"]: r["bytes"] for r in core["regions"] if r["region"].split("_")[0] in ("ea", "eb", "acc")}
        kept = {k: v for k, v in per_syn.items() if not (case.folded_trace and k.startswith("eb_"))}
        total -= sum(per_syn.values()) - sum(kept.values())
        if case.trace_bits == 16:
            total -= sum(kept.values()) // 2
    return total


def n_cores(n_rec: int, case: Case) -> int:
    return math.ceil(n_rec / case.neurons_per_core)
