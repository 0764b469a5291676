"""Host layer: network weights and their `.npz` file (`w_in`, `w_rec`, `w_out` float32, [pre][post], `labels`)."""
from __future__ import annotations

from dataclasses import dataclass
import zipfile
from pathlib import Path

import numpy as np

from s2eprop.host.config import NetworkConfig
from s2eprop.host.connectivity import connectivity_masks
from s2eprop.host.errors import DataError
from s2eprop.host.files import atomic_write


@dataclass
class Weights:
    w_in: np.ndarray   # (n_in, n_rec)
    w_rec: np.ndarray  # (n_rec, n_rec), diagonal included
    w_out: np.ndarray  # (n_rec, n_out)
    labels: tuple[str, ...] = ()

    def copy(self) -> "Weights":
        return Weights(self.w_in.copy(), self.w_rec.copy(), self.w_out.copy(), self.labels)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"w_in": self.w_in, "w_rec": self.w_rec, "w_out": self.w_out}

    def check(self, net: NetworkConfig, source: str = "weights") -> "Weights":
        expected = {
            "w_in": (net.n_in, net.n_rec), "w_rec": (net.n_rec, net.n_rec), "w_out": (net.n_rec, net.n_out),
        }
        for key, shape in expected.items():
            arr = getattr(self, key)
            if arr.shape != shape:
                raise DataError(f"{source}: {key} has shape {arr.shape}, the network needs {shape} ([pre][post])")
            if arr.dtype != np.float32:
                raise DataError(f"{source}: {key} must be float32, got {arr.dtype}")
            if not np.all(np.isfinite(arr)):
                raise DataError(f"{source}: {key} contains NaN or infinity")
        masks = connectivity_masks(net)
        for key in ("w_in", "w_rec") if masks is not None else ():
            stray = np.count_nonzero(getattr(self, key)[~masks.of(key)])
            if stray:
                c = net.connectivity
                raise DataError(f"{source}: {key} has {stray} nonzero weight(s) at synapses absent from the network's "
                                f"mask (network.connectivity p_in {c.p_in}, p_rec {c.p_rec}, seed {c.seed}); "
                                f"zero them (Weights.masked) or train with the connectivity these weights came from")
        return self

    def masked(self, net: NetworkConfig) -> "Weights":
        """A copy with the weights of the synapses absent from net's mask set to 0 (network.connectivity)."""
        masks = connectivity_masks(net)
        if masks is None:
            return self.copy()
        return Weights(np.where(masks.w_in, self.w_in, self.w_in.dtype.type(0)),
                       np.where(masks.w_rec, self.w_rec, self.w_rec.dtype.type(0)), self.w_out.copy(), self.labels)

    def save(self, path: str | Path) -> Path:
        arrays = dict(self.as_dict(), labels=np.asarray(self.labels))
        return atomic_write(Path(path), lambda f: np.savez(f, **arrays))


@dataclass
class FeedbackState:
    """Adaptive feedback's learned matrix B (n_rec, n_out) and its optimizer moments m, v (same shape; SGD
    uses m only): what a checkpoint of a `train.feedback: adaptive` run holds besides the weights."""

    b: np.ndarray
    m: np.ndarray
    v: np.ndarray

    def copy(self) -> "FeedbackState":
        return FeedbackState(self.b.copy(), self.m.copy(), self.v.copy())

    def check(self, net: NetworkConfig, source: str) -> "FeedbackState":
        for name in ("b", "m", "v"):
            arr = getattr(self, name)
            if arr.shape != (net.n_rec, net.n_out):
                raise DataError(f"{source}: feedback {name} has shape {arr.shape}, the network needs "
                                f"{(net.n_rec, net.n_out)} (n_rec, n_out): the checkpoint is damaged")
            if not np.all(np.isfinite(arr)):
                raise DataError(f"{source}: feedback {name} contains NaN or infinity: the checkpoint is damaged")
        return self


def init_weights(net: NetworkConfig, seed: int, labels: tuple[str, ...] = ()) -> Weights:
    """Reference initialisation: W_in ~ N(0, 1/n_in), W_rec and W_out ~ N(0, 1/n_rec); diagonal kept; the
    synapses absent from network.connectivity's mask 0 (the others keep the values of the dense draw)."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    return Weights(
        w_in=(rng.standard_normal((net.n_in, net.n_rec)) / np.sqrt(net.n_in)).astype(f32),
        w_rec=(rng.standard_normal((net.n_rec, net.n_rec)) / np.sqrt(net.n_rec)).astype(f32),
        w_out=(rng.standard_normal((net.n_rec, net.n_out)) / np.sqrt(net.n_rec)).astype(f32),
        labels=labels,
    ).masked(net)


def load_weights(path: str | Path, net: NetworkConfig) -> Weights:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"weights file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"weights file {path} is not a readable .npz: {exc}") from None
    # The authors' fixture names initial weights w_*_init; accept both spellings.
    def pick(key: str) -> np.ndarray:
        for name in (key, f"{key}_init"):
            if name in arrays:
                return arrays[name]
        raise DataError(f"weights file {path} lacks key {key!r}; has {', '.join(sorted(arrays))}")

    labels = tuple(str(s) for s in arrays["labels"].tolist()) if "labels" in arrays else ()
    return Weights(pick("w_in"), pick("w_rec"), pick("w_out"), labels).check(net, f"weights file {path}")
