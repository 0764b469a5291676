"""Host layer, plots: the raster figure of a run's recordings.npz (`s2eprop plot raster RUN_DIR`): for one
recorded sample, the input (a spike raster, or the analog features as a heat map), the hidden neurons'
spikes, the readout's output per step, and the membrane voltages of the recorded neurons."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from s2eprop.host.errors import DataError
from s2eprop.host.plots.figures import pyplot
from s2eprop.host.mapping.recording import load_recordings

MAX_V_TRACES = 8


def plot_raster(npz: Path, path: Path, sample: int = 0) -> Path:
    r = load_recordings(npz)
    n = len(r["split"])
    if not 0 <= sample < n:
        raise DataError(f"{npz} holds {n} recorded sample(s) (0..{n - 1}); sample {sample} is not one of them")
    x, z, v, y = r["input"][sample], r["spikes"][sample], r["v"][sample], r["y"][sample]
    labels = [str(s) for s in r["labels"]]
    label, pred = int(r["label"][sample]), int(r["pred"][sample])
    plt = pyplot()
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True,
                             gridspec_kw={"height_ratios": [2, 2, 1.3, 1.3]})
    steps = np.arange(x.shape[0])
    ax = axes[0]
    if np.isin(x, (0.0, 1.0)).all():
        t, i = np.nonzero(x)
        ax.scatter(t, i, s=10, marker="|", linewidths=1.0, color="black")
        ax.set_title(f"input spikes ({len(t):,} over {x.shape[1]} inputs)")
    else:
        ax.imshow(x.T, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest",
                  extent=(-0.5, x.shape[0] - 0.5, -0.5, x.shape[1] - 0.5))
        ax.set_title(f"input: analog features ({x.shape[1]} per step)")
    ax.set_ylabel("input")
    ax = axes[1]
    ids = r["spike_neurons"]
    t, j = np.nonzero(z)
    ax.scatter(t, ids[j] if len(ids) else j, s=14, marker="|", linewidths=1.2, color="tab:blue")
    ax.set_ylabel("hidden neuron")
    if len(ids):  # the recorded neurons' range, whether or not they spiked
        ax.set_ylim(float(np.min(ids)) - 0.5, float(np.max(ids)) + 0.5)
    ax.set_title(f"hidden spikes: {len(t):,} from {len(np.unique(j))} of the {len(ids)} recorded neurons" if len(t)
                 else f"hidden spikes: none from the {len(ids)} recorded neurons")
    ax = axes[2]
    for k in range(y.shape[1]):
        name_k = labels[k] if k < len(labels) else str(k)
        if k == label:
            ax.plot(steps, y[:, k], lw=2.0, color="tab:red", label=f"{name_k} (label)")
        elif k == pred:
            ax.plot(steps, y[:, k], lw=1.6, color="tab:purple", ls="--", label=f"{name_k} (predicted)")
        else:
            ax.plot(steps, y[:, k], lw=0.7, color="0.6")
    if y.shape[1]:
        ax.legend(fontsize=8, loc="upper left")
    ax.set_ylabel("readout y_t")
    ax.set_title("readout output per step" if y.shape[1] else "readout not recorded")
    ax = axes[3]
    vid = r["v_neurons"]
    for q in range(min(MAX_V_TRACES, v.shape[1])):
        ax.plot(steps, v[:, q], lw=0.8, label=f"neuron {vid[q]}")
    if v.shape[1]:
        ax.legend(fontsize=7, ncol=4, loc="upper left")
    ax.set_ylabel("v")
    ax.set_xlabel("step (1 ms)")
    ax.set_title(f"membrane voltage ({min(MAX_V_TRACES, v.shape[1])} of {v.shape[1]} recorded)")
    name = labels[label] if label < len(labels) else str(label)
    said = labels[pred] if 0 <= pred < len(labels) else "none"
    fig.suptitle(f"{r['split'][sample]} sample {int(r['index'][sample])} (epoch {int(r['epoch'][sample]) + 1}): "
                 f"label {name}, predicted {said}" + (f"; {int(r['missing'][sample])} records missing"
                                                      if int(r['missing'][sample]) else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
