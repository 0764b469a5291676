"""experiments/cross_synth.py: the cross-synthesiser set and its summary."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from s2eprop.host.data.dataset import KWS_LABELS

_spec = importlib.util.spec_from_file_location("cross_synth", Path(__file__).parents[2] / "experiments" / "cross_synth.py")
cross_synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cross_synth)


def test_summary_counts_by_voice_and_class():
    """Hand-made predictions: accuracy overall, per voice, per spoken class."""
    y = np.array([0, 1, 10, 0, 1, 10])
    pred = np.array([0, 1, 10, 0, 10, 11])
    names = ["a:x"] * 3 + ["b:y"] * 3
    s = cross_synth.summarise(pred, y, names)
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["per_voice"] == {"a:x": 1.0, "b:y": pytest.approx(1 / 3)}
    assert s["per_class"]["yes"] == 1.0 and s["per_class"]["no"] == 0.5 and s["per_class"]["unknown"] == 0.5
    assert "silence" not in s["per_class"]


def test_word_is_placed_above_the_noise():
    """The word (a 0.3 s tone burst) lands whole inside 1 s, at least 15 dB above the noise, peak 0.5."""
    rng = np.random.default_rng(0)
    word = np.sin(np.arange(4800) * 0.3)
    for _ in range(20):
        x = cross_synth.place_word(word, rng)
        assert x.shape == (16000,) and np.max(np.abs(x)) == pytest.approx(0.5)
        corr = np.correlate(x, word, mode="valid")
        start = int(np.argmax(corr))
        inside, outside = x[start:start + 4800], np.concatenate([x[:start], x[start + 4800:]])
        assert np.sqrt(np.mean(inside ** 2)) > 10 ** (15 / 20) * np.sqrt(np.mean(outside ** 2))


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed")
def test_one_voice_gives_99_balanced_spoken_clips():
    """One voice: 3 stretches x 3 speeds x 11 spoken classes, features of the reference shape; a
    voice's clips do not depend on which other voices are in the set."""
    x, y, names = cross_synth.build_set([("flite", "kal16")])
    assert x.shape == (99, 100, 80) and x.dtype == np.float32
    assert np.bincount(y, minlength=len(KWS_LABELS)).tolist() == [9] * 11 + [0]
    assert set(names) == {"flite:kal16"}
    x2, y2, _ = cross_synth.build_set([("flite", "kal"), ("flite", "kal16")])
    np.testing.assert_array_equal(x2[99:], x)
    np.testing.assert_array_equal(y2[99:], y)


def test_without_festival_the_study_warns_it_covers_fewer_voices(monkeypatch, tmp_path, capsys):
    """Rule: when no festival voice is installed the study says so (it covers the flite voices only)."""
    monkeypatch.setattr(cross_synth, "installed_voices", lambda: [("flite", "slt")])

    def stop(*args, **kwargs):
        raise cross_synth.DataError("stopped after the voice check")

    monkeypatch.setattr(cross_synth, "build_set", stop)
    w = tmp_path / "w.npz"
    from s2eprop.host.config import NetworkConfig
    from s2eprop.host.weights import init_weights

    init_weights(NetworkConfig(), 0).save(w)
    assert cross_synth.main([str(w), "--out", str(tmp_path / "o")]) == 2
    assert "no festival voice is installed, so only 1 flite voice(s)" in capsys.readouterr().err
