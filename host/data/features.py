"""Host layer: the reference input features (log-mel + delta, 100 frames x 80 columns per 1 s clip).

The pipeline is the authors' (reference notes, section 2.7, `preprocess/gsc_processing.py`):

1. 16 kHz mono; other rates are resampled (with a warning, by the callers that read files);
   the clip is zero-padded at the end or cropped to 16,000 samples (1 s).
2. The waveform is divided by its peak |x| (left alone when it is all zeros).
3. Mel power spectrogram (librosa): n_fft 480 (30 ms, periodic Hann window), hop 161 samples,
   40 Slaney mel bands with Slaney area normalisation, fmin 20 Hz, fmax 4 kHz.
   STFT padding: ``center=True`` with ``pad_mode="reflect"`` (240 reflected samples at each end).
   That is librosa 0.8's default, the version the authors pinned; librosa >= 0.10 changed the
   default to zero ("constant") padding, so we always pass both arguments explicitly.
   16,000 samples give 1 + 16000 // 161 = 100 frames.
4. log1p(S / max S), max over the whole clip (skipped when max S = 0).
5. First-order deltas along time, librosa's defaults (width 9, Savitzky-Golay, mode "interp").
6. Columns 0-39: the log-mel bands (low to high), columns 40-79: their deltas.
7. Each column is divided by its standard deviation over the 100 frames (population std,
   no mean subtraction; a zero std counts as 1).

Output: float32 (100, 80) per clip, (N, 100, 80) for a batch. Computation is in float64,
vectorised over clips (librosa broadcasts over leading axes), in chunks to bound memory.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SAMPLE_RATE_HZ = 16000
CLIP_SAMPLES = 16000


@dataclass(frozen=True)
class FeatureParams:
    """Every knob of the feature pipeline; the reference values are the defaults."""

    sample_rate_hz: int = SAMPLE_RATE_HZ
    n_samples: int = CLIP_SAMPLES
    n_fft: int = 480
    hop_length: int = 161
    n_mels: int = 40
    fmin_hz: float = 20.0
    fmax_hz: float = 4000.0
    delta_width: int = 9
    center: bool = True
    pad_mode: str = "reflect"

    @property
    def n_frames(self) -> int:
        if self.center:
            return 1 + self.n_samples // self.hop_length
        return 1 + (self.n_samples - self.n_fft) // self.hop_length

    @property
    def n_features(self) -> int:
        return 2 * self.n_mels

    def as_dict(self) -> dict[str, Any]:
        """The parameters as plain values (part of every feature-cache key)."""
        return asdict(self)


REFERENCE_PARAMS = FeatureParams()


def fit_length(wave: np.ndarray, n_samples: int = CLIP_SAMPLES) -> np.ndarray:
    """Zero-pad at the end or crop to `n_samples` (last axis)."""
    wave = np.asarray(wave)
    n = wave.shape[-1]
    if n >= n_samples:
        return wave[..., :n_samples]
    pad = [(0, 0)] * (wave.ndim - 1) + [(0, n_samples - n)]
    return np.pad(wave, pad)


def to_mono(wave: np.ndarray) -> np.ndarray:
    """(n,) stays; (n, channels) as soundfile returns it is averaged over channels."""
    wave = np.asarray(wave, dtype=np.float64)
    return wave.mean(axis=1) if wave.ndim == 2 else wave


def resample(wave: np.ndarray, orig_sr_hz: int, target_sr_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Band-limited resampling (librosa's default, soxr high quality)."""
    import librosa

    if orig_sr_hz == target_sr_hz:
        return np.asarray(wave, dtype=np.float64)
    return librosa.resample(np.asarray(wave, dtype=np.float64), orig_sr=orig_sr_hz, target_sr=target_sr_hz)


def prepare_clip(wave: np.ndarray, sr_hz: int, name: str = "clip", params: FeatureParams = REFERENCE_PARAMS,
                 warn: bool = True) -> np.ndarray:
    """Any soundfile-shaped waveform at any rate -> float64 (n_samples,) mono at the feature rate."""
    wave = to_mono(wave)
    if sr_hz != params.sample_rate_hz:
        if warn:
            warnings.warn(f"{name}: sample rate {sr_hz} Hz, resampled to {params.sample_rate_hz} Hz", stacklevel=2)
        wave = resample(wave, sr_hz, params.sample_rate_hz)
    return fit_length(wave, params.n_samples)


def features_from_waves(waves: np.ndarray, params: FeatureParams = REFERENCE_PARAMS) -> np.ndarray:
    """(N, n_samples) or (n_samples,) waveforms at the feature rate -> (N, T, 80) or (T, 80) float32."""
    import librosa

    waves = np.asarray(waves, dtype=np.float64)
    single = waves.ndim == 1
    if single:
        waves = waves[None]
    if waves.ndim != 2:
        raise ValueError(f"waves must have shape (N, samples), got {waves.shape}")
    waves = fit_length(waves, params.n_samples)
    peak = np.max(np.abs(waves), axis=1, keepdims=True)
    waves = waves / np.where(peak > 0, peak, 1.0)
    mel = librosa.feature.melspectrogram(
        y=waves, sr=params.sample_rate_hz, n_fft=params.n_fft, hop_length=params.hop_length,
        window="hann", center=params.center, pad_mode=params.pad_mode, power=2.0,
        n_mels=params.n_mels, fmin=params.fmin_hz, fmax=params.fmax_hz, htk=False, norm="slaney",
    )  # (N, n_mels, T)
    top = mel.max(axis=(1, 2), keepdims=True)
    logmel = np.where(top > 0, np.log1p(mel / np.where(top > 0, top, 1.0)), mel)
    delta = librosa.feature.delta(logmel, width=params.delta_width, order=1, axis=-1, mode="interp")
    feats = np.concatenate([logmel, delta], axis=1).transpose(0, 2, 1)  # (N, T, 2 n_mels)
    std = feats.std(axis=1, keepdims=True)
    feats = feats / np.where(std == 0, 1.0, std)
    out = feats.astype(np.float32)
    return out[0] if single else out
