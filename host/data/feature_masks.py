"""Host layer: SpecAugment-style masking of training features (Park et al. 2019), applied by the
trainer to each training batch before it is streamed to the model, so it works for every target.

A frequency mask zeroes a run of mel bands in both their log-mel columns (0-39) and their delta
columns (40-79); a time mask zeroes a run of time steps in all 80 columns. Zero is "no energy" for
the log-mel columns (log1p >= 0) and "no change" for the deltas. Every draw comes from the
generator given, so a batch's masks are fixed by (seed, epoch, batch start) and a resumed run
masks what an uninterrupted run would.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureMasks:
    """How many masks each training sample gets, and their widest extent (widths are uniform in 0..max)."""

    freq_masks: int = 0
    freq_mask_max_bands: int = 0
    time_masks: int = 0
    time_mask_max_steps: int = 0

    @property
    def masks_bands(self) -> bool:
        return self.freq_masks > 0 and self.freq_mask_max_bands > 0

    @property
    def masks_steps(self) -> bool:
        return self.time_masks > 0 and self.time_mask_max_steps > 0

    @property
    def active(self) -> bool:
        return self.masks_bands or self.masks_steps


def _runs(rng: np.random.Generator, batch: int, n_masks: int, max_width: int, length: int) -> np.ndarray:
    """(batch, length) bool: the union of `n_masks` runs per row, each of width 0..max_width inside 0..length."""
    width = rng.integers(0, min(max_width, length) + 1, size=(batch, n_masks))
    start = (rng.uniform(size=(batch, n_masks)) * (length - width + 1)).astype(np.int64)
    pos = np.arange(length)[None, None, :]
    return np.any((pos >= start[..., None]) & (pos < (start + width)[..., None]), axis=1)


def mask_features(x: np.ndarray, masks: FeatureMasks, rng: np.random.Generator) -> np.ndarray:
    """A masked copy of a batch of features x (batch, steps, 2 * n_mels); x itself is not changed."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] % 2:
        raise ValueError(f"features must be (batch, steps, 2 x mel bands), got shape {x.shape}")
    batch, steps, cols = x.shape
    n_mels = cols // 2
    keep = np.ones((batch, steps, cols), dtype=bool)
    if masks.masks_bands:
        bands = _runs(rng, batch, masks.freq_masks, masks.freq_mask_max_bands, n_mels)
        keep &= ~np.concatenate([bands, bands], axis=1)[:, None, :]
    if masks.masks_steps:
        keep &= ~_runs(rng, batch, masks.time_masks, masks.time_mask_max_steps, steps)[:, :, None]
    return np.where(keep, x, np.zeros((), dtype=x.dtype))
