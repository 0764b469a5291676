"""Studies layer: a sweep. One short training run per point of a grid (seed, learning rate, neurons per
core, clock level), each an independent Ray task: local worker processes by default, a Ray cluster with
`--ray-address`. Every run writes DIR/runs/NAME/result.json (or error.json); a sweep started again skips
the runs already done; a run that fails is reported in the table without sinking the sweep. Ray is an
optional extra: pip install .[sweep].

    s2eprop study sweep --out DIR --grid seed=0,1,2,3 --grid lr=0.01,0.003 [--samples N] [--ray-address A]
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import time
import traceback
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from s2eprop.host.config import ChipConfig, ExperimentConfig
from s2eprop.host.errors import HostError
from s2eprop.host.files import write_json
from s2eprop.host.studies.common import save_figure, study_folder, write_result

PARAMS = {"seed": int, "lr": float, "neurons_per_core": int, "clock_mhz": float}
RAY_HINT = "the sweep runs on Ray: pip install 'ray==2.60.0' (or pip install .[sweep])"


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """["seed=0,1", "lr=0.01"] -> {"seed": [0, 1], "lr": [0.01]}; names and values checked."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, _, values = item.partition("=")
        if name not in PARAMS or not values:
            raise HostError(f"study sweep: --grid {item!r}: give NAME=V1,V2,... with NAME one of {', '.join(PARAMS)}")
        try:
            grid[name] = [PARAMS[name](v) for v in values.split(",")]
        except ValueError:
            raise HostError(f"study sweep: --grid {item!r}: {name} takes {PARAMS[name].__name__} values") from None
    if not grid:
        raise HostError("study sweep: no --grid given (e.g. --grid seed=0,1,2,3 --grid lr=0.01,0.003)")
    return grid


def points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def run_name(point: Mapping[str, Any]) -> str:
    return "_".join(f"{k}-{v:g}" if isinstance(v, float) else f"{k}-{v}" for k, v in point.items())


def point_config(base: ExperimentConfig, point: Mapping[str, Any]) -> ExperimentConfig:
    train = dataclasses.replace(base.train, seed=int(point.get("seed", base.train.seed)),
                                lr=float(point.get("lr", base.train.lr)), batch_size=1, on_loss="count")
    part = dataclasses.replace(base.partition, neurons_per_core=int(point.get("neurons_per_core",
                                                                              base.partition.neurons_per_core)))
    chip = ChipConfig(mode="timed", clock_mhz=float(point["clock_mhz"])) if "clock_mhz" in point else base.chip
    return dataclasses.replace(base, train=train, partition=part, chip=chip).validate()


def train_point(base: ExperimentConfig, point: dict[str, Any], n_samples: int, data_seed: int) -> dict[str, Any]:
    """One run on the emulated chip: n_samples of seeded random frames (3 N(0, 1)) trained, then the mean loss
    of a second pass over them (the functional chip; timed, with its compliance, when clock_mhz is swept)."""
    from s2eprop.host.session.train import make_trainer
    from s2eprop.host.weights import init_weights

    cfg = point_config(base, point)
    rng = np.random.default_rng(data_seed)
    x = (3 * rng.standard_normal((n_samples, cfg.network.n_steps, cfg.network.n_in))).astype(np.float32)
    y = rng.integers(0, cfg.network.n_out, n_samples)
    t0 = time.perf_counter()
    trainer = make_trainer(cfg, "emulator", init_weights(cfg.network, cfg.train.seed), None)
    try:
        first = [float(trainer.train_batch(x[i], y[i:i + 1]).loss[0]) for i in range(n_samples)]
        after = trainer.forward(x, y)
        out = {"cores": trainer.plan.n_cores, "train_loss_online": float(np.mean(first)),
               "loss_after": float(np.mean(after.loss)), "accuracy_after": float(np.mean(after.pred == y))}
        timing = trainer.timing_summary()
        if timing is not None:
            out.update(max_tick_utilisation=timing["max_tick_utilisation"], overruns=timing["overruns"])
    finally:
        trainer.close()
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    return out


