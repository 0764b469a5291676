"""Study: how trained weights hold up on speech from synthesisers and voices the built-in keyword set
does not use (docs/data.md section 7).

Every English voice of flite and festival that is installed (festival voices are optional:
`apt-get install festival festvox-kdlpc16k festvox-us-slt-hts`) speaks the 10 keywords and a seeded
"unknown" word at 3 duration stretches (0.8, 1, 1.25) and 3 speeds (resampling 0.9, 1, 1.1): 99
clips per voice, each placed at a seeded random position in 1 s with coloured noise 15-40 dB below
it. Each voice's clips come from its own generator, so they do not depend on which other voices are
installed. Voices that the set's training split uses are marked; the others were never heard in
training.

    python experiments/cross_synth.py runs/kws/weights.npz [more weights] --out runs/cross_synth

writes `cross_synth.json` (accuracy per weights file, voice and class) and `cross_synth.png`.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

from s2eprop.host.config import NetworkConfig, TrainConfig
from s2eprop.host.data.augment import colored_noise
from s2eprop.host.data.dataset import KWS_LABELS
from s2eprop.host.data.features import REFERENCE_PARAMS, features_from_waves
from s2eprop.host.data import flite
from s2eprop.host.data.flite import TRAIN_FLITE_VOICES, speak_flite
from s2eprop.host.data.synth import UNKNOWN_WORDS, resample_to_16k, trim_silence
from s2eprop.host.errors import DataError
from s2eprop.host.plots.figures import pyplot
from s2eprop.host.files import write_json
from s2eprop.host.reference.golden import GoldenModel
from s2eprop.host.weights import load_weights

SR_HZ = REFERENCE_PARAMS.sample_rate_hz
N_SAMPLES = REFERENCE_PARAMS.n_samples
STRETCHES = (0.8, 1.0, 1.25)
SPEEDS = (0.9, 1.0, 1.1)
FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices")
N_SPEECH_CLASSES = KWS_LABELS.index("unknown") + 1  # the keywords and unknown: silence is not spoken


def installed_voices() -> list[tuple[str, str]]:
    """(engine, voice) for flite's English voices and festival's installed English/US voices."""
    voices = [("flite", v) for v in flite.installed_voices() if v != "awb_time"]  # awb_time: clock phrases only
    for lang in ("english", "us"):
        if (FESTIVAL_VOICE_DIR / lang).is_dir():
            voices += [("festival", d.name) for d in sorted((FESTIVAL_VOICE_DIR / lang).iterdir()) if d.is_dir()]
    return voices


def speak(engine: str, voice: str, word: str, stretch: float, workspace: Path) -> tuple[np.ndarray, int]:
    """One word from one voice of flite or festival, and its sample rate."""
    if engine == "flite":
        return speak_flite(word, voice, stretch, None, workspace)
    import soundfile as sf

    path = workspace / "festival.wav"
    try:
        subprocess.run(["text2wave", "-o", str(path), "-eval", f"(voice_{voice})",
                        "-eval", f"(Parameter.set 'Duration_Stretch {stretch})"],
                       input=word.encode(), check=True, capture_output=True, timeout=60)
        wave, sr = sf.read(path, dtype="float64")
    except subprocess.CalledProcessError as exc:
        raise DataError(f"festival voice {voice} failed to speak {word!r}: "
                        f"{exc.stderr.decode(errors='replace').strip()}; check it with `echo {word} | text2wave "
                        f"-eval '(voice_{voice})' -o x.wav`, or remove the voice") from None
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        raise DataError(f"festival voice {voice} failed to speak {word!r}: {exc}") from None
    return wave, int(sr)


def place_word(word_wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 1 s clip: the word (RMS 1) at a random position, coloured noise 15-40 dB below, peak 0.5."""
    x = np.zeros(N_SAMPLES)
    start = int(rng.integers(0, N_SAMPLES - len(word_wave) + 1))
    x[start:start + len(word_wave)] = word_wave / (np.sqrt(np.mean(word_wave ** 2)) + 1e-12)
    x += colored_noise(rng, N_SAMPLES, rng.uniform(0, 1)) * 10 ** (-rng.uniform(15, 40) / 20)
    return 0.5 * x / np.max(np.abs(x))


