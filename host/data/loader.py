"""Host layer: one entry point from a `DatasetConfig` (YAML `dataset:` or `--data`) to a `Dataset`.

Four kinds:

- ``synth``: the built-in spoken keyword set (`s2eprop.host.data.synth`), options n_train, n_test, seed, ...
- ``gsc``: a Google Speech Commands folder (`s2eprop.host.data.gsc`); x_test is the testing_list split.
- ``npz``: a features file in the CLI's format (`s2eprop.host.data.dataset.load_npz_dataset`), or a spike file
  of per-sample event lists (`s2eprop.host.data.spike_format`), binned into steps (options n_steps, dt_ms;
  train it with `input: {kind: spikes, encoder: none}`).
- ``shd``: a Spiking Heidelberg Digits HDF5 file (`s2eprop.host.data.shd`), options test_path, n_steps, window_ms.

Features of synth and GSC are cached under `cache_dir`, else ``$S2EPROP_CACHE``, else
``~/.cache/s2eprop``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from s2eprop.host.config import DATASET_KINDS, DatasetConfig
from s2eprop.host.data.cache import default_cache_dir
from s2eprop.host.data.dataset import Dataset, load_npz_dataset
from s2eprop.host.errors import DataError

ACCEPTED_FORMS = ("a folder in Google Speech Commands layout, a features or spikes .npz file, a Spiking Heidelberg "
                  "Digits .h5 file, or the word 'synth'")

__all__ = ["ACCEPTED_FORMS", "dataset_config_from_arg", "default_cache_dir", "load_dataset"]


def dataset_config_from_arg(arg: str, options: Mapping[str, Any] | None = None) -> DatasetConfig:
    """`--data` value -> DatasetConfig: existing folder -> gsc, `*.npz` file -> npz, `*.h5` file -> shd,
    `synth` -> synth."""
    opts = dict(options or {})
    text = str(arg).strip()
    if text == "synth":
        return DatasetConfig(kind="synth", path=None, options=opts)
    path = Path(text).expanduser()
    if path.is_dir():
        return DatasetConfig(kind="gsc", path=str(path), options=opts)
    if path.suffix.lower() == ".npz":
        if not path.is_file():
            raise DataError(f"--data {text}: no such file; give {ACCEPTED_FORMS}")
        return DatasetConfig(kind="npz", path=str(path), options=opts)
    if path.suffix.lower() in (".h5", ".hdf5"):  # the Spiking Heidelberg Digits (option test_path: its test file)
        if not path.is_file():
            raise DataError(f"--data {text}: no such file; give {ACCEPTED_FORMS}")
        return DatasetConfig(kind="shd", path=str(path), options=opts)
    if not path.exists():
        raise DataError(f"--data {text}: no such folder or file; give {ACCEPTED_FORMS}")
    raise DataError(f"--data {text} is neither a folder nor a .npz or .h5 file; give {ACCEPTED_FORMS}")


def load_dataset(cfg: DatasetConfig, cache_dir: Path | None = None, progress: bool = True,
                 test_sets: bool = False) -> Dataset:
    """Load (generate, or read from the feature cache) the dataset the config names. With `test_sets`
    (evaluation, export), a folder of the official GSC test set gives its clips as the test split of a
    dataset with an empty training split; otherwise it is refused (it cannot be trained on)."""
    if cfg.kind not in DATASET_KINDS:
        raise DataError(f"dataset kind {cfg.kind!r} unknown; choose one of {', '.join(DATASET_KINDS)}")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if cfg.kind == "synth":
        from s2eprop.host.data.synth import load_synth_dataset

        if cfg.path:
            raise DataError(f"dataset kind 'synth' takes no path (got {cfg.path!r}); "
                            "its options are n_train, n_test, seed, ...")
        return load_synth_dataset(cfg.options, cache_dir=cache, progress=progress)
    if not cfg.path:
        raise DataError(f"dataset kind {cfg.kind!r} needs a path")
    if cfg.kind == "npz":
        from s2eprop.host.data.spike_format import is_spike_npz, spike_dataset

        path = Path(cfg.path).expanduser()
        if path.is_file() and is_spike_npz(path):  # event lists: binned into steps (options n_steps, dt_ms)
            return spike_dataset(path, cfg.options)
        if cfg.options:
            raise DataError(f"dataset kind 'npz' takes no options, got {', '.join(sorted(cfg.options))}")
        return load_npz_dataset(path)
    from s2eprop.host.data.gsc import is_official_test_layout, load_gsc_dataset, official_test_dataset

    if cfg.kind == "shd":
        from s2eprop.host.data.shd import load_shd_dataset

        return load_shd_dataset(Path(cfg.path).expanduser(), cfg.options)
    if test_sets and is_official_test_layout(Path(cfg.path).expanduser()):
        return official_test_dataset(Path(cfg.path).expanduser(), cache_dir=cache, progress=progress)
    return load_gsc_dataset(Path(cfg.path).expanduser(), cfg.options, cache_dir=cache, progress=progress)
