"""Host layer: signal-level augmentation of the built-in keyword set (design: docs/data.md section 4):
coloured noise, random microphone/channel responses, room reverberation and 1 s backgrounds. Every
function draws only from the generator it is given, so a clip's recipe fixes its audio."""
from __future__ import annotations

from typing import Callable

import numpy as np

from s2eprop.host.data.features import REFERENCE_PARAMS

SR_HZ = REFERENCE_PARAMS.sample_rate_hz
N_SAMPLES = REFERENCE_PARAMS.n_samples


def colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR_HZ)
    f[0] = f[1]
    noise = np.fft.irfft(spec * f ** (-exponent / 2), n)
    return noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)


def _biquad_peak(f0_hz: float, gain_db: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """RBJ audio-EQ-cookbook peaking filter."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0_hz / SR_HZ
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return b / den[0], den / den[0]


def random_channel(rng: np.random.Generator, x: np.ndarray, gain_db: tuple[float, float]) -> np.ndarray:
    """A random microphone/room response: high-pass, low-pass, one or two peaking/notch bands."""
    from scipy import signal

    if rng.uniform() < 0.7:
        b, a = signal.butter(int(rng.integers(1, 3)), rng.uniform(60, 300), "highpass", fs=SR_HZ)
        x = signal.lfilter(b, a, x)
    if rng.uniform() < 0.5:
        b, a = signal.butter(int(rng.integers(2, 5)), rng.uniform(3500, 7500), "lowpass", fs=SR_HZ)
        x = signal.lfilter(b, a, x)
    for _ in range(int(rng.integers(1, 3))):
        b, a = _biquad_peak(rng.uniform(200, 4500), rng.uniform(*gain_db), rng.uniform(0.7, 3.0))
        x = signal.lfilter(b, a, x)
    return x


def reverb(rng: np.random.Generator, x: np.ndarray, rt60_s: float) -> np.ndarray:
    """Convolution with exponentially decaying noise (a diffuse room), direct sound kept."""
    from scipy import signal

    n = int(min(rt60_s, 0.8) * SR_HZ)
    t = np.arange(n) / SR_HZ
    rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)
    rir[: int(0.002 * SR_HZ)] = 0.0
    rir *= rng.uniform(0.2, 0.8) / (np.sqrt(np.sum(rir ** 2)) + 1e-12)
    rir[0] = 1.0
    return signal.fftconvolve(x, rir)[: len(x) + n // 2]


def background(rng: np.random.Generator, kind: str, babble: Callable[[np.random.Generator, int], np.ndarray]) -> np.ndarray:
    """Unit-RMS 1 s background of the given kind; `babble(rng, n_words)` gives unit-RMS overlapping speech."""
    t = np.arange(N_SAMPLES) / SR_HZ
    noise = colored_noise(rng, N_SAMPLES, rng.uniform(-0.5, 2.0))
    if kind == "modulated":
        rate = rng.uniform(0.3, 8.0)
        noise *= 1 + rng.uniform(0.3, 0.95) * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
    elif kind == "hum":
        f0 = rng.choice([50.0, 60.0, rng.uniform(80, 400)])
        hum = sum(rng.uniform(0.1, 1.0) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3)) for k in range(1, 8))
        noise = 0.3 * noise + hum / (np.sqrt(np.mean(hum ** 2)) + 1e-12)
    elif kind == "clicks":
        clicks = np.zeros(N_SAMPLES)
        for _ in range(int(rng.integers(2, 12))):
            start = int(rng.integers(0, N_SAMPLES - 800))
            n = int(rng.integers(100, 800))
            tt = np.arange(n) / SR_HZ
            clicks[start:start + n] += (rng.uniform(0.2, 1.0) * np.exp(-tt * rng.uniform(30, 300))
                                        * np.sin(2 * np.pi * rng.uniform(800, 6000) * tt))
        noise = 0.2 * noise + clicks / (np.sqrt(np.mean(clicks ** 2)) + 1e-12)
    elif kind in ("babble", "babble_far"):
        noise = 0.2 * noise + babble(rng, int(rng.integers(2, 5)))
        if kind == "babble_far":  # silence class: speech only far away, muffled and reverberant
            noise = reverb(rng, lowpass(noise, rng.uniform(800, 2000)), rng.uniform(0.4, 0.8))[:N_SAMPLES]
            noise = noise + 2.0 * colored_noise(rng, N_SAMPLES, rng.uniform(0.0, 1.5)) * np.sqrt(np.mean(noise ** 2))
    return noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)


def lowpass(x: np.ndarray, cutoff_hz: float) -> np.ndarray:
    from scipy import signal

    b, a = signal.butter(2, cutoff_hz, "lowpass", fs=SR_HZ)
    return signal.lfilter(b, a, x)
