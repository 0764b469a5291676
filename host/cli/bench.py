"""Host layer, CLI: speed benchmarks: golden E-prop model (training time per sample, per batch size) and
emulation of the chip (12 cores running the C firmware, through the training session), from fresh and
from trained weights.

Pure functions; the `s2eprop bench` command prints what they return.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from s2eprop.host.config import NetworkConfig, TrainConfig
from s2eprop.host.errors import HostError
from s2eprop.host.reference.golden import GoldenModel
from s2eprop.host.weights import init_weights


def bench_golden(batch_sizes: Sequence[int] = (1, 32), n_samples: int = 64, seed: int = 0,
                 net: NetworkConfig | None = None) -> dict[str, Any]:
    """Time golden-model training (forward, e-prop traces, Adam) on random inputs 3*N(0, 1).

    For each batch size, `n_samples` samples (rounded up to whole batches, wrapping around the
    data) are trained after one untimed warm-up batch. Returns milliseconds of wall time per sample
    under "golden_ms_per_sample", keyed by the batch size as a string, plus the setup measured.
    """
    net = net or NetworkConfig()
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((n_samples, net.n_steps, net.n_in))).astype(np.float32)
    y = rng.integers(0, net.n_out, n_samples)
    ms_per_sample: dict[str, float] = {}
    trained: dict[str, int] = {}
    spikes: list[float] = []
    for batch in batch_sizes:
        train = dataclasses.replace(TrainConfig(), batch_size=batch, seed=seed)
        model = GoldenModel(net, train, init_weights(net, seed))
        n_batches = -(-n_samples // batch)
        batches = [np.arange(i * batch, (i + 1) * batch) % n_samples for i in range(n_batches)]
        model.train_batch(x[batches[0]], y[batches[0]])  # warm-up: allocations, BLAS threads
        start = time.perf_counter()
        for idx in batches:
            spikes.extend(model.train_batch(x[idx], y[idx]).spikes.tolist())
        ms_per_sample[str(batch)] = (time.perf_counter() - start) * 1e3 / (n_batches * batch)
        trained[str(batch)] = n_batches * batch
    return {
        "golden_ms_per_sample": ms_per_sample,
        "network": f"{net.n_in}-{net.n_rec}-{net.n_out}",
        "n_steps": net.n_steps,
        "n_samples": n_samples,
        "golden_samples_timed": trained,  # per batch size: n_samples rounded up to whole batches
        "mean_spikes_per_sample": float(np.mean(spikes)) if spikes else 0.0,
    }


DEMO_WEIGHTS = Path("runs/demo/weights.npz")  # what `make demo` trains (Makefile RUN)


def trained_weights_path(given: str | Path | None) -> Path | None:
    """The trained weights `bench emulator` times beside fresh ones: `given` (a weights .npz, or a run
    folder holding weights.npz), else the demo's (runs/demo/weights.npz) where it exists, else None."""
    if given is None:
        return DEMO_WEIGHTS if DEMO_WEIGHTS.is_file() else None
    path = Path(given).expanduser()
    if path.is_dir():
        path = path / "weights.npz"
    if not path.is_file():
        raise HostError(f"--weights {given}: no weights file at {path}; give a weights .npz or a run folder "
                        f"that holds weights.npz (make demo writes {DEMO_WEIGHTS})")
    return path


def _time_emulator(cfg: Any, data: Any, backend: str, init_weights_path: Path | None) -> dict[str, Any]:
    """ms per training sample of one run_training over `data` (after an untimed one-sample run that builds
    the firmware module and the caches), from fresh weights or from the weights file given."""
    import tempfile

    from s2eprop.host.session.api import run_training
    from s2eprop.host.session.train import TrainOptions

    with tempfile.TemporaryDirectory(prefix="s2eprop-bench-") as tmp:
        opts = TrainOptions(target="emulator", out_dir=Path(tmp) / "warmup", backend=backend, progress=False,
                            init_weights=init_weights_path)
        run_training(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_samples=1)), data, opts)
        report = run_training(cfg, data, dataclasses.replace(opts, out_dir=Path(tmp) / "run"))
    ms = report["ms_per_training_sample"]
    return {"ms_per_sample": ms, "realtime_factor": report["emulated_ms"] / report["samples_trained"] / ms,
            "cores": report["cores"]}


