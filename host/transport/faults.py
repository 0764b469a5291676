"""Host layer, transport: a config's `chip.faults` (host/fault_config.py) as the in-process chip's router
faults (emulator/chip/faults.py): each packet kind is its key's kind byte (host/mapping/routing.py), so a
fault matches that kind whatever its tag and index (and whichever copy of a network sent it)."""
from __future__ import annotations

from s2eprop.emulator.chip.faults import RouterFault
from s2eprop.host.errors import ConfigError
from s2eprop.host.fault_config import FaultConfig
from s2eprop.host.mapping.routing import FIELD_MASK, KEY_COUNT, KEY_ERR, KEY_PARTIAL, KEY_SPIKE

KEY_OF_PACKETS = {"spike": KEY_SPIKE, "partial": KEY_PARTIAL, "error": KEY_ERR, "spike_count": KEY_COUNT}


def router_faults(faults: tuple[FaultConfig, ...], n_cores: int) -> tuple[RouterFault, ...]:
    """The router faults of chip.faults on a network of n_cores cores (a source core must be one of them)."""
    out = []
    for i, f in enumerate(faults):
        if f.core is not None and f.core >= n_cores:
            raise ConfigError(f"chip.faults[{i}].core is {f.core}; the chip runs the network on cores 0..{n_cores - 1}: "
                              f"name one of them (or leave core out: any core)")
        out.append(RouterFault(key=KEY_OF_PACKETS[f.packets], mask=FIELD_MASK, action=f.action, count=f.count or 0,
                               rate=float(f.rate or 0.0), delay_ticks=f.delay_ticks, src=f.core, seed=f.seed))
    return tuple(out)

