"""Host layer: the Spiking Heidelberg Digits (SHD, Cramer et al. 2020) HDF5 layout as a spike Dataset.

An SHD file (`shd_train.h5`, `shd_test.h5`) holds `spikes/times` (per sample a variable-length array
of event times in seconds), `spikes/units` (per sample the channels, 0..699), `labels` (N,) (20
classes: the digits 0-9 in English and German) and optionally `extra/keys` (the class names).

Binning rule: a sample's first `window_ms` (default 1,000 ms) are cut into the network's n_steps
(default 100) equal bins of window_ms / n_steps ms (10 ms by default; each bin is one 1 ms step of
the chip); an event at t ms lies in bin floor(t / (window_ms / n_steps)); several events of one
channel in one bin are one spike; events at or after window_ms are dropped (SHD digits last up to
about 1.4 s). The network then needs n_in 700 (and n_out 20) and `input: {kind: spikes, encoder:
none}`. Needs h5py (`pip install -e '.[shd]'`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from s2eprop.host.data.dataset import Dataset
from s2eprop.host.data.spike_format import SpikeSet
from s2eprop.host.errors import DataError

SHD_UNITS = 700


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise DataError("reading SHD files needs h5py: pip install -e '.[shd]' (or pip install h5py)") from None
    return h5py


def read_shd(path: str | Path) -> tuple[SpikeSet, tuple[str, ...]]:
    """One SHD file's events (times in ms) and class names."""
    h5py, path = _h5py(), Path(path)
    if not path.is_file():
        raise DataError(f"SHD file {path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("spikes/times", "spikes/units", "labels") if k not in f]
            if missing:
                raise DataError(f"SHD file {path} lacks {', '.join(missing)}: not the SHD layout")
            times = [np.asarray(t, np.float64) * 1000.0 for t in f["spikes/times"]]
            units = [np.asarray(u, np.int64) for u in f["spikes/units"]]
            y = np.asarray(f["labels"], np.int64)
            keys = tuple(k.decode() if isinstance(k, bytes) else str(k) for k in f["extra/keys"]) \
                if "extra/keys" in f else ()
    except OSError as exc:
        raise DataError(f"cannot read SHD file {path}: {exc}") from None
    if not (len(times) == len(units) == len(y)):
        raise DataError(f"SHD file {path}: {len(times)} time lists, {len(units)} unit lists, {len(y)} labels")
    n_classes = max(int(y.max()) + 1 if len(y) else 0, len(keys))
    labels = keys if len(keys) >= n_classes else tuple(str(k) for k in range(n_classes))
    return SpikeSet.from_lists(list(zip(times, units)), y, SHD_UNITS), labels


def load_shd_dataset(path: str | Path, options: Mapping[str, Any] | None = None) -> Dataset:
    """SHD train file (and option `test_path`) binned into `n_steps` bins of the first `window_ms`."""
    opts = dict(options or {})
    unknown = sorted(set(opts) - {"test_path", "n_steps", "window_ms"})
    if unknown:
        raise DataError(f"dataset kind 'shd': unknown option(s) {', '.join(unknown)}; known: test_path, n_steps, "
                        f"window_ms")
    n_steps, window_ms = int(opts.get("n_steps", 100)), float(opts.get("window_ms", 1000.0))
    if n_steps < 1 or not window_ms > 0:
        raise DataError(f"dataset kind 'shd': n_steps must be >= 1 and window_ms > 0, got {n_steps}, {window_ms}")
    train, labels = read_shd(path)
    x, _ = train.raster(n_steps, window_ms / n_steps)
    x_test = y_test = None
    if opts.get("test_path"):
        test, test_labels = read_shd(Path(str(opts["test_path"])).expanduser())
        if len(test_labels) > len(labels):
            labels = test_labels
        x_test, _ = test.raster(n_steps, window_ms / n_steps)
        y_test = test.y
    return Dataset(x, train.y, labels, x_test, y_test, name=f"shd:{Path(path).name}", events=True)
