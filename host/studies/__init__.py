"""Studies layer: the paper's discussion as commands (`s2eprop study NAME --out DIR`), one module per study.

Each module has `run(out_dir, ...) -> dict`, which writes `out_dir/result.json` (atomically) and PNG
figures and returns the result: `memory` (the firmware's byte map, E-prop vs BPTT), `time` (cycles by
phase on the timed chip against the 1 ms tick), `energy` (chip energy per sample against a V100).
"""
