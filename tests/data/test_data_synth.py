"""Built-in spoken keyword set: split by voice, balance, determinism, cache, clear errors."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import s2eprop.host.data.espeak as espeak
import s2eprop.host.data.flite as flite
import s2eprop.host.data.programs as programs
import s2eprop.host.data.synth as synth
from s2eprop.host.data.dataset import KWS_LABELS
from s2eprop.host.data.synth import (KEYWORD_PRONUNCIATIONS, UNKNOWN_WORDS, SynthOptions, clip_recipe, generate_synth, load_synth_dataset, split_labels, voice_pools)
from s2eprop.host.errors import DataError

needs_synths = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("flite") is None,
                                  reason="espeak-ng or flite not installed")
SMALL = {"n_train": 24, "n_test": 12, "workers": 1}


def test_missing_espeak_names_the_install_command(monkeypatch):
    """Without espeak-ng the error says how to install it."""
    monkeypatch.setattr(programs.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="apt-get install espeak-ng"):
        espeak.espeak_binary()


def test_missing_flite_names_the_install_command(monkeypatch):
    """Without flite the error says how to install it."""
    monkeypatch.setattr(programs.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="apt-get install flite"):
        flite.flite_binary()


def test_labels_balanced_and_shuffled():
    """Every class gets n // 12 or n // 12 + 1 clips, not in a periodic order."""
    y = split_labels(100, 0, "train")
    counts = np.bincount(y, minlength=12)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 100
    assert not np.array_equal(y, np.arange(100) % 12)


@needs_synths
def test_test_voices_never_heard_in_training():
    """Base voices and variants (named or generated) of the test split never occur in training; the
    training split has flite words, from its training voices only; the test split is espeak-ng's."""
    pools = voice_pools()
    recipes = {s: [clip_recipe(0, s, i, int(lab), pools) for i, lab in enumerate(split_labels(600, 0, s))]
               for s in ("train", "test")}
    voices = {s: {r["voice"] for r in rs if r.get("synth") == "espeak-ng"} for s, rs in recipes.items()}
    assert voices["train"] and voices["test"] and not voices["train"] & voices["test"]
    flite_voices = {s: {r["voice"] for r in rs if r.get("synth") == "flite"} for s, rs in recipes.items()}
    assert flite_voices["train"] == set(flite.TRAIN_FLITE_VOICES) and flite_voices["test"] == set()
    assert not set(flite.TRAIN_FLITE_VOICES) & set(flite.TEST_FLITE_VOICES)
    variants = {s: {r["variant"] for r in rs if "variant" in r} for s, rs in recipes.items()}
    assert variants["train"] and variants["test"] and not variants["train"] & variants["test"]
    assert set(pools.test_variants) == variants["test"]
    assert any("random_voice" in r for r in recipes["train"])
    assert not any("random_voice" in r for r in recipes["test"])


@needs_synths
def test_recipe_depends_only_on_seed_split_index():
    """Rule: a clip's recipe is drawn from its own generator of (seed, split, index): the same whichever
    clips were drawn before it, in what order, and whatever numpy's global random state (so clip i is
    the same whatever the set size); another seed, split or index gives another clip."""
    pools = voice_pools()
    labels = [i % 12 for i in range(24)]
    forward = [clip_recipe(3, "train", i, lab, pools) for i, lab in enumerate(labels)]
    np.random.seed(12345)
    np.random.random(7)
    backward = [clip_recipe(3, "train", i, lab, pools) for i, lab in reversed(list(enumerate(labels)))][::-1]
    assert forward == backward
    assert [r["index"] for r in forward] == list(range(24))
    assert [r["label"] for r in forward] == [KWS_LABELS[lab] for lab in labels]
    # clip 5 alone (as in a set of 6 clips) is clip 5 of the set of 24
    assert clip_recipe(3, "train", 5, labels[5], pools) == forward[5]
    # another index: another clip (the same label, 12 clips apart, is not a copy)
    assert all(forward[i] != dict(forward[i + 12], index=i) for i in range(12))
    # another seed or split: another clip
    for i in (0, 5, 13):
        assert clip_recipe(4, "train", i, labels[i], pools) != forward[i]
        assert dict(clip_recipe(3, "test", i, labels[i], pools), split="train") != forward[i]


@needs_synths
def test_generation_is_deterministic_and_shaped():
    """Same options -> identical features, with 1 or 2 worker processes; float32 (N, 100, 80); the training
    split does not depend on the size of the test split."""
    a = generate_synth(SMALL, progress=False)
    b = generate_synth(dict(SMALL, workers=2), progress=False)
    assert a["x"].shape == (24, 100, 80) and a["x"].dtype == np.float32
    assert a["x_test"].shape == (12, 100, 80)
    np.testing.assert_array_equal(a["x"], b["x"])
    np.testing.assert_array_equal(a["x_test"], b["x_test"])
    assert a["y"].tolist() == [KWS_LABELS.index(r["label"]) for r in a["recipes"] if r["split"] == "train"]
    assert np.bincount(a["y"], minlength=12).tolist() == [2] * 12
    c = generate_synth(dict(SMALL, n_test=36), progress=False)  # a larger held-out split...
    np.testing.assert_array_equal(a["x"], c["x"])               # ...leaves the training split as it is
    np.testing.assert_array_equal(a["y"], c["y"])


