"""Host layer: the built-in spoken keyword set, synthesised with espeak-ng (design: docs/data.md).

The 12 classes of the GSC task (`KWS_LABELS`): the 10 keywords spoken by espeak-ng, other English
words as "unknown", synthesised noise as "silence". Every clip draws, from its own seeded
generator: a base voice (accent) and a voice variant of its split (in training, often a randomly
generated espeak-ng voice instead, and for keywords often an accent variant of the pronunciation),
a speaking rate, a pitch and an intonation (punctuation), or (30 % of the training words) a flite
training voice with a random duration stretch and pitch; then a speed/formant perturbation
(resampling), a random channel
(high-pass, low-pass, peaking/notch EQ), sometimes reverberation, a random time shift inside the
1 s window, background noise at a random SNR (coloured, modulated, hum, clicks or babble of other
words), a noise floor, a random gain, sometimes clipping, and 16-bit quantisation.

Split by voice: the test split uses base voices and variants that the training split never uses
(`s2eprop.host.data.espeak.TEST_BASE_VOICES`, `TEST_VARIANTS`); it is spoken by espeak-ng only. flite's
held-out voices (`s2eprop.host.data.flite.TEST_FLITE_VOICES`) are never used by the set. Clip i of a split depends only on (seed, split, i), so the
set is the same for any number of worker processes, and it is cached on disk with its features.

Options (``dataset: {kind: synth, <option>: ...}``): n_train (8000), n_test (600), seed (0),
unknown_share (null = balanced; a fraction gives "unknown" that share of the TRAINING clips, the
other 11 classes sharing the rest equally; the test split stays balanced), workers (2 processes;
1 runs in-process).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping

import numpy as np

from s2eprop.host.data.augment import background, colored_noise, random_channel, reverb
from s2eprop.host.data.cache import CacheEntry
from s2eprop.host.data.dataset import KWS_LABELS, Dataset, known_options
from s2eprop.host.data.espeak import ESPEAK_SR_HZ, espeak_version, make_voice_workspace, random_voice, speak, variant_file_text
from s2eprop.host.data.features import REFERENCE_PARAMS, features_from_waves
from s2eprop.host.data.flite import flite_version, speak_flite
from s2eprop.host.data.voices import VoicePools, voice_pools
from s2eprop.host.errors import DataError

SYNTH_VERSION = 4  # 3: "up" as /0p/, "off" as /Vf/ in the accent lexicon; 4: words spoken by flite
SR_HZ = REFERENCE_PARAMS.sample_rate_hz
N_SAMPLES = REFERENCE_PARAMS.n_samples
SPLIT_IDS = {"train": 0, "test": 1}
UNKNOWN = KWS_LABELS.index("unknown")
SILENCE = KWS_LABELS.index("silence")
KEYWORDS = KWS_LABELS[:UNKNOWN]
CHUNK_CLIPS = 24


# "unknown": the 25 auxiliary words of GSC v0.02 and other English words; none a homophone or a
# near rhyme of a keyword (as in GSC, whose other words are not near misses either).
UNKNOWN_WORDS = (
    "bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine", "one",
    "seven", "sheila", "six", "three", "tree", "two", "wow", "zero", "backward", "forward", "follow",
    "learn", "visual",
    "hello", "thanks", "please", "coffee", "music", "water", "paper", "number", "window", "table",
    "money", "river", "orange", "purple", "yellow", "green", "blue", "red", "black", "sugar", "open",
    "close", "start", "pause", "play", "next", "back", "home", "level", "cancel", "wait", "fast",
    "north", "south", "east", "morning", "kitchen", "garden", "bottle", "pencil",
    "doctor", "little", "animal", "banana", "camera", "eleven", "twelve", "twenty", "hundred",
    "maybe", "always", "never", "under", "after", "again", "really", "today", "tomorrow", "cheese",
)
PUNCTUATION = ("", ".", "?", "!", ",")

# Accent variants of the keywords, in espeak-ng phoneme mnemonics (spoken as [[...]] input by any
# voice): the pronunciations of the 8 English accents espeak-ng has plus common realisations of
# other accents (e.g. raised /O@/ "aw" of New York on/off, /VU/ of the English Midlands go/no,
# /A:/ monophthongs of the US South, /VI/ Canadian raising, /OI/ of London "right"), and "up"/"off"
# with each other's vowel (/0p/, /Vf/: only the consonant tells them apart). None is a homophone of
# an unknown word.
KEYWORD_PRONUNCIATIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "yes": ("j'Es", "j'es", "j'eIs", "j'Is"),
    "no": ("n'oU", "n'o:", "n'VU", "n'0U"),
    "up": ("'Vp", "'Up", "'@p", "'0p"),
    "down": ("d'aUn", "d'EUn", "d'A:n"),
    "left": ("l'Eft", "l'eft"),
    "right": ("r'aIt", "r'OIt", "r'A:t", "r'VIt"),
    "on": ("'0n", "'O2n", "'O:n", "'A:n", "'O@n"),
    "off": ("'0f", "'O2f", "'O:f", "'O@f", "'Vf"),
    "stop": ("st'0p", "st2'0p", "st'A:p", "st'O:p"),
    "go": ("g'oU", "g'o:", "g'VU", "g'0U"),
})


@dataclass(frozen=True)
class SynthOptions:
    n_train: int = 8000
    n_test: int = 600
    seed: int = 0
    unknown_share: float | None = None
    workers: int = 2

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> "SynthOptions":
        opts = cls(**known_options(cls, "synth", options))
        for name in ("n_train", "n_test", "seed", "workers"):
            value = getattr(opts, name)
            low = 0 if name in ("seed", "n_test") else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise DataError(f"synth option {name} must be an integer >= {low}, got {value!r}")
        share = opts.unknown_share
        if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float))
                                  or not 0 < share < 1):
            raise DataError(f"synth option unknown_share must be null or a number between 0 and 1 (exclusive), "
                            f"got {share!r}")
        return opts

    def cache_spec(self) -> dict[str, Any]:
        spec = asdict(self)
        del spec["workers"]  # results do not depend on it
        if spec["unknown_share"] is None:
            del spec["unknown_share"]  # balanced: the same key as before the option existed
        return spec






# ----------------------------------------------------------------------------- one clip

@dataclass(frozen=True)
class Augment:
    """Probabilities and ranges of one split's augmentation (see docs/data.md)."""

    p_random_voice: float = 0.5                      # a generated voice instead of a named variant
    p_accent: float = 0.6                            # a keyword spoken from KEYWORD_PRONUNCIATIONS
    speed: tuple[float, float] = (0.86, 1.16)        # resampling factor: tempo, pitch and formants
    p_eq: float = 0.4                                # random microphone/channel response
    eq_gain_db: tuple[float, float] = (-8.0, 8.0)
    p_reverb: float = 0.2
    rt60_s: tuple[float, float] = (0.1, 0.5)
    noises: tuple[str, ...] = ("none", "colored", "modulated", "hum", "clicks", "babble")
    p_noises: tuple[float, ...] = (0.3, 0.3, 0.15, 0.1, 0.05, 0.1)
    snr_db: tuple[float, float] = (5.0, 35.0)
    p_clip: float = 0.03
    p_flite: float = 0.3                             # a word spoken by flite instead of espeak-ng
    flite_stretch: tuple[float, float] = (0.75, 1.35)  # flite's duration_stretch (slower > 1)
    flite_f0_hz: tuple[float, float] = (80.0, 220.0)   # flite's mean pitch


