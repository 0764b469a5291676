"""Studies layer: the accuracy table of the learning options (issue 27; docs/options.md). One row per
variant of the config (each surrogate, n_regular 60, firing-rate regularisation, sparse recurrent
connectivity), each trained from the same seed on the emulated chip (functional mode, on-chip E-prop,
batch 1) for the same epochs over the same samples, through the session API `s2eprop train` uses; then
its held-out accuracy and loss.

    s2eprop study options --out DIR [--epochs N] [--max-samples N] [--data PATH] [--variant NAME ...]
        ->  result.json, options.json (the rows), options.png
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from s2eprop.host.config import ExperimentConfig
from s2eprop.host.errors import HostError
from s2eprop.host.files import write_json
from s2eprop.host.studies.common import save_figure, study_folder, write_result

# firing-rate regularisation of the table: NEST's e-prop examples of the Bellec et al. 2020 models
# (eprop_supervised_regression_sine-waves_bsshslm_2020.py and the evidence-accumulation one: c_reg 300,
# f_target 10 spikes/s), whose formula c_reg (f_av - f_target) / T sum_t e with f in spikes per ms is ours
RATE_REG = {"c_reg": 300.0, "target_hz": 10.0}


@dataclass(frozen=True)
class Variant:
    """A row of the table: its short key (--variant), its name and the config keys it changes
    ({section: {key: value}})."""

    key: str
    name: str
    overrides: Mapping[str, Mapping[str, Any]]


VARIANTS: tuple[Variant, ...] = (
    Variant("default", "default (multi_gaussian, all ALIF, no rate reg, p_rec 1)", {}),
    Variant("triangle", "surrogate triangle", {"network": {"surrogate": "triangle"}}),
    Variant("exponential", "surrogate exponential", {"network": {"surrogate": "exponential"}}),
    Variant("fast_sigmoid", "surrogate fast_sigmoid", {"network": {"surrogate": "fast_sigmoid"}}),
    Variant("arctan", "surrogate arctan", {"network": {"surrogate": "arctan"}}),
    Variant("n_regular", "n_regular 60 (60 LIF, 60 ALIF)", {"network": {"n_regular": 60}}),
    Variant("rate_reg", "rate reg c_reg 300, 10 Hz", {"train": {"rate_reg": RATE_REG}}),
    Variant("p_rec", "p_rec 0.25", {"network": {"connectivity": {"p_rec": 0.25}}}),
)


def unknown_keys(cfg: ExperimentConfig, overrides: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The keys of `overrides` the config does not know ("network.connectivity" before that option exists)."""
    missing = []
    for section, values in overrides.items():
        part = getattr(cfg, section, None)
        if part is None or not dataclasses.is_dataclass(part):
            missing.append(section)
            continue
        known = {f.name for f in dataclasses.fields(part)}
        missing += [f"{section}.{k}" for k in values if k not in known]
    return missing


def variant_config(cfg: ExperimentConfig, variant: Variant) -> ExperimentConfig:
    """`cfg` with the variant's keys replaced (a section's nested mapping, e.g. rate_reg, as a whole)."""
    from s2eprop.host.session.api import load_config

    return load_config(cfg, {s: dict(v) for s, v in variant.overrides.items()})


