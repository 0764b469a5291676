"""Host layer, CLI: the `s2eprop data ...` commands (synthesise the built-in keyword set, export features).

The main CLI calls `add_data_commands(subparsers)` and then `args.func(args)`; user errors are
raised as `DataError`, which the main CLI prints without a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from s2eprop.host.data.dataset import KWS_LABELS, Dataset
from s2eprop.host.errors import DataError


def add_data_commands(subparsers: Any) -> None:
    """Add `data synth` and `data export` under the main CLI's subparsers."""
    from s2eprop.host.data.synth import SynthOptions

    defaults = SynthOptions()
    data = subparsers.add_parser("data", help="datasets: synthesise the built-in keyword set, export features",
                                 description="Datasets: the built-in spoken keyword set and feature export.")
    sub = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)

    synth = sub.add_parser(
        "synth", help="generate (or reuse from the cache) the built-in spoken keyword set",
        description="Synthesise the 12-class spoken keyword set with espeak-ng and flite (held-out espeak-ng "
                    "voices as the test split), compute its features and cache them; with --out also write them "
                    "as a features .npz.")
    synth.add_argument("--out", type=Path, metavar="DIR",
                       help="folder to write synth_kws.npz (features, CLI format) and recipes.json into")
    synth.add_argument("--seed", type=int, default=defaults.seed, help=f"generator seed (default {defaults.seed})")
    synth.add_argument("--n-train", type=int, default=defaults.n_train,
                       help=f"training clips (default {defaults.n_train})")
    synth.add_argument("--n-test", type=int, default=defaults.n_test,
                       help=f"test clips, held-out voices (default {defaults.n_test})")
    synth.add_argument("--unknown-share", type=float, default=None,
                       help="share of the training clips that are 'unknown' words, between 0 and 1 "
                            "(default: balanced, 1/12; the test split stays balanced)")
    synth.add_argument("--workers", type=int, default=defaults.workers,
                       help=f"synthesis processes (default {defaults.workers})")
    synth.add_argument("--wav", action="store_true",
                       help="also write every clip as a 16 kHz WAV under DIR/wav/<split>/<label>/ (needs --out)")
    synth.add_argument("--cache-dir", dest="data_cache_dir", type=Path, metavar="DIR",
                       help="feature cache (default $S2EPROP_CACHE or ~/.cache/s2eprop)")
    synth.set_defaults(func=run_synth)

    export = sub.add_parser(
        "export", help="write the features of any dataset as a features .npz",
        description="Compute (or read from the cache) the features of a dataset and write them in the "
                    ".npz format the other commands accept (x, y, labels, x_test, y_test).")
    export.add_argument("--data", required=True, metavar="PATH|synth",
                        help="a Google Speech Commands folder (training archive or official test set), "
                             "a features .npz, or 'synth'")
    export.add_argument("--out", required=True, type=Path, metavar="FILE.npz", help="the features file to write")
    export.add_argument("--cache-dir", dest="data_cache_dir", type=Path, metavar="DIR",
                        help="feature cache (default $S2EPROP_CACHE or ~/.cache/s2eprop)")
    export.set_defaults(func=run_export)


def _balance_lines(ds: Dataset) -> list[str]:
    from s2eprop.host.data.gsc import format_balance

    lines = [format_balance("train", ds.y_train, ds.labels)]
    if ds.y_test is not None:
        lines.append(format_balance("test", ds.y_test, ds.labels))
    return lines


def _speaker_lines(recipes: list[dict[str, Any]]) -> list[str]:
    """Which synthesiser spoke the words of each split, e.g. 'train words: espeak-ng 8 (67 %), flite 4 (33 %)'."""
    lines = []
    for split in ("train", "test"):
        counts = Counter(r["synth"] for r in recipes if r["split"] == split and r["label"] != "silence")
        total = sum(counts.values())
        if total:
            lines.append(f"{split} words: " + ", ".join(f"{name} {n} ({100 * n / total:.0f} %)"
                                                       for name, n in sorted(counts.items())))
    return lines


def run_synth(args: argparse.Namespace) -> int:
    from s2eprop.host.data import synth

    options = {"n_train": args.n_train, "n_test": args.n_test, "seed": args.seed, "workers": args.workers,
               "unknown_share": args.unknown_share}
    opts = synth.SynthOptions.from_mapping(options)
    if args.wav and args.out is None:
        raise DataError("--wav needs --out DIR to write the WAV files into")
    started = time.perf_counter()
    if args.wav:
        made = synth.generate_synth(opts, progress=True, keep_waves=True)
        arrays: dict[str, Any] = dict(made)
        where = "generated (not cached: --wav)"
    else:
        arrays = synth.load_synth_arrays(opts, cache_dir=args.data_cache_dir, progress=True)
        where = f"cache {arrays['cache_path']}"
    ds = Dataset(x_train=np.asarray(arrays["x"]), y_train=np.asarray(arrays["y"]), labels=KWS_LABELS,
                 x_test=np.asarray(arrays["x_test"]), y_test=np.asarray(arrays["y_test"]), name="synth")
    print(f"synthetic keywords (seed {opts.seed}): {len(ds.y_train)} train + {len(ds.y_test)} test clips, "
          f"{time.perf_counter() - started:.1f} s, {where}")
    for line in _balance_lines(ds) + _speaker_lines(arrays["recipes"]):
        print("  " + line)
    if args.out is not None:
        out = Path(args.out)
        ds.save_npz(out / "synth_kws.npz")
        from s2eprop.host.files import atomic_write

        text = json.dumps(arrays["recipes"], indent=0).encode()
        atomic_write(out / "recipes.json", lambda f: f.write(text))
        if args.wav:
            _write_wavs(out / "wav", arrays)
        print(f"wrote {out / 'synth_kws.npz'} and {out / 'recipes.json'}" + (f" and {out / 'wav'}/" if args.wav else ""))
    return 0


def _write_wavs(folder: Path, arrays: dict[str, Any]) -> None:
    import soundfile as sf

    waves = {"train": arrays["waves"], "test": arrays["waves_test"]}
    for r in arrays["recipes"]:
        path = folder / r["split"] / r["label"] / f"{r['index']:05d}_{r.get('word', 'noise')}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), waves[r["split"]][r["index"]], 16000, subtype="PCM_16")


def run_export(args: argparse.Namespace) -> int:
    from s2eprop.host.data.loader import dataset_config_from_arg, load_dataset
    from s2eprop.host.files import check_writable_file

    out = Path(args.out)
    if out.suffix.lower() != ".npz":
        raise DataError(f"--out {out}: the features file must end in .npz")
    check_writable_file(out, "--out")  # before the features, which may take long
    cfg = dataset_config_from_arg(args.data)
    ds = load_dataset(cfg, cache_dir=args.data_cache_dir, progress=True, test_sets=True)
    if ds.name == "gsc-official-test":
        print("official GSC test set: exported as x_test/y_test with an empty train split")
    ds.save_npz(out)
    n_test = 0 if ds.y_test is None else len(ds.y_test)
    print(f"wrote {out}: {len(ds.y_train)} train + {n_test} test clips of {ds.n_steps} x {ds.n_in} features")
    for line in _balance_lines(ds):
        print("  " + line)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m s2eprop.host.cli.data data synth ...`), for use before the main CLI exists."""
    from s2eprop.host.errors import HostError

    parser = argparse.ArgumentParser(prog="s2eprop")
    add_data_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except HostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
