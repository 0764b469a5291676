"""Host layer: the Google Speech Commands loader (v0.01 and v0.02 folder layout, 12-class task).

Training archive layout (one folder per word, both versions)::

    ROOT/yes/0a7c2a8d_nohash_0.wav ...      one folder per spoken word (30 in v0.01, 35 in v0.02)
    ROOT/validation_list.txt                 relative paths ("yes/0a7c2a8d_nohash_0.wav"), one a line
    ROOT/testing_list.txt
    ROOT/_background_noise_/*.wav            long noise recordings, the source of "silence"

Splits: `testing` = the files in testing_list.txt, `validation` = validation_list.txt, `train` =
every other WAV of the word folders. Labels follow `KWS_LABELS`: the 10 keywords, `unknown` (every
other word), `silence` (1 s crops of the background-noise files). The silence crops of each split
come from their own stretch of every noise file (train: the first 80 % of its samples,
validation: the next 10 %, testing: the last 10 %), so no noise is shared between splits, and are
drawn with a seeded generator, so they are the same on every run.

The separately published official test set (``speech_commands_test_set_v0.0x``) has folders
``_silence_`` and ``_unknown_`` next to the keyword folders and no list files;
`load_gsc_official_test` reads it (all of it is test data).

Options (``dataset: {kind: gsc, path: ..., <option>: ...}``):
``silence_fraction`` (0.1: silence clips per split = this x the split's word clips),
``unknown_fraction`` (null: keep every unknown word, as the authors did; a number f: keep
f x the split's keyword clips, drawn with the seed), ``seed`` (0: silence crops, subsampling and
clip order), ``test_split`` ("testing"; "validation" puts the validation split in x_test),
``max_train`` / ``max_test`` (null: all; a number: a seeded random subset, for quick runs).
"""
from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from s2eprop.host.data.cache import CacheEntry, cache_key
from s2eprop.host.data.dataset import KWS_LABELS, Dataset, known_options
from s2eprop.host.data.features import REFERENCE_PARAMS, FeatureParams, features_from_waves, prepare_clip
from s2eprop.host.errors import DataError

BACKGROUND_DIR = "_background_noise_"
OFFICIAL_TEST_DIRS = ("_silence_", "_unknown_")
LIST_FILES = {"validation": "validation_list.txt", "testing": "testing_list.txt"}
SPLITS = ("train", "validation", "testing")
# Which stretch of every background-noise file each split's silence crops come from.
NOISE_SEGMENTS = {"train": (0.0, 0.8), "validation": (0.8, 0.9), "testing": (0.9, 1.0)}
UNKNOWN = KWS_LABELS.index("unknown")
SILENCE = KWS_LABELS.index("silence")
KEYWORDS = KWS_LABELS[:UNKNOWN]
CHUNK_CLIPS = 256
FORMAT_VERSION = 1


@dataclass(frozen=True)
class GscOptions:
    silence_fraction: float = 0.1
    unknown_fraction: float | None = None
    seed: int = 0
    test_split: str = "testing"
    max_train: int | None = None
    max_test: int | None = None

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> "GscOptions":
        opts = cls(**known_options(cls, "gsc", options))
        if not (isinstance(opts.silence_fraction, (int, float)) and opts.silence_fraction >= 0):
            raise DataError(f"gsc option silence_fraction must be a number >= 0, got {opts.silence_fraction!r}")
        if opts.unknown_fraction is not None and not (
                isinstance(opts.unknown_fraction, (int, float)) and opts.unknown_fraction >= 0):
            raise DataError(f"gsc option unknown_fraction must be null or a number >= 0, got {opts.unknown_fraction!r}")
        if opts.test_split not in ("testing", "validation"):
            raise DataError(f"gsc option test_split must be 'testing' or 'validation', got {opts.test_split!r}")
        for name in ("max_train", "max_test"):
            value = getattr(opts, name)
            if value is not None and not (isinstance(value, int) and value >= 1):
                raise DataError(f"gsc option {name} must be null or an integer >= 1, got {value!r}")
        if not isinstance(opts.seed, int):
            raise DataError(f"gsc option seed must be an integer, got {opts.seed!r}")
        return opts


@dataclass(frozen=True)
class Clip:
    """One clip of a split: a WAV file (offset None) or a 1 s crop of a noise file at `offset`."""

    path: Path
    label: int
    offset: int | None = None


# ----------------------------------------------------------------------------- layout

