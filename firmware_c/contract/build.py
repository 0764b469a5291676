"""Firmware contract: the cffi (API mode) build of the C firmware together with the C tick loop.

`ffibuilder` is what setup.py compiles at install (module `s2eprop.firmware._fw`). `build_module` compiles the
same sources with other flags into a folder of its own (used to check that results are bit-identical
across optimisation flags, and as a fallback when running from a source tree without an install).
"""
from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from cffi import FFI

# Where the C sources are (stdlib only: setup.py runs this file before s2eprop is importable). In a source
# tree this file is firmware_c/contract/build.py; an install without sources has none of these folders.
FIRMWARE_DIR = Path(__file__).resolve().parent.parent
ROOT = FIRMWARE_DIR.parent
FW_INCLUDE = FIRMWARE_DIR / "include"
FW_SRC = FIRMWARE_DIR / "src"
ARM_DIR = FIRMWARE_DIR / "arm"
EMU_CSRC = ROOT / "emulator" / "chip" / "csrc"   # the chip's C event loops, built into the same module
HEADERS = (FW_INCLUDE / "fw_abi.h", FW_INCLUDE / "hal.h", FW_INCLUDE / "fw_math.h", EMU_CSRC / "chip_loop.h",
           EMU_CSRC / "timed_loop.h")

# -ffp-contract=off: no fused multiply-add, so x86-64 and ARM round alike; -fno-math-errno lets
# __builtin_sqrtf become one instruction instead of a libm call.
# -fno-strict-aliasing: frames and partial sums travel as 32-bit words and are read as floats.
BASE_FLAGS = ("-std=c11", "-ffp-contract=off", "-fno-math-errno", "-fno-strict-aliasing", "-Wall", "-Wextra")
PREAMBLE = '#include "fw_abi.h"\n#include "hal.h"\n#include "fw_math.h"\n#include "chip_loop.h"\n#include "timed_loop.h"\n'
HASH_FUNCTION = "const char *s2e_build_hash(void);"
DEFAULT_OPT = ("-O3",)
LIBRARIES = ["pthread"]  # the functional chip loop's threads (chip_loop.c); the firmware itself uses none


def sources() -> list[Path]:
    return sorted(FW_SRC.glob("*.c")) + sorted(EMU_CSRC.glob("*.c"))


def _cdef_text() -> str:
    """The headers as cffi declarations: preprocessor lines dropped, except integer #defines."""
    out = [HASH_FUNCTION]
    for header in HEADERS:
        for line in header.read_text().splitlines():
            m = re.match(r"#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)u?\b", line)
            if m:
                out.append(f"#define {m.group(1)} {m.group(2)}")
            elif not line.startswith("#"):
                out.append(line)
    return "\n".join(out)


def _preamble(opt_flags: tuple[str, ...]) -> str:
    """Headers, plus the hash of the sources and flags the module was built from (stale-build check)."""
    return PREAMBLE + f'const char *s2e_build_hash(void) {{ return "{source_hash(opt_flags)}"; }}\n'


def make_builder(module_name: str = "s2eprop.firmware._fw", opt_flags: tuple[str, ...] = DEFAULT_OPT) -> FFI:
    ffi = FFI()
    ffi.cdef(_cdef_text())
    ffi.set_source(
        module_name,
        _preamble(opt_flags),
        sources=[str(p.relative_to(ROOT)) if _inside_root() else str(p) for p in sources()],
        include_dirs=[str(FW_INCLUDE), str(EMU_CSRC)],
        extra_compile_args=[*BASE_FLAGS, *opt_flags],
        libraries=LIBRARIES,
    )
    return ffi


def _inside_root() -> bool:
    return Path.cwd().resolve() == ROOT


def source_hash(opt_flags: tuple[str, ...]) -> str:
    h = hashlib.sha256(" ".join(opt_flags).encode())
    headers = sorted({*HEADERS, *FW_INCLUDE.glob("*.h"), *FW_SRC.glob("*.h"), *EMU_CSRC.glob("*.h")})
    for path in [*headers, *sources(), Path(__file__)]:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def build_module(opt_flags: tuple[str, ...], out_dir: Path) -> ModuleType:
    """Compile firmware + tick loop with `opt_flags` into out_dir (cached by source hash) and import it."""
    tag = source_hash(opt_flags)
    return compile_module(
        f"_fw_{tag}", out_dir / tag, _cdef_text(), _preamble(opt_flags),
        sources=[str(p) for p in sources()], include_dirs=[str(FW_INCLUDE), str(EMU_CSRC)],
        extra_compile_args=[*BASE_FLAGS, *opt_flags], libraries=LIBRARIES)


def compile_module(name: str, out_dir: Path, cdef: str, source: str, **set_source_args: Any) -> ModuleType:
    """Compile a cffi module `name` into out_dir unless it is there already, and import it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    built = list(out_dir.glob(f"{name}*.so"))
    if not built:
        ffi = FFI()
        ffi.cdef(cdef)
        ffi.set_source(name, source, **set_source_args)
        built = [Path(ffi.compile(tmpdir=str(out_dir), verbose=False))]
    spec = importlib.util.spec_from_file_location(name, built[0])
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the cffi module built at {built[0]}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

def ffibuilder() -> FFI:
    """setup.py's `cffi_modules` entry: the installed module (cffi calls it at build time)."""
    return make_builder()


if __name__ == "__main__":
    make_builder().compile(verbose=True)
