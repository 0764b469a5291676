"""Host layer, session: the scripting API (`import s2eprop`; docs/api.md).

A `Session` holds one network on one engine: the NumPy golden model, the in-process emulated chip
(functional, timed or realtime), or a board over UDP. Swapping them is one word (`target`); the same
weights, data and calls give the same results (the emulator's bits equal a board's). The CLI's
`train` and `eval` are this class behind argparse.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from s2eprop.host.config import DatasetConfig, ExperimentConfig, read_config_file, with_overrides
from s2eprop.host.data.dataset import KWS_LABELS, Dataset, check_inputs
from s2eprop.host.data.encoders import encode_dataset
from s2eprop.host.data.loader import dataset_config_from_arg
from s2eprop.host.data.loader import load_dataset as _load_dataset
from s2eprop.host.engines import check_engine, engine_of
from s2eprop.host.errors import ConfigError, DataError, HostError, TransportError
from s2eprop.host.mapping.recording import Recordings
from s2eprop.host.mapping.resolve import config_from_dict
from s2eprop.host.mapping.resolve import load_config as _load_config_file
from s2eprop.host.reference.golden import AdamState
from s2eprop.host.session import train as loop
from s2eprop.host.weights import FeedbackState, Weights, init_weights, load_weights

MATRICES = ("w_in", "w_rec", "w_out")


def load_config(config: str | Path | Mapping[str, Any] | ExperimentConfig | None = None,
                overrides: Mapping[str, Mapping[str, Any]] | None = None) -> ExperimentConfig:
    """An experiment config from a YAML path, a dict with the YAML's keys, a config object, or None (the
    paper's network); `overrides` ({"train": {"epochs": 2}, ...}) replaces keys section by section.
    Validated, with `partition.neurons_per_core: auto` resolved."""
    if isinstance(config, ExperimentConfig):
        if not overrides:
            return config.validate()
        raw = _as_dict(config)
    elif isinstance(config, Mapping):
        raw = copy.deepcopy(dict(config))
    elif config is None:
        raw = {}
    elif isinstance(config, (str, Path)):
        if not overrides:
            return _load_config_file(config)
        raw = dict(read_config_file(config) or {})
    else:
        raise ConfigError(f"config must be a YAML path, a dict or an ExperimentConfig, got {type(config).__name__}")
    for section, values in (overrides or {}).items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"overrides[{section!r}] must be a mapping of keys to values, got {values!r}")
        if section == "dataset":
            raw[section] = dict(values)
        else:
            raw[section] = {**dict(raw.get(section) or {}), **dict(values)}
    return config_from_dict(raw)


def _as_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d["dataset"]["options"] = dict(d["dataset"]["options"])
    for key in ("spikes", "v"):
        d["record"][key] = list(d["record"][key])
    return d


def load_dataset(source: str | Path | DatasetConfig = "synth", progress: bool = True, test_sets: bool = False,
                 **options: Any) -> Dataset:
    """A dataset: "synth" (the built-in keyword set), a Google Speech Commands folder, a features or
    spikes .npz, a Spiking Heidelberg Digits .h5 file, or a DatasetConfig; `options` are the dataset's
    options (e.g. n_train for synth, test_path for SHD). As stored: a session encodes it for its
    config's input (spikes) itself."""
    cfg = source if isinstance(source, DatasetConfig) else dataset_config_from_arg(str(source), options)
    return _load_dataset(cfg, progress=progress, test_sets=test_sets)


