"""Host layer: multicast keys and the router table of a partitioned network.

Key layout (fw_abi.h): kind (top byte, what the table routes on) | tag << 16 | index. Spikes
`KEY_SPIKE | tick tag | neuron`, readout partial sums `KEY_PARTIAL | tick tag | src * n_out + k`,
output errors `KEY_ERR | sample tag | k`. Spikes go to every neuron core (all need z[t-1]), partial
sums to the readout core, errors to every neuron core.
"""
from __future__ import annotations

from emulator.fw_bridge import abi
from emulator.router import RouteEntry
from host.config import NetworkConfig
from host.partition import Plan

KEY_SPIKE = 0x0100_0000
KEY_PARTIAL = 0x0200_0000
KEY_ERR = 0x0300_0000
# the table matches the kind byte; tag and index bits are wildcards
FIELD_MASK = 0xFFFF_FFFF & ~((int(abi().FW_KEY_TAG_MASK) << int(abi().FW_KEY_TAG_SHIFT)) | int(abi().FW_KEY_INDEX_MASK))


def routing_table(net: NetworkConfig, plan: Plan) -> list[RouteEntry]:
    return [
        RouteEntry(KEY_SPIKE, FIELD_MASK, plan.neuron_cores),
        RouteEntry(KEY_PARTIAL, FIELD_MASK, (plan.readout_core,)),
        RouteEntry(KEY_ERR, FIELD_MASK, plan.neuron_cores),
    ]
