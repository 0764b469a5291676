"""Fixtures shared by all test folders: the authors' plain-C run of six samples (tests/fixtures/, copied
from shared/reference/fixtures/ with its README)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

FIXTURE = "authors_c_6_samples.npz"
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"


def fixture_path() -> Path:
    """$S2EPROP_FIXTURES (the file or its folder), else the copy in tests/fixtures/."""
    env = os.environ.get("S2EPROP_FIXTURES")
    if env:
        p = Path(env)
        return p if p.is_file() else p / FIXTURE
    return FIXTURES_DIR / FIXTURE


@pytest.fixture(scope="session")
def authors() -> dict[str, np.ndarray]:
    """The authors' plain-C run of six samples (see the README beside the file)."""
    path = fixture_path()
    if not path.is_file():
        pytest.skip(f"authors' C fixture not found at {path} (set S2EPROP_FIXTURES to its file or folder)")
    with np.load(path) as f:
        return {k: f[k] for k in f.files}