@needs_synths
def test_waves_are_one_second_16bit_and_not_silent():
    """Rendered clips: 16,000 samples, within [-1, 1], on the 16-bit grid, never all zero."""
    made = generate_synth({"n_train": 12, "n_test": 0, "workers": 1}, progress=False, keep_waves=True)
    w = made["waves"].astype(np.float64)
    assert w.shape == (12, 16000) and np.abs(w).max() <= 1.0
    assert np.all(np.abs(w).max(axis=1) > 0)
    np.testing.assert_allclose(w * 32767, np.round(w * 32767), atol=1e-2)


@needs_synths
def test_flite_words_follow_their_recipe():
    """A flite recipe is spoken by flite at the voice's own rate (kal 8 kHz, rms 16 kHz); a larger
    duration stretch gives a longer word; the rendered clip holds the word."""
    pools = voice_pools()
    base = {"split": "train", "index": 0, "label": "stop", "word": "stop", "synth": "flite", "punct": "",
            "f0_hz": 120.0, "speed": 1.0, "shift": 0.5, "eq": False, "reverb_rt60_s": 0.0, "noise": "none",
            "snr_db": 30.0, "floor_db": 60.0, "gain": 0.5, "clip": False}
    lengths = {}
    for voice, stretch, rate in (("kal", 1.0, 8000), ("rms", 0.8, 16000), ("rms", 1.3, 16000)):
        wave, sr = synth._speak_recipe(dict(base, voice=voice, stretch=stretch), None)
        assert sr == rate and np.abs(wave).max() > 0.05
        lengths[voice, stretch] = len(synth.trim_silence(wave, sr)) / sr
    assert lengths["rms", 1.3] > 1.3 * lengths["rms", 0.8]
    for voice in ("kal16", "slt"):  # the pitch setting reaches flite (its rms voice ignores it: documented)
        low, _ = synth._speak_recipe(dict(base, voice=voice, stretch=1.0, f0_hz=90.0), None)
        high, _ = synth._speak_recipe(dict(base, voice=voice, stretch=1.0, f0_hz=200.0), None)
        assert low.shape != high.shape or not np.array_equal(low, high)
    x = synth.render_clip(dict(base, voice="rms", stretch=1.0), 0, pools)
    loud = np.nonzero(np.abs(x) > 0.1 * np.abs(x).max())[0]
    assert 0.15 < (loud[-1] - loud[0]) / 16000 < 0.9  # the word, not noise alone


@needs_synths
def test_cache_second_load_does_not_regenerate(tmp_path, monkeypatch):
    """load_synth_dataset caches; the second call reads the memory-mapped cache."""
    first = load_synth_dataset(SMALL, cache_dir=tmp_path, progress=False)
    monkeypatch.setattr(synth, "generate_synth", lambda *a, **k: pytest.fail("regenerated"))
    second = load_synth_dataset(SMALL, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    assert second.labels == KWS_LABELS and second.y_test is not None and len(second.y_test) == 12


@needs_synths
def test_unknown_words_are_not_keyword_homophones():
    """No 'unknown' word sounds like a keyword or one of its accent variants (espeak-ng phonemes, US and GB)."""
    def phonemes(text, voice):
        return subprocess.run(["espeak-ng", "-q", "-x", "-v", voice, text], capture_output=True, text=True).stdout.strip()

    for voice in ("en-us", "en"):
        keys = {phonemes(k, voice) for k in KWS_LABELS[:10]}
        keys |= {phonemes(f"[[{p}]]", voice) for variants in KEYWORD_PRONUNCIATIONS.values() for p in variants}
        assert "" not in keys
        clashes = [w for w in UNKNOWN_WORDS if phonemes(w, voice) in keys]
        assert not clashes, f"{voice}: {clashes}"


def test_accent_variants_cover_every_keyword():
    """Every keyword has its plain US and GB pronunciation among its variants."""
    assert set(KEYWORD_PRONUNCIATIONS) == set(KWS_LABELS[:10])
    assert all(len(v) >= 2 and len(set(v)) == len(v) for v in KEYWORD_PRONUNCIATIONS.values())


def test_options_are_checked():
    """Unknown keys and bad values name the option."""
    with pytest.raises(DataError, match="unknown synth dataset option.*n_clips"):
        SynthOptions.from_mapping({"n_clips": 3})
    with pytest.raises(DataError, match="n_train must be an integer >= 1"):
        SynthOptions.from_mapping({"n_train": 0})
    assert SynthOptions.from_mapping(None) == SynthOptions()
