"""Host layer: the per-core byte map of a partitioned network (`s2eprop memory`), from the firmware's layout."""
from __future__ import annotations

from typing import Any

from emulator.fw_bridge import Firmware
from host.config import ExperimentConfig
from host.images import core_config_fields, training_state_bytes
from host.partition import plan_partition


def memory_map(cfg: ExperimentConfig, firmware: Firmware | None = None) -> dict[str, Any]:
    fw = firmware or Firmware()
    plan = plan_partition(cfg.network, cfg.partition)
    cores = []
    layouts = []
    for core in plan.cores:
        layout = fw.layout(fw.new_config(core_config_fields(cfg, plan, core, None)))
        layouts.append(layout)
        present = sorted(((off, name) for name, off in layout.offsets.items() if off), key=lambda t: t[0])
        regions = []
        for i, (off, name) in enumerate(present):
            end = present[i + 1][0] if i + 1 < len(present) else layout.arena_bytes
            regions.append({"region": name, "offset": off, "bytes": end - off})
        cores.append({"core": core.core_id, "role": _role(core.role), "neurons": [core.neuron_lo, core.neuron_lo + core.n_local],
                      "arena_bytes": layout.arena_bytes, "header_bytes": fw.header_bytes,
                      "accounting": dict(layout.accounting), "regions": regions,
                      "fits": layout.arena_bytes <= cfg.partition.arena_limit_bytes})

    return {"cores": len(cores), "neurons_per_core": cfg.partition.neurons_per_core,
            "arena_limit_bytes": cfg.partition.arena_limit_bytes,
            "training_state_bytes_total": training_state_bytes(layouts),
            "per_core": cores}


def _role(role: int) -> str:
    return "+".join(n for bit, n in ((1, "neuron"), (2, "readout")) if role & bit)


def format_memory_map(m: dict[str, Any]) -> str:
    lines = [f"{m['cores']} cores, {m['neurons_per_core']} neurons per neuron core, arena limit "
             f"{m['arena_limit_bytes']:,} B; training state (weights, optimizer, traces, neuron, readout) "
             f"{m['training_state_bytes_total']:,} B in all"]
    for c in m["per_core"]:
        a = c["accounting"]
        flag = "" if c["fits"] else "  DOES NOT FIT"
        lines.append(f"core {c['core']:3d} {c['role']:<15} neurons {c['neurons'][0]}-{c['neurons'][1] - 1}  "
                     f"arena {c['arena_bytes']:7,} B = header {c['header_bytes']} + weights {a['weights_bytes']:,} "
                     f"+ optimizer {a['optimizer_bytes']:,} + traces {a['trace_bytes']:,} + neuron {a['neuron_bytes']:,} "
                     f"+ readout {a['readout_bytes']:,} + buffers {a['buffer_bytes']:,}{flag}")
    first = m["per_core"][0]
    lines.append(f"byte map of core {first['core']}:")
    for r in first["regions"]:
        lines.append(f"  0x{r['offset']:05x}  {r['bytes']:7,} B  {r['region']}")
    return "\n".join(lines)