def label_of_word(word: str) -> int:
    return KWS_LABELS.index(word) if word in KEYWORDS else UNKNOWN


def _wav_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and any(d.glob("*.wav")))


def is_official_test_layout(root: Path) -> bool:
    return any((Path(root) / name).is_dir() for name in OFFICIAL_TEST_DIRS)


def check_gsc_root(root: str | Path) -> Path:
    """The folder as a Path if it has the training-archive layout, else a DataError saying why."""
    root = Path(root)
    expected = (f"expected one folder per word (yes, no, ...), {LIST_FILES['validation']}, "
                f"{LIST_FILES['testing']} and {BACKGROUND_DIR}/")
    if not root.is_dir():
        raise DataError(f"GSC path {root} is not a folder ({expected})")
    if is_official_test_layout(root):
        raise DataError(
            f"{root} is the official GSC test set (it has _silence_/_unknown_ folders): it holds test data only; "
            "pass it as a test set (s2eprop eval, s2eprop.host.data.gsc.load_gsc_official_test) and train on the "
            "training archive, which has the list files")
    words = [d.name for d in _wav_dirs(root) if d.name != BACKGROUND_DIR]
    if not any(w in KEYWORDS for w in words):
        raise DataError(f"{root} is not a Google Speech Commands folder: no keyword folder with WAVs ({expected})")
    for name in LIST_FILES.values():
        if not (root / name).is_file():
            raise DataError(f"GSC folder {root} lacks the list file {name} ({expected})")
    return root.resolve()


def _read_list(root: Path, name: str) -> list[str]:
    try:
        lines = (root / name).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {root / name}: {exc}") from None
    return [line.strip().replace("\\", "/") for line in lines if line.strip().endswith(".wav")]


def _noise_files(root: Path) -> list[Path]:
    folder = root / BACKGROUND_DIR
    return sorted(folder.glob("*.wav")) if folder.is_dir() else []


def _wav_frames(path: Path) -> int:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises its own RuntimeError subclasses
        raise DataError(f"cannot read WAV {path}: {exc}") from None
    return int(round(info.frames * REFERENCE_PARAMS.sample_rate_hz / info.samplerate))


def silence_crops(noise_files: Sequence[Path], split: str, n: int, seed: int,
                  n_samples: int = REFERENCE_PARAMS.n_samples) -> list[Clip]:
    """`n` reproducible 1 s crops from the split's stretch of the noise files (offsets at 16 kHz)."""
    if n == 0:
        return []
    if not noise_files:
        raise DataError(f"no {BACKGROUND_DIR}/*.wav files to cut silence clips from (set silence_fraction: 0 to skip)")
    lengths = [_wav_frames(p) for p in noise_files]
    lo_frac, hi_frac = NOISE_SEGMENTS[split]
    rng = np.random.default_rng([seed, SPLITS.index(split), 11])
    clips = []
    for _ in range(n):
        i = int(rng.integers(len(noise_files)))
        lo, hi = int(lengths[i] * lo_frac), int(lengths[i] * hi_frac)
        if hi - lo < n_samples:  # short file: fall back to the whole file
            lo, hi = 0, lengths[i]
        offset = lo + int(rng.integers(max(1, hi - lo - n_samples + 1)))
        clips.append(Clip(noise_files[i], SILENCE, offset))
    return clips


def gsc_split_clips(root: str | Path, options: GscOptions | Mapping[str, Any] | None = None) -> dict[str, list[Clip]]:
    """The clips of the three splits, in the (seeded, shuffled) order they are loaded in."""
    root = check_gsc_root(root)
    opts = options if isinstance(options, GscOptions) else GscOptions.from_mapping(options)
    listed = {split: set(_read_list(root, name)) for split, name in LIST_FILES.items()}
    both = listed["validation"] & listed["testing"]
    if both:
        raise DataError(f"GSC folder {root}: {len(both)} file(s) in both list files, e.g. {sorted(both)[0]}")
    words: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    for folder in _wav_dirs(root):
        if folder.name == BACKGROUND_DIR:
            continue
        label = label_of_word(folder.name)
        for wav in sorted(folder.glob("*.wav")):
            rel = f"{folder.name}/{wav.name}"
            split = "testing" if rel in listed["testing"] else "validation" if rel in listed["validation"] else "train"
            words[split].append(Clip(wav, label))
    noise = _noise_files(root)
    out = {}
    for k, split in enumerate(SPLITS):
        rng = np.random.default_rng([opts.seed, k])
        clips = words[split]
        if opts.unknown_fraction is not None:
            known = [c for c in clips if c.label != UNKNOWN]
            unknown = [c for c in clips if c.label == UNKNOWN]
            keep = min(len(unknown), int(round(opts.unknown_fraction * len(known))))
            picked = sorted(rng.choice(len(unknown), size=keep, replace=False)) if keep else []
            clips = known + [unknown[i] for i in picked]
        n_silence = int(math.ceil(opts.silence_fraction * len(clips))) if clips else 0
        clips = clips + silence_crops(noise, split, n_silence, opts.seed)
        order = rng.permutation(len(clips))
        out[split] = [clips[i] for i in order]
    return out


