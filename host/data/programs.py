"""Host layer: the external programs the built-in keyword set is spoken by (espeak-ng, flite):
finding them and running them, with errors that say how to install them."""
from __future__ import annotations

import shutil
import subprocess
from typing import Sequence

from s2eprop.host.errors import DataError


def require_program(program: str, needed_for: str) -> str:
    """The path of `program`, or a DataError naming the package to install."""
    path = shutil.which(program)
    if path is None:
        raise DataError(
            f"{program} is not installed, and {needed_for}: install it (Debian/Ubuntu: `apt-get install "
            f"{program}`; macOS: `brew install {program}`), or train on Google Speech Commands or a features "
            f"file with --data PATH")
    return path


def run_program(program: str, needed_for: str, args: Sequence[str], check: bool = True) -> bytes:
    """`program args`' standard output; a DataError with its message if it fails (and `check`)."""
    try:
        return subprocess.run([require_program(program, needed_for), *args], capture_output=True, check=check,
                              timeout=60).stdout
    except subprocess.CalledProcessError as exc:
        raise DataError(f"{program} {' '.join(args)} failed: {exc.stderr.decode(errors='replace').strip()}") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataError(f"{program} {' '.join(args)} failed: {exc}") from None