# Training: wide augmentation. Test: held-out voices as espeak-ng speaks them, in milder conditions
# (the clips of version 3); flite's held-out voice is for experiments/cross_synth.py.
AUGMENT: Mapping[str, Augment] = MappingProxyType({
    "train": Augment(),
    "test": Augment(p_random_voice=0.0, p_accent=0.0, p_eq=0.3, eq_gain_db=(-6.0, 6.0), p_reverb=0.1,
                    rt60_s=(0.1, 0.4), p_noises=(0.4, 0.3, 0.1, 0.1, 0.05, 0.05), snr_db=(10.0, 35.0), p_clip=0.0,
                    p_flite=0.0),
})


def clip_recipe(seed: int, split: str, index: int, label: int, pools: VoicePools) -> dict[str, Any]:
    """Every random choice of one clip, from its own generator (seed, split, index)."""
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
    aug = AUGMENT[split]
    r: dict[str, Any] = {"split": split, "index": index, "label": KWS_LABELS[label]}
    if label != SILENCE:
        r["word"] = KEYWORDS[label] if label < UNKNOWN else str(rng.choice(UNKNOWN_WORDS))
        r["synth"] = "espeak-ng"
        r["voice"] = str(rng.choice(pools.bases(split)))
        r["variant"] = str(rng.choice(pools.variants(split)))
        if rng.uniform() < aug.p_random_voice:
            r["variant"] = f"s2eprop-{split}-{index}"
            r["random_voice"] = random_voice(rng)
        r["rate_wpm"] = int(rng.integers(110, 241))
        r["pitch"] = int(rng.integers(15, 86))
        r["punct"] = str(rng.choice(PUNCTUATION))
        r["speed"] = float(rng.uniform(*aug.speed))
        r["shift"] = float(rng.uniform())             # position of the word inside the free space
        r["eq"] = bool(rng.uniform() < aug.p_eq)
        r["reverb_rt60_s"] = float(rng.uniform(*aug.rt60_s)) if rng.uniform() < aug.p_reverb else 0.0
        r["noise"] = str(rng.choice(aug.noises, p=aug.p_noises))
        r["snr_db"] = float(rng.uniform(max(aug.snr_db[0], 6.0) if r["noise"] == "babble" else aug.snr_db[0], aug.snr_db[1]))
    else:
        r["noise"] = str(rng.choice(["colored", "modulated", "hum", "clicks", "babble_far"], p=[0.4, 0.25, 0.1, 0.15, 0.1]))
        r["eq"] = bool(rng.uniform() < 0.5)
    r["floor_db"] = float(rng.uniform(35, 65))  # noise floor below the signal
    r["gain"] = float(10 ** rng.uniform(-1.5, 0))
    r["clip"] = bool(rng.uniform() < aug.p_clip)
    if label != SILENCE:
        r["phonemes"] = (str(rng.choice(KEYWORD_PRONUNCIATIONS[r["word"]]))
                         if label < UNKNOWN and rng.uniform() < aug.p_accent else None)
        # drawn last, so the espeak-ng clips are those of version 3
        if rng.uniform() < aug.p_flite:
            for key in ("voice", "variant", "random_voice", "rate_wpm", "pitch", "phonemes"):
                r.pop(key, None)
            r["synth"] = "flite"
            r["voice"] = str(rng.choice(pools.flite(split)))
            r["stretch"] = float(rng.uniform(*aug.flite_stretch))
            r["f0_hz"] = float(rng.uniform(*aug.flite_f0_hz))
    return r


