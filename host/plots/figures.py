"""Host layer, plots: the figures of a run folder (confusion matrix, training curve), written with matplotlib."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs; a prediction of -1 (a sample the chip lost) is left out."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    kept = np.asarray(y_pred) >= 0
    np.add.at(cm, (np.asarray(y_true)[kept], np.asarray(y_pred)[kept]), 1)
    return cm


def plot_confusion(cm: np.ndarray, labels: tuple[str, ...], path: Path, title: str) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if frac[i, j] > 0.5 else "black")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="fraction of true class")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_training(epochs: list[dict], path: Path, title: str = "training") -> Path:
    """Loss (train, and test where evaluated) and accuracy per epoch, whole epochs on the x axis."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    fig, ax1 = plt.subplots(figsize=(6, 3.8))
    x = [e["epoch"] + 1 for e in epochs]
    ax1.plot(x, [e["loss"] for e in epochs], "o-", color="tab:red", label="train loss (online, CE + L2)")
    if any(e.get("test_loss") is not None for e in epochs):
        ax1.plot(x, [e.get("test_loss") for e in epochs], "o--", color="tab:orange", label="test loss (CE)")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2 = ax1.twinx()
    ax2.plot(x, [100 * e["train_accuracy"] for e in epochs], "s-", color="tab:blue", label="train accuracy (online)")
    if any(e.get("test_accuracy") is not None for e in epochs):
        ax2.plot(x, [None if e.get("test_accuracy") is None else 100 * e["test_accuracy"] for e in epochs], "^--",
                 color="tab:green", label="test accuracy")
    ax2.set_ylabel("accuracy (%)")
    ax2.set_ylim(0, 100)
    ax1.set_title(title, fontsize=10)
    fig.legend(loc="lower center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
