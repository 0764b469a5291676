"""Host layer: the training session behind `s2eprop train`: epochs over a dataset on a target
(golden model or emulated chip), progress, checkpoints at sample boundaries, run folder and report."""
from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np

from s2eprop.host.config import ExperimentConfig, RecordConfig, TrainConfig
from s2eprop.host.data.dataset import Dataset, check_inputs
from s2eprop.host.data.encoders import input_stats
from s2eprop.host.data.feature_masks import FeatureMasks, mask_features
from s2eprop.host.engines import check_engine, engine_of
from s2eprop.host.errors import ConfigError, DataError, HostError, TrainingInterrupted
from s2eprop.host.plots.figures import confusion_matrix, plot_confusion, plot_training
from s2eprop.host.files import atomic_write, writable_folder, write_json
from s2eprop.host.progress import progress_bar
from s2eprop.host.mapping.recording import Recordings, SampleRecord
from s2eprop.host.reference.golden import AdamState, BatchResult, GoldenModel
from s2eprop.host.weights import FeedbackState, Weights, load_weights

EVAL_BATCH = 256
LOSS_EXPLODED = 1e3  # nats of cross-entropy per sample: ~2.5 untrained, never near this unless lr is too high
MASK_STREAM = 0x6D61736B  # keeps the mask generator apart from the shuffle's (seed, epoch)


class Trainer(Protocol):
    # record: per sample, whether to record it (config `record`); its records come from `recorded`
    def train_batch(self, x: np.ndarray, y: np.ndarray, record: np.ndarray | None = None) -> BatchResult: ...
    def forward(self, x: np.ndarray, y: np.ndarray | None = None, record: np.ndarray | None = None) -> BatchResult: ...
    def recorded(self) -> list[SampleRecord]: ...
    def start_epoch(self, epoch: int) -> None: ...
    @property
    def weights(self) -> Weights: ...
    @property
    def adam(self) -> AdamState: ...
    @property
    def feedback_state(self) -> FeedbackState | None: ...  # adaptive feedback's B and moments (None otherwise)
    @property
    def chip_ms(self) -> tuple[int, int]: ...   # emulated ms spent training and on inference (0 off-chip)
    def report(self) -> dict[str, Any]: ...     # the target's own part of report.json
    def close(self) -> None: ...                # release the board (stop its cores)