def bench_emulator(n_samples: int = 64, seed: int = 0, backend: str = "c", mode: str = "functional",
                   trained: str | Path | None = None, engine: str = "c", threads: int = 0) -> dict[str, Any]:
    """Time on-chip training through the path `s2eprop train --target emulator` runs (run_training:
    trainer, transport, streamer, the chip's event loop, per-sample checks, checkpoint at the end) on
    the paper's 12-core partition, on random inputs 3*N(0, 1) with no test split: from fresh weights,
    and from trained ones (`trained_weights_path(trained)`: the steady state of a long run, whose
    silent neurons' weights decay towards 0; docs/chip.md section 9), when there are any. `threads`: the
    C event loop's (config chip.threads; the SimPy engine runs on one)."""
    from s2eprop.host.config import ChipConfig, ExperimentConfig
    from s2eprop.host.data.dataset import KWS_LABELS, Dataset
    from s2eprop.host.weights import load_weights

    chip = ChipConfig(mode=mode, engine=engine, threads=threads if engine == "c" else 1)
    cfg = dataclasses.replace(ExperimentConfig(), chip=chip).validate()
    net = cfg.network
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((n_samples, net.n_steps, net.n_in))).astype(np.float32)
    y = rng.integers(0, net.n_out, n_samples)
    fresh = _time_emulator(cfg, Dataset(x, y, KWS_LABELS, name="bench"), backend, None)
    out: dict[str, Any] = {
        "emulator_ms_per_sample": fresh["ms_per_sample"],
        "emulator_realtime_factor": fresh["realtime_factor"],
        "emulator_cores": fresh["cores"],
        "emulator_backend": backend,
        "emulator_mode": mode,
        "emulator_threads": cfg.chip.n_threads(),
        **({"emulator_engine": engine} if mode != "functional" else {}),
    }
    path = trained_weights_path(trained)
    if path is None:
        out["emulator_trained"] = f"no trained weights: run `make demo` (writes {DEMO_WEIGHTS}) or give --weights"
        return out
    labels = load_weights(path, net).labels or KWS_LABELS
    got = _time_emulator(cfg, Dataset(x, y % len(labels), tuple(labels), name="bench"), backend, path)
    out.update(emulator_trained_weights=str(path), emulator_trained_ms_per_sample=got["ms_per_sample"],
               emulator_trained_realtime_factor=got["realtime_factor"],
               emulator_trained_over_fresh=got["ms_per_sample"] / fresh["ms_per_sample"])
    return out


def bench_copies(copies: Sequence[int] = (1, 2, 4, 8, 12), modes: Sequence[str] = ("functional", "timed"),
                 n_samples: int = 8, seed: int = 0, threads: int = 0) -> dict[str, Any]:
    """Wall time of training n copies of the paper's 12-core network side by side on one chip
    (host/session/copies.py: one sample on every copy per step), per mode, after one untimed warm-up step;
    with the log-log slope of wall time against cores from the smallest to the largest chip. `threads`: the
    C event loops' host threads."""
    from s2eprop.host.config import ChipConfig, ExperimentConfig
    from s2eprop.host.session.copies import ChipCopies

    out: dict[str, Any] = {"copies": list(copies), "samples_per_copy": n_samples}
    base = ExperimentConfig()
    net = base.network
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((n_samples + 1, net.n_steps, net.n_in))).astype(np.float32)
    y = rng.integers(0, net.n_out, n_samples + 1)
    for mode in modes:
        chip = ChipConfig(mode=mode, threads=threads)
        cfg = dataclasses.replace(base, chip=chip,
                                  train=dataclasses.replace(base.train, on_loss="count")).validate()
        walls, factors = [], []
        for n in copies:
            chip = ChipCopies([cfg] * n, [init_weights(net, seed + i) for i in range(n)])
            chip.train_step([x[0]] * n, [int(y[0])] * n)  # warm-up
            t0 = time.perf_counter()
            for k in range(1, n_samples + 1):
                chip.train_step([x[k]] * n, [int(y[k])] * n)
            wall = time.perf_counter() - t0
            ticks = chip.trainers[0].ticks_train - chip.trainers[0].ticks_train // (n_samples + 1)
            chip.close()
            walls.append(wall)
            factors.append(ticks / (wall * 1e3))
        cores = [12 * n for n in copies]
        slope = float(np.log(walls[-1] / walls[0]) / np.log(cores[-1] / cores[0])) if len(copies) > 1 else None
        out[mode] = {"cores": cores, "wall_s": [round(w, 3) for w in walls],
                     "emulated_ms_per_wall_ms": [round(f, 2) for f in factors], "loglog_slope": slope,
                     "threads": cfg.chip.n_threads()}
    return out


