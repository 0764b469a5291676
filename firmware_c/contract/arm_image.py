"""Firmware contract: what the ARM build's ELF holds: loadable bytes, the linker's placement symbols
(firmware_c/arm/link.ld), function symbols, and its size report (text, data, bss, stack, arena room).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

from s2eprop.emulator.errors import EmulatorError

SRAM_BYTES = 128 * 1024
PLACEMENT = ("__arena_start", "__arena_end", "__stack_bottom", "__stack_top", "__bss_start", "__bss_end")
TEXT_SECTIONS = (".vectors", ".text", ".rodata")


@dataclass(frozen=True)
class ArmImage:
    """One core's image: segments to load, where the linker put arena and stack, and the functions."""

    path: Path
    segments: tuple[tuple[int, bytes], ...]     # (address, bytes) of each loadable segment
    symbols: dict[str, int]                     # placement symbols and function addresses (Thumb bit clear)
    section_bytes: dict[str, int]               # allocated section -> size
    func_starts: tuple[int, ...]                # sorted function start addresses
    func_names: tuple[str, ...]                 # ... and their names
    func_ends: tuple[int, ...]

    @property
    def arena_start(self) -> int:
        return self.symbols["__arena_start"]

    @property
    def arena_room_bytes(self) -> int:
        return self.symbols["__arena_end"] - self.symbols["__arena_start"]

    @property
    def stack_top(self) -> int:
        return self.symbols["__stack_top"]

    @property
    def stack_bytes(self) -> int:
        return self.symbols["__stack_top"] - self.symbols["__stack_bottom"]

    def address(self, name: str) -> int:
        try:
            return self.symbols[name]
        except KeyError:
            raise EmulatorError(f"{self.path}: no symbol {name!r} (an ELF of firmware_c built by `make arm`?)") from None

    def function_index(self, addr: int) -> int:
        """Index into func_names of the function whose code holds addr; -1 outside every function."""
        i = bisect.bisect_right(self.func_starts, addr) - 1
        return i if i >= 0 and addr < self.func_ends[i] else -1

    def function_at(self, addr: int) -> str:
        i = self.function_index(addr)
        return self.func_names[i] if i >= 0 else "?"

    def size_report(self) -> dict[str, int]:
        """Bytes of code (vectors, text, read-only data), data, bss, stack and the arena room left."""
        text = sum(self.section_bytes.get(s, 0) for s in TEXT_SECTIONS)
        data, bss = self.section_bytes.get(".data", 0), self.section_bytes.get(".bss", 0)
        return {"sram_bytes": SRAM_BYTES, "text_bytes": text, "data_bytes": data, "bss_bytes": bss,
                "stack_bytes": self.stack_bytes, "arena_start": self.arena_start,
                "arena_room_bytes": self.arena_room_bytes,
                "alignment_gap_bytes": SRAM_BYTES - text - data - bss - self.stack_bytes - self.arena_room_bytes}


def load_image(path: Path) -> ArmImage:
    from elftools.elf.elffile import ELFFile

    try:
        f = open(path, "rb")
    except OSError as e:
        raise EmulatorError(f"cannot read the ARM firmware {path}: {e.strerror} (build it with `make arm`)") from None
    with f:
        elf = ELFFile(f)
        if elf["e_machine"] != "EM_ARM":
            raise EmulatorError(f"{path} is an ELF for {elf['e_machine']}, not ARM: build it with `make arm`")
        segments = tuple((int(s["p_paddr"]), s.data()) for s in elf.iter_segments()
                         if s["p_type"] == "PT_LOAD" and s["p_filesz"] > 0)
        sections = {s.name: int(s["sh_size"]) for s in elf.iter_sections() if s["sh_flags"] & 0x2}  # SHF_ALLOC
        symtab = elf.get_section_by_name(".symtab")
        if symtab is None:
            raise EmulatorError(f"{path} has no symbol table (stripped?): rebuild it with `make arm`")
        symbols: dict[str, int] = {}
        funcs: list[tuple[int, int, str]] = []
        for sym in symtab.iter_symbols():
            if not sym.name:
                continue
            value = int(sym["st_value"])
            if sym["st_info"]["type"] == "STT_FUNC":
                funcs.append((value & ~1, int(sym["st_size"]), sym.name))
                symbols[sym.name] = value & ~1
            elif sym.name in PLACEMENT:
                symbols[sym.name] = value
    missing = [n for n in PLACEMENT if n not in symbols]
    if missing:
        raise EmulatorError(f"{path} lacks the linker symbols {', '.join(missing)}: link with firmware_c/arm/link.ld")
    funcs.sort()
    return ArmImage(path=Path(path), segments=segments, symbols=symbols, section_bytes=sections,
                    func_starts=tuple(a for a, _, _ in funcs), func_names=tuple(n for _, _, n in funcs),
                    func_ends=tuple(a + max(size, 2) for a, size, _ in funcs))
