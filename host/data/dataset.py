"""Host layer: the in-memory dataset every trainer consumes, and the features `.npz` format.

A features file holds `x` (N, T, n_in) float32, `y` (N,) int, optional `labels` (class names in
index order) and optional `x_test` / `y_test`. Samples are trained in file order.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from s2eprop.host.errors import DataError

# One label order everywhere (features files, weights files, reports): the 10 keywords of the
# 12-class GSC task, then "unknown" (any other word) and "silence" (background noise).
KWS_LABELS: tuple[str, ...] = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "unknown", "silence",
)


@dataclass(frozen=True)
class Dataset:
    """Features and labels of a train split and an optional test split."""

    x_train: np.ndarray  # (N, T, n_in) float32
    y_train: np.ndarray  # (N,) int64
    labels: tuple[str, ...]
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    name: str = ""
    events: bool = False  # binned spike events (spikes .npz, SHD): 0/1 inputs, for input.kind spikes

    def __post_init__(self) -> None:
        _check_split("train", self.x_train, self.y_train, len(self.labels))
        if (self.x_test is None) != (self.y_test is None):
            raise DataError(f"dataset {self.name}: x_test and y_test must be given together")
        if self.x_test is not None:
            _check_split("test", self.x_test, self.y_test, len(self.labels))
            if self.x_test.shape[1:] != self.x_train.shape[1:]:
                raise DataError(
                    f"dataset {self.name}: x_test frames {self.x_test.shape[1:]} differ from x_train {self.x_train.shape[1:]}"
                )

    @property
    def n_steps(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_in(self) -> int:
        return int(self.x_train.shape[2])

    def save_npz(self, path: str | Path) -> Path:
        """Write the features `.npz` of the CLI, atomically."""
        from s2eprop.host.files import atomic_write

        arrays = {"x": self.x_train, "y": self.y_train, "labels": np.asarray(self.labels)}
        if self.x_test is not None:
            arrays["x_test"] = self.x_test
            arrays["y_test"] = self.y_test
        return atomic_write(Path(path), lambda f: np.savez_compressed(f, **arrays))


def known_options(cls: type, kind: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options of a `kind` dataset as a dict, refusing keys that are not fields of the options class `cls`."""
    options = dict(options or {})
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise DataError(f"unknown {kind} dataset option(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return options


def _check_split(split: str, x: np.ndarray, y: np.ndarray | None, n_labels: int) -> None:
    if x.ndim != 3:
        raise DataError(f"{split} features must have shape (N, steps, inputs), got {x.shape}")
    if x.dtype != np.float32:
        raise DataError(f"{split} features must be float32, got {x.dtype}")
    if y is None or y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{split} labels must have shape ({len(x)},), got {None if y is None else y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{split} labels must be integers, got {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() >= n_labels):
        raise DataError(f"{split} labels must lie in 0..{n_labels - 1}, got {y.min()}..{y.max()}")
    check_inputs(x, f"{split} split")


MAX_ABS_INPUT = 1e6  # features are log-mel values and deltas of order 10, spikes 0 or 1


def check_inputs(x: np.ndarray, what: str) -> None:
    """DataError naming the first sample, step and input of `x` (N, steps, inputs) that is NaN, infinite or
    absurdly large (|x| > 1e6): one such value would make every weight NaN or saturate the network."""
    if x.size == 0 or (x.min() >= -MAX_ABS_INPUT and x.max() <= MAX_ABS_INPUT):  # NaN compares False
        return
    bad = ~(np.abs(x) <= MAX_ABS_INPUT)
    if x.ndim == 2:  # one sample
        x, bad = x[None], bad[None]
    n, step, unit = (int(i) for i in np.argwhere(bad)[0])
    count = int(np.sum(bad.reshape(len(x), -1).any(axis=1)))
    raise DataError(f"{what}: sample {n} holds {float(x[n, step, unit]):g} at step {step}, input {unit} ({count} sample(s) "
                    f"hold NaN, infinity or |value| > {MAX_ABS_INPUT:g}): fix, rescale or drop them before training")


def load_npz_dataset(path: str | Path) -> Dataset:
    """Load a features `.npz` (see module docstring) with clear errors for wrong keys, shapes, dtypes."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset file {path} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"dataset file {path} is not a readable .npz: {exc}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(f"dataset file {path} holds one array (a .npy file), not the named arrays of a features "
                        f".npz: save it with numpy.savez(path, x=..., y=...)")
    with loaded as f:
        arrays = {k: f[k] for k in f.files}
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataError(f"dataset file {path} lacks key(s) {', '.join(missing)}; has {', '.join(sorted(arrays))}")
    try:
        y = _integer_labels("y", arrays["y"])
        y_test = None if arrays.get("y_test") is None else _integer_labels("y_test", arrays["y_test"])
        if "labels" in arrays:
            labels = tuple(str(s) for s in arrays["labels"].tolist())
        else:
            top = max([int(a.max()) for a in (y, y_test) if a is not None and a.size], default=0)
            if top >= len(KWS_LABELS):
                raise DataError(f"label {top} is out of range 0..{len(KWS_LABELS) - 1} of the {len(KWS_LABELS)} "
                                f"keyword classes; add a 'labels' array naming every class to use more")
            labels = KWS_LABELS
        return Dataset(x_train=arrays["x"], y_train=y, labels=labels, x_test=arrays.get("x_test"), y_test=y_test,
                       name=path.name)
    except DataError as exc:
        raise DataError(f"dataset file {path}: {exc}") from None


def _integer_labels(key: str, y: np.ndarray) -> np.ndarray:
    """Labels as int64: integers, or floats holding whole numbers; anything else is refused."""
    if np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64, copy=False)
    if np.issubdtype(y.dtype, np.floating):
        whole = np.isfinite(y) & (y == np.round(y))
        if whole.all():
            return y.astype(np.int64)
        bad = y[~whole][0]
        raise DataError(f"{key} holds a label that is not a whole number ({float(bad)!r}): labels are class indices")
    raise DataError(f"{key} must hold integer class indices, got {y.dtype} values (e.g. {y.ravel()[:1].tolist()}): "
                    f"map class names to indices and put the names in a 'labels' array")
