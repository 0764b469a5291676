"""Host layer: atomic file writes (temp file in the same folder, then rename), so nothing is half-written."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> Path:
    """Write through a temp file in the same folder, then rename; the file gets the user's umask
    (a temp file is created 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def check_writable_file(path: Path, flag: str) -> None:
    """That `path` can be written as a file (its folder made if missing), checked before long work."""
    from s2eprop.host.errors import HostError

    if path.is_dir():
        raise HostError(f"{flag} {path} is a folder: give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise HostError(f"cannot write {flag} {path} ({exc.strerror or exc}): choose a path in a folder you can "
                        f"write") from None


def write_json(path: Path, data: Any) -> Path:
    text = json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"
    return atomic_write(path, lambda f: f.write(text))


def writable_folder(path: Path, flag: str) -> Path:
    """`path` as a folder (made if missing) this process can write, checked before long work."""
    from s2eprop.host.errors import HostError

    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise HostError(f"cannot write into {flag} {path} ({exc.strerror or exc}): choose a folder you can write") \
            from None
    return path
