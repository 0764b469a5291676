"""Host layer: the training session behind `s2eprop train`: epochs over a dataset on a target
(golden model or emulated chip), progress, checkpoints at sample boundaries, run folder and report."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from host.config import ExperimentConfig
from host.data.dataset import Dataset
from host.errors import ConfigError, DataError
from host.figures import confusion_matrix, plot_confusion, plot_training
from host.files import atomic_write, write_json
from host.reference.golden import AdamState, BatchResult, GoldenModel
from host.weights import Weights, init_weights, load_weights

TARGETS = ("golden", "emulator")
EVAL_BATCH = 256


class Trainer(Protocol):
    def train_batch(self, x: np.ndarray, y: np.ndarray) -> BatchResult: ...
    def forward(self, x: np.ndarray, y: np.ndarray | None = None) -> BatchResult: ...
    def start_epoch(self, epoch: int) -> None: ...
    @property
    def weights(self) -> Weights: ...
    @property
    def adam(self) -> AdamState: ...


@dataclass(frozen=True)
class TrainOptions:
    target: str
    out_dir: Path
    init_weights: Path | None = None
    resume: Path | None = None
    backend: str = "c"
    progress: bool = True


@dataclass
class Position:
    epoch: int = 0
    next_index: int = 0
    samples_trained: int = 0


def make_trainer(cfg: ExperimentConfig, target: str, weights: Weights, adam: AdamState | None,
                 backend: str = "c") -> Trainer:
    if target == "golden":
        return GoldenModel(cfg.network, cfg.train, weights, adam)
    if target == "emulator":
        from host.runtime import BoardTrainer

        return BoardTrainer(cfg, weights, adam, backend=backend)
    raise ConfigError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")


def check_dataset(cfg: ExperimentConfig, data: Dataset) -> None:
    net = cfg.network
    if (data.n_steps, data.n_in) != (net.n_steps, net.n_in):
        raise DataError(f"dataset {data.name} has {data.n_steps} frames of {data.n_in} features, the network "
                        f"expects {net.n_steps} x {net.n_in} (network.n_steps, network.n_in)")
    if len(data.labels) != net.n_out:
        raise DataError(f"dataset {data.name} has {len(data.labels)} classes, the network has "
                        f"{net.n_out} outputs (network.n_out)")


def evaluate(trainer: Trainer, x: np.ndarray, y: np.ndarray, n_classes: int) -> dict[str, Any]:
    preds, losses = [], []
    for b0 in range(0, len(x), EVAL_BATCH):
        r = trainer.forward(x[b0:b0 + EVAL_BATCH], y[b0:b0 + EVAL_BATCH])
        preds.append(r.pred)
        losses.append(r.loss)
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    loss = np.concatenate(losses) if losses else np.zeros(0, np.float32)
    cm = confusion_matrix(y, pred, n_classes)
    per_class = [float(cm[k, k] / cm[k].sum()) if cm[k].sum() else None for k in range(n_classes)]
    return {"accuracy": float(np.mean(pred == y)) if len(y) else None, "loss": float(np.mean(loss)) if len(y) else None,
            "per_class_accuracy": per_class, "confusion": cm, "n": int(len(y))}


def save_checkpoint(path: Path, trainer: Trainer, pos: Position, target: str) -> Path:
    w, adam = trainer.weights, trainer.adam
    arrays: dict[str, Any] = dict(w.as_dict(), labels=np.asarray(w.labels))
    for k in ("w_in", "w_rec", "w_out"):
        arrays[f"adam_m_{k}"] = adam.m[k]
        arrays[f"adam_v_{k}"] = adam.v[k]
    arrays.update(adam_t=adam.t, adam_lr=np.float32(adam.lr), adam_b1_pow=np.float32(adam.b1_pow),
                  adam_b2_pow=np.float32(adam.b2_pow), epoch=pos.epoch, next_index=pos.next_index,
                  samples_trained=pos.samples_trained, target=target)
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path: Path, cfg: ExperimentConfig) -> tuple[Weights, AdamState, Position]:
    weights = load_weights(path, cfg.network)
    try:
        with np.load(path, allow_pickle=False) as f:
            adam = AdamState(m={k: f[f"adam_m_{k}"] for k in ("w_in", "w_rec", "w_out")},
                             v={k: f[f"adam_v_{k}"] for k in ("w_in", "w_rec", "w_out")},
                             t=int(f["adam_t"]), lr=np.float32(f["adam_lr"]), b1_pow=np.float32(f["adam_b1_pow"]),
                             b2_pow=np.float32(f["adam_b2_pow"]))
            pos = Position(int(f["epoch"]), int(f["next_index"]), int(f["samples_trained"]))
    except KeyError as exc:
        raise DataError(f"checkpoint {path} lacks {exc}: it is a weights file, not a checkpoint "
                        f"(use --init-weights for weights)") from None
    return weights, adam, pos


def run_training(cfg: ExperimentConfig, data: Dataset, opts: TrainOptions) -> dict[str, Any]:
    check_dataset(cfg, data)
    out = opts.out_dir
    pos, adam = Position(), None
    if opts.resume is not None:
        weights, adam, pos = load_checkpoint(opts.resume, cfg)
    elif opts.init_weights is not None:
        weights = load_weights(opts.init_weights, cfg.network)
    else:
        weights = init_weights(cfg.network, cfg.train.seed, data.labels)
    if weights.labels and tuple(weights.labels) != tuple(data.labels):
        raise DataError(f"weights were trained on labels {list(weights.labels)}, the dataset has {list(data.labels)}")
    weights = dataclasses.replace(weights, labels=tuple(data.labels))
    trainer = make_trainer(cfg, opts.target, weights, adam, opts.backend)
    out.mkdir(parents=True, exist_ok=True)
    tr = cfg.train
    n_train = len(data.x_train) if tr.max_samples is None else min(tr.max_samples, len(data.x_train))
    if n_train == 0:
        raise DataError(f"dataset {data.name} has no training samples")
    t0 = time.perf_counter()
    epochs: list[dict[str, Any]] = []
    ckpt = out / "checkpoint.npz"
    for epoch in range(pos.epoch, tr.epochs):
        start = pos.next_index if epoch == pos.epoch else 0
        if start == 0:
            trainer.start_epoch(epoch)
        correct, loss_sum, seen = 0, 0.0, 0
        bar = tqdm(total=n_train, initial=start, desc=f"epoch {epoch + 1}/{tr.epochs} [{opts.target}]",
                   unit="sample", disable=not opts.progress, leave=True)
        for b0 in range(start, n_train, tr.batch_size):
            b1 = min(b0 + tr.batch_size, n_train)
            r = trainer.train_batch(data.x_train[b0:b1], data.y_train[b0:b1])
            correct += int(np.sum(r.pred == data.y_train[b0:b1]))
            loss_sum += float(np.sum(r.loss)) + r.l2_loss * (b1 - b0)
            seen += b1 - b0
            pos = Position(epoch, b1, pos.samples_trained + (b1 - b0))
            bar.update(b1 - b0)
            bar.set_postfix(acc=f"{correct / seen:.3f}", loss=f"{loss_sum / seen:.3f}")
            every = tr.checkpoint_every_samples
            if every and pos.samples_trained // every != (pos.samples_trained - (b1 - b0)) // every:
                save_checkpoint(ckpt, trainer, pos, opts.target)
        bar.close()
        pos = Position(epoch + 1, 0, pos.samples_trained)
        record: dict[str, Any] = {"epoch": epoch, "train_accuracy": correct / max(seen, 1),
                                  "loss": loss_sum / max(seen, 1), "samples": seen}
        if data.x_test is not None:
            record["test_accuracy"] = evaluate(trainer, data.x_test, data.y_test, len(data.labels))["accuracy"]
        epochs.append(record)
        save_checkpoint(ckpt, trainer, pos, opts.target)
    wall_s = time.perf_counter() - t0

    final = trainer.weights
    final.save(out / "weights.npz")
    report: dict[str, Any] = {
        "target": opts.target, "dataset": data.name, "labels": list(data.labels),
        "samples_trained": pos.samples_trained, "epochs": epochs,
        "train_accuracy": epochs[-1]["train_accuracy"] if epochs else None,
        "test_accuracy": None, "wall_s": wall_s,
        "ms_per_training_sample": 1000.0 * wall_s / max(pos.samples_trained, 1),
        "config": _config_dict(cfg), "files": {"weights": "weights.npz", "checkpoint": "checkpoint.npz"},
    }
    figures = {}
    if data.x_test is not None:
        ev = evaluate(trainer, data.x_test, data.y_test, len(data.labels))
        report.update(test_accuracy=ev["accuracy"], test_loss=ev["loss"], test_samples=ev["n"],
                      per_class_test_accuracy=dict(zip(data.labels, ev["per_class_accuracy"])),
                      confusion_matrix=ev["confusion"].tolist())
        figures["confusion"] = plot_confusion(ev["confusion"], tuple(data.labels), out / "confusion.png",
                                              f"test accuracy {100 * ev['accuracy']:.1f} % ({opts.target})").name
    if epochs:
        figures["training"] = plot_training(epochs, out / "training.png").name
    report["figures"] = figures
    if opts.target == "emulator":
        report.update(trainer.memory_report())  # type: ignore[attr-defined]
        report["emulated_ms"] = int(trainer.ticks_train)  # type: ignore[attr-defined]
        report["emulated_eval_ms"] = int(trainer.ticks_eval)  # type: ignore[attr-defined]
        report["provenance"] = trainer.provenance()  # type: ignore[attr-defined]
    write_json(out / "report.json", report)
    return report


def _config_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d["dataset"]["options"] = dict(d["dataset"]["options"])
    return d
