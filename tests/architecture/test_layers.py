"""The import layering of docs/architecture.md, checked on the source: every import of an s2eprop module
(top-level or inside a function) goes to its own layer or one below, the emulator never imports the host,
the host reaches the chip model only through its transports, and no modules import each other in a
circle."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"s2eprop": "s2eprop", "s2eprop.firmware": "firmware_c/contract", "s2eprop.emulator": "emulator",
            "s2eprop.host": "host"}

# lowest first; a module belongs to the layer of its longest listed prefix (docs/architecture.md)
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("errors and files", ("s2eprop.emulator.errors", "s2eprop.host.errors", "s2eprop.host.files",
                          "s2eprop.host.progress")),
    ("contracts", ("s2eprop.firmware", "s2eprop.emulator.board.protocol")),
    ("descriptions", ("s2eprop.emulator.chip.description", "s2eprop.host.config", "s2eprop.host.fault_config",
                      "s2eprop.host.weights", "s2eprop.host.engines", "s2eprop.host.connectivity")),
    ("runners, data, models, mapping, plots", ("s2eprop.emulator.runners", "s2eprop.host.data",
                                               "s2eprop.host.reference", "s2eprop.host.mapping",
                                               "s2eprop.host.plots")),
    ("chip model, transport", ("s2eprop.emulator.chip", "s2eprop.host.transport")),
    ("board, session", ("s2eprop.emulator.board", "s2eprop.host.session")),
    ("studies", ("s2eprop.host.studies",)),
    ("cli", ("s2eprop.host.cli",)),
    ("api", ("s2eprop",)),
)
# what of the emulator a host module may import (besides host.transport and host.cli, which start chips)
HOST_MAY_SEE = ("s2eprop.emulator.errors", "s2eprop.emulator.chip.description", "s2eprop.emulator.board.protocol")
# what of the host the emulator and the firmware contract may import
LOWER_MAY_SEE = LAYERS[0][1]


def _modules() -> dict[str, Path]:
    out = {}
    for name, folder in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            out[".".join([name, *parts])] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The s2eprop modules `name` imports (a `from package import module` counts as the module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{name}: relative import; write s2eprop.... in full")
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    if rank < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")
    return rank


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def arrows_going_up(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in graph.items():
        for dst in targets:
            if layer_of(dst) > layer_of(src):
                bad.append(f"{src} ({LAYERS[layer_of(src)][0]}) imports {dst} ({LAYERS[layer_of(dst)][0]})")
            if _within(src, ("s2eprop.emulator", "s2eprop.firmware")) and _within(dst, ("s2eprop.host",)) \
                    and not _within(dst, LOWER_MAY_SEE):
                bad.append(f"{src} imports the host's {dst}")
            if _within(src, ("s2eprop.host",)) and not _within(src, ("s2eprop.host.transport", "s2eprop.host.cli")) \
                    and _within(dst, ("s2eprop.emulator",)) and not _within(dst, HOST_MAY_SEE):
                bad.append(f"{src} reaches the chip model's {dst}: go through a transport")
    return sorted(bad)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer() -> None:
    assert len(MODULES) > 90
    for m in MODULES:
        layer_of(m)


def test_no_import_goes_up_a_layer() -> None:
    assert arrows_going_up(GRAPH) == []


def test_no_import_cycle() -> None:
    assert cycles(GRAPH) == []


@pytest.mark.parametrize("src, dst", [
    ("s2eprop.host.session.train", "s2eprop.emulator.chip.timed"),     # the host past its transport
    ("s2eprop.emulator.chip.functional", "s2eprop.host.config"),       # the emulator into the host
    ("s2eprop.firmware.abi", "s2eprop.host.session.runtime"),          # a contract above itself
])
def test_the_check_sees_a_wrong_arrow(src, dst) -> None:
    """Rule: the checks fail on an arrow that breaks a rule (they are not vacuous)."""
    graph = {k: set(v) for k, v in GRAPH.items()}
    graph[src].add(dst)
    assert arrows_going_up(graph)


def test_the_check_sees_a_cycle() -> None:
    graph = {k: set(v) for k, v in GRAPH.items()}
    graph["s2eprop.host.config"].add("s2eprop.host.mapping.images")
    assert cycles(graph)