def trim_silence(wave: np.ndarray, sr_hz: int = ESPEAK_SR_HZ, rel_threshold: float = 0.01) -> np.ndarray:
    """The word without the leading and trailing silence (below 1 % of its peak), 10 ms margins kept."""
    loud = np.nonzero(np.abs(wave) > rel_threshold * np.max(np.abs(wave)))[0] if wave.size else wave[:0]
    if loud.size == 0:
        return wave[:0]
    margin = int(0.01 * sr_hz)
    return wave[max(0, loud[0] - margin):loud[-1] + margin]


def _babble(pools: VoicePools, split: str, rng: np.random.Generator, n_words: int) -> np.ndarray:
    """Several other (unknown-class) words in other voices of the split, overlapping: distant speech."""
    out = np.zeros(N_SAMPLES)
    for _ in range(n_words):
        wave = trim_silence(speak(str(rng.choice(UNKNOWN_WORDS)), str(rng.choice(pools.bases(split))),
                                  str(rng.choice(pools.variants(split))), int(rng.integers(120, 220)),
                                  int(rng.integers(20, 80))))
        wave = resample_to_16k(wave, ESPEAK_SR_HZ)
        if wave.size == 0:
            continue
        wave = wave[:N_SAMPLES]
        start = int(rng.integers(0, N_SAMPLES - len(wave) + 1))
        out[start:start + len(wave)] += wave * rng.uniform(0.3, 1.0)
    return out / (np.sqrt(np.mean(out ** 2)) + 1e-12)


def resample_to_16k(wave: np.ndarray, from_hz: float) -> np.ndarray:
    """`wave`, sampled at `from_hz`, at the features' 16 kHz (a rate scaled by a speed factor speeds it up)."""
    import librosa

    return librosa.resample(wave, orig_sr=from_hz, target_sr=SR_HZ) if wave.size else wave


def _speak_recipe(recipe: Mapping[str, Any], workspace: Path | None) -> tuple[np.ndarray, int]:
    """The recipe's word as its synthesiser speaks it, and the sample rate."""
    if recipe.get("synth") == "flite":
        return speak_flite(recipe["word"] + recipe["punct"], recipe["voice"], recipe["stretch"], recipe["f0_hz"],
                           workspace)
    generated = recipe.get("random_voice")
    text = f"[[{recipe['phonemes']}]]" if recipe.get("phonemes") else recipe["word"]
    return speak(text + recipe["punct"], recipe["voice"], recipe["variant"], recipe["rate_wpm"], recipe["pitch"],
                 workspace, None if generated is None else variant_file_text(generated)), ESPEAK_SR_HZ