def weights_digest(weights: Mapping[str, np.ndarray]) -> str:
    """16 hex digits of the SHA-256 of the weights' bits (w_in, w_rec, w_out): equal only for equal runs."""
    h = hashlib.sha256()
    for k in ("w_in", "w_rec", "w_out"):
        h.update(np.ascontiguousarray(weights[k], dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def train_variant(cfg: ExperimentConfig, variant: Variant, data: Any, epochs: int, max_samples: int | None
                  ) -> dict[str, Any]:
    """Train one variant on the functional chip from train.seed's weights; its row of the table."""
    from s2eprop.host.session.api import Session

    vcfg = variant_config(cfg, variant)
    t0, c0 = time.perf_counter(), time.process_time()
    with Session(vcfg, target="emulator", mode="functional", labels=tuple(data.labels)) as s:
        report = s.train(data, epochs=epochs, max_samples=max_samples)
        digest = weights_digest(s.weights)
    last = report["epochs"][-1]
    return {"key": variant.key, "variant": variant.name, "overrides": _plain(variant.overrides), "status": "done",
            "test_accuracy": report["test_accuracy"], "test_loss": report["test_loss"],
            "final_train_loss": last["loss"], "final_train_accuracy": last["train_accuracy"],
            "test_accuracy_per_epoch": [e.get("test_accuracy") for e in report["epochs"]],
            "samples_trained": report["samples_trained"], "weights_sha256_16": digest,
            "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1)}


def run(out_dir: Path, cfg: ExperimentConfig | None = None, epochs: int = 2, max_samples: int | None = None,
        variants: Sequence[Variant] = VARIANTS, data: Any = None) -> dict[str, Any]:
    """The table into `out_dir` (result.json, options.json, options.png). A variant whose keys the config
    does not know yet is a row with status "skipped" and the reason, not an error."""
    if epochs < 1 or (max_samples is not None and max_samples < 1):
        raise HostError(f"study options: --epochs and --max-samples must be >= 1, got {epochs} and {max_samples}")
    if not variants:
        raise HostError("study options: no variant to train: give at least one --variant")
    out_dir = study_folder(out_dir, "options")
    cfg = cfg or ExperimentConfig()
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=1)).validate()
    plan = []
    for v in variants:  # every config checked before the first (long) training
        missing = unknown_keys(cfg, v.overrides)
        plan.append((v, missing))
        if not missing:
            variant_config(cfg, v)
    if data is None:
        from s2eprop.host.data.loader import load_dataset

        data = load_dataset(cfg.dataset, progress=False)
    if data.x_test is None or not len(data.x_test):
        raise HostError(f"study options: dataset {data.name} has no test split")
    rows = []
    for i, (v, missing) in enumerate(plan):
        if missing:
            reason = (f"the config does not know {', '.join(missing)} (that option is not on this branch yet): "
                      f"skipped")
            rows.append({"key": v.key, "variant": v.name, "overrides": _plain(v.overrides), "status": "skipped", "reason": reason})
            print(f"options: {v.name}: {reason}", flush=True)
            continue
        rows.append(train_variant(cfg, v, data, epochs, max_samples))
        r = rows[-1]
        print(f"options: {i + 1}/{len(plan)} {v.name}: test {100 * r['test_accuracy']:.1f} % (loss "
              f"{r['test_loss']:.3f}), final train loss {r['final_train_loss']:.3f} ({r['wall_s']:.0f} s wall, "
              f"{r['cpu_s']:.0f} s CPU)", flush=True)
    n_train = len(data.x_train) if max_samples is None else min(max_samples, len(data.x_train))
    setup = {"dataset": data.name or cfg.dataset.kind, "train_samples_per_epoch": n_train,
             "test_samples": int(len(data.x_test)), "epochs": epochs, "target": "emulator (functional)",
             "seed": cfg.train.seed, "chip_threads": cfg.chip.threads}
    write_json(out_dir / "options.json", {**setup, "rows": rows})
    title = (f"{setup['dataset']}: {epochs} epochs of {n_train} samples on the emulated chip, "
             f"{setup['test_samples']} test")
    result = {**setup, "rows": rows, "table": markdown_table(rows)}
    return write_result(out_dir, "options", result, {"options": plot(rows, out_dir / "options.png", title)})


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| variant | test accuracy | test loss | final train loss | wall s |", "|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "done":
            lines.append(f"| {r['variant']} | skipped | | | |")
            continue
        lines.append(f"| {r['variant']} | {100 * r['test_accuracy']:.1f} % | {r['test_loss']:.3f} | "
                     f"{r['final_train_loss']:.3f} | {r['wall_s']:.0f} |")
    return "\n".join(lines)


def plot(rows: Sequence[Mapping[str, Any]], path: Path, title: str) -> Path:
    from s2eprop.host.plots.figures import pyplot

    plt = pyplot()
    done = [r for r in rows if r["status"] == "done"]
    fig, ax = plt.subplots(figsize=(8, 0.45 * max(len(done), 1) + 1.2))
    y = np.arange(len(done))
    ax.barh(y, [100 * r["test_accuracy"] for r in done], color="tab:blue")
    ax.set_yticks(y)
    ax.set_yticklabels([r["variant"] for r in done], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("held-out accuracy (%)")
    ax.set_xlim(0, 100)
    for yi, r in zip(y, done):
        ax.text(100 * r["test_accuracy"] + 1, yi, f"{100 * r['test_accuracy']:.1f}", va="center", fontsize=8)
    ax.set_title(title, fontsize=9)
    return save_figure(plt, fig, path)


def select(names: Sequence[str] | None) -> tuple[Variant, ...]:
    """The variants named (all without names); an unknown name is refused with the list."""
    if not names:
        return VARIANTS
    by_name = {v.key: v for v in VARIANTS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise HostError(f"study options: unknown --variant {', '.join(map(repr, unknown))}; choose from "
                        f"{', '.join(map(repr, by_name))}")
    return tuple(by_name[n] for n in names)


def summary_lines(result: dict[str, Any]) -> list[str]:
    return [f"{result['dataset']}: {result['epochs']} epochs of {result['train_samples_per_epoch']} samples, "
            f"{result['test_samples']} test samples", result["table"]]


def _plain(overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {s: {k: dict(v) if isinstance(v, Mapping) else v for k, v in values.items()}
            for s, values in overrides.items()}
