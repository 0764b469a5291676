"""Firmware contract: the Cortex-M4F build of the firmware (the binary a SpiNNaker 2 core would run).

`build` compiles firmware_c/src and firmware_c/arm (start-up, linker script, memory functions) with
arm-none-eabi-gcc into one ELF for one core's 128 KiB of SRAM, with its link map. `current_elf` gives
an ELF built from the sources as they are now: build/arm's (`make arm`) when its recorded source hash
matches, else a fresh build in the emulator's cache folder. The ISS core runner runs that ELF.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from s2eprop.emulator.errors import EmulatorError

from s2eprop.firmware.build import ARM_DIR, FW_INCLUDE, FW_SRC
from s2eprop.firmware.build import ROOT
LINKER_SCRIPT = ARM_DIR / "link.ld"
BUILD_DIR = ROOT / "build" / "arm"
ELF_NAME = "s2eprop.elf"
HASH_NAME = "source_hash"
ARM_CC = "arm-none-eabi-gcc"

CPU_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
# the native build's float rules (fw_build.BASE_FLAGS) plus a freestanding target without libc
C_FLAGS = ("-std=c11", "-O2", "-g", "-ffp-contract=off", "-ffreestanding", "-fno-math-errno", "-fno-strict-aliasing",
           "-Wall", "-Wextra", "-Werror", "-Wpedantic")
LINK_FLAGS = ("-nostdlib", f"-T{LINKER_SCRIPT}")
LIBS = ("-lgcc",)  # compiler helpers only, should GCC ever need one; no libc, no libm


def sources() -> list[Path]:
    return sorted(FW_SRC.glob("*.c")) + sorted(ARM_DIR.glob("*.c"))


def source_hash() -> str:
    """Hash of everything the ELF is made from: sources, headers, linker script, flags, this file."""
    h = hashlib.sha256(" ".join((*CPU_FLAGS, *C_FLAGS, *LINK_FLAGS, *LIBS)).encode())
    headers = sorted({*FW_INCLUDE.glob("*.h"), *FW_SRC.glob("*.h"), *ARM_DIR.glob("*.h")})
    for path in [*headers, *sources(), LINKER_SCRIPT, Path(__file__)]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def compiler_available(cc: str = ARM_CC) -> bool:
    return shutil.which(cc) is not None


def build(out_dir: Path = BUILD_DIR, cc: str = ARM_CC) -> Path:
    """Compile and link into out_dir/s2eprop.elf (and .map); files appear whole or not at all."""
    if not compiler_available(cc):
        raise EmulatorError(f"ARM compiler {cc!r} not found: install gcc-arm-none-eabi "
                            f"(apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi, or `make arm` as root)")
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = source_hash()
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-arm-", dir=out_dir))
    try:
        elf, link_map = tmp / ELF_NAME, tmp / "s2eprop.map"
        cmd = [cc, *CPU_FLAGS, *C_FLAGS, f"-I{FW_INCLUDE}", *LINK_FLAGS, f"-Wl,-Map={link_map}",
               *(str(s) for s in sources()), *LIBS, "-o", str(elf)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise EmulatorError(f"ARM build failed ({cc}):\n{done.stderr.strip()}")
        (tmp / HASH_NAME).write_text(tag + "\n")
        for f in (ELF_NAME, "s2eprop.map", HASH_NAME):  # the hash last: it vouches for the other two
            os.replace(tmp / f, out_dir / f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / ELF_NAME


def built_hash(out_dir: Path) -> str | None:
    try:
        return (out_dir / HASH_NAME).read_text().strip()
    except OSError:
        return None


def current_elf(cc: str = ARM_CC) -> Path:
    """An ELF of the current sources: build/arm's when up to date, else one built in the cache folder."""
    tag = source_hash()
    if built_hash(BUILD_DIR) == tag and (BUILD_DIR / ELF_NAME).is_file():
        return BUILD_DIR / ELF_NAME
    from s2eprop.firmware.abi import cache_dir

    out = cache_dir() / "arm" / tag
    if built_hash(out) != tag:
        build(out, cc)
    return out / ELF_NAME

