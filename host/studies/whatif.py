"""Studies layer: the architecture what-if study. The paper's network trained on SpiNNaker 2 chips changed
as host/studies/whatif_cases.yaml says (clock level, neurons per core, so fewer or more cores, an exp
accelerator, the MAC array on the trace updates, traces in 16 bits, the filtered trace folded into its
sum); one table: tick utilisation and real time (timed chip), memory (firmware layout, projected where
the firmware does not store traces so), energy (the energy study's model), and the accuracy change
where a case changes the arithmetic (16-bit traces, on the golden model with that rounding).

    s2eprop study whatif --out DIR [--samples N] [--accuracy-samples N]  ->  result.json, whatif.png, chips/
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from s2eprop.host.config import ExperimentConfig
from s2eprop.host.errors import HostError, TrainingInterrupted
from s2eprop.host.files import write_json
from s2eprop.host.mapping.memory import memory_map
from s2eprop.host.studies import energy
from s2eprop.host.studies.memory import PAPER_TRAINING_BYTES
from s2eprop.host.studies import time_profile
from s2eprop.host.studies import trace_rounding
from s2eprop.host.studies.common import save_figure, study_folder, write_result
from s2eprop.host.studies.whatif_cases import CASES_FILE, Case, case_config, load_cases, projected_training_bytes, write_chip


def run_case(base: ExperimentConfig, case: Case, chips: Path, x: Any, y: Any, const: dict[str, Any]) -> dict[str, Any]:
    cfg = case_config(base, case, write_chip(case, chips))
    prof = time_profile.profile_clock(cfg, case.clock_mhz, x, y)
    fm = memory_map(cfg, stack=False)
    e = energy.chip_sample_energy(prof, energy.ChipPower.at(const["chip"], case.clock_mhz * 1e6), 1e-3,
                                  int(const["workload"]["samples_per_epoch"]))
    return {"case": case.name, "chip_file": str(Path("chips") / f"{case.slug}.yaml"), "clock_mhz": case.clock_mhz,
            "cores": fm["cores"], "neurons_per_core": case.neurons_per_core,
            "max_tick_utilisation": prof["max_tick_utilisation"], "p99_tick_utilisation": prof["p99_tick_utilisation"],
            "median_tick_utilisation": prof["median_tick_utilisation"], "overruns": prof["overruns"],
            "real_time": prof["real_time"], "dominant_phase": prof["dominant_phase"],
            "cycles_per_sample": round(sum(prof["cycles_per_sample_by_phase"].values())),
            "max_arena_bytes": max(c["arena_bytes"] for c in fm["per_core"]),
            "arena_fits": all(c["fits"] for c in fm["per_core"]),
            "training_state_bytes": projected_training_bytes(fm, case),
            "memory_projected": case.trace_bits != 32 or case.folded_trace,
            "energy_mj_per_sample": round(e["energy_j_per_sample"]["total_j"] * 1e3, 3),
            "accuracy_change": None}


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    from s2eprop.host.plots.figures import pyplot

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    names = [r["case"] for r in rows]
    ax1.barh(names, [100 * r["max_tick_utilisation"] for r in rows],
             color=["tab:blue" if r["real_time"] else "tab:red" for r in rows], label="worst tick (red: overruns)")
    ax1.plot([100 * r["median_tick_utilisation"] for r in rows], names, "k|", ms=14, label="median tick")
    ax1.axvline(100, color="k", ls="--", lw=1)
    ax1.set_xlabel("tick utilisation (%)")
    ax1.legend(fontsize=7)
    ax1.invert_yaxis()
    ax2.barh(names, [r["training_state_bytes"] / 1024 for r in rows], color="tab:green")
    ax2.axvline(PAPER_TRAINING_BYTES / 1024, color="k", ls=":", lw=1,
                label="paper: 680 KB, read as KiB (as the memory study)")
    ax2.set_xlabel("training state (KiB)")
    ax2.legend(fontsize=7)
    return save_figure(plt, fig, path)


def run(out_dir: Path, cfg: ExperimentConfig | None = None, n_samples: int = 10, accuracy_samples: int = 2000,
        cases_file: Path = CASES_FILE, data: Any = None, seed: int = 1234) -> dict[str, Any]:
    """The what-if study into `out_dir`; `accuracy_samples` 0 leaves the accuracy runs out."""
    if n_samples < 1 or accuracy_samples < 0:
        raise HostError(f"study whatif: --samples must be >= 1 and --accuracy-samples >= 0, got {n_samples} and "
                        f"{accuracy_samples}")
    out_dir = study_folder(out_dir, "whatif")
    cfg = cfg or ExperimentConfig()
    cases = load_cases(cases_file)
    const = energy.load_constants()
    x, y = time_profile.random_samples(cfg, n_samples, seed)
    rows = []
    for i, case in enumerate(cases):
        t0 = time.perf_counter()
        try:
            rows.append(run_case(cfg, case, out_dir / "chips", x, y, const))
        except KeyboardInterrupt:
            kept = write_json(out_dir / "result.partial.json", {"table": rows, "cases_done": i, "cases": len(cases)})
            raise TrainingInterrupted(f"study whatif interrupted in case {i + 1} of {len(cases)}; the {i} finished "
                                      f"are in {kept}") from None
        print(f"whatif: case {i + 1}/{len(cases)} {case.name}: {time.perf_counter() - t0:.0f} s", flush=True)
    accuracy: dict[str, Any] = {"skipped": "--accuracy-samples 0"}
    formats = sorted({c.trace_format for c in cases if c.changes_arithmetic})
    if accuracy_samples and formats:
        if data is None:
            from s2eprop.host.data.loader import load_dataset

            data = load_dataset(cfg.dataset, progress=False)
        accuracy = {"dataset": getattr(data, "name", "")}
        for fmt in (None, *formats):
            t0 = time.perf_counter()
            print(f"whatif: accuracy with {fmt or 'float32'} traces, {accuracy_samples} samples on the golden "
                  f"model ...", flush=True)
            accuracy[fmt or "baseline"] = trace_rounding.train_and_test(cfg, data, accuracy_samples, fmt)
            print(f"whatif: accuracy with {fmt or 'float32'} traces: test "
                  f"{100 * accuracy[fmt or 'baseline']['test_accuracy']:.1f} % ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
        for case, row in zip(cases, rows):
            if case.changes_arithmetic:
                row["accuracy_change"] = round(accuracy[case.trace_format]["test_accuracy"]
                                               - accuracy["baseline"]["test_accuracy"], 4)
    result = {"cases_file": str(cases_file), "inputs": f"{n_samples} samples of 3 N(0, 1) frames, seed {seed}",
              "table": rows, "accuracy": accuracy,
              "not_measured": {"MAC array, 8-bit operands": "the accuracy of 8-bit trace operands is not measured; "
                                                           "the case speeds up the trace update only (cost_scale)"}}
    return write_result(out_dir, "whatif", result, {"whatif": plot(rows, out_dir / "whatif.png")})


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"{'case':40s} cores  median/worst tick  real time  training state  mJ/sample  accuracy change"]
    for r in result["table"]:
        acc = "" if r["accuracy_change"] is None else f"{100 * r['accuracy_change']:+.1f} pp"
        lines.append(f"{r['case']:40s} {r['cores']:5d}  {100 * r['median_tick_utilisation']:6.0f} % / {100 * r['max_tick_utilisation']:4.0f} %  "
                     f"{'yes' if r['real_time'] else 'no':>9s}  {r['training_state_bytes']:12,} B"
                     f"{'*' if r['memory_projected'] else ' '} {r['energy_mj_per_sample']:9.2f}  {acc}")
    lines.append("* projected: the firmware stores float32 traces")
    return lines
