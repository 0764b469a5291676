"""Host layer: the on-disk feature cache, so that a second run does not recompute features.

One folder per entry, ``<root>/<tag>-<key>/``, holding plain NumPy ``.npy`` arrays and a
``meta.json`` with the full spec the key was hashed from (feature parameters, file list digest,
generator options). Entries are written into a temporary folder and renamed into place, so a
crashed or concurrent run never leaves a half-written entry behind. Arrays are opened as
read-only memory maps, so even the full GSC set (about 2 GB of features) costs no RAM up front.

Root: the ``cache_dir`` argument, else ``$S2EPROP_CACHE``, else ``~/.cache/s2eprop``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Mapping

import numpy as np

from s2eprop.host.errors import DataError

CACHE_ENV = "S2EPROP_CACHE"
META_FILE = "meta.json"


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "s2eprop"


def cache_key(spec: Mapping[str, Any]) -> str:
    """A short stable digest of a JSON-able spec (key order does not matter)."""
    text = json.dumps(spec, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class CacheEntry:
    """One cache entry: `load()` it, or fill it inside `with entry.writer() as w:`."""

    def __init__(self, root: Path | None, tag: str, spec: Mapping[str, Any]) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.tag = tag
        self.spec = json.loads(json.dumps(spec, sort_keys=True, default=str))
        self.path = self.root / f"{tag}-{cache_key(self.spec)}"

    def load(self) -> dict[str, np.ndarray] | None:
        """The entry's arrays as read-only memory maps, or None if it is absent or incomplete."""
        meta_path = self.path / META_FILE
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("spec") != self.spec:
                return None
            return {name: np.load(self.path / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                    for name in meta["arrays"]}
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def writer(self) -> "CacheWriter":
        return CacheWriter(self)


class CacheWriter:
    """Collects arrays in a temporary folder; on a clean exit renames it to the entry's path."""

    def __init__(self, entry: CacheEntry) -> None:
        self.entry = entry
        self.names: list[str] = []
        self.maps: list[np.memmap] = []
        self.tmp: Path | None = None

    def __enter__(self) -> "CacheWriter":
        try:
            self.entry.root.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.entry.path.name}.", dir=self.entry.root))
        except OSError as exc:
            raise DataError(f"cannot write the feature cache under {self.entry.root}: {exc}") from None
        return self

    def array(self, name: str, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
        """A writable memory-mapped .npy of the given shape, to fill in place."""
        assert self.tmp is not None
        self.names.append(name)
        arr = np.lib.format.open_memmap(self.tmp / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)
        self.maps.append(arr)
        return arr

    def save(self, name: str, value: np.ndarray) -> None:
        assert self.tmp is not None
        self.names.append(name)
        np.save(self.tmp / f"{name}.npy", np.asarray(value), allow_pickle=False)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self.tmp is not None
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        for arr in self.maps:
            arr.flush()
        meta = {"spec": self.entry.spec, "arrays": self.names}
        (self.tmp / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
        final = self.entry.path
        if final.exists():
            if self.entry.load() is not None:  # another run finished first: keep theirs
                shutil.rmtree(self.tmp, ignore_errors=True)
                return
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.replace(self.tmp, final)
        except OSError:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self.entry.load() is None:
                raise
