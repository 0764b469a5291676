"""Host layer, mapping: the per-core byte map of a partitioned network (`s2eprop memory`), from the firmware's layout;
the most neurons per core whose arenas fit the arena budget (`partition.neurons_per_core: auto`); and the
stack use of the firmware's handlers against a core's stack budget (firmware_c/contract/stack.py)."""
from __future__ import annotations

import json
from pathlib import Path

from typing import Any

from s2eprop.firmware.abi import Firmware
from s2eprop.firmware.arm_size import arena_budget
from s2eprop.host.config import ExperimentConfig
from s2eprop.host.mapping.images import core_layouts, largest_neurons_per_core, training_state_bytes
from s2eprop.host.errors import ConfigError, HostError
from s2eprop.host.mapping.partition import plan_partition
from s2eprop.firmware.stack import format_stack_report, handler_stack_usage, worst_nesting

# stack of one core, as firmware_c/arm/link.ld sets it: the 4 KB of heap and stack at 0x1F000 of
# SpiNNaker 2's PE memory (reference notes, spinnaker2_hardware.md section 1, secondary)
STACK_BUDGET_BYTES = 4096


def stack_map(budget_bytes: int = STACK_BUDGET_BYTES) -> dict[str, Any]:
    """Worst-case stack of each handler and of the worst nesting (a packet over the deepest other one)."""
    try:
        import platform

        red_zone = ("-mno-red-zone",) if platform.machine() in ("x86_64", "AMD64") else ()  # as on ARM
        report = handler_stack_usage(extra_flags=red_zone)
    except HostError as exc:
        return {"error": str(exc)}
    total, what = worst_nesting(report)
    return {"handlers": dict(report.handlers), "worst_nesting_bytes": total, "worst_nesting": what,
            "budget_bytes": budget_bytes, "fits": total <= budget_bytes, "exact": report.exact,
            "compiler": report.compiler, "target": report.target,
            "lines": format_stack_report(report, budget_bytes)}


def memory_map(cfg: ExperimentConfig, firmware: Firmware | None = None, stack: bool = True) -> dict[str, Any]:
    fw = firmware or Firmware()
    plan = plan_partition(cfg.network, cfg.partition)
    limit, limit_from = arena_budget(cfg.partition.arena_limit_bytes)
    try:
        most: int | None = largest_neurons_per_core(cfg, fw)
    except ConfigError:
        most = None
    cores = []
    layouts = core_layouts(cfg, plan, fw)
    for core, layout in zip(plan.cores, layouts):
        present = sorted(((off, name) for name, off in layout.offsets.items() if off), key=lambda t: t[0])
        regions = []
        for i, (off, name) in enumerate(present):
            end = present[i + 1][0] if i + 1 < len(present) else layout.arena_bytes
            regions.append({"region": name, "offset": off, "bytes": end - off})
        cores.append({"core": core.core_id, "role": _role(core.role), "neurons": [core.neuron_lo, core.neuron_lo + core.n_local],
                      "arena_bytes": layout.arena_bytes, "header_bytes": fw.header_bytes,
                      "accounting": dict(layout.accounting), "regions": regions,
                      "fits": layout.arena_bytes <= limit})

    return {"cores": len(cores), "neurons_per_core": cfg.partition.neurons_per_core, "neurons_per_core_most": most,
            "arena_limit_bytes": limit, "arena_limit_from": limit_from,
            "training_state_bytes_total": training_state_bytes(layouts),
            "per_core": cores, **({"stack": stack_map()} if stack else {})}


def _role(role: int) -> str:
    return "+".join(n for bit, n in ((1, "neuron"), (2, "readout")) if role & bit)


def format_memory_map(m: dict[str, Any]) -> str:
    most = m["neurons_per_core_most"]
    lines = [f"{m['cores']} cores, {m['neurons_per_core']} neurons per neuron core ("
             + (f"at most {most} fit, what `auto` takes" if most else "not even 1 fits") + "), arena limit "
             f"{m['arena_limit_bytes']:,} B ({m['arena_limit_from']}); training state (weights, optimizer, traces, neuron, readout) "
             f"{m['training_state_bytes_total']:,} B in all"]
    for c in m["per_core"]:
        a = c["accounting"]
        flag = "" if c["fits"] else "  DOES NOT FIT"
        lines.append(f"core {c['core']:3d} {c['role']:<15} neurons {c['neurons'][0]}-{c['neurons'][1] - 1}  "
                     f"arena {c['arena_bytes']:7,} B = header {c['header_bytes']} + weights {a['weights_bytes']:,} "
                     f"+ optimizer {a['optimizer_bytes']:,} + traces {a['trace_bytes']:,} + neuron {a['neuron_bytes']:,} "
                     f"+ readout {a['readout_bytes']:,} + buffers {a['buffer_bytes']:,}"
                     + (f" + records {a['record_bytes']:,}" if a.get("record_bytes") else "")
                     + (f" + sparse index {a['index_bytes']:,}" if a.get("index_bytes") else "") + flag)
    first = m["per_core"][0]
    lines.append(f"byte map of core {first['core']}:")
    for r in first["regions"]:
        lines.append(f"  0x{r['offset']:05x}  {r['bytes']:7,} B  {r['region']}")
    st = m.get("stack")
    if st is not None:
        lines.append("stack use per handler (worst call path):")
        lines.extend(st["lines"] if "lines" in st else [f"  not measured: {st['error']}"])
        mst = st.get("measured")
        if mst is not None:
            lines.append(f"measured in the ISS ({mst['run']}): deepest handler {mst['bytes']:,} B ({mst['handler']}, core "
                         f"{mst['core']}), nested {mst['nested_bytes']:,} B (a packet over {mst['nested_over']}, core "
                         f"{mst['nested_core']}, {mst['nested_calls']:,} nested calls) of a {mst['budget_bytes']:,} B "
                         f"budget, beside the static {st.get('worst_nesting_bytes', 0):,} B")
    return "\n".join(lines)


def measured_stack(run_dir: Path) -> dict[str, Any]:
    """The stack a run of the ARM build in time measured (report.json `timing.stack_measured`, written by
    `s2eprop train --mode timed --cpu iss --engine simpy`), with the run it came from."""
    report_path = Path(run_dir) / "report.json"
    try:
        report = json.loads(report_path.read_text())
    except FileNotFoundError:
        raise HostError(f"--measured {run_dir}: no report.json there; give the run folder of a "
                        f"`s2eprop train --mode timed --cpu iss --engine simpy` run") from None
    except json.JSONDecodeError as exc:
        raise HostError(f"--measured {run_dir}: report.json is not JSON ({exc}); is the run complete?") from None
    got = (report.get("timing") or {}).get("stack_measured")
    if not got:
        raise HostError(f"--measured {run_dir}: its report.json has no timing.stack_measured (the run was not the "
                        f"ARM build in time); train with --mode timed --cpu iss --engine simpy to measure the stack")
    return {**got, "run": str(run_dir)}
