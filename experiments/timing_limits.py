"""Where real time breaks: the paper's network on the timed chip at 300 and 150 MHz, and with more
neurons per core (18 fit a 128 KiB core; 24 need a hypothetical chip with more SRAM per core).

Each case trains the same seeded samples (inputs 3 N(0, 1), the emulator tests' recipe) from the
same weights on the functional chip and on the timed one, and reports the timed run's compliance
(overruns, tick utilisation, late packets, dominant phase) and how far its weights moved from the
functional run's. Writes OUT/result.json and prints a table.

    python experiments/timing_limits.py --out runs/timing_limits [--samples 20]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml


from s2eprop.emulator.chip.description import DEFAULT_CHIP
from s2eprop.host.config import ChipConfig, ExperimentConfig
from s2eprop.host.files import write_json
from s2eprop.host.weights import init_weights

# (name, neurons per core, clock MHz, SRAM per core in KiB or None for the real chip)
CASES = [("paper, 300 MHz", 10, 300, None), ("paper, 150 MHz", 10, 150, None),
         ("18 per core, 300 MHz", 18, 300, None), ("18 per core, 150 MHz", 18, 150, None),
         ("24 per core, 300 MHz, 256 KiB SRAM", 24, 300, 256), ("24 per core, 150 MHz, 256 KiB SRAM", 24, 150, 256)]


def big_sram_chip(folder: Path, kib: int) -> Path:
    """The default chip file with more SRAM per core (a hypothetical chip)."""
    chip = yaml.safe_load(DEFAULT_CHIP.read_text())
    chip.update(name=f"spinnaker2-{kib}k", sram_bytes_per_core=kib * 1024,
                cycle_costs_file=str(DEFAULT_CHIP.parent / chip["cycle_costs_file"]))
    path = folder / f"spinnaker2_{kib}k.yaml"
    path.write_text(yaml.safe_dump(chip))
    return path


def run_case(npc: int, clock_mhz: int, chip_file: Path | None, n_samples: int, seed: int) -> dict[str, Any]:
    base = ExperimentConfig()
    part = dataclasses.replace(base.partition, neurons_per_core=npc)
    if chip_file is not None:  # the arena may use the hypothetical chip's extra SRAM
        part = dataclasses.replace(part, arena_limit_bytes=int(yaml.safe_load(chip_file.read_text())
                                                               ["sram_bytes_per_core"]) - 32 * 1024)
    train = dataclasses.replace(base.train, on_loss="count")
    functional_cfg = dataclasses.replace(base, partition=part, train=train,
                                         chip=ChipConfig(file=str(chip_file or ""))).validate()
    timed_cfg = dataclasses.replace(functional_cfg, chip=ChipConfig(mode="timed", clock_mhz=clock_mhz,
                                                                     file=str(chip_file or ""))).validate()
    net = base.network
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((n_samples, net.n_steps, net.n_in))).astype(np.float32)
    y = rng.integers(0, net.n_out, n_samples)
    w0 = init_weights(net, seed=7)
    from s2eprop.host.session.train import make_trainer

    functional = make_trainer(functional_cfg, "emulator", w0, None)
    timed = make_trainer(timed_cfg, "emulator", w0, None)
    for i in range(n_samples):
        functional.train_batch(x[i], y[i:i + 1])
        timed.train_batch(x[i], y[i:i + 1])
    wf, wt = functional.weights, timed.weights
    moved = {k: float(np.max(np.abs(getattr(wt, k) - getattr(wf, k))) / float(np.max(np.abs(getattr(wf, k)))))
             for k in ("w_in", "w_rec", "w_out")}
    identical = all(np.array_equal(getattr(wt, k).view(np.uint32), getattr(wf, k).view(np.uint32)) for k in moved)
    summary = timed.timing_summary()
    losses = {k: v for k, v in timed.provenance().items() if v}
    return {"cores": timed.plan.n_cores, "neurons_per_core": npc, "clock_mhz": clock_mhz,
            "sram_bytes_per_core": timed.transport.chip.desc.sram_bytes_per_core,
            "max_arena_bytes": max(img.layout.arena_bytes for img in timed.images),
            "samples": n_samples, "overruns": summary["overruns"], "core_ticks": summary["ticks"],
            "max_tick_utilisation": summary["max_tick_utilisation"],
            "p99_tick_utilisation": summary["p99_tick_utilisation"], "late_packets": summary["late_packets"],
            "losses": losses, "dominant_phase": summary["dominant_phase"],
            "cycles_by_phase": summary["cycles_by_phase"], "weights_identical_to_functional": identical,
            "weights_moved_rel_max_abs": moved, "cycle_costs_source": summary["cycle_costs_source"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, npc, mhz, kib in CASES:
            chip = big_sram_chip(Path(tmp), kib) if kib else None
            r = run_case(npc, mhz, chip, args.samples, args.seed)
            results[name] = r
            print(f"{name:38s} {r['cores']:3d} cores  overruns {r['overruns']:6d}  max util "
                  f"{100 * r['max_tick_utilisation']:6.1f} %  p99 {100 * (r['p99_tick_utilisation'] or 0):5.0f} %  "
                  f"late {r['late_packets']:6d}  same bits {str(r['weights_identical_to_functional']):5s}  "
                  f"moved {max(r['weights_moved_rel_max_abs'].values()):.2e}  ({r['dominant_phase']})", flush=True)
    write_json(args.out / "result.json", {"cases": results})
    print(f"result: {args.out / 'result.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
