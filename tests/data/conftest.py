"""Fixtures: a small Google Speech Commands tree written with soundfile, in the real layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from s2eprop.host.data.dataset import KWS_LABELS

SR = 16000
WORDS = list(KWS_LABELS[:10]) + ["bed", "cat"]


def _tone(freq_hz: float, seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    return (0.4 * np.sin(2 * np.pi * freq_hz * t) * np.hanning(len(t)) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def make_gsc_tree(root: Path) -> Path:
    """12 word folders x 3 WAVs (first listed for testing, second for validation, third trains),
    one 8 kHz WAV, one 1.3 s WAV, two 12 s background-noise files and a README."""
    root.mkdir(parents=True, exist_ok=True)
    testing, validation = [], []
    for w, word in enumerate(WORDS):
        (root / word).mkdir()
        for k in range(3):
            name = f"{w:02x}{k:06x}_nohash_{k}.wav"
            seconds = 1.3 if (word == "up" and k == 2) else 0.6 + 0.1 * k
            sr = 8000 if (word == "cat" and k == 2) else SR
            sf.write(root / word / name, _tone(200 + 150 * w, seconds, sr=sr, seed=w * 3 + k), sr, subtype="PCM_16")
            (testing if k == 0 else validation if k == 1 else []).append(f"{word}/{name}")
    (root / "testing_list.txt").write_text("\n".join(testing) + "\n")
    (root / "validation_list.txt").write_text("\n".join(validation) + "\n")
    noise = root / "_background_noise_"
    noise.mkdir()
    rng = np.random.default_rng(5)
    sf.write(noise / "white_noise.wav", (0.1 * rng.standard_normal(12 * SR)).astype(np.float32), SR, subtype="PCM_16")
    brown = np.cumsum(rng.standard_normal(12 * SR))
    sf.write(noise / "brown_noise.wav", (0.5 * brown / np.abs(brown).max()).astype(np.float32), SR, subtype="PCM_16")
    (noise / "README.md").write_text("noise files\n")
    return root


def make_official_test_tree(root: Path) -> Path:
    """The separately published test-set layout: keyword folders plus _silence_ and _unknown_."""
    for folder, n in (("yes", 2), ("go", 1), ("_unknown_", 2), ("_silence_", 2)):
        (root / folder).mkdir(parents=True)
        for k in range(n):
            sf.write(root / folder / f"{folder.strip('_')}_{k}.wav", _tone(300 + 100 * k, 1.0, seed=k), SR, subtype="PCM_16")
    return root


@pytest.fixture(name="make_gsc_tree")
def _make_gsc_tree_fixture():
    return make_gsc_tree


@pytest.fixture(name="make_official_test_tree")
def _make_official_test_tree_fixture():
    return make_official_test_tree


@pytest.fixture(scope="session")
def gsc_root(tmp_path_factory) -> Path:
    return make_gsc_tree(tmp_path_factory.mktemp("gsc") / "speech_commands_v0.01")


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"
