"""Host layer: the spike dataset format (`.npz` of per-sample event lists) and its binning into steps.

A spike file holds, for its train split and optionally a test split (the same keys with `_test`):

- `times_ms` (E,) float32: event times in ms from the sample's start, all samples one after another
- `units` (E,) int32: the input channel of each event, in 0..n_units-1
- `sample_offsets` (N + 1,) int64: the events of sample s are [sample_offsets[s], sample_offsets[s + 1])
- `y` (N,) int64: labels, and `labels` (class names in index order, shared by both splits)
- `n_units` () int: the number of input channels (n_in of the network)

Binning rule (`SpikeSet.raster`): an event at t ms falls into step floor(t / dt_ms); events at or
after n_steps x dt_ms are dropped (counted in `dropped`), several events of one channel in one step
are one spike (the chip's input is 0/1 per channel and step), negative times are refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s2eprop.host.data.dataset import Dataset
from s2eprop.host.errors import DataError

SPIKE_KEYS = ("times_ms", "units", "sample_offsets", "y")


@dataclass(frozen=True)
class SpikeSet:
    """One split's events: per-sample lists of (time in ms, channel), as flat arrays and offsets."""

    times_ms: np.ndarray
    units: np.ndarray
    sample_offsets: np.ndarray
    y: np.ndarray
    n_units: int

    def __post_init__(self) -> None:
        off = self.sample_offsets
        if off.ndim != 1 or len(off) != len(self.y) + 1 or off[0] != 0 or off[-1] != len(self.times_ms) \
                or np.any(np.diff(off) < 0):
            raise DataError(f"spike set: sample_offsets must rise from 0 to the {len(self.times_ms)} events, one more "
                            f"than the {len(self.y)} labels; got {len(off)} offsets")
        if len(self.units) != len(self.times_ms):
            raise DataError(f"spike set: {len(self.units)} units for {len(self.times_ms)} times")
        if len(self.units) and (self.units.min() < 0 or self.units.max() >= self.n_units):
            raise DataError(f"spike set: units must lie in 0..{self.n_units - 1}, got {self.units.min()}.."
                            f"{self.units.max()}")
        if len(self.times_ms) and not (np.isfinite(self.times_ms).all() and self.times_ms.min() >= 0):
            raise DataError("spike set: event times must be finite and >= 0 ms")

    @classmethod
    def from_lists(cls, events: list[tuple[np.ndarray, np.ndarray]], y: np.ndarray, n_units: int) -> "SpikeSet":
        """From per-sample (times_ms, units) pairs."""
        counts = [len(t) for t, _ in events]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        times = np.concatenate([np.asarray(t, np.float32) for t, _ in events]) if events else np.zeros(0, np.float32)
        units = np.concatenate([np.asarray(u, np.int32) for _, u in events]) if events else np.zeros(0, np.int32)
        return cls(times, units, offsets, np.asarray(y, np.int64), int(n_units))

    def sample(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = int(self.sample_offsets[s]), int(self.sample_offsets[s + 1])
        return self.times_ms[a:b], self.units[a:b]

    def raster(self, n_steps: int, dt_ms: float) -> tuple[np.ndarray, int]:
        """(N, n_steps, n_units) float32 0/1 by the module's binning rule, and the events dropped."""
        n = len(self.y)
        out = np.zeros((n, n_steps, self.n_units), dtype=np.float32)
        sample = np.repeat(np.arange(n), np.diff(self.sample_offsets))
        step = np.floor(self.times_ms.astype(np.float64) / dt_ms).astype(np.int64)
        keep = step < n_steps
        out[sample[keep], step[keep], self.units[keep]] = 1.0
        return out, int(np.count_nonzero(~keep))


def save_spike_npz(path: str | Path, train: SpikeSet, labels: tuple[str, ...], test: SpikeSet | None = None) -> Path:
    """Write a spike file, atomically."""
    from s2eprop.host.files import atomic_write

    arrays: dict[str, np.ndarray] = {"labels": np.asarray(labels), "n_units": np.asarray(train.n_units)}
    for suffix, split in (("", train), ("_test", test)):
        if split is None:
            continue
        if split.n_units != train.n_units:
            raise DataError(f"spike file: the test split has {split.n_units} units, the train split {train.n_units}")
        arrays.update({k + suffix: getattr(split, k) for k in SPIKE_KEYS})
    return atomic_write(Path(path), lambda f: np.savez(f, **arrays))


def is_spike_npz(path: str | Path) -> bool:
    """Whether a file is a spike file (a zip of arrays with `times_ms`); anything else is for the
    features loader to judge (and name what is wrong with it)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return "times_ms.npy" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def load_spike_npz(path: str | Path) -> tuple[SpikeSet, SpikeSet | None, tuple[str, ...]]:
    """(train, test or None, labels) of a spike file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in (*SPIKE_KEYS, "labels", "n_units") if k not in f.files]
            if missing:
                raise DataError(f"spike file {path} lacks {', '.join(missing)} (format: host/data/spike_format.py)")
            n_units = int(f["n_units"])
            sets = []
            for suffix in ("", "_test"):
                if "times_ms" + suffix not in f.files:
                    sets.append(None)
                    continue
                sets.append(SpikeSet(f["times_ms" + suffix].astype(np.float32), f["units" + suffix].astype(np.int32),
                                     f["sample_offsets" + suffix].astype(np.int64), f["y" + suffix].astype(np.int64),
                                     n_units))
            labels = tuple(str(s) for s in f["labels"])
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read spike file {path}: {exc}") from None
    return sets[0], sets[1], labels


def spike_dataset(path: str | Path, options: dict | None = None) -> Dataset:
    """A spike file as a Dataset of 0/1 rasters, binned by the module's rule (options: n_steps, default
    100; dt_ms, default 1.0; no others)."""
    opts = dict(options or {})
    unknown = sorted(set(opts) - {"n_steps", "dt_ms"})
    if unknown:
        raise DataError(f"spike file {path}: unknown option(s) {', '.join(unknown)}; known: n_steps, dt_ms")
    n_steps, dt_ms = int(opts.get("n_steps", 100)), float(opts.get("dt_ms", 1.0))
    if n_steps < 1 or not dt_ms > 0:
        raise DataError(f"spike file {path}: n_steps must be >= 1 and dt_ms > 0, got {n_steps}, {dt_ms}")
    train, test, labels = load_spike_npz(path)
    x, _ = train.raster(n_steps, dt_ms)
    x_test = y_test = None
    if test is not None:
        x_test, _ = test.raster(n_steps, dt_ms)
        y_test = test.y
    return Dataset(x, train.y, labels, x_test, y_test, name=f"spikes:{Path(path).name}", events=True)