def build_set(voices: list[tuple[str, str]], seed: int = 5) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features (N, 100, 80), labels (N,) and the 'engine:voice' of each clip."""
    waves, labels, names = [], [], []
    with tempfile.TemporaryDirectory(prefix="s2eprop-xsynth-") as tmp:
        for engine, voice in voices:
            rng = np.random.default_rng([seed, zlib.crc32(f"{engine}:{voice}".encode())])
            for stretch in STRETCHES:
                for speed in SPEEDS:
                    for label in range(N_SPEECH_CLASSES):
                        word = KWS_LABELS[label] if label < N_SPEECH_CLASSES - 1 else str(rng.choice(UNKNOWN_WORDS))
                        wave, sr = speak(engine, voice, word, stretch, Path(tmp))
                        word_wave = trim_silence(resample_to_16k(wave, sr * speed), SR_HZ)[:N_SAMPLES]
                        if word_wave.size == 0:
                            raise DataError(f"{engine} voice {voice} spoke silence for {word!r}")
                        waves.append(place_word(word_wave, rng))
                        labels.append(label)
                        names.append(f"{engine}:{voice}")
    return features_from_waves(np.stack(waves)), np.array(labels), names


def predict(weights_path: Path, x: np.ndarray) -> np.ndarray:
    net = NetworkConfig()
    model = GoldenModel(net, TrainConfig(), load_weights(weights_path, net))
    return np.concatenate([model.forward(x[i:i + 256]).pred for i in range(0, len(x), 256)])


def summarise(pred: np.ndarray, y: np.ndarray, names: list[str]) -> dict:
    ok = pred == y
    voice_of = np.array(names)
    return {
        "accuracy": float(ok.mean()),
        "per_voice": {v: float(ok[voice_of == v].mean()) for v in dict.fromkeys(names)},
        "per_class": {KWS_LABELS[k]: float(ok[y == k].mean()) for k in range(N_SPEECH_CLASSES) if np.any(y == k)},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights", nargs="+", type=Path, help="weights.npz or checkpoint.npz files")
    ap.add_argument("--out", type=Path, default=Path("runs/cross_synth"))
    args = ap.parse_args(argv)
    try:
        for w in args.weights:  # fail on a bad file before the minute of synthesis
            load_weights(w, NetworkConfig())
        voices = installed_voices()
        if not any(engine == "festival" for engine, _ in voices):
            print(f"warning: no festival voice is installed, so only {len(voices)} flite voice(s) speak the test "
                  f"(apt-get install festival festvox-kdlpc16k festvox-us-slt-hts for the study's 3+ voices)",
                  file=sys.stderr)
        x, y, names = build_set(voices)
        results = {str(w): summarise(predict(w, x), y, names) for w in args.weights}
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    trained = sorted(f"flite:{v}" for v in TRAIN_FLITE_VOICES)
    report = {"clips": len(y), "voices": list(dict.fromkeys(names)), "voices_in_training": trained, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "cross_synth.json", report)
    for w, r in results.items():
        held = [a for v, a in r["per_voice"].items() if v not in trained]
        unseen = f"voices never in training {100 * float(np.mean(held)):.1f} %; " if held else ""
        print(f"{w}: {100 * r['accuracy']:.1f} % of {len(y)} clips; {unseen}"
              + ", ".join(f"{v} {100 * a:.0f} %" for v, a in r["per_voice"].items()))
    _plot(results, report["voices"], trained, args.out / "cross_synth.png")
    print(f"wrote {args.out / 'cross_synth.json'}, {args.out / 'cross_synth.png'}")
    return 0


def _plot(results: dict, voices: list[str], trained: list[str], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.2 * len(voices) + 2, 3.5))
    width = 0.8 / len(results)
    for i, (w, r) in enumerate(results.items()):
        ax.bar(np.arange(len(voices)) + i * width, [100 * r["per_voice"][v] for v in voices], width, label=Path(w).parent.name or w)
    ax.set_xticks(np.arange(len(voices)) + 0.4 - width / 2)
    ax.set_xticklabels([v + (" (trained)" if v in trained else "") for v in voices], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
