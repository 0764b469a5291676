"""Studies layer: the paper's discussion as commands (`s2eprop study NAME --out DIR`, host/cli/studies.py),
one module per study, each with `run(out_dir, cfg, ...) -> dict` writing `out_dir/result.json` (atomically)
and PNG figures: `memory` (the firmware's byte map; E-prop vs BPTT in memory_scaling), `time_profile`
(cycles by phase on the timed chip against the 1 ms tick), `energy` (chip energy per sample against a
V100 estimate: gpu_estimate, torch_eprop), `whatif` (modified chips: whatif_cases, trace_rounding),
`learning_curve`, `sweep` (a grid of runs on Ray), `loss_rate` and `options` (the accuracy table of the
learning options). docs/studies.md says what each computes.
"""
