"""Studies layer: accuracy against spike loss. One epoch of on-chip training (functional chip, 12 cores) per
loss rate, the router dropping that fraction of the spike packets (`chip.faults`, a seeded rate:
docs/chip.md section 7) with `train.on_loss: count`, then the test accuracy (inference without faults is
not what a lossy chip gives: the test runs through the same lossy router). Same initial weights and
sample order at every rate.

    s2eprop study loss --out DIR [--max-samples N] [--data PATH]  ->  result.json, loss.png
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

from s2eprop.host.config import ExperimentConfig
from s2eprop.host.errors import HostError
from s2eprop.host.fault_config import FaultConfig
from s2eprop.host.studies.common import save_figure, study_folder, write_result
from s2eprop.host.weights import init_weights

RATES = (0.0, 0.001, 0.01, 0.05)
FAULT_SEED = 1


def lossy_config(cfg: ExperimentConfig, rate: float) -> ExperimentConfig:
    """cfg on the functional chip, counting losses, its router dropping `rate` of the spike packets."""
    faults = (FaultConfig("spike", "drop", rate=rate, seed=FAULT_SEED),) if rate else ()
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=1, on_loss="count"),
                               chip=dataclasses.replace(cfg.chip, mode="functional", faults=faults)).validate()


def one_rate(cfg: ExperimentConfig, data: Any, rate: float, n_train: int) -> dict[str, Any]:
    """One epoch at one loss rate: online train accuracy, test accuracy and loss, what was lost."""
    from s2eprop.host.session.train import evaluate, make_trainer

    cfg = lossy_config(cfg, rate)
    trainer = make_trainer(cfg, "emulator", init_weights(cfg.network, cfg.train.seed, tuple(data.labels)), None)
    t0 = time.perf_counter()
    try:
        trainer.start_epoch(0)
        correct, spikes = 0, 0
        for i in range(n_train):
            r = trainer.train_batch(data.x_train[i:i + 1], data.y_train[i:i + 1])
            correct += int(r.pred[0] == data.y_train[i])
            spikes += int(r.spikes[0])  # one packet per spike
        injected = trainer.faults_injected().get("spike", {}).get("drop", 0) if rate else 0
        ev = evaluate(trainer, data.x_test, data.y_test, len(data.labels))
        lost = {k: v for k, v in trainer.provenance().items() if v}
    finally:
        trainer.close()
    row = {"rate": rate, "train_accuracy_online": correct / n_train, "test_accuracy": ev["accuracy"],
           "test_loss": ev["loss"], "spike_packets_sent_training": spikes, "spike_packets_dropped_training": injected,
           "losses_counted": lost, "wall_s": round(time.perf_counter() - t0, 1)}
    print(f"loss: rate {100 * rate:g} %: train {100 * row['train_accuracy_online']:.1f} %, test "
          f"{100 * ev['accuracy']:.1f} %, {injected:,} of {spikes:,} spike packets of training dropped ({row['wall_s']:.0f} s)", flush=True)
    return row


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    from s2eprop.host.plots.figures import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    xs = range(len(rows))
    ax.plot(xs, [100 * r["test_accuracy"] for r in rows], "o-", color="tab:blue", lw=2, label="test")
    ax.plot(xs, [100 * r["train_accuracy_online"] for r in rows], "o:", color="tab:blue", mfc="white",
            label="train (online)")
    ax.set_xticks(list(xs), [f"{100 * r['rate']:g} %" for r in rows])
    ax.set_xlabel("spike packets dropped by the router")
    ax.set_ylabel("accuracy after one epoch (%)")
    ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    return save_figure(plt, fig, path)


def run(out_dir: Path, cfg: ExperimentConfig | None = None, rates: Sequence[float] = RATES,
        max_samples: int | None = None, data: Any = None) -> dict[str, Any]:
    """The loss study into `out_dir` (result.json, loss.png)."""
    if max_samples is not None and max_samples < 1:
        raise HostError(f"study loss: --max-samples must be >= 1, got {max_samples}")
    out_dir = study_folder(out_dir, "loss")
    cfg = cfg or ExperimentConfig()
    if data is None:
        from s2eprop.host.data.loader import load_dataset

        data = load_dataset(cfg.dataset, progress=False)
    if data.x_test is None or not len(data.x_test):
        raise HostError(f"study loss: dataset {data.name} has no test split")
    n_train = len(data.x_train) if max_samples is None else min(max_samples, len(data.x_train))
    rows = [one_rate(cfg, data, float(rate), n_train) for rate in rates]
    title = f"{data.name or cfg.dataset.kind}: one epoch of {n_train} samples, {len(data.x_test)} test"
    result = {"dataset": data.name or cfg.dataset.kind, "train_samples": n_train, "test_samples": int(len(data.x_test)),
              "fault": {"packets": "spike", "action": "drop", "seed": FAULT_SEED}, "rows": rows}
    return write_result(out_dir, "loss", result, {"loss": plot(rows, out_dir / "loss.png", title)})


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"study loss: {result['dataset']}, one epoch of {result['train_samples']} samples, "
             f"{result['test_samples']} test samples"]
    for r in result["rows"]:
        lines.append(f"  {100 * r['rate']:5g} % spikes dropped ({r['spike_packets_dropped_training']:,} of "
                     f"{r['spike_packets_sent_training']:,} in training): test "
                     f"{100 * r['test_accuracy']:.1f} %, train (online) {100 * r['train_accuracy_online']:.1f} %")
    return lines