def run_one(base: ExperimentConfig, point: dict[str, Any], folder: Path, n_samples: int, data_seed: int) -> dict[str, Any]:
    """A run and its file: result.json on success, error.json (the error and its traceback) on failure."""
    try:
        row = {"run": folder.name, "params": point, "status": "ok", **train_point(base, point, n_samples, data_seed)}
        write_json(folder / "result.json", row)
    except Exception as exc:  # a failed run is a result of the sweep, reported, never fatal
        row = {"run": folder.name, "params": point, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        write_json(folder / "error.json", {**row, "traceback": traceback.format_exc()})
    return row


def _ray(address: str | None, root: Path) -> Any:
    try:
        import ray
    except ImportError:
        raise HostError(f"study sweep: {RAY_HINT}") from None
    if not ray.is_initialized():
        import logging

        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
        if address:  # a cluster's workers get this source tree
            kwargs.update(address=address, runtime_env={"working_dir": str(root), "excludes": ["runs", "build", ".venv"]})
        ray.init(**kwargs)
    return ray


def run(out_dir: Path, cfg: ExperimentConfig | None = None, grid: Mapping[str, Sequence[Any]] | None = None,
        n_samples: int = 4, ray_address: str | None = None, data_seed: int = 1234) -> dict[str, Any]:
    """The sweep into `out_dir` (runs/NAME/, result.json, sweep.png)."""
    if not grid:
        raise HostError("study sweep: no grid (e.g. --grid seed=0,1,2,3 --grid lr=0.01,0.003)")
    if n_samples < 1:
        raise HostError(f"study sweep: --samples must be >= 1, got {n_samples}")
    out_dir = study_folder(out_dir, "sweep")
    cfg = cfg or ExperimentConfig()
    todo, rows = [], []
    for p in points(grid):
        folder = out_dir / "runs" / run_name(p)
        done = folder / "result.json"
        if done.is_file():
            rows.append({**json.loads(done.read_text()), "skipped": "done before"})
        else:
            todo.append((p, folder))
    if todo:
        ray = _ray(ray_address, Path(__file__).resolve().parents[2])
        task = ray.remote(num_cpus=1)(run_one)
        rows += ray.get([task.remote(cfg, p, folder, n_samples, data_seed) for p, folder in todo])
    rows.sort(key=lambda r: r["run"])
    failed = [r for r in rows if r["status"] != "ok"]
    result = {"grid": {k: list(v) for k, v in grid.items()}, "samples_per_run": n_samples,
              "runs": len(rows), "ran_now": len(todo), "failed": len(failed), "table": rows,
              "executor": f"ray ({ray_address or 'local worker processes'})" if todo else "none (all runs done before)"}
    return write_result(out_dir, "sweep", result, {"sweep": plot(rows, grid, out_dir / "sweep.png")})


def plot(rows: list[dict[str, Any]], grid: Mapping[str, Sequence[Any]], path: Path) -> Path:
    from s2eprop.host.plots.figures import pyplot

    plt = pyplot()
    names = list(grid)
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        ok = [r for r in rows if r["status"] == "ok"]
        ax.plot([r["params"][name] for r in ok], [r["loss_after"] for r in ok], "o", label="loss after training")
        bad = [r for r in rows if r["status"] != "ok"]
        if bad:
            ax.plot([r["params"][name] for r in bad], [0] * len(bad), "x", color="tab:red", ms=10, label="failed run")
        ax.set_xlabel(name)
        ax.set_ylabel("mean loss")
        ax.legend(fontsize=7)
    return save_figure(plt, fig, path)


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"{result['runs']} runs ({result['ran_now']} now, on {result['executor']}), {result['failed']} failed"]
    for r in result["table"]:
        lines.append(f"  {r['run']:40s} " + (f"loss {r['train_loss_online']:.3f} -> {r['loss_after']:.3f}"
                                             if r["status"] == "ok" else f"FAILED: {r['error']}")
                     + (" (done before)" if r.get("skipped") else ""))
    return lines