def _serve_child(mode: str) -> tuple[Any, str]:
    """`s2eprop serve` on a free loopback port in a child process (as a user runs it): (the process, its target)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "import sys; from s2eprop.host.cli.main import main; "
                             "sys.exit(main())", "serve", "--port", "0", "--mode", mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout is not None else ""
    if " on udp://" not in line:
        proc.kill()
        err = proc.stderr.read() if proc.stderr is not None else ""
        raise HostError(f"bench udp: `s2eprop serve` did not start ({line.strip() or err.strip()[-400:]})")
    target = "udp://" + line.split(" on udp://", 1)[1].split(";", 1)[0].strip()
    return proc, target


def _child_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) a child process has used so far (Linux /proc; None elsewhere)."""
    import os

    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_udp(n_samples: int = 64, rounds: int = 3, seed: int = 0) -> dict[str, Any]:
    """Wall ms per training sample in-process (`--target emulator`) and over UDP on loopback to `s2eprop serve` in
    a child process (`--target udp://`), through the path `s2eprop train` runs (run_training), alternating for
    `rounds` rounds in one sitting after an untimed one-sample warm-up of each; with their ratio (median of the
    rounds) and the board process's CPU ms per sample. Functional chip, one thread, random inputs 3*N(0, 1)."""
    import tempfile

    from s2eprop.host.config import ExperimentConfig
    from s2eprop.host.data.dataset import KWS_LABELS, Dataset
    from s2eprop.host.session.api import run_training
    from s2eprop.host.session.train import TrainOptions

    base = ExperimentConfig()
    cfg = dataclasses.replace(base, train=dataclasses.replace(base.train, epochs=1)).validate()
    net = cfg.network
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((n_samples, net.n_steps, net.n_in))).astype(np.float32)
    data = Dataset(x, rng.integers(0, net.n_out, n_samples), KWS_LABELS, name="bench")
    one = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_samples=1))
    proc, target = _serve_child("functional")
    walls: dict[str, list[float]] = {"emulator": [], "udp": []}
    board_cpu: list[float] = []
    checks: dict[str, bytes] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="s2eprop-bench-") as tmp:
            def run(tgt: str, name: str, c: Any) -> dict[str, Any]:
                opts = TrainOptions(target=tgt, out_dir=Path(tmp) / name, progress=False, overwrite=True)
                return run_training(c, data, opts)

            for tgt in ("emulator", target):
                run(tgt, "warmup", one)
            for r in range(rounds):
                for name, tgt in (("emulator", "emulator"), ("udp", target)):
                    cpu0 = _child_cpu_s(proc.pid) if name == "udp" else None
                    report = run(tgt, f"{name}{r}", cfg)
                    walls[name].append(report["ms_per_training_sample"])
                    if cpu0 is not None:
                        cpu1 = _child_cpu_s(proc.pid)
                        if cpu1 is not None:  # the whole run's (connect, load, read-back too): an upper bound
                            board_cpu.append((cpu1 - cpu0) * 1e3 / report["samples_trained"])
                    w = np.load(Path(tmp) / f"{name}{r}" / "weights.npz")
                    checks[name] = b"".join(np.ascontiguousarray(w[k]).tobytes() for k in ("w_in", "w_rec", "w_out"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    ratios = [u / e for u, e in zip(walls["udp"], walls["emulator"])]
    return {"udp_target": "loopback, s2eprop serve in a child process, functional, 1 thread",
            "udp_samples": n_samples, "udp_rounds": rounds,
            "inproc_ms_per_sample": [round(v, 3) for v in walls["emulator"]],
            "udp_ms_per_sample": [round(v, 3) for v in walls["udp"]],
            "udp_over_inproc": [round(v, 3) for v in ratios],
            "udp_over_inproc_median": round(float(np.median(ratios)), 3),
            "board_cpu_ms_per_sample": [round(v, 3) for v in board_cpu],
            "same_bits": checks["emulator"] == checks["udp"]}