# ----------------------------------------------------------------------------- features

def _read_wave(clip: Clip, params: FeatureParams, resampled: list[str]) -> np.ndarray:
    import soundfile as sf

    try:
        if clip.offset is None:
            wave, sr = sf.read(str(clip.path), dtype="float64", always_2d=True)
        else:
            info = sf.info(str(clip.path))
            ratio = info.samplerate / params.sample_rate_hz
            start = int(clip.offset * ratio)
            wave, sr = sf.read(str(clip.path), start=start, frames=int(math.ceil(params.n_samples * ratio)) + 1,
                               dtype="float64", always_2d=True)
    except Exception as exc:  # soundfile raises its own RuntimeError subclasses
        raise DataError(f"cannot read WAV {clip.path}: {exc}") from None
    if wave.size == 0 and clip.offset is None:
        raise DataError(f"cannot read WAV {clip.path}: it holds no samples")
    bad = np.flatnonzero(~np.isfinite(wave).all(axis=1))
    if bad.size:  # a float WAV can hold them; librosa would fail with its own error
        raise DataError(f"WAV {clip.path} holds NaN or infinite samples ({bad.size}, the first at sample {bad[0]}): "
                        f"re-encode the file or remove it")
    if sr != params.sample_rate_hz and clip.path not in resampled:
        resampled.append(str(clip.path))
        if len(resampled) <= 3:
            warnings.warn(f"{clip.path}: sample rate {sr} Hz, resampled to {params.sample_rate_hz} Hz", stacklevel=3)
    return prepare_clip(wave, sr, params=params, warn=False)


def _files_spec(clips: Sequence[Clip], root: Path) -> str:
    """Digest of the clip list: relative path, size, mtime, crop offset and label of every clip."""
    rows = []
    for c in clips:
        st = c.path.stat()
        rel = c.path.relative_to(root) if c.path.is_relative_to(root) else c.path
        rows.append((str(rel), st.st_size, st.st_mtime_ns, c.offset, c.label))
    return cache_key({"clips": rows})


def clip_features(clips: Sequence[Clip], root: Path, tag: str, cache_dir: Path | None, progress: bool,
                  params: FeatureParams = REFERENCE_PARAMS) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of the clips, from the cache or computed (then cached)."""
    spec = {"format": FORMAT_VERSION, "features": params.as_dict(), "clips": _files_spec(clips, root), "n": len(clips)}
    entry = CacheEntry(cache_dir, tag, spec)
    cached = entry.load()
    if cached is not None:
        return cached["x"], cached["y"]
    from s2eprop.host.progress import progress_bar

    y = np.array([c.label for c in clips], dtype=np.int64)
    resampled: list[str] = []
    with entry.writer() as w:
        x = w.array("x", (len(clips), params.n_frames, params.n_features), np.float32)
        with progress_bar(len(clips), f"features {tag}", "clip", progress) as bar:
            for start in range(0, len(clips), CHUNK_CLIPS):
                chunk = clips[start:start + CHUNK_CLIPS]
                waves = np.stack([_read_wave(c, params, resampled) for c in chunk])
                x[start:start + len(chunk)] = features_from_waves(waves, params)
                bar.update(len(chunk))
        w.save("y", y)
    if len(resampled) > 3:
        warnings.warn(f"{len(resampled)} WAV files in total were not at {params.sample_rate_hz} Hz and were resampled",
                      stacklevel=2)
    loaded = entry.load()
    if loaded is None:
        raise DataError(f"feature cache entry {entry.path} could not be read back")
    return loaded["x"], loaded["y"]


def _subset(clips: list[Clip], limit: int | None, seed: int, salt: int) -> list[Clip]:
    if limit is None or limit >= len(clips):
        return clips
    rng = np.random.default_rng([seed, salt, 99])
    keep = np.sort(rng.choice(len(clips), size=limit, replace=False))
    return [clips[i] for i in keep]


def load_gsc_split(root: str | Path, split: str, options: Mapping[str, Any] | GscOptions | None = None,
                   cache_dir: Path | None = None, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, 100, 80) float32 and labels (N,) int64 of one split: train, validation or testing."""
    if split not in SPLITS:
        raise DataError(f"GSC split {split!r} unknown; choose one of {', '.join(SPLITS)}")
    opts = options if isinstance(options, GscOptions) else GscOptions.from_mapping(options)
    root = Path(root)
    clips = gsc_split_clips(root, opts)[split]
    limit = opts.max_train if split == "train" else opts.max_test if split == opts.test_split else None
    clips = _subset(clips, limit, opts.seed, SPLITS.index(split))
    return clip_features(clips, root.resolve(), f"gsc-{split}", cache_dir, progress)


