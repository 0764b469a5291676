"""Host layer, CLI: the `s2eprop` command line (train, eval, bench, memory, data).

User errors (HostError, EmulatorError) are printed as one line without a traceback, exit code 2. A training
that lost samples (train.on_loss: count) finishes its run folder and exits with EXIT_SAMPLES_LOST (3).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, NoReturn, Sequence

from s2eprop.emulator.errors import EmulatorError
from s2eprop.host.cli.common import config_from_args, folder_path
from s2eprop.host.files import writable_folder
from s2eprop.host.errors import HostError, TrainingInterrupted
from s2eprop.host.files import check_writable_file


EXIT_SAMPLES_LOST = 3  # train: the run finished, but samples were lost (no result came back)


def _target(value: str) -> str:
    if value in ("golden", "emulator") or value.startswith("udp://"):
        return value
    raise argparse.ArgumentTypeError(f"{value!r}: choose golden, emulator or udp://HOST:PORT")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="experiment YAML (network, train, partition, dataset)")
    p.add_argument("--data", help="a GSC folder, a features .npz, or 'synth' (overrides the config's dataset)")


def _dataset(cfg, progress: bool, test_sets: bool = False):
    """The config's dataset as stored (the session encodes it for the config's input)."""
    from s2eprop.host.data.loader import load_dataset

    return load_dataset(cfg.dataset, progress=progress, test_sets=test_sets)


def cmd_train(args: argparse.Namespace) -> int:
    from s2eprop.host.config import with_overrides
    from s2eprop.host.engines import check_engine, engine_of
    from s2eprop.host.session.api import run_training
    from s2eprop.host.session.train import TrainOptions, prepare_run_folder

    chip = {"mode": args.mode, "file": None if args.chip is None else str(args.chip), "clock_mhz": args.clock_mhz,
            "cpu": args.cpu, "threads": args.threads, "engine": args.engine}
    cfg = with_overrides(config_from_args(args), chip=chip, epochs=args.epochs, max_samples=args.max_samples,
                         batch_size=args.batch_size, seed=args.seed, checkpoint_every_samples=args.checkpoint_every)
    check_engine(engine_of(cfg, args.target, args.backend, args.key_file))  # before the data: it may take long
    if args.chip is not None and not args.chip.is_file():
        raise HostError(f"--chip {args.chip}: no such file")
    for flag, path in (("--init-weights", args.init_weights), ("--resume", args.resume)):
        if path is not None and not path.is_file():
            raise HostError(f"{flag} {path}: no such file")
    if args.resume is not None and args.init_weights is not None:
        raise HostError("--resume continues a run from its checkpoint's weights and optimizer, --init-weights "
                        "starts a new one from weights: give one of them")
    if args.resume is not None and args.overwrite:
        raise HostError("--resume continues a run and --overwrite replaces one: give one of them")
    prepare_run_folder(args.out, args.resume, args.overwrite)  # before the data: it may take long to load
    data = _dataset(cfg, progress=not args.quiet)
    opts = TrainOptions(target=args.target, out_dir=args.out, init_weights=args.init_weights, resume=args.resume,
                        backend=args.backend, progress=not args.quiet, overwrite=args.overwrite,
                        argv=tuple(args.argv), key_file=args.key_file, link_patience_s=args.link_patience_s)
    report = run_training(cfg, data, opts)
    acc, train_acc = report["test_accuracy"], report["train_accuracy"]
    n_lost, test_lost = report.get("samples_lost_this_session", 0), report.get("test_samples_lost", 0)
    print(f"trained {report['samples_trained_this_session']} samples"
          + (f" ({n_lost} more lost: no result came back, not trained on)" if n_lost else "")
          + f" on {report['target']} in {report['wall_s']:.1f} s "
          f"({report['ms_per_training_sample']:.2f} ms per training sample)"
          + (f"; train accuracy {100 * train_acc:.1f} %" if train_acc is not None else "")
          + (f", test accuracy {100 * acc:.1f} %" if acc is not None else ""))
    if args.target != "golden":
        print(f"{report['cores']} cores, {report['training_state_bytes_total']:,} B of training state, "
              f"max arena {max(report['sram_bytes_per_core']):,} B/core, {report['emulated_ms']:,} emulated ms")
        tm = report.get("timing")
        if tm:
            print(f"timing ({tm['mode']}, {tm['clock_hz'] / 1e6:g} MHz): {tm['overruns']} overruns in {tm['ticks']:,} "
                  f"core-ticks, max tick utilisation {100 * tm['max_tick_utilisation']:.1f} %, p99 "
                  f"{100 * (tm['p99_tick_utilisation'] or 0):.0f} %, {tm['late_packets']} late packets; "
                  f"dominant phase: {tm['dominant_phase']}")
        lost = {k: v for k, v in report["provenance"].items() if v}
        if lost:
            print(f"warning: the chip counted losses: {lost}", file=sys.stderr)
    print(f"report: {args.out / 'report.json'}; weights: {args.out / 'weights.npz'}; "
          f"figures: {', '.join(str(args.out / f) for f in report['figures'].values())}")
    if n_lost or test_lost:
        print(f"s2eprop train: {n_lost} training and {test_lost} test sample(s) were lost (no result came back; "
              f"train.on_loss: count): exit status {EXIT_SAMPLES_LOST}. The losses the chip and the link counted are "
              f"in report.json `provenance` and `link`; set train.on_loss: stop to end the run at the first one",
              file=sys.stderr)
        return EXIT_SAMPLES_LOST
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from s2eprop.host.engines import check_engine, engine_of
    from s2eprop.host.session.api import Session

    cfg = config_from_args(args)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=1))
    check_engine(engine_of(cfg, args.target, args.backend, args.key_file))  # before the data: it may take long
    data = _dataset(cfg, progress=not args.quiet, test_sets=True)
    split = "train" if args.train_split or data.x_test is None else "test"
    if split == "train" and not args.train_split:
        print(f"note: dataset {data.name} has no test split; evaluating its training split", file=sys.stderr)
    with Session(cfg, args.target, init_weights=args.weights, backend=args.backend, key_file=args.key_file,
                 labels=tuple(data.labels), link_patience_s=args.link_patience_s) as s:
        ev = s.evaluate(data, split)
    y = data.y_train if split == "train" else data.y_test
    out = {"target": args.target, "split": split, "accuracy": ev["accuracy"], "loss": ev["loss"], "samples": ev["n"],
           "per_class_accuracy": ev["per_class_accuracy"]}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{split} split on {args.target}: accuracy {100 * ev['accuracy']:.2f} % over {ev['n']} samples, "
          f"loss {ev['loss']:.4f}")
    for name, acc in out["per_class_accuracy"].items():
        print(f"  {name:>8}: " + ("  n/a" if acc is None else f"{100 * acc:5.1f} %") +
              f"  ({int(np.sum(y == data.labels.index(name)))} samples)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from s2eprop.host.cli.bench import bench_copies, bench_emulator, bench_golden, bench_udp

    if args.samples < 1:
        raise HostError(f"--samples must be >= 1, got {args.samples}")
    result: dict[str, Any] = {}
    if args.what in ("golden", "all"):
        result.update(bench_golden(n_samples=args.samples))
    if args.what in ("emulator", "all"):
        result.update(bench_emulator(n_samples=args.samples, mode=args.mode, trained=args.weights, engine=args.engine,
                                     threads=args.threads))
    if args.what == "copies":
        result.update(bench_copies(n_samples=min(args.samples, 16), threads=args.threads))
    if args.what == "udp":
        result.update(bench_udp(n_samples=args.samples, rounds=args.rounds))
    print(json.dumps(result, indent=2))
    return 0


def cmd_memory(args: argparse.Namespace) -> int:
    from s2eprop.host.mapping.memory import format_memory_map, measured_stack, memory_map

    cfg = config_from_args(args)
    measured = measured_stack(Path(args.measured)) if args.measured else None
    m = memory_map(cfg)
    if measured is not None:
        m.setdefault("stack", {})["measured"] = measured
    print(json.dumps(m, indent=2) if args.json else format_memory_map(m))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from s2eprop.host.cli.calibrate import run

    run(writable_folder(args.out, "--out"), write_costs=args.write_costs, quick=args.quick)  # before the fit
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from s2eprop.host.plots.timing import plot_timing_files

    if not args.run_dir.is_dir():
        raise HostError(f"{args.run_dir}: not a run folder")
    if args.what == "raster":
        from s2eprop.host.plots.raster import plot_raster

        npz = args.run_dir / "recordings.npz"
        if not npz.is_file():
            raise HostError(f"{args.run_dir} has no recordings.npz: train with a `record:` section "
                            f"(docs/recording.md)")
        out = args.out or args.run_dir / ("raster.png" if args.sample == 0 else f"raster_{args.sample}.png")
        check_writable_file(out, "--out")
        with _readable(npz):
            print(f"figure: {plot_raster(npz, out, args.sample)}")
        return 0
    with _readable(args.run_dir / "timing.npz"):
        files = plot_timing_files(args.run_dir / "timing.npz", args.run_dir)
    print(f"figures: {args.run_dir / files['timing']}, {args.run_dir / files['tick']}")
    return 0


@contextmanager
def _readable(path: Path) -> Iterator[None]:
    """A damaged .npz of a run (truncated by a full disk or a copy) as one line that names it."""
    try:
        yield
    except (zipfile.BadZipFile, EOFError, ValueError, KeyError) as exc:
        raise HostError(f"{path} is damaged or not a file s2eprop wrote ({type(exc).__name__}: {exc}): train the "
                        f"run again or restore the file") from None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("s2eprop")
    except PackageNotFoundError:  # a source tree that was never installed
        return "(not installed)"


class OneLineParser(argparse.ArgumentParser):
    """argparse with its refusals as one line (the command, the argument, the fix), as every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="s2eprop", description="E-prop on an emulated SpiNNaker 2 chip")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train the network on a dataset")
    _add_common(t)
    t.add_argument("--target", type=_target, default="emulator",
                   help="emulator: the C firmware on emulated cores; udp://HOST:PORT: a board (or s2eprop serve); "
                        "golden: the NumPy reference model")
    t.add_argument("--key-file", help="shared key of a udp:// board (default: $S2EPROP_BOARD_KEY; none: no "
                                      "authentication)")
    t.add_argument("--link-patience-s", type=float, default=10.0,
                   help="udp:// board: how long a command may go unanswered (retransmitted meanwhile) before the run "
                        "stops with an error (default 10)")
    t.add_argument("--out", type=folder_path, required=True, help="run folder (report.json, weights.npz, figures)")
    t.add_argument("--epochs", type=int, help="epochs over the training split (config train.epochs, default 1)")
    t.add_argument("--max-samples", type=int, help="train on the first N samples of each epoch")
    t.add_argument("--batch-size", type=int, help="golden target only; the chip learns one sample at a time")
    t.add_argument("--seed", type=int, help="seed of the initial weights, the shuffled order, the feature masks "
                                            "and the random feedback matrix (config train.seed, default 0)")
    t.add_argument("--init-weights", type=Path, help="start from these weights (.npz: w_in, w_rec, w_out)")
    t.add_argument("--resume", type=Path, help="continue from a checkpoint.npz of an earlier run")
    t.add_argument("--checkpoint-every", type=int, help="checkpoint every N samples (config "
                   "train.checkpoint_every_samples, default 1000; always at epoch ends and on Ctrl-C; 0: only then)")
    t.add_argument("--overwrite", action="store_true", help="replace the run that --out holds (else it is refused)")
    t.add_argument("--backend", choices=("c", "python"), default="c", help="emulator tick loop (same bits)")
    t.add_argument("--mode", choices=("functional", "timed", "realtime"),
                   help="emulated chip: functional (no time, fastest; default), timed (virtual time, cycle costs, "
                        "real-time compliance: timing.npz, timing.png, tick.png) or realtime (timed, paced to the "
                        "wall clock); config chip.mode")
    t.add_argument("--chip", type=Path, help="chip description YAML for timed modes (default "
                                             "emulator/chip/configs/spinnaker2.yaml); config chip.file")
    t.add_argument("--clock-mhz", type=float, help="core clock, one of the chip file's levels (150 or 300 on "
                                                   "SpiNNaker 2); config chip.clock_mhz")
    t.add_argument("--engine", choices=("c", "simpy"), help="timed modes: the chip's event loop, c (default, fast) "
                   "or simpy (its SimPy model: same bits and records, slower); config chip.engine")
    t.add_argument("--cpu", choices=("native", "iss"), help="core runner: native (default) or iss, the ARM build in "
                                                           "the instruction-set simulator (same bits, about 1,000x "
                                                           "slower; in timed modes with --engine simpy: packets preempt, the ISS counts the cycles); config chip.cpu")
    t.add_argument("--threads", type=int, help="host threads of the emulator's C event loop, functional or timed "
                                                "(same bits for any number; default 0: the host cores this process "
                                                "may use, each run on them only where they pay); config chip.threads")
    t.add_argument("--quiet", action="store_true", help="no progress bars and no per-epoch lines (the summary "
                                                          "and errors still print)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="accuracy, per-class accuracy and loss of saved weights")
    _add_common(e)
    e.add_argument("--weights", type=Path, required=True)
    e.add_argument("--target", type=_target, default="emulator",
                   help="emulator (default, as for train): inference on the emulated chip; udp://HOST:PORT: on a "
                        "board; golden: the NumPy model")
    e.add_argument("--key-file", help="shared key of a udp:// board (default: $S2EPROP_BOARD_KEY)")
    e.add_argument("--link-patience-s", type=float, default=10.0,
                   help="udp:// board: how long a command may go unanswered before it is an error (default 10)")
    e.add_argument("--backend", choices=("c", "python"), default="c")
    e.add_argument("--train-split", action="store_true", help="evaluate the training split instead of the test split")
    e.add_argument("--json", action="store_true")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_eval)

    b = sub.add_parser("bench", help="training speed per sample: golden model (batch 1 and 32), emulator, "
                                      "and copies of the network side by side on one chip")
    b.add_argument("what", nargs="?", choices=("golden", "emulator", "copies", "udp", "all"), default="all")
    b.add_argument("--samples", type=int, default=64, help="samples timed (copies: per copy, at most 16)")
    b.add_argument("--mode", choices=("functional", "timed", "realtime"), default="functional",
                   help="emulated chip mode of `bench emulator`")
    b.add_argument("--weights", default=None,
                   help="trained weights that `bench emulator` times beside fresh ones: a weights .npz or a run "
                        "folder (default: runs/demo/weights.npz, where `make demo` puts them, if it exists)")
    b.add_argument("--engine", choices=("c", "simpy"), default="c",
                   help="timed modes: the chip's event loop (c, or its SimPy model)")
    b.add_argument("--threads", type=int, default=0,
                   help="host threads of the chip's C event loop (emulator, copies; functional or timed: the SimPy "
                        "engine runs on one; default 0: the host cores this process may use, each run on them only "
                        "where they pay)")
    b.add_argument("--rounds", type=int, default=3,
                   help="udp: rounds of in-process then UDP, alternating in one sitting (default 3)")
    b.set_defaults(func=cmd_bench)

    pl = sub.add_parser("plot", help="redraw a run folder's figures: timing (timing.png, tick.png from timing.npz), "
                                     "raster (raster.png from recordings.npz)")
    pl.add_argument("what", choices=("timing", "raster"))
    pl.add_argument("run_dir", type=Path, help="run folder of a timed run (timing) or of a run with `record:` (raster)")
    pl.add_argument("--sample", type=int, default=0, help="raster: which recorded sample (0 = the first recorded)")
    pl.add_argument("--out", type=folder_path, default=None, help="raster: the figure's path (default RUN_DIR/raster.png)")
    pl.set_defaults(func=cmd_plot)

    m = sub.add_parser("memory", help="per-core byte map of the partitioned network, stack use per handler")
    _add_common(m)
    m.add_argument("--json", action="store_true")
    m.add_argument("--measured", metavar="RUN", help="also show the stack a run of the ARM build in time measured "
                                                     "(its report.json; train --mode timed --cpu iss --engine simpy)")
    m.set_defaults(func=cmd_memory)

    c = sub.add_parser("calibrate", help="fit the timed chip's cycle costs to the ARM build run in the ISS")
    c.add_argument("--out", type=folder_path, required=True, help="folder for calibration.json and residuals.png")
    c.add_argument("--write-costs", action="store_true", help="also replace emulator/chip/configs/cycle_costs.yaml")
    c.add_argument("--quick", action="store_true", help="three tiny shapes (seconds) instead of ten")
    c.set_defaults(func=cmd_calibrate)

    from s2eprop.host.cli.board import add_board_commands
    from s2eprop.host.cli.data import add_data_commands

    add_board_commands(sub)

    add_data_commands(sub)
    from s2eprop.host.cli.studies import add_study_command

    add_study_command(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a refused argument (2, its one line printed)
        return int(exc.code or 0)
    args.argv = argv
    try:
        return int(args.func(args) or 0)
    except TrainingInterrupted as exc:
        print(f"s2eprop {args.command}: {exc}", file=sys.stderr)
        return 130
    except (HostError, EmulatorError) as exc:
        print(f"s2eprop {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
