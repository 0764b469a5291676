"""The examples of docs/api.md run as written, from the repository root (SimPy runs its doc examples
the same way): each ```python block of the page is one script."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), flags=re.S)


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("n", range(len(BLOCKS)))
def test_example_runs(n, tmp_path, monkeypatch, capsys) -> None:
    """Rule: every example of docs/api.md runs without error (its asserts hold) and prints what it says."""
    monkeypatch.chdir(ROOT)
    run_dir = ROOT / "runs" / "api_example"
    if run_dir.exists():  # the first example saves a run here; a run of an earlier test session would refuse it
        for f in run_dir.iterdir():
            f.unlink()
        run_dir.rmdir()
    exec(compile(BLOCKS[n], f"docs/api.md example {n + 1}", "exec"), {"__name__": "__doc_example__"})
    assert capsys.readouterr().out.strip()
