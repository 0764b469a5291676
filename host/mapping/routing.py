"""Host layer, mapping: multicast keys and the router table of a partitioned network.

Key layout (fw_abi.h): kind (top byte, what the table routes on) | tag << 16 | index. Spikes
`KEY_SPIKE | tick tag | neuron`, readout partial sums `KEY_PARTIAL | tick tag | src * n_out + k`,
output errors `KEY_ERR | sample tag | k`, spike counts `KEY_COUNT | tick tag | src` (each neuron core's
spikes of a sample, sent at its last step). Spikes go to every neuron core (all need z[t-1]), partial
sums to the readout core, errors and spike counts to every neuron core.

Copies of a network sharing a chip (host/session/copies.py) differ in the index's high byte (copy << 8),
which their routes then match too: each copy's packets stay on its own cores.
"""
from __future__ import annotations

from s2eprop.firmware.abi import abi
from s2eprop.firmware.routes import RouteEntry
from s2eprop.host.config import NetworkConfig
from s2eprop.host.errors import ConfigError
from s2eprop.host.mapping.partition import Plan

KEY_SPIKE = 0x0100_0000
KEY_PARTIAL = 0x0200_0000
KEY_ERR = 0x0300_0000
KEY_COUNT = 0x0400_0000
# the table matches the kind byte; tag and index bits are wildcards
FIELD_MASK = 0xFFFF_FFFF & ~((int(abi().FW_KEY_TAG_MASK) << int(abi().FW_KEY_TAG_SHIFT)) | int(abi().FW_KEY_INDEX_MASK))


COPY_SHIFT = 8
COPY_MASK = 0xFF << COPY_SHIFT
MAX_COPIES = 256


def key_offset(plan: Plan) -> int:
    """Added to the key bases of the cores of `plan` (0 for a network alone on its chip)."""
    return plan.copy << COPY_SHIFT if plan.shared else 0


def check_copy_keys(net: NetworkConfig, plan: Plan) -> None:
    """Copies' keys fit the index byte below the copy: at most 256 neurons, partial sums, errors."""
    if not plan.shared:
        return
    n_src = len(plan.neuron_cores)
    for what, n in (("neurons", net.n_rec), ("partial sums (neuron cores x outputs)", n_src * net.n_out)):
        if n > 1 << COPY_SHIFT:
            raise ConfigError(f"copies of a network on one chip take at most {1 << COPY_SHIFT} {what} each, "
                              f"this one has {n}: train it alone")
    if plan.copy >= MAX_COPIES:
        raise ConfigError(f"at most {MAX_COPIES} copies of a network share a chip, asked for copy {plan.copy}")


def routing_table(net: NetworkConfig, plan: Plan) -> list[RouteEntry]:
    check_copy_keys(net, plan)
    off = key_offset(plan)
    mask = FIELD_MASK | (COPY_MASK if plan.shared else 0)
    return [
        RouteEntry(KEY_SPIKE + off, mask, plan.neuron_cores),
        RouteEntry(KEY_PARTIAL + off, mask, (plan.readout_core,)),
        RouteEntry(KEY_ERR + off, mask, plan.neuron_cores),
        RouteEntry(KEY_COUNT + off, mask, plan.neuron_cores),
    ]