def load_gsc_dataset(root: str | Path, options: Mapping[str, Any] | None = None, cache_dir: Path | None = None,
                     progress: bool = True) -> Dataset:
    """Train split and (by default) the testing_list split as x_test, with the class balance reported."""
    opts = GscOptions.from_mapping(options)
    root = Path(root)
    split_clips = gsc_split_clips(root, opts)
    parts = {}
    for split, limit in (("train", opts.max_train), (opts.test_split, opts.max_test)):
        clips = _subset(split_clips[split], limit, opts.seed, SPLITS.index(split))
        parts[split] = clip_features(clips, root.resolve(), f"gsc-{split}", cache_dir, progress)
    (x, y), (xt, yt) = parts["train"], parts[opts.test_split]
    if progress:
        print(format_balance(f"GSC {root.name} train", y), file=sys.stderr)
        print(format_balance(f"GSC {root.name} {opts.test_split}", yt), file=sys.stderr)
    return Dataset(x_train=x, y_train=y, labels=KWS_LABELS, x_test=xt, y_test=yt, name=f"gsc:{root.name}")


def official_test_clips(root: str | Path) -> list[Clip]:
    """Clips of the official test-set layout: keyword folders, `_unknown_`, `_silence_` (others: unknown)."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise DataError(f"GSC test-set path {root} is not a folder")
    if not is_official_test_layout(root):
        raise DataError(f"{root} is not the official GSC test set: it lacks the _silence_ and _unknown_ folders")
    clips = []
    for folder in _wav_dirs(root):
        label = SILENCE if folder.name == "_silence_" else label_of_word(folder.name)
        clips += [Clip(p, label) for p in sorted(folder.glob("*.wav"))]
    if not clips:
        raise DataError(f"official GSC test set {root} holds no WAV files")
    return clips


def load_gsc_official_test(root: str | Path, cache_dir: Path | None = None,
                           progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels (KWS_LABELS order) of the separately published official test set."""
    clips = official_test_clips(root)
    x, y = clip_features(clips, Path(root).resolve(), "gsc-official-test", cache_dir, progress)
    if progress:
        print(format_balance(f"GSC official test {Path(root).name}", y), file=sys.stderr)
    return x, y


def official_test_dataset(root: str | Path, cache_dir: Path | None = None, progress: bool = True) -> Dataset:
    """The official test set as a Dataset: all of it the test split, an empty training split."""
    x_test, y_test = load_gsc_official_test(root, cache_dir, progress)
    x_test = np.asarray(x_test)
    return Dataset(x_train=np.zeros((0,) + x_test.shape[1:], np.float32), y_train=np.zeros(0, np.int64),
                   labels=KWS_LABELS, x_test=x_test, y_test=np.asarray(y_test), name="gsc-official-test")


# ----------------------------------------------------------------------------- reporting

def class_counts(y: Iterable[int], labels: Sequence[str] = KWS_LABELS) -> dict[str, int]:
    counts = np.bincount(np.asarray(list(y) if not isinstance(y, np.ndarray) else y, dtype=np.int64),
                         minlength=len(labels))
    return {name: int(counts[i]) for i, name in enumerate(labels)}


def format_balance(title: str, y: np.ndarray, labels: Sequence[str] = KWS_LABELS) -> str:
    """One line: the split's size and every class's count and share."""
    counts = class_counts(y, labels)
    n = max(1, sum(counts.values()))
    body = ", ".join(f"{k} {v} ({100.0 * v / n:.1f}%)" for k, v in counts.items())
    return f"{title}: {sum(counts.values())} clips; {body}"

