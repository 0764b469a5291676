"""Host layer: spike encoders from the audio features, for spike input (YAML `input: {kind: spikes}`).

Both give, per sample, a raster of 0/1 float32 values of the features' shape (n_steps, n_in): the
x that the chip's spike input and the golden model receive alike.

- ``delta`` (level crossing, send-on-delta): the first n_in / 2 columns are the log-mel bands (the
  features are bands, then their deltas). Each band b keeps a level r_b, 0 before the first step.
  At step t, with d = x[t, b] - r_b: d >= threshold fires the band's on channel (b) and raises r_b
  by the threshold times floor(d / threshold); d <= -threshold fires its off channel (n_in / 2 + b)
  and lowers r_b likewise. At most one spike per channel and step (several crossings in one step
  are one spike). On and off channels keep the band order of the analog columns, so the feature
  masks (train.freq_masks) hide a band's on and off channels as they hide its log-mel and delta.
- ``poisson`` (rate): every column is a Poisson source; at each step it spikes with probability
  max_rate_hz x dt x min(max(x / clip, 0), 1) (features below 0, negative deltas, never spike),
  drawn from (input.seed, split).
- ``none``: the dataset holds spikes already (0/1); it is only checked.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from s2eprop.host.config import InputConfig, NetworkConfig
from s2eprop.host.data.dataset import Dataset
from s2eprop.host.errors import DataError


def delta_encode(x: np.ndarray, threshold: float) -> np.ndarray:
    """(N, T, 2B) features (B bands, then B deltas) -> (N, T, 2B) spikes: on channels 0..B-1, off B..2B-1."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] % 2:
        raise DataError(f"delta encoding needs (N, T, 2 x bands) features, got shape {x.shape}")
    n, steps, cols = x.shape
    bands = x[:, :, :cols // 2]
    level = np.zeros((n, cols // 2))
    out = np.zeros(x.shape, dtype=np.float32)
    for t in range(steps):
        d = bands[:, t] - level
        up, down = d >= threshold, d <= -threshold
        level += np.where(up, threshold * np.floor(d / threshold), 0.0)
        level -= np.where(down, threshold * np.floor(-d / threshold), 0.0)
        out[:, t, :cols // 2] = up
        out[:, t, cols // 2:] = down
    return out


def poisson_encode(x: np.ndarray, max_rate_hz: float, clip: float, dt_ms: float, rng: np.random.Generator
                   ) -> np.ndarray:
    """(N, T, n_in) features -> spikes: each column spikes with chance max_rate x dt x clip(x / clip, 0, 1)."""
    p = (max_rate_hz * dt_ms / 1000.0) * np.clip(np.asarray(x, dtype=np.float64) / clip, 0.0, 1.0)
    return (rng.random(p.shape) < p).astype(np.float32)


def check_spikes(x: np.ndarray, what: str) -> None:
    bad = (x != 0) & (x != 1)
    if bad.any():
        s, t, i = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{what}: spike input holds {x[s, t, i]!r} at sample {s}, step {t}, input {i}; spikes are "
                        f"0 or 1 (encode analog features with input.encoder delta or poisson)")


def encode(x: np.ndarray, inp: InputConfig, net: NetworkConfig, split: int) -> np.ndarray:
    """One split's inputs for the chip: the features unchanged (analog) or their spikes."""
    if inp.kind == "analog":
        return x
    if inp.encoder == "delta":
        return delta_encode(x, inp.threshold)
    if inp.encoder == "poisson":
        return poisson_encode(x, inp.max_rate_hz, inp.clip, net.dt_ms, np.random.default_rng([inp.seed, split]))
    out = np.asarray(x, dtype=np.float32)
    check_spikes(out, f"split {('train', 'test')[split]}")
    return out


def encode_dataset(data: Dataset, inp: InputConfig, net: NetworkConfig) -> Dataset:
    """The dataset as the chip's input layer receives it (analog: unchanged)."""
    if inp.kind == "analog":
        return data
    x_test = None if data.x_test is None else encode(data.x_test, inp, net, 1)
    return dataclasses.replace(data, x_train=encode(data.x_train, inp, net, 0), x_test=x_test,
                               name=f"{data.name} ({inp.encoder} spikes)" if inp.encoder != "none" else data.name)


def input_stats(data: Dataset, inp: InputConfig, net: NetworkConfig) -> dict[str, Any]:
    """report.json `input`: the kind and, for spikes, the mean rate per input and the input work per
    sample (weight additions: input spikes x n_rec) against the analog path's products (n_steps x n_in x n_rec)."""
    analog_ops = net.n_steps * net.n_in * net.n_rec
    out: dict[str, Any] = {"kind": inp.kind, "analog_input_synaptic_ops_per_sample": analog_ops}
    if inp.kind == "analog":
        out["input_synaptic_ops_per_sample"] = analog_ops
        return out
    x = data.x_train
    spikes_per_sample = float(x.sum(axis=(1, 2)).mean()) if len(x) else 0.0
    out.update(encoder=inp.encoder, **({"threshold": inp.threshold} if inp.encoder == "delta" else {}),
               **({"max_rate_hz": inp.max_rate_hz, "clip": inp.clip} if inp.encoder == "poisson" else {}),
               mean_rate_hz=spikes_per_sample / (net.n_steps * net.n_in) * 1000.0 / net.dt_ms,
               input_spikes_per_sample=spikes_per_sample,
               input_synaptic_ops_per_sample=spikes_per_sample * net.n_rec)
    return out
