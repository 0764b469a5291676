"""Host layer: flite (CMU Flite), the built-in keyword set's second synthesiser: finding it, its
English voices (split between training and test), and speaking one word.

espeak-ng is a formant synthesiser; flite's voices are built from recordings of human speakers
(diphone and statistical-parametric voices). A model trained on espeak-ng alone recognised under
half of the keywords that flite spoke (docs/data.md section 7), so part of the set is spoken by flite.
"""
from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from s2eprop.host.data.programs import require_program, run_program
from s2eprop.host.errors import DataError

FLITE = "flite"
# kal and kal16 are one diphone speaker (8 and 16 kHz); rms, slt and awb are CMU ARCTIC speakers
# (US male, US female, Scottish male). awb, an accent no other flite voice has, is held out.
TRAIN_FLITE_VOICES = ("kal", "kal16", "rms", "slt")
TEST_FLITE_VOICES = ("awb",)  # never used by the set: a held-out speaker for experiments/cross_synth.py

NEEDED_FOR = "part of the built-in spoken keyword set is spoken by it"


def flite_binary() -> str:
    return require_program(FLITE, NEEDED_FOR)


def _run_flite(args: list[str], check: bool = True) -> str:
    return run_program(FLITE, NEEDED_FOR, args, check).decode(errors="replace")


@lru_cache(maxsize=1)
def flite_version() -> str:
    # flite 2.2 prints its version and exits with status 1
    lines = [line.strip() for line in _run_flite(["--version"], check=False).splitlines() if "version" in line]
    return lines[0] if lines else "unknown"


def installed_voices() -> tuple[str, ...]:
    """Every voice this flite lists (`flite -lv`)."""
    return tuple(_run_flite(["-lv"]).split(":", 1)[-1].split())


@lru_cache(maxsize=1)
def flite_voices() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training voices, held-out voices) that this flite has; the set needs only the former."""
    have = set(installed_voices())
    train = tuple(v for v in TRAIN_FLITE_VOICES if v in have)
    test = tuple(v for v in TEST_FLITE_VOICES if v in have)
    if not train:
        raise DataError(f"flite ({flite_version()}) lacks the voices of the synthetic set: has {', '.join(sorted(have))}; "
                        f"needs some of {', '.join(TRAIN_FLITE_VOICES)}")
    return train, test


def speak_flite(text: str, voice: str, duration_stretch: float = 1.0, f0_mean_hz: float | None = None,
                workspace: Path | None = None) -> tuple[np.ndarray, int]:
    """flite's float64 waveform of `text` and its sample rate (8 or 16 kHz, by voice); the voice's
    own mean pitch unless `f0_mean_hz` is given (flite 2.2's rms voice ignores it and keeps its own)."""
    import soundfile as sf

    fd, name = tempfile.mkstemp(suffix=".wav", dir=workspace)
    os.close(fd)
    pitch = [] if f0_mean_hz is None else ["--setf", f"int_f0_target_mean={f0_mean_hz:.1f}"]
    try:
        _run_flite(["-voice", voice, "--setf", f"duration_stretch={duration_stretch:.4f}", *pitch,
                    "-t", text, "-o", name])
        try:
            wave, sr = sf.read(name, dtype="float64")
        except Exception as exc:  # soundfile raises its own RuntimeError subclasses
            raise DataError(f"flite gave no readable WAV for {text!r} (voice {voice}): {exc}") from None
    finally:
        os.unlink(name)
    return wave, int(sr)
