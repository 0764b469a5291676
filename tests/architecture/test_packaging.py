"""The distribution installs one import name, `s2eprop`, and every package of the source tree under it
(an install that is not editable gets exactly the listed packages; checked by hand with `pip install .`
into a fresh venv: `import s2eprop` works there, `import host` and `import emulator` fail)."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _folder(package: str) -> Path:
    dirs = TOOL["package-dir"]
    base = max((p for p in dirs if package == p or package.startswith(p + ".")), key=len)
    return ROOT / dirs[base] / Path(*package[len(base):].strip(".").split(".")) if package != base else ROOT / dirs[base]


def test_only_s2eprop_is_installed() -> None:
    assert TOOL["packages"] and all(p == "s2eprop" or p.startswith("s2eprop.") for p in TOOL["packages"])
    assert all(p == "s2eprop" or p.startswith("s2eprop.") for p in TOOL["package-dir"])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert all(target.startswith("s2eprop.") for target in scripts.values())


def test_every_package_folder_is_installed() -> None:
    """Rule: each folder with an __init__.py below a mapped folder is a listed package (else a
    non-editable install lacks it), and each listed package is such a folder."""
    listed = set(TOOL["packages"])
    for package in listed:
        assert (_folder(package) / "__init__.py").is_file(), package
    for base, folder in TOOL["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            name = ".".join([base, *rel.parts]) if rel.parts else base
            assert name in listed, f"{init.parent} holds a package that pyproject.toml does not list ({name})"
