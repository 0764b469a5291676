"""Features: checked against an independent NumPy/SciPy computation and for shape, dtype, scaling."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.signal

from s2eprop.host.data.features import (CLIP_SAMPLES, REFERENCE_PARAMS, FeatureParams, features_from_waves, fit_length, prepare_clip)

SR = 16000


def _hz_to_mel(f):
    """Slaney's auditory-toolbox mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    lin = m * (200.0 / 3)
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log, lin)


def _mel_filterbank(n_fft=480, n_mels=40, fmin=20.0, fmax=4000.0):
    """Triangles between consecutive mel points, each scaled to unit area (2 / bandwidth)."""
    fft_hz = np.arange(n_fft // 2 + 1) * SR / n_fft
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, len(fft_hz)))
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        rise = (fft_hz - lo) / (mid - lo)
        fall = (hi - fft_hz) / (hi - mid)
        fb[i] = np.maximum(0.0, np.minimum(rise, fall)) * 2.0 / (hi - lo)
    return fb


def _delta(c):
    """Order-1 regression over 9 frames; at the 4 edge frames each side, the slope of a
    least-squares line through the first / last 9 frames (what Savitzky-Golay 'interp' does)."""
    n_t = c.shape[0]
    k = np.arange(-4, 5)
    d = np.zeros_like(c)
    for t in range(4, n_t - 4):
        d[t] = (k[:, None] * c[t - 4:t + 5]).sum(0) / (k ** 2).sum()
    tt = np.arange(9) - 4.0
    head = (tt[:, None] * c[:9]).sum(0) / (tt ** 2).sum()
    tail = (tt[:, None] * c[-9:]).sum(0) / (tt ** 2).sum()
    d[:4], d[-4:] = head, tail
    return d


def _reference_features(wave):
    """The whole pipeline by hand: peak norm, reflect-padded periodic-Hann STFT, mel, log1p, delta, std."""
    wave = np.asarray(wave, dtype=np.float64)
    wave = wave / np.max(np.abs(wave))
    padded = np.pad(wave, 240, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(480) / 480)  # periodic Hann
    frames = np.stack([padded[t * 161:t * 161 + 480] for t in range(100)])
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (100, 241)
    mel = power @ _mel_filterbank().T  # (100, 40)
    logmel = np.log1p(mel / mel.max())
    feats = np.concatenate([logmel, _delta(logmel)], axis=1)
    return feats / feats.std(axis=0)


def _chirp(n=CLIP_SAMPLES, seed=0):
    t = np.arange(n) / SR
    rng = np.random.default_rng(seed)
    env = np.exp(-((t - 0.5) / 0.2) ** 2)
    return 0.3 * env * scipy.signal.chirp(t, f0=100, t1=1.0, f1=3900, method="logarithmic") + 1e-3 * rng.standard_normal(n)


def test_features_match_hand_built_pipeline_on_chirp():
    """librosa-based features equal a NumPy filterbank/STFT/regression-delta computation."""
    wave = _chirp()
    got = features_from_waves(wave)
    want = _reference_features(wave)
    assert got.shape == (100, 80)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)


def test_shape_dtype_and_column_std_is_one():
    """Output is float32 (N, 100, 80); every non-constant column has unit std over time."""
    waves = np.stack([_chirp(seed=s) * (s + 1) for s in range(3)])
    x = features_from_waves(waves)
    assert x.shape == (3, 100, 80) and x.dtype == np.float32
    np.testing.assert_allclose(x.std(axis=1), 1.0, rtol=1e-4)


def test_batch_equals_single_and_is_gain_invariant():
    """Vectorised over clips: a batch gives the per-clip results; the peak norm removes gain."""
    a, b = _chirp(seed=1), _chirp(seed=2)
    batch = features_from_waves(np.stack([a, b]))
    np.testing.assert_array_equal(batch[0], features_from_waves(a))
    np.testing.assert_allclose(features_from_waves(7.5 * b), batch[1], rtol=1e-5, atol=1e-5)


def test_no_mean_subtraction():
    """Only std scaling: log-mel columns stay non-negative with a positive mean over time."""
    x = features_from_waves(_chirp())
    assert x[:, :40].min() >= 0.0
    assert np.all(x[:, :40].mean(axis=0) > 0.1)


def test_silent_clip_gives_zeros():
    """All-zero input: no peak norm, no log scaling (max S = 0), zero std counts as 1 -> zeros."""
    x = features_from_waves(np.zeros(CLIP_SAMPLES))
    assert x.shape == (100, 80) and x.dtype == np.float32
    assert not np.any(x)


def test_constant_column_is_left_unscaled():
    """A column with zero std over time is divided by 1, not by 0 (no NaN)."""
    wave = np.zeros(CLIP_SAMPLES)
    wave[8000] = 1.0  # a click: only some frames have energy
    x = features_from_waves(wave)
    assert np.all(np.isfinite(x))


def test_fit_length_pads_at_end_and_crops():
    """Short clips are zero-padded at the end; long ones keep their first 16,000 samples."""
    short = np.arange(1, 101, dtype=float)
    out = fit_length(short)
    assert out.shape == (CLIP_SAMPLES,) and np.array_equal(out[:100], short) and not np.any(out[100:])
    long = np.arange(20000, dtype=float)
    assert np.array_equal(fit_length(long), long[:CLIP_SAMPLES])


def test_prepare_clip_resamples_other_rates_with_warning():
    """A 8 kHz clip is resampled to 16 kHz (same duration) and a warning names it."""
    t = np.arange(8000) / 8000
    wave = np.sin(2 * np.pi * 440 * t)
    with pytest.warns(UserWarning, match="tone.wav: sample rate 8000 Hz"):
        out = prepare_clip(wave, 8000, name="tone.wav")
    assert out.shape == (CLIP_SAMPLES,)
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * SR / CLIP_SAMPLES - 440) < 2


def test_prepare_clip_stereo_is_averaged_without_warning_at_16k():
    """(n, 2) soundfile arrays become mono; no warning at the native rate."""
    stereo = np.stack([np.ones(100), -np.ones(100) * 0.5], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = prepare_clip(stereo, SR)
    np.testing.assert_allclose(out[:100], 0.25)


def test_frame_count_follows_hop_and_padding():
    """Centered framing: 1 + 16000 // 161 = 100 frames; the reference uses reflect padding."""
    assert REFERENCE_PARAMS.n_frames == 100 and REFERENCE_PARAMS.n_features == 80
    assert REFERENCE_PARAMS.pad_mode == "reflect" and REFERENCE_PARAMS.center
    assert FeatureParams(center=False).n_frames == 1 + (16000 - 480) // 161
