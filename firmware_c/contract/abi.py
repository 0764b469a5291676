"""Firmware contract: loads the compiled firmware (cffi) and exposes its ABI to Python.

The installed module `s2eprop.firmware._fw` is used when present; a source tree without an install builds
the same sources once into a cache folder. Offsets and sizes always come from the C code
(`fw_layout`, `sizeof`, `offsetof`), never from numbers copied into Python.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

from s2eprop.emulator.errors import EmulatorError
from s2eprop.firmware.build import FW_SRC





def cache_dir() -> Path:
    return Path(os.environ.get("S2EPROP_CACHE", Path.home() / ".cache" / "s2eprop"))


@lru_cache(maxsize=None)
def firmware_module(opt_flags: tuple[str, ...] | None = None) -> ModuleType:
    """The firmware + tick loop module; `opt_flags` other than the default builds a variant."""
    if opt_flags is None and not FW_SRC.is_dir():  # installed without sources: the built module is all there is
        from s2eprop.firmware import _fw  # type: ignore[attr-defined]

        return _fw
    from s2eprop.firmware import build as fw_build

    if opt_flags is None:
        opt_flags = fw_build.DEFAULT_OPT
        try:
            from s2eprop.firmware import _fw  # type: ignore[attr-defined]
        except ImportError:
            pass
        else:
            if not fw_build.FW_SRC.is_dir():  # installed without sources: nothing to compare with
                return _fw
            built = _fw.ffi.string(_fw.lib.s2e_build_hash()).decode()
            if built == fw_build.source_hash(opt_flags):
                return _fw
            warnings.warn("the installed firmware module was built from other sources; using a fresh build "
                          "(run `pip install -e .` or `make setup` to refresh the installed one)", stacklevel=2)
    return fw_build.build_module(tuple(opt_flags), cache_dir() / "firmware")


def abi() -> Any:
    """The firmware's constants (#defines of its headers), from the default build."""
    return firmware_module().lib


@dataclass(frozen=True)
class Layout:
    """Byte offsets of a core's arena regions (0 = region absent) and its byte accounting."""

    offsets: Mapping[str, int]
    arena_bytes: int
    accounting: Mapping[str, int]
    raw: Any  # fw_layout_t * as the firmware wrote it (owner of the memory; copied into image headers)

    def region(self, name: str) -> int:
        off = self.offsets[name]
        if off == 0:
            raise EmulatorError(f"arena region {name!r} is absent for this core's role")
        return off


class Firmware:
    """Typed access to the firmware ABI of one compiled module."""

    def __init__(self, module: ModuleType | None = None) -> None:
        self.module = module or firmware_module()
        self.ffi = self.module.ffi
        self.lib = self.module.lib
        layout = [name for name, _ in self.ffi.typeof("fw_layout_t").fields]
        # fw_layout_t: region offsets, then `end`, then the byte accounting
        self.layout_regions = tuple(layout[:layout.index("end")])
        self.accounting_fields = tuple(layout[layout.index("end") + 1:])
        self.count_fields = tuple(name for name, _ in self.ffi.typeof("fw_counts_t").fields)
        self.counter_fields = tuple(name for name, _ in self.ffi.typeof("fw_counters_t").fields)
        self.header_bytes = self.ffi.sizeof("fw_header_t")
        self.config_offset = self.ffi.offsetof("fw_header_t", "config")
        self.state_offset = self.ffi.offsetof("fw_header_t", "state")
        self.state_bytes = self.ffi.sizeof("fw_state_t")

    def new_config(self, fields: Mapping[str, Any]) -> Any:
        cfg = self.ffi.new("fw_config_t *")
        for name, value in fields.items():
            try:
                setattr(cfg, name, value)
            except AttributeError:
                raise EmulatorError(f"firmware config has no field {name!r}") from None
        return cfg

    def layout(self, cfg: Any) -> Layout:
        out = self.ffi.new("fw_layout_t *")
        total = int(self.lib.fw_layout(cfg, out))
        if total == 0:
            raise EmulatorError(
                f"firmware rejects the core config (core {cfg.core_id}, role {cfg.role}, "
                f"n_local {cfg.n_local}, n_src {cfg.n_src}): check sizes against FW_MAX_* in fw_abi.h"
            )
        return Layout(
            offsets={name: int(getattr(out, name)) for name in self.layout_regions},
            arena_bytes=total,
            accounting={name: int(getattr(out, name)) for name in self.accounting_fields},
            raw=out,
        )
