"""Studies layer: what every study shares: its run folder, its result.json, its figures' names."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from s2eprop.host.errors import HostError
from s2eprop.host.files import write_json


def study_folder(out_dir: Path, study: str) -> Path:
    """The study's run folder, made if missing; a file in its place is refused."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise HostError(f"study {study}: --out {out_dir} is a file: give a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def write_result(out_dir: Path, study: str, result: dict[str, Any], figures: dict[str, Path]) -> dict[str, Any]:
    """result.json with the study's name and its figures (file names inside the folder)."""
    result = {"study": study, **result, "figures": {k: p.name for k, p in figures.items()}}
    write_json(out_dir / "result.json", result)
    return result


def save_figure(plt: Any, fig: Any, path: Path) -> Path:
    """Lay out, write (120 dpi) and close a study's figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
