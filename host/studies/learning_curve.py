"""Studies layer: the learning curve. Train and test accuracy and loss per epoch of the emulated chip
(on-chip E-prop, 12 cores) and of the golden model, from the same initial weights and sample order, on
one figure: the built-in keyword set by default, Speech Commands with --data.

    s2eprop study curve --out DIR [--epochs N] [--max-samples N] [--data PATH]  ->  result.json, curve.png
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

from s2eprop.host.config import ExperimentConfig
from s2eprop.host.errors import HostError
from s2eprop.host.studies.common import save_figure, study_folder, write_result
from s2eprop.host.weights import init_weights

TARGETS = ("emulator", "golden")

def curve(cfg: ExperimentConfig, data: Any, target: str, epochs: int, n_train: int) -> list[dict[str, Any]]:
    """Per epoch: online train accuracy and loss (before each update), test accuracy and loss."""
    from s2eprop.host.session.train import evaluate, make_trainer

    trainer = make_trainer(cfg, target, init_weights(cfg.network, cfg.train.seed, tuple(data.labels)), None)
    rows = []
    try:
        for epoch in range(epochs):
            t0 = time.perf_counter()
            trainer.start_epoch(epoch)
            correct, loss = 0, 0.0
            for i in range(n_train):
                r = trainer.train_batch(data.x_train[i:i + 1], data.y_train[i:i + 1])
                correct += int(r.pred[0] == data.y_train[i])
                loss += float(r.loss[0]) + r.l2_loss
            ev = evaluate(trainer, data.x_test, data.y_test, len(data.labels))
            rows.append({"epoch": epoch + 1, "train_accuracy": correct / n_train, "train_loss": loss / n_train,
                         "test_accuracy": ev["accuracy"], "test_loss": ev["loss"],
                         "wall_s": round(time.perf_counter() - t0, 2)})
            print(f"curve: {target} epoch {epoch + 1}/{epochs}: train {100 * correct / n_train:.1f} %, test "
                  f"{100 * ev['accuracy']:.1f} % ({rows[-1]['wall_s']:.0f} s)", flush=True)
    finally:
        trainer.close()
    return rows

def plot(curves: dict[str, list[dict[str, Any]]], path: Path, title: str) -> Path:
    from s2eprop.host.plots.figures import pyplot

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    styles = {"emulator": ("tab:blue", "o"), "golden": ("tab:orange", "s")}
    for target, rows in curves.items():
        color, marker = styles[target]
        ep = [r["epoch"] for r in rows]
        train = {"ls": ":", "lw": 1.2, "marker": marker, "mfc": "white", "color": color}   # open marks, dotted
        test = {"ls": "-", "lw": 2.0, "marker": marker, "color": color}                   # filled marks, solid
        ax1.plot(ep, [100 * r["train_accuracy"] for r in rows], **train, label=f"{target} train (online)")
        ax1.plot(ep, [100 * r["test_accuracy"] for r in rows], **test, label=f"{target} test")
        ax2.plot(ep, [r["train_loss"] for r in rows], **train, label=f"{target} train (online)")
        ax2.plot(ep, [r["test_loss"] for r in rows], **test, label=f"{target} test")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("accuracy (%)")
    for ax in (ax1, ax2):
        ax.set_xticks([r["epoch"] for r in next(iter(curves.values()))])
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("loss (cross-entropy)")
    for ax in (ax1, ax2):
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return save_figure(plt, fig, path)

def run(out_dir: Path, cfg: ExperimentConfig | None = None, epochs: int = 3, max_samples: int = 1000,
        targets: Sequence[str] = TARGETS, data: Any = None) -> dict[str, Any]:
    """The learning curve into `out_dir` (result.json, curve.png)."""
    if epochs < 1 or max_samples < 1:
        raise HostError(f"study curve: --epochs and --max-samples must be >= 1, got {epochs} and {max_samples}")
    out_dir = study_folder(out_dir, "curve")
    cfg = cfg or ExperimentConfig()
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=1)).validate()
    if data is None:
        from s2eprop.host.data.loader import load_dataset

        data = load_dataset(cfg.dataset, progress=False)
    if data.x_test is None or not len(data.x_test):
        raise HostError(f"study curve: dataset {data.name} has no test split")
    n_train = min(max_samples, len(data.x_train))
    curves = {t: curve(cfg, data, t, epochs, n_train) for t in targets}
    gap = {f"epoch_{r['epoch']}": round(r["test_accuracy"] - g["test_accuracy"], 4)
           for r, g in zip(curves.get("emulator", []), curves.get("golden", []))}
    title = f"{data.name or cfg.dataset.kind}: {n_train} training samples per epoch, {len(data.x_test)} test"
    result = {"dataset": data.name or cfg.dataset.kind, "train_samples_per_epoch": n_train,
              "test_samples": int(len(data.x_test)), "curves": curves,
              "test_accuracy_emulator_minus_golden": gap,
              "paper": "91.12 % test accuracy on GSC after 33 epochs on SpiNNaker 2; TensorFlow similar"}
    return write_result(out_dir, "curve", result, {"curve": plot(curves, out_dir / "curve.png", title)})

def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for target, rows in result["curves"].items():
        last = rows[-1]
        lines.append(f"{target}: epoch {last['epoch']}: train {100 * last['train_accuracy']:.1f} %, test "
                     f"{100 * last['test_accuracy']:.1f} % (loss {last['test_loss']:.3f}); "
                     f"{sum(r['wall_s'] for r in rows):.0f} s")
    return lines
