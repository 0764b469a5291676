"""Stack use of the firmware handlers from GCC's call graph (firmware_c/contract/stack.py)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from s2eprop.host.errors import HostError
from s2eprop.firmware.stack import format_stack_report, handler_stack_usage, worst_nesting

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler (gcc >= 10)")

A_C = """
__attribute__((noinline)) int leaf(int x) { volatile char buf[200]; buf[0] = x; return buf[0]; }
__attribute__((noinline)) int mid(int x) { volatile char m[40]; m[0] = x; return leaf(m[0]) + 1; }
"""
B_C = """
int mid(int x);
static int helper(int x) { return x * 3; }
int fw_on_timer(int x) { volatile char big[1000]; big[0] = x; return mid(big[0]) + helper(big[1]); }
"""


def _su_frames(folder: Path) -> dict[str, int]:
    """Own frame bytes per function, read straight from the .su files ("file:line:col:name<TAB>N<TAB>kind")."""
    frames = {}
    for su in folder.rglob("*.su"):
        for m in re.finditer(r"^.*:(\w+)\t(\d+)\t", su.read_text(), re.M):
            frames[m.group(1)] = int(m.group(2))
    return frames


@pytest.fixture(scope="module")
def firmware_report(tmp_path_factory: pytest.TempPathFactory):
    return handler_stack_usage(cache=tmp_path_factory.mktemp("stack-cache"))


def test_worst_case_sums_frames_along_the_call_chain(tmp_path: Path) -> None:
    """A handler's worst case is its own frame plus every frame down its deepest call chain, across files."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.c").write_text(A_C)
    (src / "b.c").write_text(B_C)
    cache = tmp_path / "cache"
    report = handler_stack_usage(cache=cache, src_dir=src, include_dir=src, handlers=("fw_on_timer", "absent"))
    su = _su_frames(cache)
    assert su["leaf"] > 0 and su["mid"] > 0 and su["fw_on_timer"] >= 1000
    assert report.handlers == {"fw_on_timer": su["fw_on_timer"] + su["mid"] + su["leaf"]}
    assert report.paths["fw_on_timer"] == ("fw_on_timer", "mid", "leaf")
    entries = list(cache.iterdir())  # one finished folder, no temp leftovers
    assert len(entries) == 1 and not entries[0].name.startswith(".tmp")


def test_unknown_callees_are_listed_not_hidden(tmp_path: Path) -> None:
    """A call to a function defined nowhere counts 0 B but is named in unknown_callees; recursion is flagged."""
    (tmp_path / "c.c").write_text("int ext(int);\n"
                                  "int rec(int x) { return x ? rec(x - 1) * ext(x) + 1 : 0; }\n"
                                  "int fw_on_timer(int x) { return rec(x) + 1; }\n")
    report = handler_stack_usage(cache=tmp_path / "cache", src_dir=tmp_path, include_dir=tmp_path,
                                 handlers=("fw_on_timer",))
    assert "ext" in report.unknown_callees
    assert "rec" in report.recursive
    assert not report.exact


def test_real_firmware_handlers_have_positive_stack(firmware_report) -> None:
    """Every handler of the firmware has a positive worst case, and fw_on_timer's covers its own frame."""
    report = firmware_report
    assert {"fw_init", "fw_on_timer", "fw_on_mc_packet"} <= set(report.handlers)
    assert all(b > 0 for b in report.handlers.values())
    assert all(report.paths[n][0] == n for n in report.handlers)
    assert report.compiler and report.target


def test_real_firmware_timer_covers_own_frame(firmware_report, tmp_path_factory: pytest.TempPathFactory) -> None:
    """fw_on_timer's worst case is at least its own .su frame."""
    cache = tmp_path_factory.mktemp("stack-cache-2")
    report = handler_stack_usage(cache=cache)
    assert report == firmware_report  # same sources, same figures (fresh cache)
    assert report.handlers["fw_on_timer"] >= _su_frames(cache)["fw_on_timer"] > 0


def test_worst_nesting_exceeds_every_handler(firmware_report) -> None:
    """The packet handler nested over another interrupt handler costs more than any handler alone."""
    total, what = worst_nesting(firmware_report)
    interrupt = {n: b for n, b in firmware_report.handlers.items() if n != "fw_init"}
    assert total > max(interrupt.values())
    assert total == max(b for n, b in interrupt.items() if n != "fw_on_mc_packet") \
        + interrupt["fw_on_mc_packet"] + 2 * 104
    assert "fw_on_mc_packet" in what and "2 exception frames" in what


def test_format_names_every_handler_and_the_verdict(firmware_report) -> None:
    """The human report has one line per handler, then the nesting against the budget, then the compiler."""
    total, _ = worst_nesting(firmware_report)
    fits = format_stack_report(firmware_report, budget_bytes=total)
    exceeds = format_stack_report(firmware_report, budget_bytes=total - 1)
    for name in firmware_report.handlers:
        assert any(line.strip().startswith(name) for line in fits)
    assert "fits" in fits[-2] and f"{total:,} B of a {total:,} B" in fits[-2]
    assert exceeds[-2].endswith("EXCEEDS")
    assert firmware_report.compiler in fits[-1] and firmware_report.target in fits[-1]


def test_missing_compiler_is_a_host_error(tmp_path: Path) -> None:
    """A compiler that is not installed raises HostError naming it, with the fix."""
    with pytest.raises(HostError, match="no-such-cc.*install gcc"):
        handler_stack_usage(cc="no-such-cc", cache=tmp_path)
    assert not any(tmp_path.iterdir())
