"""CPU and wall ms per training sample through Session.train_sample, fresh and trained weights
(runs/demo/weights.npz, from `make demo`): python experiments/speed_train_sample.py [N] [mode] [threads].
Run from the repository root; prints a checksum of the final w_rec so runs can be compared for bits."""
import sys
import time
from pathlib import Path

import numpy as np

import s2eprop

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
mode = sys.argv[2] if len(sys.argv) > 2 else "functional"
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
data = s2eprop.load_dataset("synth")
cfg = s2eprop.load_config("experiments/configs/demo.yaml", overrides={"chip": {"threads": threads}})
x, y = data.x_train, data.y_train
res = {}
trained = Path("runs/demo/weights.npz")
for name, w in (("fresh", None), ("trained", trained)) if trained.is_file() else (("fresh", None),):
    with s2eprop.Session(cfg, target="emulator", mode=mode, init_weights=w) as s:
        for i in range(5):
            s.train_sample(x[i], int(y[i]))
        c0, w0 = time.process_time(), time.perf_counter()
        for i in range(n):
            s.train_sample(x[i], int(y[i]))
        res[name] = ((time.process_time() - c0) / max(n, 1) * 1e3, (time.perf_counter() - w0) / max(n, 1) * 1e3)
        ws = s.weights
print(mode, "threads", threads, {k: f"cpu {a:.2f} wall {b:.2f} ms" for k, (a, b) in res.items()},
      "w_rec sum", float(np.sum(ws["w_rec"].astype(np.float64))))