def render_clip(recipe: Mapping[str, Any], seed: int, pools: VoicePools, workspace: Path | None = None) -> np.ndarray:
    """The 1 s, 16 kHz waveform of a recipe (deterministic: its own generator for the noise)."""
    split, index = recipe["split"], recipe["index"]
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index, 1])
    if recipe["label"] == "silence":
        x = background(rng, recipe["noise"], partial(_babble, pools, split))
        if recipe["eq"]:
            x = random_channel(rng, x, AUGMENT[split].eq_gain_db)
    else:
        wave, sr_hz = _speak_recipe(recipe, workspace)
        wave = trim_silence(wave, sr_hz)
        if wave.size == 0:
            raise DataError(f"{recipe['synth']} produced silence for {recipe['word']!r} "
                            f"(voice {recipe['voice']}{'+' + recipe['variant'] if recipe.get('variant') else ''})")
        speech = resample_to_16k(wave, sr_hz * recipe["speed"])
        if recipe["eq"]:
            speech = random_channel(rng, speech, AUGMENT[split].eq_gain_db)
        if recipe["reverb_rt60_s"] > 0:
            speech = reverb(rng, speech, recipe["reverb_rt60_s"])
        if len(speech) > N_SAMPLES:  # rare: a slow long word; keep its start
            speech = speech[:N_SAMPLES]
        start = int(round(recipe["shift"] * (N_SAMPLES - len(speech))))
        x = np.zeros(N_SAMPLES)
        x[start:start + len(speech)] = speech
        rms = np.sqrt(np.mean(speech ** 2)) + 1e-12
        x /= rms
        if recipe["noise"] != "none":
            x += background(rng, recipe["noise"], partial(_babble, pools, split)) * 10 ** (-recipe["snr_db"] / 20)
    level = np.sqrt(np.mean(x ** 2)) + 1e-12
    x += colored_noise(rng, N_SAMPLES, rng.uniform(0, 1)) * level * 10 ** (-recipe["floor_db"] / 20)
    x *= recipe["gain"] / (np.max(np.abs(x)) + 1e-12)
    if recipe["clip"]:
        limit = rng.uniform(0.3, 0.8) * np.max(np.abs(x))
        x = np.clip(x, -limit, limit)
    return np.round(x * 32767) / 32767  # 16-bit quantisation, as in a WAV


# ----------------------------------------------------------------------------- the set

def split_labels(n: int, seed: int, split: str, unknown_share: float | None = None) -> np.ndarray:
    """Labels in a seeded random order: balanced (counts differ by at most 1), or with
    round(unknown_share x n) "unknown" labels and the other classes balanced over the rest."""
    if unknown_share is None:
        labels = np.arange(n) % len(KWS_LABELS)
    else:
        n_unknown = int(round(unknown_share * n))
        others = np.array([c for c in range(len(KWS_LABELS)) if c != UNKNOWN])
        labels = np.concatenate([others[np.arange(n - n_unknown) % len(others)], np.full(n_unknown, UNKNOWN)])
    return np.random.default_rng([seed, SPLIT_IDS[split], 7]).permutation(labels)


def _split_share(opts: SynthOptions, split: str) -> float | None:
    """The unknown share of a split: the option for training; the test split is always balanced."""
    return opts.unknown_share if split == "train" else None


def _render_chunk(job: tuple) -> tuple[np.ndarray, list[dict], np.ndarray | None]:
    seed, split, indices, labels, pools, keep_waves, workspace = job
    recipes = [clip_recipe(seed, split, i, lab, pools) for i, lab in zip(indices, labels)]
    waves = np.stack([render_clip(r, seed, pools, workspace) for r in recipes])
    return features_from_waves(waves), recipes, (waves.astype(np.float32) if keep_waves else None)


def _jobs(opts: SynthOptions, pools: VoicePools, keep_waves: bool, workspace: Path) -> Iterator[tuple]:
    for split, n in (("train", opts.n_train), ("test", opts.n_test)):
        labels = split_labels(n, opts.seed, split, _split_share(opts, split))
        for start in range(0, n, CHUNK_CLIPS):
            idx = list(range(start, min(n, start + CHUNK_CLIPS)))
            yield (opts.seed, split, idx, [int(labels[i]) for i in idx], pools, keep_waves, workspace)