class Session:
    """One network on one engine, trained online sample by sample (the chip) or in batches (golden).

    `config`: a YAML path, a dict, an ExperimentConfig or None (the paper's network). `target`:
    "emulator" (default), "golden" or "udp://HOST:PORT". `mode`: functional, timed or realtime (the
    emulator; default the config's); `engine`: the timed chip's event loop, "c" or "simpy" (its SimPy
    model; default the config's chip.engine). `init_weights`: None (seeded from train.seed), a weights .npz, a
    Weights or a dict of w_in, w_rec, w_out arrays. `resume`: a checkpoint.npz to continue. An engine
    that cannot run as asked is refused here, before any board is opened.
    """

    def __init__(self, config: str | Path | Mapping[str, Any] | ExperimentConfig | None = None,
                 target: str = "emulator", mode: str | None = None,
                 init_weights: str | Path | Weights | Mapping[str, np.ndarray] | None = None, *,
                 cpu: str | None = None, clock_mhz: float | None = None, chip: str | Path | None = None,
                 engine: str | None = None,
                 seed: int | None = None, backend: str = "c", key_file: str | Path | None = None,
                 resume: str | Path | None = None, labels: tuple[str, ...] | None = None,
                 progress: bool = False, argv: tuple[str, ...] | None = None, link_patience_s: float = 10.0) -> None:
        cfg = load_config(config)
        chip_overrides = {"mode": mode, "cpu": cpu, "clock_mhz": clock_mhz, "engine": engine,
                          "file": None if chip is None else str(chip)}
        self.cfg = with_overrides(cfg, chip=chip_overrides, seed=seed)
        self.target = target
        self.key_file = None if key_file is None else str(key_file)
        check_engine(engine_of(self.cfg, target, backend, self.key_file))
        if chip is not None and not Path(chip).is_file():
            raise ConfigError(f"chip file {chip}: no such file")
        self.backend, self.progress, self.argv = backend, progress, argv
        if resume is not None and init_weights is not None:
            raise ConfigError(f"{self._option('resume')} continues a run from its checkpoint's weights and optimizer, "
                              f"{self._option('init_weights')} starts a new one from weights: give one of them")
        self.resume = None if resume is None else Path(resume)
        self.state = loop.RunState()
        adam: AdamState | None = None
        feedback: FeedbackState | None = None  # adaptive feedback's B and moments, from a checkpoint
        if self.resume is not None:
            if not self.resume.is_file():
                raise DataError(f"checkpoint {self.resume}: no such file")
            weights, adam, self.state, feedback = loop.load_checkpoint(self.resume, self.cfg)
            made_on, self._resumed_data = loop.checkpoint_origin(self.resume)
            if made_on and loop.learner_kind(made_on) != loop.learner_kind(target):
                raise DataError(f"checkpoint {self.resume} was made on target {made_on}, this run is on {target}: "
                                f"resume with {self._option('target', made_on)}, or start from its weights with "
                                f"{self._option('init_weights', self.resume)} (a new optimizer)")
        else:
            self._resumed_data = ""
            weights = self._initial_weights(init_weights, labels)
        if labels is not None:
            if weights.labels and tuple(weights.labels) != tuple(labels):
                raise DataError(f"weights were trained on labels {list(weights.labels)}, the dataset has {list(labels)}")
            weights = dataclasses.replace(weights, labels=tuple(labels))
        self._trainer: loop.Trainer | None = loop.make_trainer(self.cfg, target, weights, adam, backend, self.key_file,
                                                               link_patience_s, feedback)
        self._encoded: tuple[int, Dataset, Dataset] | None = None  # (id of the data, the data, its encoding)
        self._data: Dataset | None = None
        self._data_id = ""
        self._last_eval: dict[str, Any] | None = None
        self._recordings: Recordings | None = None
        self._report: dict[str, Any] | None = None
        self._final_weights: Weights | None = None

    # -- life cycle -------------------------------------------------------------------------------
    def __enter__(self) -> "Session":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(keep_weights=exc_type is None)  # after an error the board may not answer a read

    def close(self, keep_weights: bool = True) -> None:
        """Release the engine (stop the cores, close the board's link); the weights stay readable."""
        if self._trainer is None:
            return
        trainer, self._trainer = self._trainer, None
        if not keep_weights:  # after an error: a dead board fails the close too, and that error is not the news
            loop.close_quietly(trainer)
            return
        try:
            self._final_weights = trainer.weights
        finally:
            trainer.close()

    # -- training and inference ----------------------------------------------------------------
    def train(self, data: Dataset, epochs: int | None = None, max_samples: int | None = None,
              on_sample: Callable[[dict[str, Any]], None] | None = None, out: str | Path | None = None,
              overwrite: bool = False) -> dict[str, Any]:
        """Train for `epochs` (default train.epochs) over the first `max_samples` of the training split;
        test after each epoch. Returns the report (report.json's dict). `on_sample` is called after each
        sample (batch on golden) with its epoch, index, labels, predictions and losses. With `out`, the
        run folder is written as `s2eprop train` writes it, checkpoints included."""
        trainer = self._live()
        tr = dataclasses.replace(self.cfg.train, **{k: v for k, v in (("epochs", epochs), ("max_samples", max_samples))
                                                    if v is not None})
        self.cfg = dataclasses.replace(self.cfg, train=tr).validate()
        data = self._prepared(data)
        data_id = loop.data_fingerprint(data)
        if self._resumed_data and self._resumed_data != data_id:
            raise DataError(f"checkpoint {self.resume} was trained on other data than {data.name}: resume with the "
                            f"same dataset, or start from its weights with {self._option('init_weights', self.resume)}")
        out_dir = None if out is None else Path(out)
        if out_dir is not None:
            loop.prepare_run_folder(out_dir, self.resume, overwrite)
        opts = loop.TrainOptions(target=self.target, out_dir=out_dir, progress=self.progress, argv=self.argv)
        try:
            report = loop.train_epochs(self.cfg, data, opts, trainer, self.state, data_id, on_sample)
        except TransportError as exc:  # the command that failed, and how to go on from the last checkpoint
            ckpt = None if out_dir is None else out_dir / "checkpoint.npz"
            raise TransportError(f"{exc}; {loop.resume_hint(ckpt, self.argv)}") from None
        self._data, self._data_id = data, data_id
        self._last_eval = report.pop("_last_eval", None)
        self._recordings = report.pop("_recordings", None)
        self._report = report
        return report

    def train_sample(self, x: np.ndarray, y: int) -> dict[str, Any]:
        """One sample (n_steps, n_in), learnt online: its loss, prediction and time-mean outputs, all
        taken before the update."""
        trainer = self._live()
        x = np.asarray(x, dtype=np.float32)
        if x.shape != (self.cfg.network.n_steps, self.cfg.network.n_in):
            raise DataError(f"a sample has shape {x.shape}, the network takes "
                            f"({self.cfg.network.n_steps}, {self.cfg.network.n_in}) (n_steps, n_in)")
        check_inputs(x[None], "train_sample's input")
        r = trainer.train_batch(x[None], np.array([int(y)]))
        self.state.pos = loop.Position(self.state.pos.epoch, self.state.pos.next_index,
                                       self.state.pos.samples_trained + 1)
        return {"loss": float(r.loss[0]), "prediction": int(r.pred[0]), "outputs": np.asarray(r.output_mean[0]),
                "spikes": int(r.spikes[0])}

    def evaluate(self, data: Dataset, split: str = "test") -> dict[str, Any]:
        """Accuracy, loss, per-class accuracy and confusion of `split` ("test" or "train") of `data`."""
        trainer = self._live()
        data = self._prepared(data)
        if split not in ("test", "train"):
            raise ConfigError(f"split must be 'test' or 'train', got {split!r}")
        x, y = (data.x_test, data.y_test) if split == "test" else (data.x_train, data.y_train)
        if x is None or len(x) == 0:
            raise DataError(f"the {split} split of dataset {data.name} has no samples: nothing to evaluate"
                            + (" (split='train' evaluates the training split)" if split == "test" else ""))
        ev = loop.evaluate(trainer, x, y, len(data.labels))
        ev["per_class_accuracy"] = dict(zip(data.labels, ev["per_class_accuracy"]))
        ev["split"] = split
        return ev

    # -- what the session holds ---------------------------------------------------------------
    @property
    def weights(self) -> dict[str, np.ndarray]:
        """The current weights, {"w_in", "w_rec", "w_out"}, [pre][post], float32 copies."""
        w = self._trainer.weights if self._trainer is not None else self._final_weights
        if w is None:
            raise HostError("this session was closed by an error before its weights were read: none to give")
        return {k: np.array(v) for k, v in w.as_dict().items()}

    @property
    def timing(self) -> dict[str, Any] | None:
        """The timed chip's compliance summary (report.json `timing`); None off a timed chip."""
        summary = getattr(self._trainer, "timing_summary", None)
        return summary() if summary is not None else None

    @property
    def recordings(self) -> Recordings | None:
        """What the last train() recorded (config `record`), or None."""
        return self._recordings

    @property
    def provenance(self) -> dict[str, int]:
        """The loss counters of the cores, the chip and the host (all zero in a healthy run; {} on golden)."""
        get = getattr(self._trainer, "provenance", None)
        return get() if get is not None else {}

    @property
    def report(self) -> dict[str, Any] | None:
        """The last train()'s report."""
        return self._report

    def save(self, run_dir: str | Path) -> Path:
        """Write the run folder `s2eprop train` writes (weights.npz, checkpoint.npz, report.json, figures)
        for what this session trained; a folder that holds another run is refused."""
        if self._data is None or self._report is None:
            raise HostError("nothing to save: call train() first (weights alone: s.weights)")
        run_dir = Path(run_dir)
        trainer = self._live()
        loop.prepare_run_folder(run_dir, None, overwrite=False)
        opts = loop.TrainOptions(target=self.target, out_dir=run_dir, progress=False, argv=self.argv)
        loop.save_checkpoint(run_dir / "checkpoint.npz", trainer, self.state, self.cfg, self.target, self._data_id)
        self._report = loop.finish_run(self.cfg, self._data, opts, trainer, self.state,
                                       self._report["samples_trained_this_session"], self._last_eval,
                                       self._data.x_test is not None and len(self._data.x_test) > 0,
                                       self._report["wall_s"], self._recordings)
        return run_dir

    # -- internals -------------------------------------------------------------------------------
    def _option(self, name: str, value: Any = None) -> str:
        """An option as the user gave it: a command-line flag (a session the CLI made) or a keyword."""
        if self.argv is not None:
            return f"--{name.replace('_', '-')}" + ("" if value is None else f" {value}")
        return name + ("" if value is None else f"={str(value)!r}")

    def _live(self) -> loop.Trainer:
        if self._trainer is None:
            raise HostError("this session is closed: make a new Session (its weights: s.weights)")
        return self._trainer

    def _initial_weights(self, given: Any, labels: tuple[str, ...] | None) -> Weights:
        net = self.cfg.network
        if given is None:
            names = labels if labels is not None else (KWS_LABELS if net.n_out == len(KWS_LABELS) else ())
            return init_weights(net, self.cfg.train.seed, tuple(names))
        if isinstance(given, Weights):
            return given.check(net)
        if isinstance(given, Mapping):
            missing = [k for k in MATRICES if k not in given]
            if missing:
                raise DataError(f"init_weights lacks {', '.join(missing)}: give w_in, w_rec and w_out arrays")
            w = Weights(*(np.asarray(given[k], dtype=np.float32) for k in MATRICES),
                        labels=tuple(labels or given.get("labels", ()) or ()))
            return w.check(net)
        return load_weights(given, net)

    def _prepared(self, data: Dataset) -> Dataset:
        """`data` checked against the network and encoded for the config's input (cached per dataset)."""
        if not isinstance(data, Dataset):
            raise DataError(f"expected a Dataset (s2eprop.load_dataset), got {type(data).__name__}")
        if self._encoded is not None and self._encoded[0] == id(data) and self._encoded[1] is data:
            return self._encoded[2]
        encoded = encode_dataset(data, self.cfg.input, self.cfg.network)
        loop.check_dataset(self.cfg, encoded)
        labels = self._trainer.weights.labels if self._trainer is not None else ()
        if labels and tuple(labels) != tuple(encoded.labels):
            raise DataError(f"weights were trained on labels {list(labels)}, the dataset has {list(encoded.labels)}")
        self._encoded = (id(data), data, encoded)
        return encoded


def run_training(cfg: ExperimentConfig, data: Dataset, opts: loop.TrainOptions) -> dict[str, Any]:
    """`s2eprop train`: a session on opts.target, trained over `data` into the run folder opts.out_dir."""
    with Session(cfg, opts.target, init_weights=opts.init_weights, resume=opts.resume, backend=opts.backend,
                 key_file=opts.key_file, labels=tuple(data.labels), progress=opts.progress, argv=opts.argv,
                 link_patience_s=opts.link_patience_s) as s:
        return s.train(data, out=opts.out_dir, overwrite=opts.overwrite)

