"""Host layer, mapping: splits the recurrent layer over neuron cores and places the readout reduction.

Each neuron core owns a contiguous block of neurons with their incoming input and recurrent weights
(columns of W_in and W_rec), their rows of W_out, traces and Adam state. The readout role sits on
core 0 ("shared", as in the paper's 12 cores) or on one more core ("extra").
"""
from __future__ import annotations

from dataclasses import dataclass

from s2eprop.emulator.chip.description import default_chip
from s2eprop.firmware.abi import abi
from s2eprop.host.config import NetworkConfig, PartitionConfig
from s2eprop.host.errors import ConfigError

ROLE_NEURON = int(abi().FW_ROLE_NEURON)
ROLE_READOUT = int(abi().FW_ROLE_READOUT)


@dataclass(frozen=True)
class CorePlan:
    core_id: int
    role: int
    neuron_lo: int = 0
    n_local: int = 0
    src_index: int = 0


@dataclass(frozen=True)
class Plan:
    cores: tuple[CorePlan, ...]
    readout_core: int
    neuron_cores: tuple[int, ...]
    copy: int = 0          # which copy of the network, when several share a chip (host/session/copies.py)
    shared: bool = False   # the chip holds several copies: keys and routes carry the copy

    @property
    def n_cores(self) -> int:
        return len(self.cores)


def cores_needed(net: NetworkConfig, part: PartitionConfig) -> int:
    return -(-net.n_rec // part.neurons_per_core) + (1 if part.readout == "extra" else 0)


def plan_partition(net: NetworkConfig, part: PartitionConfig, copy: int = 0, copies: int = 1) -> Plan:
    """The cores of copy `copy` of `copies` identical networks placed side by side (core ids from
    copy x cores_needed on)."""
    npc = part.neurons_per_core
    n_neuron_cores = -(-net.n_rec // npc)
    extra = part.readout == "extra"
    per_copy = cores_needed(net, part)
    first = copy * per_copy
    if per_copy * copies > default_chip().n_cores:
        what = f"{copies} copies of " if copies > 1 else ""
        raise ConfigError(
            f"{what}{net.n_rec} neurons at {npc} per core need {per_copy * copies} cores, a chip has {default_chip().n_cores}: "
            f"raise partition.neurons_per_core" + (" or place fewer copies" if copies > 1 else ""))
    cores = []
    for c in range(n_neuron_cores):
        lo = c * npc
        role = ROLE_NEURON | (ROLE_READOUT if (c == 0 and not extra) else 0)
        cores.append(CorePlan(core_id=first + c, role=role, neuron_lo=lo, n_local=min(npc, net.n_rec - lo),
                              src_index=c))
    if extra:
        cores.append(CorePlan(core_id=first + n_neuron_cores, role=ROLE_READOUT))
    readout = first + (n_neuron_cores if extra else 0)
    return Plan(cores=tuple(cores), readout_core=readout, neuron_cores=tuple(range(first, first + n_neuron_cores)),
                copy=copy, shared=copies > 1)