def generate_synth(options: Mapping[str, Any] | SynthOptions | None = None, progress: bool = True,
                   keep_waves: bool = False) -> dict[str, Any]:
    """Synthesise the set: {x, y, x_test, y_test, recipes, [waves, waves_test]} (no cache)."""
    opts = options if isinstance(options, SynthOptions) else SynthOptions.from_mapping(options)
    pools = voice_pools()
    from s2eprop.host.progress import progress_bar

    out: dict[str, Any] = {"recipes": []}
    parts: dict[str, list] = {"train": [], "test": []}
    waves: dict[str, list] = {"train": [], "test": []}
    workspace = make_voice_workspace(Path(tempfile.mkdtemp(prefix="s2eprop-espeak-")))
    jobs = list(_jobs(opts, pools, keep_waves, workspace))
    total = opts.n_train + opts.n_test
    executor = None
    if opts.workers > 1:
        # fork where the platform has it (no re-import of __main__, fast start); the workers
        # start before the progress bar's monitor thread exists
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        executor = ProcessPoolExecutor(max_workers=opts.workers, mp_context=mp.get_context(method))
    try:
        results: Iterator = executor.map(_render_chunk, jobs) if executor is not None else map(_render_chunk, jobs)
        with progress_bar(total, "synth keywords", "clip", progress) as bar:
            for job, (feats, recipes, w) in zip(jobs, results):
                parts[job[1]].append(feats)
                out["recipes"] += recipes
                if w is not None:
                    waves[job[1]].append(w)
                bar.update(len(feats))
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)
        shutil.rmtree(workspace, ignore_errors=True)
    empty = np.zeros((0, REFERENCE_PARAMS.n_frames, REFERENCE_PARAMS.n_features), np.float32)
    out["x"] = np.concatenate(parts["train"]) if parts["train"] else empty
    out["x_test"] = np.concatenate(parts["test"]) if parts["test"] else empty
    out["y"] = split_labels(opts.n_train, opts.seed, "train", _split_share(opts, "train")).astype(np.int64)
    out["y_test"] = split_labels(opts.n_test, opts.seed, "test", _split_share(opts, "test")).astype(np.int64)
    if keep_waves:
        out["waves"] = np.concatenate(waves["train"]) if waves["train"] else np.zeros((0, N_SAMPLES), np.float32)
        out["waves_test"] = np.concatenate(waves["test"]) if waves["test"] else np.zeros((0, N_SAMPLES), np.float32)
    return out


def synth_cache_entry(opts: SynthOptions, cache_dir: Path | None) -> CacheEntry:
    spec = {"version": SYNTH_VERSION, "espeak": espeak_version(), "flite": flite_version(), "voices": asdict(voice_pools()),
            "augment": {k: asdict(v) for k, v in AUGMENT.items()},
            "options": opts.cache_spec(), "features": REFERENCE_PARAMS.as_dict()}
    return CacheEntry(cache_dir, "synth", spec)


def load_synth_arrays(options: Mapping[str, Any] | SynthOptions | None = None, cache_dir: Path | None = None,
                      progress: bool = True) -> dict[str, Any]:
    """The set's arrays and recipes, from the cache or synthesised (then cached)."""
    opts = options if isinstance(options, SynthOptions) else SynthOptions.from_mapping(options)
    entry = synth_cache_entry(opts, cache_dir)
    cached = entry.load()
    if cached is None:
        started = time.perf_counter()
        made = generate_synth(opts, progress=progress)
        with entry.writer() as w:
            for name in ("x", "y", "x_test", "y_test"):
                w.save(name, made[name])
            assert w.tmp is not None
            (w.tmp / "recipes.json").write_text(json.dumps(made["recipes"], indent=0))
        if progress:
            print(f"synth keywords: {opts.n_train} + {opts.n_test} clips in {time.perf_counter() - started:.1f} s, "
                  f"cached in {entry.path}", file=sys.stderr)
        cached = entry.load()
        if cached is None:
            raise DataError(f"feature cache entry {entry.path} could not be read back")
    arrays: dict[str, Any] = dict(cached)
    recipes_path = entry.path / "recipes.json"
    arrays["recipes"] = json.loads(recipes_path.read_text()) if recipes_path.is_file() else []
    arrays["cache_path"] = entry.path
    return arrays


def load_synth_dataset(options: Mapping[str, Any] | None = None, cache_dir: Path | None = None,
                       progress: bool = True) -> Dataset:
    """The built-in spoken keyword set as a Dataset (x_test: the held-out voices)."""
    opts = SynthOptions.from_mapping(options)
    a = load_synth_arrays(opts, cache_dir, progress)
    return Dataset(x_train=a["x"], y_train=a["y"], labels=KWS_LABELS, x_test=a["x_test"], y_test=a["y_test"],
                   name=f"synth:seed{opts.seed}")
