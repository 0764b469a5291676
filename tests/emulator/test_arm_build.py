"""The ARM build (DESIGN section 3): the Cortex-M4F image fits a core, the ABI's byte layout is fixed by
_Static_asserts that both builds compile, and the host's SRAM check takes its arena room."""
from __future__ import annotations

import re
from pathlib import Path

from s2eprop.firmware.abi import Firmware
from s2eprop.firmware.arm_size import DEFAULT_ARENA_BYTES, arena_budget, size_report

ABI_CHECK = Path(__file__).resolve().parents[2] / "firmware_c" / "src" / "fw_abi_check.c"
ABI_STRUCTS = ("fw_config_t", "fw_layout_t", "fw_counters_t", "fw_state_t", "fw_header_t", "fw_counts_t")


def test_abi_asserts_list_every_field_at_the_hosts_offsets() -> None:
    """Rule: fw_abi_check.c asserts the size of every ABI struct and the offset of every field, with the
    numbers cffi (the host's x86-64 packing) gives; the ARM build compiles the same asserts."""
    text = ABI_CHECK.read_text()
    sizes = {t: int(n) for t, n in re.findall(r"^FW_SIZE\((\w+), (\d+)\);", text, flags=re.M)}
    offsets = {(t, f): int(n) for t, f, n in re.findall(r"^FW_AT\((\w+), (\w+), (\d+)\);", text, flags=re.M)}
    ffi = Firmware().ffi
    for t in ABI_STRUCTS:
        assert sizes.get(t) == ffi.sizeof(t), t
        fields = {(t, name): f.offset for name, f in ffi.typeof(t).fields}
        assert {k: v for k, v in offsets.items() if k[0] == t} == fields, t


def test_arm_image_fits_a_core(arm_elf) -> None:
    """Rule: code + data + bss + stack + arena room + alignment = 128 KiB, the arena room is more than the
    96 KiB default, and the handlers' worst nesting (ARM compiler) fits the linker script's stack."""
    rep = size_report(arm_elf)
    assert rep["fits"], rep["problems"]
    parts = ("text_bytes", "data_bytes", "bss_bytes", "stack_bytes", "arena_room_bytes", "alignment_gap_bytes")
    assert sum(rep[p] for p in parts) == rep["sram_bytes"] == 128 * 1024
    assert 0 <= rep["alignment_gap_bytes"] < 1024 and rep["arena_start"] % 1024 == 0
    assert rep["arena_room_bytes"] > DEFAULT_ARENA_BYTES
    assert 0 < rep["stack_worst_nesting_bytes"] <= rep["stack_bytes"] == 4096


def test_arena_budget_follows_the_arm_build(tmp_path) -> None:
    """Rule: without a size report the configured limit holds; with one, the default 96 KiB becomes the
    image's arena room and an explicit limit is capped by it."""
    report = tmp_path / "size.json"
    assert arena_budget(DEFAULT_ARENA_BYTES, report) == (DEFAULT_ARENA_BYTES, "default")
    assert arena_budget(64 * 1024, report) == (64 * 1024, "partition.arena_limit_bytes")
    report.write_text('{"arena_room_bytes": 118784}')
    assert arena_budget(DEFAULT_ARENA_BYTES, report) == (118_784, "ARM build")
    assert arena_budget(128 * 1024, report) == (118_784, "ARM build")
    assert arena_budget(64 * 1024, report) == (64 * 1024, "partition.arena_limit_bytes")
