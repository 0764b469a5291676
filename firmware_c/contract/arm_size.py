"""Firmware contract: the ARM build's size report (`make arm` -> build/arm/size.json) and the arena budget the
host's SRAM check takes from it.

The report holds the image's bytes of code, data, bss and stack, the arena room the linker script
leaves in the core's 128 KiB, and the worst nested stack use of the handlers as arm-none-eabi-gcc
compiles them (firmware_c/contract/stack.py) against the stack the linker script sets. `python -m s2eprop.firmware.arm_size`
builds the ELF, writes the report and exits 1 when the image would not fit a core.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from s2eprop.firmware import arm_build
from s2eprop.firmware.arm_image import SRAM_BYTES  # the SRAM link.ld lays out
from s2eprop.emulator.errors import EmulatorError
from s2eprop.host.errors import HostError
from s2eprop.host.files import write_json

SIZE_JSON = arm_build.BUILD_DIR / "size.json"
DEFAULT_ARENA_BYTES = 96 * 1024  # before the ARM build exists: 128 KiB less a guess of code and stack
MIN_ARENA_BYTES = 16 * 1024      # as link.ld's __arena_min_bytes


def size_report(elf: Path, stack: bool = True) -> dict[str, Any]:
    """Sizes of the image, its arena room and stack headroom; `fits` says whether it suits a core."""
    from s2eprop.firmware.arm_image import load_image

    img = load_image(elf)
    rep: dict[str, Any] = {"elf": str(elf), "source_hash": arm_build.built_hash(elf.parent), **img.size_report()}
    problems = []
    if rep["arena_room_bytes"] < MIN_ARENA_BYTES:
        problems.append(f"arena room {rep['arena_room_bytes']:,} B < {MIN_ARENA_BYTES:,} B")
    if stack:
        from s2eprop.firmware.stack import handler_stack_usage, worst_nesting

        report = handler_stack_usage(cc=arm_build.ARM_CC, extra_flags=(*arm_build.CPU_FLAGS, "-O2", "-ffreestanding"))
        worst, what = worst_nesting(report)
        rep.update(stack_worst_nesting_bytes=worst, stack_worst_nesting=what,
                   stack_headroom_bytes=rep["stack_bytes"] - worst, stack_exact=report.exact)
        if worst > rep["stack_bytes"]:
            problems.append(f"worst nested stack {worst:,} B ({what}) > the {rep['stack_bytes']:,} B stack")
    rep["fits"] = not problems
    rep["problems"] = problems
    return rep


def arena_budget(configured: int, report_path: Path = SIZE_JSON) -> tuple[int, str]:
    """The arena limit of the host's SRAM check and where it comes from: the ARM image's arena room
    when the ARM build is present (capped by partition.arena_limit_bytes where that is set to other
    than its 96 KiB default), else the configured limit; a configured limit past a real core's 128 KiB
    is a hypothetical chip's and is taken as it is."""
    room = arena_room_bytes(report_path)
    if configured > SRAM_BYTES:  # a hypothetical chip with more SRAM per core (its chip file says so)
        return configured, "partition.arena_limit_bytes"
    if room is None:
        return configured, "partition.arena_limit_bytes" if configured != DEFAULT_ARENA_BYTES else "default"
    if configured == DEFAULT_ARENA_BYTES or configured >= room:
        return room, "ARM build"
    return configured, "partition.arena_limit_bytes"


def arena_room_bytes(report_path: Path = SIZE_JSON) -> int | None:
    """The arena room of the ARM build's size report, None without one."""
    try:
        return int(json.loads(report_path.read_text())["arena_room_bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m s2eprop.firmware.arm_size", description="build the ARM image and its size report")
    ap.add_argument("--out", type=Path, default=arm_build.BUILD_DIR, help="build folder (default build/arm)")
    args = ap.parse_args(argv)
    try:
        elf = arm_build.build(args.out)
        rep = size_report(elf)
    except (EmulatorError, HostError) as e:  # the build, or the stack analysis
        print(f"make arm: {e}", file=sys.stderr)
        return 1
    write_json(args.out / "size.json", rep)
    print(f"arm: {elf} text {rep['text_bytes']:,} B, data {rep['data_bytes']:,} B, bss {rep['bss_bytes']:,} B, "
          f"stack {rep['stack_bytes']:,} B (worst nesting {rep['stack_worst_nesting_bytes']:,} B), "
          f"arena room {rep['arena_room_bytes']:,} B")
    if not rep["fits"]:
        print(f"make arm: the image does not fit a core: {'; '.join(rep['problems'])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
