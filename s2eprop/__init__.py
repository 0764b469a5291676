"""s2eprop: train spiking RNNs with E-prop on an emulated SpiNNaker 2 chip, a board over UDP, or the
NumPy reference model, from a script (docs/api.md).

    import s2eprop
    data = s2eprop.load_dataset("synth")
    with s2eprop.Session(target="emulator") as s:
        report = s.train(data, epochs=1)

The subpackages are the layers (docs/architecture.md): `s2eprop.firmware` (the firmware contract),
`s2eprop.emulator` (chip model, core runners, board server) and `s2eprop.host` (mapping, transport,
session, data, reference models, studies, plots, CLI). Names here load on first use, so that importing
a lower layer does not import the whole host.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Session": "s2eprop.host.session.api",
    "load_config": "s2eprop.host.session.api",
    "load_dataset": "s2eprop.host.session.api",
    "LocalBoard": "s2eprop.host.cli.local_board",
    "Dataset": "s2eprop.host.data.dataset",
    "Weights": "s2eprop.host.weights",
    "ExperimentConfig": "s2eprop.host.config",
    "HostError": "s2eprop.host.errors",
    "ConfigError": "s2eprop.host.errors",
    "DataError": "s2eprop.host.errors",
    "TransportError": "s2eprop.host.errors",
    "EmulatorError": "s2eprop.emulator.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 's2eprop' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
