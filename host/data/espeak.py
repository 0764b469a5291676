"""Host layer: espeak-ng, the main speech synthesiser of the built-in keyword set: finding it, its voices
(base accents and variants, split between training and test: `s2eprop.host.data.voices`), generated random
voices, and speaking one word into a 16 kHz-ready waveform (22,050 Hz as espeak-ng gives it)."""
from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from s2eprop.host.data.programs import require_program, run_program
from s2eprop.host.errors import DataError

ESPEAK = "espeak-ng"
ESPEAK_SR_HZ = 22050
# Base voices (espeak-ng's English accents). The test split's are never used for training.
# Both US accents train (Google Speech Commands is mostly US speech); the Caribbean and West
# Midlands accents, each with its own phoneme table, are held out.
TRAIN_BASE_VOICES = ("en-us", "en-us-nyc", "en", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp")
TEST_BASE_VOICES = ("en-029", "en-gb-x-gbcwmd")
# Voice variants (espeak-ng-data/voices/!v) held out for the test split: natural-sounding male,
# female and Klatt-synthesiser voices. Every other installed variant (and the plain base voice)
# trains, including the extreme ones (whisper, croak, robots, echo), which act as augmentation.
TEST_VARIANTS = ("f4", "belinda", "steph2", "f5", "m3", "m7", "Andy", "klatt3", "iven3", "Gene2", "pablo", "quincy")
NO_VARIANT = ""


NEEDED_FOR = "the built-in spoken keyword set is synthesised with it"


def espeak_binary() -> str:
    return require_program(ESPEAK, NEEDED_FOR)


def _run_espeak(args: Sequence[str]) -> bytes:
    return run_program(ESPEAK, NEEDED_FOR, args)


@lru_cache(maxsize=1)
def espeak_version() -> str:
    out = _run_espeak(["--version"]).decode(errors="replace")
    return out.split("Data at")[0].strip()


@lru_cache(maxsize=1)
def espeak_data_dir() -> Path:
    out = _run_espeak(["--version"]).decode(errors="replace")
    if "Data at:" not in out:
        raise DataError(f"cannot find espeak-ng's data folder in `espeak-ng --version`: {out.strip()}")
    return Path(out.split("Data at:", 1)[1].strip())


def make_voice_workspace(root: Path) -> Path:
    """A private espeak-ng data folder under `root` (symlinks to the installed one) whose variant
    folder is writable, for the generated random voices; pass it to espeak-ng with --path."""
    src = espeak_data_dir()
    data = root / "espeak-ng-data"
    variants = data / "voices" / "!v"
    variants.mkdir(parents=True)
    for entry in src.iterdir():
        if entry.name != "voices":
            (data / entry.name).symlink_to(entry)
    for entry in (src / "voices").iterdir():
        if entry.name != "!v":
            (data / "voices" / entry.name).symlink_to(entry)
    for entry in (src / "voices" / "!v").iterdir():
        (variants / entry.name).symlink_to(entry)
    return root


def random_voice(rng: np.random.Generator) -> dict[str, Any]:
    """Parameters of a random espeak-ng voice variant: vocal-tract length and per-formant shifts,
    pitch, voice quality, intonation, sometimes the Klatt synthesiser."""
    vtl = rng.uniform(0.86, 1.16)  # vocal-tract scale: all formants move together
    female = bool(rng.uniform() < 0.5)
    low = rng.uniform(150, 230) if female else rng.uniform(65, 140)
    return {
        "gender": "female" if female else "male",
        "pitch": [int(low), int(low * rng.uniform(1.1, 1.9))],
        "formants": [[n, int(100 * vtl * rng.uniform(0.93, 1.07) if n <= 3 else 100 * vtl * rng.uniform(0.96, 1.04)),
                      int(rng.uniform(75, 125)), int(rng.uniform(80, 160))] for n in range(1, 6)],
        "voicing": int(rng.uniform(40, 160)),
        "flutter": int(rng.choice([0, 2, 5, 10, 20])),
        "roughness": int(rng.integers(0, 5)),
        "breath": [int(v) for v in rng.integers(0, 8, size=8)] if rng.uniform() < 0.2 else None,
        "intonation": int(rng.integers(1, 5)),
        "klatt": int(rng.integers(1, 7)) if rng.uniform() < 0.25 else 0,
        "tone": [int(rng.uniform(100, 600)), int(rng.uniform(100, 255)), int(rng.uniform(800, 1600)),
                 int(rng.uniform(60, 255)), int(rng.uniform(2000, 3500)), int(rng.uniform(30, 200))]
        if rng.uniform() < 0.3 else None,
    }


def variant_file_text(v: Mapping[str, Any]) -> str:
    """A random voice as an espeak-ng variant file (espeak-ng docs/voices.md)."""
    lines = ["name s2eprop-random", f"gender {v['gender']}", f"pitch {v['pitch'][0]} {v['pitch'][1]}"]
    lines += [f"formant {n} {freq} {height} {width}" for n, freq, height, width in v["formants"]]
    lines += [f"voicing {v['voicing']}", f"flutter {v['flutter']}", f"roughness {v['roughness']}",
              f"intonation {v['intonation']}"]
    if v["breath"]:
        lines.append("breath " + " ".join(map(str, v["breath"])))
    if v["klatt"]:
        lines.append(f"klatt {v['klatt']}")
    if v["tone"]:
        lines.append("tone " + " ".join(map(str, v["tone"])))
    return "\n".join(lines) + "\n"


def _voice_column(listing: str, column: str) -> set[str]:
    """One column of `espeak-ng --voices` output, cut by the header's positions (names may hold spaces)."""
    lines = listing.splitlines()
    if not lines or column not in lines[0]:
        return set()
    header = lines[0]
    start = header.index(column)
    following = [header.index(c) for c in ("Age/Gender", "VoiceName", "File", "Other Languages") if header.find(c) > start]
    end = min(following) if following else None
    return {line[start:end].strip() for line in lines[1:] if line[start:end].strip()}


def english_voices() -> tuple[set[str], list[str]]:
    """The English base voices (languages) and the voice variants this espeak-ng has."""
    languages = {v.split()[0] for v in _voice_column(_run_espeak(["--voices=en"]).decode(errors="replace"), "Language")}
    files = _voice_column(_run_espeak(["--voices=variant"]).decode(errors="replace"), "File")
    return languages, sorted(f.split("/", 1)[1] for f in files if f.startswith("!v/"))


def speak(text: str, base: str, variant: str, rate_wpm: int, pitch: int,
          workspace: Path | None = None, variant_text: str | None = None) -> np.ndarray:
    """espeak-ng's float64 waveform at 22,050 Hz; `variant_text` (a variant file written to the
    voice workspace under the name `variant`) gives a generated voice."""
    import soundfile as sf

    voice = f"{base}+{variant}" if variant else base
    args = ["-v", voice, "-s", str(rate_wpm), "-p", str(pitch), "--stdout", text]
    if variant_text is not None:
        if workspace is None:
            raise ValueError("a generated voice needs the voice workspace")
        path = workspace / "espeak-ng-data" / "voices" / "!v" / variant
        path.write_text(variant_text)
        try:
            data = _run_espeak([f"--path={workspace}", *args])
        finally:
            path.unlink()
    else:
        data = _run_espeak(args)
    try:
        wave, sr = sf.read(io.BytesIO(data), dtype="float64")
    except Exception as exc:  # soundfile raises its own RuntimeError subclasses
        raise DataError(f"espeak-ng gave no readable WAV for {text!r} ({voice}): {exc}") from None
    if sr != ESPEAK_SR_HZ:
        raise DataError(f"espeak-ng gave {sr} Hz audio, expected {ESPEAK_SR_HZ} Hz")
    return wave
