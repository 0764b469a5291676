"""Host layer: multicast keys and the router table of a partitioned network.

Key space (32-bit): spikes `KEY_SPIKE + neuron`, readout partial sums `KEY_PARTIAL + src * n_out + k`,
output errors `KEY_ERR + k`. Spikes go to every core (all need z[t-1]; the readout core counts
them), partial sums to the readout core, errors to every neuron core.
"""
from __future__ import annotations

from emulator.router import RouteEntry
from host.config import NetworkConfig
from host.partition import Plan

KEY_SPIKE = 0x0001_0000
KEY_PARTIAL = 0x0002_0000
KEY_ERR = 0x0003_0000
FIELD_MASK = 0xFFFF_0000


def routing_table(net: NetworkConfig, plan: Plan) -> list[RouteEntry]:
    everyone = tuple(c.core_id for c in plan.cores)
    return [
        RouteEntry(KEY_SPIKE, FIELD_MASK, everyone),
        RouteEntry(KEY_PARTIAL, FIELD_MASK, (plan.readout_core,)),
        RouteEntry(KEY_ERR, FIELD_MASK, plan.neuron_cores),
    ]
