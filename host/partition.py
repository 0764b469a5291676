"""Host layer: splits the recurrent layer over neuron cores and places the readout reduction.

Each neuron core owns a contiguous block of neurons with their incoming input and recurrent weights
(columns of W_in and W_rec), their rows of W_out, traces and Adam state. The readout role sits on
core 0 ("shared", as in the paper's 12 cores) or on one more core ("extra").
"""
from __future__ import annotations

from dataclasses import dataclass

from emulator.fw_bridge import abi
from host.config import NetworkConfig, PartitionConfig
from host.errors import ConfigError

ROLE_NEURON = int(abi().FW_ROLE_NEURON)
ROLE_READOUT = int(abi().FW_ROLE_READOUT)
MAX_APP_CORES = 152


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

    @property
    def n_cores(self) -> int:
        return len(self.cores)


def plan_partition(net: NetworkConfig, part: PartitionConfig) -> Plan:
    npc = part.neurons_per_core
    n_neuron_cores = -(-net.n_rec // npc)
    extra = part.readout == "extra"
    total = n_neuron_cores + (1 if extra else 0)
    if total > MAX_APP_CORES:
        raise ConfigError(
            f"{net.n_rec} neurons at {npc} per core need {total} cores, a chip has {MAX_APP_CORES}: "
            f"raise partition.neurons_per_core")
    cores = []
    for c in range(n_neuron_cores):
        lo = c * npc
        role = ROLE_NEURON | (ROLE_READOUT if (c == 0 and not extra) else 0)
        cores.append(CorePlan(core_id=c, role=role, neuron_lo=lo, n_local=min(npc, net.n_rec - lo), src_index=c))
    if extra:
        cores.append(CorePlan(core_id=n_neuron_cores, role=ROLE_READOUT))
    readout = n_neuron_cores if extra else 0
    return Plan(cores=tuple(cores), readout_core=readout, neuron_cores=tuple(range(n_neuron_cores)))