class GoldenTrainer(GoldenModel):
    """The golden model as a training target: no chip, so no chip time and nothing more to report. It
    records what the chip records (the forward pass of a marked sample with the weights it meets)."""

    chip_ms = (0, 0)

    def __init__(self, *args: Any, record: RecordConfig | None = None, feedback_state: FeedbackState | None = None,
                 **kwargs: Any) -> None:
        """`feedback_state`: adaptive feedback's B and moments to start from (a resumed run)."""
        if feedback_state is not None:
            kwargs["feedback"] = feedback_state.b
        super().__init__(*args, **kwargs)
        if feedback_state is not None:
            if self.feedback_moments is None:
                raise ConfigError(f"a learned feedback state is given, train.feedback is {self.train.feedback!r}: "
                                  f"it belongs to train.feedback adaptive (give none)")
            self.feedback_moments = (np.array(feedback_state.m, self.dtype), np.array(feedback_state.v, self.dtype))
        self.record_cfg = record or RecordConfig()
        self._records: list[SampleRecord] = []

    @property
    def feedback_state(self) -> FeedbackState | None:
        if self.feedback_moments is None:
            return None
        assert self.feedback is not None
        return FeedbackState(self.feedback.copy(), *(a.copy() for a in self.feedback_moments))

    def train_batch(self, x: np.ndarray, y: np.ndarray, record: np.ndarray | None = None) -> BatchResult:
        check_inputs(np.asarray(x), "the batch's input")
        self._record(x, record)
        return super().train_batch(x, y)

    def forward(self, x: np.ndarray, y: np.ndarray | None = None, record: np.ndarray | None = None) -> BatchResult:
        check_inputs(np.asarray(x), "the batch's input")
        self._record(x, record)
        return super().forward(x, y)

    def recorded(self) -> list[SampleRecord]:
        out, self._records = self._records, []
        return out

    def _record(self, x: np.ndarray, record: np.ndarray | None) -> None:
        if record is None or not np.any(record):
            return
        steps = self.record(np.asarray(x)[np.asarray(record, dtype=bool)])
        z_ids, v_ids = list(self.record_cfg.spikes), list(self.record_cfg.v)
        for i in range(len(steps["z"])):
            y = steps["y"][i] if self.record_cfg.readout else steps["y"][i, :, :0]
            self._records.append(SampleRecord(steps["z"][i][:, z_ids], steps["v"][i][:, v_ids], y))

    def report(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class TrainOptions:
    target: str
    out_dir: Path | None  # the run folder (checkpoints, report, figures); None: nothing is written
    init_weights: Path | None = None
    resume: Path | None = None
    backend: str = "c"
    progress: bool = True
    overwrite: bool = False  # replace a run the folder holds (without it, only --resume may use such a folder)
    argv: tuple[str, ...] | None = None  # the command line, to print the command that resumes the run
    key_file: str | None = None  # a board's shared key (udp:// targets; else $S2EPROP_BOARD_KEY)
    link_patience_s: float = 10.0  # udp:// targets: how long a command may go unanswered


@dataclass
class Position:
    epoch: int = 0
    next_index: int = 0
    samples_trained: int = 0


@dataclass
class RunState:
    """Everything a resumed run needs besides weights and Adam state: where it stands, the records of
    finished epochs, the running counters of the current epoch, and the time spent so far."""

    pos: Position = dataclasses.field(default_factory=Position)
    epochs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    correct: int = 0           # current epoch, so far
    loss_sum: float = 0.0
    seen: int = 0
    train_wall_s: float = 0.0  # time in the training loop only (no evaluation, no checkpoints)
    emulated_ms: int = 0       # chip ticks spent training, earlier sessions
    emulated_eval_ms: int = 0
    samples_lost: int = 0      # training samples whose result never came back (on_loss: count): not trained on

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "RunState":
        d = json.loads(text)
        return cls(**{**d, "pos": Position(**d["pos"])})


# adaptive feedback's learned B and its optimizer moments in a checkpoint (train.feedback adaptive only)
FEEDBACK_KEYS = ("fb", "adam_m_fb", "adam_v_fb")

# train settings that may change when a run is resumed; everything else must match the checkpoint
RESUMABLE_CHANGES = ("epochs", "max_samples", "checkpoint_every_samples", "on_loss", "input_mode",
                     "input_lookahead_ticks")


def learner_kind(target: str) -> str:
    """"golden", or "chip" for the firmware on a chip (the in-process emulator or a board over UDP:
    the same bits, so a checkpoint of one resumes on the other)."""
    return "golden" if target == "golden" else "chip"


def make_trainer(cfg: ExperimentConfig, target: str, weights: Weights, adam: AdamState | None,
                 backend: str = "c", key_file: str | None = None, link_patience_s: float = 10.0,
                 feedback: FeedbackState | None = None) -> Trainer:
    """The trainer of `target`; `feedback`: adaptive feedback's B and moments (a resumed run)."""
    check_engine(engine_of(cfg, target, backend, key_file))
    if target == "golden":
        return GoldenTrainer(cfg.network, cfg.train, weights, adam, record=cfg.record, feedback_state=feedback)
    from s2eprop.host.mapping.partition import plan_partition
    from s2eprop.host.session.runtime import BoardTrainer
    from s2eprop.host.transport import open_transport

    transport = open_transport(target, plan_partition(cfg.network, cfg.partition).n_cores, backend, cfg.chip, key_file,
                               link_patience_s)
    return BoardTrainer(cfg, weights, adam, transport=transport, feedback=feedback)


def epoch_order(train: TrainConfig, epoch: int, n_train: int) -> np.ndarray | None:
    """The sample order of one epoch: None (the dataset's order) unless train.shuffle. A function of
    (seed, epoch) only, so a resumed run continues the same order."""
    if not train.shuffle:
        return None
    return np.random.default_rng([train.seed, epoch]).permutation(n_train)


def check_dataset(cfg: ExperimentConfig, data: Dataset) -> None:
    net = cfg.network
    if data.events and cfg.input.kind != "spikes":
        raise ConfigError(f"dataset {data.name} holds spike events, the config feeds analog input: set input: "
                          f"{{kind: spikes, encoder: none}} (experiments/configs/shd.yaml does)")
    if cfg.input.kind == "spikes":  # encoded by s2eprop.host.data.encoders.encode_dataset (the CLI does it)
        from s2eprop.host.data.encoders import check_spikes

        check_spikes(data.x_train, f"dataset {data.name}, train split")
        if data.x_test is not None:
            check_spikes(data.x_test, f"dataset {data.name}, test split")
    if (data.n_steps, data.n_in) != (net.n_steps, net.n_in):
        raise DataError(f"dataset {data.name} has {data.n_steps} frames of {data.n_in} features, the network "
                        f"expects {net.n_steps} x {net.n_in} (network.n_steps, network.n_in)")
    if len(data.labels) != net.n_out:
        raise DataError(f"dataset {data.name} has {len(data.labels)} classes, the network has "
                        f"{net.n_out} outputs (network.n_out)")


def evaluate(trainer: Trainer, x: np.ndarray, y: np.ndarray, n_classes: int, recordings: Recordings | None = None,
             epoch: int = 0, progress: bool = False) -> dict[str, Any]:
    """Test accuracy, loss and confusion; with `recordings`, the test samples it wants are recorded."""
    preds, losses = [], []
    bar = progress_bar(len(x), "  test", "sample", progress, leave=True)
    for b0 in range(0, len(x), EVAL_BATCH):
        b1 = min(b0 + EVAL_BATCH, len(x))
        flags = None if recordings is None else recordings.flags("test", range(b0, b1))
        if flags is None:
            r = trainer.forward(x[b0:b1], y[b0:b1])
        else:
            assert recordings is not None
            r = trainer.forward(x[b0:b1], y[b0:b1], record=flags)
            recordings.collect(trainer.recorded(), "test", epoch, flags, np.arange(b0, b1), y[b0:b1], r.pred, x[b0:b1])
        preds.append(r.pred)
        losses.append(r.loss)
        bar.update(len(r.pred))
    bar.close()
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    loss = np.concatenate(losses) if losses else np.zeros(0, np.float32)
    loss = loss[pred >= 0]  # samples the chip lost (on_loss: count) count as wrong and have no loss
    cm = confusion_matrix(y, pred, n_classes)
    per_class = [float(cm[k, k] / cm[k].sum()) if cm[k].sum() else None for k in range(n_classes)]
    return {"accuracy": float(np.mean(pred == y)) if len(y) else None, "loss": float(np.mean(loss)) if len(loss) else None,
            "per_class_accuracy": per_class, "confusion": cm, "n": int(len(y)), "lost": int(np.sum(pred < 0))}


def data_fingerprint(data: Dataset) -> str:
    """Identifies a training split: its shape, labels, class names and 64 of its samples (cheap on big sets)."""
    import hashlib

    h = hashlib.sha256(repr((data.x_train.shape, tuple(data.labels))).encode())
    h.update(np.ascontiguousarray(data.y_train, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(data.x_train[::max(1, len(data.x_train) // 64)]).tobytes())
    return h.hexdigest()[:16]


def save_checkpoint(path: Path, trainer: Trainer, session: RunState, cfg: ExperimentConfig, target: str,
                    data_id: str = "") -> Path:
    w, adam = trainer.weights, trainer.adam
    arrays: dict[str, Any] = dict(w.as_dict(), labels=np.asarray(w.labels))
    for k in ("w_in", "w_rec", "w_out"):
        arrays[f"adam_m_{k}"] = adam.m[k]
        arrays[f"adam_v_{k}"] = adam.v[k]
    fb = trainer.feedback_state  # adaptive feedback: B learns, so the checkpoint holds it and its moments
    if fb is not None:
        arrays.update({k: a for k, a in zip(FEEDBACK_KEYS, (fb.b, fb.m, fb.v))})
    arrays.update(adam_t=adam.t, adam_lr=np.float32(adam.lr), adam_b1_pow=np.float32(adam.b1_pow),
                  adam_b2_pow=np.float32(adam.b2_pow), epoch=session.pos.epoch, next_index=session.pos.next_index,
                  samples_trained=session.pos.samples_trained, target=target, session=session.to_json(),
                  config=json.dumps(_learning_config(cfg)), data=data_id)
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path: Path, cfg: ExperimentConfig) -> tuple[Weights, AdamState, RunState, FeedbackState | None]:
    """Weights, optimizer state, position and (train.feedback adaptive) the learned B and its moments."""
    weights = load_weights(path, cfg.network)
    try:
        with np.load(path, allow_pickle=False) as f:
            adam = AdamState(m={k: f[f"adam_m_{k}"] for k in ("w_in", "w_rec", "w_out")},
                             v={k: f[f"adam_v_{k}"] for k in ("w_in", "w_rec", "w_out")},
                             t=int(f["adam_t"]), lr=np.float32(f["adam_lr"]), b1_pow=np.float32(f["adam_b1_pow"]),
                             b2_pow=np.float32(f["adam_b2_pow"]))
            session = RunState.from_json(str(f["session"]))
            saved = json.loads(str(f["config"]))
            held = [k for k in FEEDBACK_KEYS if k in f.files]
            feedback = FeedbackState(*(f[k] for k in FEEDBACK_KEYS)) if len(held) == len(FEEDBACK_KEYS) else None
    except KeyError as exc:
        raise DataError(f"checkpoint {path} lacks {exc}: it is a weights file, not a checkpoint "
                        f"(use --init-weights for weights)") from None
    except (ValueError, TypeError) as exc:  # JSON that does not parse, or not a session's fields
        raise DataError(f"checkpoint {path} holds a damaged session or config record ({exc}): "
                        f"resume from another checkpoint, or start from its weights with --init-weights") from None
    _check_adam(path, adam, weights, session)
    now = _learning_config(cfg)
    defaults = _learning_config(ExperimentConfig())  # settings newer than a checkpoint had their default

    def was(sec: str, k: str) -> Any:
        return saved.get(sec, {}).get(k, defaults[sec].get(k))

    changed = [f"{sec}.{k}: {was(sec, k)!r} -> {v!r}" for sec in now for k, v in now[sec].items() if was(sec, k) != v]
    if changed:
        raise DataError(f"checkpoint {path} was made with another configuration ({'; '.join(changed)}); "
                        f"resume with the same config (only train.{', train.'.join(RESUMABLE_CHANGES)} may change)")
    if cfg.train.feedback != "adaptive":
        return weights, adam, session, None
    if feedback is None:  # checkpoints made before they held B (or damaged): B would restart from its seed
        lacks = ", ".join(k for k in FEEDBACK_KEYS if k not in held)
        raise DataError(f"checkpoint {path} lacks {lacks}: train.feedback adaptive learns the feedback matrix B, "
                        f"and this checkpoint was made before checkpoints held it (or is damaged), so the run cannot "
                        f"resume with the same bits; start from its weights with --init-weights {path} (B and its "
                        f"moments restart from train.seed), or train again from the start")
    return weights, adam, session, feedback.check(cfg.network, f"checkpoint {path}")


def _check_adam(path: Path, adam: AdamState, weights: Weights, session: RunState) -> None:
    """A checkpoint's optimizer state must fit its weights: moments of the weights' shapes, t >= 0,
    lr > 0 and the beta powers in (0, 1]."""
    for k, w in weights.as_dict().items():
        for name, moments in (("adam_m", adam.m), ("adam_v", adam.v)):
            if moments[k].shape != w.shape:
                raise DataError(f"checkpoint {path}: {name}_{k} has shape {moments[k].shape}, its weights "
                                f"{w.shape}: the checkpoint is damaged")
    if adam.t < 0 or not adam.lr > 0 or not (0 < adam.b1_pow <= 1 and 0 < adam.b2_pow <= 1):
        raise DataError(f"checkpoint {path}: bad Adam state (adam_t {adam.t}, lr {adam.lr}, beta powers "
                        f"{adam.b1_pow}, {adam.b2_pow}): the checkpoint is damaged")
    if session.pos.epoch < 0 or session.pos.next_index < 0 or session.pos.samples_trained < 0:
        raise DataError(f"checkpoint {path}: bad position {session.pos}: the checkpoint is damaged")


def checkpoint_origin(path: Path) -> tuple[str, str]:
    """(target, training-data fingerprint) a checkpoint was made with ("" where it does not say)."""
    with np.load(path, allow_pickle=False) as f:
        return (str(f["target"]) if "target" in f.files else "", str(f["data"]) if "data" in f.files else "")


def _learning_config(cfg: ExperimentConfig) -> dict[str, dict[str, Any]]:
    """The settings that decide what a run learns (JSON-comparable)."""
    train = {k: v for k, v in dataclasses.asdict(cfg.train).items() if k not in RESUMABLE_CHANGES}
    return {"network": dataclasses.asdict(cfg.network), "train": train,
            "partition": dataclasses.asdict(cfg.partition), "input": dataclasses.asdict(cfg.input)}


class TrainingDiverged(HostError):
    """The loss became NaN or infinite."""


RUN_FILES = ("report.json", "weights.npz", "checkpoint.npz", "confusion.png", "training.png", "timing.npz",
             "timing.png", "tick.png")


def prepare_run_folder(out: Path, resume: Path | None, overwrite: bool) -> None:
    """Check, before any work, that `out` can take this run: a folder (made if missing) that is writable
    and holds no other run unless resuming or overwriting (then the old run's files are removed, so
    that the folder never mixes two runs). Leftover temp files of a killed run are removed."""
    if out.exists() and not out.is_dir():
        raise HostError(f"--out {out} is a file, not a folder: choose a folder for the run")
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held and resume is None and not overwrite:
        raise HostError(f"--out {out} holds a run ({', '.join(held)}): continue it with --resume "
                        f"{out / 'checkpoint.npz'}, replace it with --overwrite, or choose another folder")
    writable_folder(out, "--out")
    for tmp in out.glob(".*.tmp"):  # atomic_write's temp files, left by a run that was killed
        tmp.unlink(missing_ok=True)
    if overwrite and resume is None:
        for name in held:
            (out / name).unlink()


@contextmanager
def _stop_on_signals() -> Iterator[dict[str, int]]:
    """SIGINT and SIGTERM ask the training loop to stop at the next sample boundary (after a checkpoint);
    a second one stops at once."""
    asked: dict[str, int] = {}
    if threading.current_thread() is not threading.main_thread():
        yield asked
        return

    def ask(signum: int, frame: Any) -> None:
        if asked:
            raise KeyboardInterrupt
        asked["signal"] = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this sample (or this evaluation), with a checkpoint; "
              f"again to stop at once", file=sys.stderr, flush=True)

    old = {s: signal.signal(s, ask) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield asked
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def resume_hint(ckpt: Path | None, command_line: tuple[str, ...] | None) -> str:
    """Where the checkpoint is and the command that resumes from it: the run's own command line with
    --resume in place of --init-weights / --resume / --overwrite."""
    if ckpt is None:
        return "no run folder, so no checkpoint (the session's weights are what was trained)"
    if not ckpt.exists():
        return "no checkpoint was written yet: nothing to resume"
    if command_line is None:
        return f"checkpoint: {ckpt}; resume with: s2eprop train (the same options) --resume {ckpt}"
    argv, skip = [], False
    for a in command_line:
        if skip:
            skip = False
        elif a in ("--resume", "--init-weights"):
            skip = True
        elif a != "--overwrite" and not a.startswith(("--resume=", "--init-weights=")):
            argv.append(a)
    import shlex

    cmd = " ".join(shlex.quote(a) for a in ["s2eprop", *argv, "--resume", str(ckpt)])
    return f"checkpoint: {ckpt}; resume with: {cmd}"


def close_quietly(trainer: Trainer) -> None:
    """Close a trainer after an error, keeping that error the one reported (a dead board fails this too)."""
    try:
        trainer.close()
    except Exception:  # noqa: BLE001 - the error in flight is the one to report
        pass


def train_epochs(cfg: ExperimentConfig, data: Dataset, opts: TrainOptions, trainer: Trainer,
                 session: RunState, data_id: str, on_sample: Callable[[dict[str, Any]], None] | None = None
                 ) -> dict[str, Any]:
    """The remaining epochs of a run on `trainer` (the session API sets it up), its report and, with
    opts.out_dir, its run folder. The report also holds `_last_eval` and `_recordings` for the caller."""
    tr = cfg.train
    n_train = len(data.x_train) if tr.max_samples is None else min(tr.max_samples, len(data.x_train))
    if n_train == 0:
        raise DataError(f"dataset {data.name} has no training samples")
    t0 = time.perf_counter()
    ckpt = None if opts.out_dir is None else opts.out_dir / "checkpoint.npz"
    lost_before = session.samples_lost
    base_ticks = (session.emulated_ms, session.emulated_eval_ms)

    def snapshot() -> RunState:
        """The session with this trainer's chip time added to that of earlier sessions."""
        ms_train, ms_eval = trainer.chip_ms
        return dataclasses.replace(session, emulated_ms=base_ticks[0] + ms_train,
                                   emulated_eval_ms=base_ticks[1] + ms_eval)

    has_test = data.x_test is not None and len(data.x_test) > 0  # an empty test split is none
    recordings = (Recordings(cfg.record, np.array(cfg.record.spikes, np.int32), np.array(cfg.record.v, np.int32))
                  if cfg.record.active else None)
    with _stop_on_signals() as asked:
        session_samples, last_eval = _epochs(cfg, data, opts, trainer, session, ckpt, snapshot, asked, has_test,
                                             data_id, recordings, on_sample)
    if session_samples == 0 and opts.progress:
        print(f"nothing to train: the run already has {session.pos.epoch} of {tr.epochs} epochs "
              f"(raise --epochs to train more)")
    session = snapshot()
    wall_s = time.perf_counter() - t0
    report = finish_run(cfg, data, opts, trainer, session, session_samples, last_eval, has_test, wall_s, recordings,
                        session.samples_lost - lost_before)
    return {**report, "_last_eval": last_eval, "_recordings": recordings}


def _epochs(cfg: ExperimentConfig, data: Dataset, opts: TrainOptions, trainer: Trainer, session: RunState,
            ckpt: Path | None, snapshot: Any, asked: dict[str, int], has_test: bool, data_id: str,
            recordings: Recordings | None = None, on_sample: Callable[[dict[str, Any]], None] | None = None
            ) -> tuple[int, dict[str, Any] | None]:
    """Train the remaining epochs; returns the samples trained and the last test evaluation."""
    tr = cfg.train
    n_train = len(data.x_train) if tr.max_samples is None else min(tr.max_samples, len(data.x_train))
    masks = FeatureMasks(tr.freq_masks, tr.freq_mask_max_bands, tr.time_masks, tr.time_mask_max_steps)
    session_samples, last_eval = 0, None
    timing = getattr(trainer, "timing", None)
    expect = getattr(trainer, "expect", None)  # a chip takes the next sample's input while one runs
    for epoch in range(session.pos.epoch, tr.epochs):
        start = session.pos.next_index if epoch == session.pos.epoch else 0
        if start == 0:
            trainer.start_epoch(epoch)
            session.correct, session.loss_sum, session.seen = 0, 0.0, 0
        t_epoch, epoch_train_s, epoch_samples = time.perf_counter(), 0.0, 0  # this session's part of the epoch
        bar = progress_bar(n_train, f"epoch {epoch + 1}/{tr.epochs} [{opts.target}]", "sample", opts.progress,
                           initial=start, leave=True)
        order = epoch_order(tr, epoch, n_train)

        def batch_input(b0: int) -> np.ndarray:
            b1 = min(b0 + tr.batch_size, n_train)
            xb = data.x_train[slice(b0, b1) if order is None else order[b0:b1]]
            if masks.active:  # seeded by the batch's place, so a resumed run masks the same
                xb = mask_features(xb, masks, np.random.default_rng([tr.seed, MASK_STREAM, epoch, b0]))
            return xb

        following = batch_input(start) if start < n_train else None
        for b0 in range(start, n_train, tr.batch_size):
            b1 = min(b0 + tr.batch_size, n_train)
            idx = slice(b0, b1) if order is None else order[b0:b1]
            xb, following = following, (batch_input(b1) if b1 < n_train else None)
            if expect is not None:
                expect(None if following is None else following[0])
            if timing is not None:  # the per-tick record keeps the first and the last sample of each epoch
                timing.record(b0 == 0 or b1 >= n_train)
            t_batch = time.perf_counter()
            flags = None if recordings is None else recordings.flags("train", range(b0, b1))
            try:
                r = (trainer.train_batch(xb, data.y_train[idx]) if flags is None
                     else trainer.train_batch(xb, data.y_train[idx], record=flags))
            except KeyboardInterrupt:  # inside a sample: its state is not a checkpoint's
                raise TrainingInterrupted(f"interrupted during sample {b0} of epoch {epoch + 1}; {resume_hint(ckpt, opts.argv)}") \
                    from None
            batch_s = time.perf_counter() - t_batch
            session.train_wall_s += batch_s
            epoch_train_s += batch_s
            epoch_samples += b1 - b0
            if flags is not None:
                assert recordings is not None
                where = np.arange(b0, b1) if order is None else order[b0:b1]
                recordings.collect(trainer.recorded(), "train", epoch, flags, where, data.y_train[where], r.pred, xb)
            if timing is not None:
                timing.record(False)
            kept = r.pred >= 0  # a sample the chip lost (on_loss: count) has no loss and counts as wrong
            session.samples_lost += int(np.sum(~kept))
            batch_loss = float(np.sum(r.loss[kept])) + r.l2_loss * int(np.sum(kept))
            if not np.isfinite(batch_loss) or batch_loss > LOSS_EXPLODED * (b1 - b0):
                raise TrainingDiverged(f"training diverged at epoch {epoch + 1}, sample {b0}: the loss is {batch_loss:.4g}"
                                       f" (a sane run stays below "
                                       f"{LOSS_EXPLODED:g} a sample); lower train.lr (now {tr.lr}) or check the config; "
                                       f"{resume_hint(ckpt, opts.argv)}")
            session.correct += int(np.sum(r.pred == data.y_train[idx]))
            session.loss_sum += batch_loss
            session.seen += b1 - b0
            session_samples += b1 - b0
            session.pos = Position(epoch, b1, session.pos.samples_trained + (b1 - b0))
            if on_sample is not None:
                on_sample({"epoch": epoch, "index": b0, "labels": data.y_train[idx], "predictions": r.pred,
                           "losses": r.loss, "samples_trained": session.pos.samples_trained})
            bar.update(b1 - b0)
            extra = {} if timing is None else {"overruns": timing.overruns_seen}
            bar.set_postfix(acc=f"{session.correct / session.seen:.3f}", loss=f"{session.loss_sum / session.seen:.3f}",
                            **extra, refresh=False)  # shown at the bar's next timed refresh, not once per sample
            every = tr.checkpoint_every_samples
            done = session.pos.samples_trained
            if ckpt is not None and (asked or (every and done // every != (done - (b1 - b0)) // every)):
                save_checkpoint(ckpt, trainer, snapshot(), cfg, opts.target, data_id)
            if asked:
                bar.close()
                name = signal.Signals(asked["signal"]).name
                raise TrainingInterrupted(f"stopped by {name} after {done} samples; {resume_hint(ckpt, opts.argv)}")
        bar.close()
        record: dict[str, Any] = {"epoch": epoch, "train_accuracy": session.correct / max(session.seen, 1),
                                  "loss": session.loss_sum / max(session.seen, 1), "samples": session.seen}
        session.epochs.append(record)
        session.pos = Position(epoch + 1, 0, session.pos.samples_trained)
        session.correct, session.loss_sum, session.seen = 0, 0.0, 0
        if has_test:
            if ckpt is not None:  # the finished epoch is safe before its evaluation, which a Ctrl-C may cut short
                save_checkpoint(ckpt, trainer, snapshot(), cfg, opts.target, data_id)
            try:
                last_eval = evaluate(trainer, data.x_test, data.y_test, len(data.labels),
                                     recordings if epoch == tr.epochs - 1 and recordings and recordings.rec.test
                                     else None, epoch, opts.progress)
            except KeyboardInterrupt:
                raise TrainingInterrupted(f"interrupted during the test evaluation of epoch {epoch + 1} (its training "
                                          f"is kept); {resume_hint(ckpt, opts.argv)}") from None
            record["test_accuracy"] = last_eval["accuracy"]
            record["test_loss"] = last_eval["loss"]
        # wall time of the epoch in this session (a resumed epoch: its part after the resume): all of it
        # (samples, checkpoints, test evaluation), and in the training samples alone, per sample
        record.update(wall_s=time.perf_counter() - t_epoch, train_wall_s=epoch_train_s,
                      ms_per_training_sample=1000.0 * epoch_train_s / max(epoch_samples, 1),
                      samples_timed=epoch_samples)
        if ckpt is not None:  # with the test accuracy and the epoch's times
            save_checkpoint(ckpt, trainer, snapshot(), cfg, opts.target, data_id)
        if opts.progress:
            print(f"epoch {epoch + 1}/{tr.epochs}: train accuracy (online) {100 * record['train_accuracy']:.1f} %, "
                  f"loss {record['loss']:.4f}" + ("" if record.get("test_accuracy") is None
                                                  else f", test accuracy {100 * record['test_accuracy']:.1f} %")
                  + f" ({record['wall_s']:.1f} s, {record['ms_per_training_sample']:.2f} ms per training sample)",
                  flush=True)
        if asked:
            name = signal.Signals(asked["signal"]).name
            raise TrainingInterrupted(f"stopped by {name} after epoch {epoch + 1} ({session.pos.samples_trained} "
                                      f"samples); {resume_hint(ckpt, opts.argv)}")
    return session_samples, last_eval


def finish_run(cfg: ExperimentConfig, data: Dataset, opts: TrainOptions, trainer: Trainer, session: RunState,
            session_samples: int, last_eval: dict[str, Any] | None, has_test: bool, wall_s: float,
            recordings: Recordings | None = None, lost_this_session: int = 0) -> dict[str, Any]:
    """The run's report; with opts.out_dir also its run folder (weights, report, figures). Samples lost (no
    result came back, on_loss: count) are counted as lost, not as trained."""
    out = opts.out_dir
    if out is not None:
        trainer.weights.save(out / "weights.npz")
    epochs = session.epochs
    report: dict[str, Any] = {
        "target": opts.target, "dataset": data.name, "labels": list(data.labels),
        "samples_trained": session.pos.samples_trained - session.samples_lost,
        "samples_trained_this_session": session_samples - lost_this_session,
        "samples_lost": session.samples_lost, "samples_lost_this_session": lost_this_session,
        "epochs": epochs, "train_accuracy": epochs[-1]["train_accuracy"] if epochs else None,
        "test_accuracy": None, "wall_s": wall_s, "train_wall_s": session.train_wall_s,
        "ms_per_training_sample": 1000.0 * session.train_wall_s / max(session.pos.samples_trained, 1),
        "config": _config_dict(cfg), "files": {"weights": "weights.npz", "checkpoint": "checkpoint.npz"},
        "input": input_stats(data, cfg.input, cfg.network),
    }
    figures = {}
    if has_test:
        ev = last_eval or evaluate(trainer, data.x_test, data.y_test, len(data.labels),
                                   recordings if recordings and recordings.rec.test else None, session.pos.epoch - 1)
        report.update(test_accuracy=ev["accuracy"], test_loss=ev["loss"], test_samples=ev["n"],
                      test_samples_lost=ev["lost"],
                      per_class_test_accuracy=dict(zip(data.labels, ev["per_class_accuracy"])),
                      confusion_matrix=ev["confusion"].tolist())
        if out is not None:
            figures["confusion"] = plot_confusion(ev["confusion"], tuple(data.labels), out / "confusion.png",
                                                  f"test accuracy {100 * ev['accuracy']:.1f} % ({opts.target})").name
    if epochs and out is not None:
        figures["training"] = plot_training(epochs, out / "training.png",
                                            f"{data.name} on {opts.target}: {session.pos.samples_trained:,} samples").name
    save_timing = getattr(trainer, "save_timing", None)
    if save_timing is not None and out is not None:
        timing_files = save_timing(out)
        figures.update({k: v for k, v in timing_files.items() if k != "data"})
        if "data" in timing_files:
            report["files"]["timing"] = timing_files["data"]
    if recordings is not None and recordings.rows and out is not None:
        from s2eprop.host.plots.raster import plot_raster

        report["files"]["recordings"] = recordings.save(out / "recordings.npz", tuple(data.labels)).name
        figures["raster"] = plot_raster(out / "recordings.npz", out / "raster.png").name
    report["figures"] = figures
    target_report = trainer.report()
    if target_report:
        report.update(target_report, emulated_ms=session.emulated_ms, emulated_eval_ms=session.emulated_eval_ms)
    if recordings is not None:
        report["recording"] = {**report.get("recording", {}), "samples": len(recordings.rows),
                               "records_missing": recordings.missing,
                               "spike_neurons": len(recordings.z_neurons), "v_neurons": len(recordings.v_neurons)}
    if out is None:
        report["files"], report["figures"] = {}, {}
    else:
        write_json(out / "report.json", report)
    return report


def _config_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d["dataset"]["options"] = dict(d["dataset"]["options"])
    return d
