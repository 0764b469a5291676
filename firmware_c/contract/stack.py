"""Firmware contract: worst-case stack use of the firmware's handlers, from GCC's own call graph.

`handler_stack_usage` compiles firmware_c/src with `-fstack-usage -fcallgraph-info=su` (GCC >= 10) and
reads the `.ci` files (VCG graphs) it writes, e.g.

    node: { title: "fw_on_timer" label: "fw_on_timer\\n/.../fw_main.c:101:13\\n160 bytes (static)" }
    node: { title: "/.../adam.c:adam_block.isra.0" label: "adam_block.isra\\n/.../adam.c:9:13\\n112 bytes (static)" }
    node: { title: "memset" label: "__builtin_memset\\n<built-in>" shape : ellipse }
    edge: { sourcename: "fw_on_timer" targetname: "neuron_step" label: "/.../fw_main.c:89:5" }

A node with "N bytes (qualifier)" is a function defined in that file (static functions are titled
"path:name"); an ellipse node is only a declaration, resolved against the other files. A handler's worst
case is its own frame plus the largest worst case among its callees. What cannot be counted exactly is
listed, not hidden: dynamic frames, recursion, and callees with no definition (compiler-inserted
memset/memcpy, indirect calls), which count as 0 bytes.

The figures are for the compiler and target that made them (`StackReport.compiler`, `.target`): on
x86-64 they estimate the ARM ones; pass cc="arm-none-eabi-gcc" and extra_flags for the real thing.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from s2eprop.host.errors import HostError

from s2eprop.firmware.build import FIRMWARE_DIR as FIRMWARE
HANDLERS = ("fw_init", "fw_on_timer", "fw_on_mc_packet", "fw_on_dma_done", "fw_on_host_msg", "fw_on_user_event")
PACKET_HANDLER = "fw_on_mc_packet"
INIT_HANDLER = "fw_init"  # runs before interrupts are enabled: reported, never nested
FLAGS = ("-std=c11", "-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-strict-aliasing",
         "-fstack-usage", "-fcallgraph-info=su")
CORTEX_M4F_EXCEPTION_FRAME = 104  # 26 words stacked on exception entry: 8 core + 18 FP (lazy FP context)

_NODE = re.compile(r'node: \{ title: "(?P<title>[^"]*)" label: "(?P<label>[^"]*)"')
_EDGE = re.compile(r'edge: \{ sourcename: "(?P<src>[^"]*)" targetname: "(?P<dst>[^"]*)"')
_FRAME = re.compile(r"\\n(?P<bytes>\d+) bytes \((?P<kind>[^)]*)\)$")


@dataclass(frozen=True)
class StackReport:
    """Worst-case stack bytes per handler, with what the figures rest on."""

    handlers: dict[str, int]                 # handler -> worst-case bytes (own frame + deepest callee chain)
    paths: dict[str, tuple[str, ...]]        # handler -> the deepest call path, handler first
    unknown_callees: tuple[str, ...]         # reached but never defined: counted as 0 bytes
    dynamic: tuple[str, ...]                 # reached functions with a dynamic frame, e.g. "f (dynamic,bounded)"
    recursive: tuple[str, ...]               # reached functions on a call cycle (only one trip is counted)
    compiler: str                            # first line of `cc --version`
    target: str                              # `cc -dumpmachine`

    @property
    def exact(self) -> bool:
        """True when every figure is an upper bound: no unbounded frame, no recursion, no unknown callee."""
        unbounded = [d for d in self.dynamic if not d.endswith("(dynamic,bounded)")]
        return not (unbounded or self.recursive or self.unknown_callees)


@dataclass(frozen=True)
class _Graph:
    frames: dict[str, int]                   # function title -> own frame bytes
    kinds: dict[str, str]                    # function title -> "static" | "dynamic" | "dynamic,bounded"
    calls: dict[str, tuple[str, ...]]        # function title -> callee titles


def handler_stack_usage(cc: str = "cc", cache: Path | None = None, extra_flags: tuple[str, ...] = (),
                        src_dir: Path | None = None, include_dir: Path | None = None,
                        handlers: tuple[str, ...] = HANDLERS) -> StackReport:
    """Compile src_dir/*.c with stack and call-graph output (cached) and the worst case of each handler found.

    `cache` is the folder holding one sub-folder per hash of sources, headers, compiler and flags
    (default: the emulator's cache folder / "stack").
    """
    src_dir = src_dir or FIRMWARE / "src"
    include_dir = include_dir or FIRMWARE / "include"
    sources = sorted(src_dir.glob("*.c"))
    if not sources:
        raise HostError(f"no C sources in {src_dir}: stack use needs the firmware sources (a source checkout)")
    compiler = _ask(cc, "--version").splitlines()[0].strip()
    target = _ask(cc, "-dumpmachine").strip()
    flags = (*FLAGS, *extra_flags, f"-I{include_dir}")
    if cache is None:
        from s2eprop.firmware.abi import cache_dir
        cache = cache_dir() / "stack"
    out = _compile(cc, sources, flags, cache / _key(compiler, target, flags, sources, include_dir))
    graph = _read_graph(sorted(out.glob("*.ci")))

    worst: dict[str, int] = {}
    paths: dict[str, tuple[str, ...]] = {}
    unknown: set[str] = set()
    recursive: set[str] = set()
    memo: dict[str, tuple[int, tuple[str, ...]]] = {}
    for name in handlers:
        if name in graph.frames:
            worst[name], path = _deepest(graph, name, (), memo, unknown, recursive)
            paths[name] = tuple(_display(t) for t in path)
    reached = {t for t in memo if t in graph.frames}
    dynamic = sorted(f"{_display(t)} ({graph.kinds[t]})" for t in reached if graph.kinds[t] != "static")
    return StackReport(worst, paths, tuple(sorted(_display(t) for t in unknown)), tuple(dynamic),
                       tuple(sorted(_display(t) for t in recursive)), compiler, target)


def worst_nesting(report: StackReport, exception_frame_bytes: int = CORTEX_M4F_EXCEPTION_FRAME) -> tuple[int, str]:
    """Worst stack when the packet interrupt (highest priority) lands on top of another handler.

    Each interrupt level stacks one exception frame. fw_init runs before interrupts: not counted.
    """
    others = {n: b for n, b in report.handlers.items() if n not in (PACKET_HANDLER, INIT_HANDLER)}
    levels = [max(others, key=lambda n: others[n])] if others else []
    if PACKET_HANDLER in report.handlers:
        levels.append(PACKET_HANDLER)
    if not levels:
        return 0, "no interrupt handlers"
    total = sum(report.handlers[n] for n in levels) + len(levels) * exception_frame_bytes
    frames = f"{len(levels)} exception frame{'s' if len(levels) > 1 else ''}"
    return total, " + ".join([*levels, frames])


def format_stack_report(report: StackReport, budget_bytes: int) -> list[str]:
    """Human lines: one per handler with its deepest path, the worst nesting against the budget, the compiler."""
    width = max((len(n) for n in report.handlers), default=0)
    lines = [f"  {name:<{width}}  {b:>7,} B  ({' > '.join(report.paths[name])})"
             for name, b in report.handlers.items()]
    for label, items in (("dynamic stack", report.dynamic), ("recursion (one trip counted)", report.recursive),
                         ("no definition, counted as 0 B", report.unknown_callees)):
        if items:
            lines.append(f"  {label}: {', '.join(items)}")
    total, what = worst_nesting(report)
    verdict = "fits" if total <= budget_bytes else "EXCEEDS"
    if verdict == "fits" and not report.exact:
        verdict = "fits (a lower bound: see the list above)"
    lines.append(f"worst nesting {what}: {total:,} B of a {budget_bytes:,} B stack budget: {verdict}")
    note = "" if report.target.startswith("arm") else " (an estimate of the ARM figures)"
    lines.append(f"stack figures from {report.compiler}, target {report.target}{note}")
    return lines


def _ask(cc: str, option: str) -> str:
    """The compiler's answer to one query option; a missing or broken compiler is a HostError."""
    try:
        done = subprocess.run([cc, option], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise HostError(f"compiler {cc!r} not found or not runnable ({e.__class__.__name__}): "
                        f"install gcc >= 10 (e.g. apt-get install gcc) or pass another cc") from None
    if done.returncode != 0 or not done.stdout.strip():
        raise HostError(f"compiler {cc!r} failed on {option}: install gcc >= 10 (e.g. apt-get install gcc)")
    return done.stdout


def _key(compiler: str, target: str, flags: tuple[str, ...], sources: list[Path], include_dir: Path) -> str:
    h = hashlib.sha256("\n".join([compiler, target, *flags]).encode())
    headers = sorted(include_dir.glob("*.h")) + sorted(sources[0].parent.glob("*.h"))
    for path in [*sources, *headers]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def _compile(cc: str, sources: list[Path], flags: tuple[str, ...], out: Path) -> Path:
    """Compile into a temp folder beside `out`, then rename it into place (never a half-written cache)."""
    if out.is_dir():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out.parent))
    try:
        try:
            done = subprocess.run([cc, *flags, "-c", *(str(s.resolve()) for s in sources)],
                                  cwd=tmp, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as e:
            raise HostError(f"compiler {cc!r} could not run ({e.__class__.__name__}): install gcc >= 10") from None
        if done.returncode != 0:
            first = next((ln for ln in done.stderr.splitlines() if "error" in ln), done.stderr.strip()[:200])
            if "callgraph-info" in done.stderr or "stack-usage" in done.stderr:
                raise HostError(f"compiler {cc!r} lacks -fcallgraph-info/-fstack-usage: install gcc >= 10")
            raise HostError(f"compiler {cc!r} failed on {sources[0].parent}: {first.strip()}")
        if len(list(tmp.glob("*.ci"))) != len(sources):
            raise HostError(f"compiler {cc!r} wrote no call graph (-fcallgraph-info): install gcc >= 10")
        try:
            os.rename(tmp, out)
        except OSError:
            if not out.is_dir():  # not another process's identical result
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _read_graph(ci_files: list[Path]) -> _Graph:
    """Definitions and call edges of all .ci files; a title defined nowhere stays a callee without a frame."""
    frames: dict[str, int] = {}
    kinds: dict[str, str] = {}
    calls: dict[str, dict[str, None]] = {}
    for ci in ci_files:
        text = ci.read_text()
        for m in _NODE.finditer(text):
            frame = _FRAME.search(m["label"])
            if frame:
                title = m["title"]
                frames[title] = max(frames.get(title, 0), int(frame["bytes"]))
                kinds[title] = frame["kind"]
        for m in _EDGE.finditer(text):
            calls.setdefault(m["src"], {})[m["dst"]] = None
    return _Graph(frames, kinds, {src: tuple(dst) for src, dst in calls.items()})


def _deepest(graph: _Graph, fn: str, active: tuple[str, ...], memo: dict[str, tuple[int, tuple[str, ...]]],
             unknown: set[str], recursive: set[str]) -> tuple[int, tuple[str, ...]]:
    """(worst bytes, deepest path) from fn down; notes unknown callees and call cycles on the way."""
    if fn in memo:
        return memo[fn]
    if fn not in graph.frames:
        unknown.add(fn)
        memo[fn] = (0, (fn,))
        return memo[fn]
    best: tuple[int, tuple[str, ...]] = (0, ())
    for callee in graph.calls.get(fn, ()):
        if callee in active or callee == fn:
            recursive.add(callee)
            continue
        sub = _deepest(graph, callee, (*active, fn), memo, unknown, recursive)
        if sub[0] > best[0] or not best[1]:
            best = sub
    memo[fn] = (graph.frames[fn] + best[0], (fn, *best[1]))
    return memo[fn]


def _display(title: str) -> str:
    """"/path/to/adam.c:adam_block.isra.0" -> "adam.c:adam_block.isra.0"; plain names unchanged."""
    path, sep, name = title.rpartition(":")
    return f"{Path(path).name}:{name}" if sep and ("/" in path or path.endswith(".c")) else title
