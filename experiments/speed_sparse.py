"""CPU ms per training sample through Session.train_sample with sparse connectivity (network.connectivity):
python experiments/speed_sparse.py [N] [p_in] [p_rec] [mode]. The demo's network and partition, fresh weights,
one thread; prints a checksum of the final weights so runs of two builds can be compared for bits."""
import sys
import time

import numpy as np

import s2eprop

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
p_in = float(sys.argv[2]) if len(sys.argv) > 2 else 0.25
p_rec = float(sys.argv[3]) if len(sys.argv) > 3 else 0.25
mode = sys.argv[4] if len(sys.argv) > 4 else "functional"
data = s2eprop.load_dataset("synth")
overrides = {"chip": {"threads": 1}, "network": {"connectivity": {"p_in": p_in, "p_rec": p_rec}}}
cfg = s2eprop.load_config("experiments/configs/demo.yaml", overrides=overrides)
x, y = data.x_train, data.y_train
with s2eprop.Session(cfg, target="emulator", mode=mode) as s:
    for i in range(5):
        s.train_sample(x[i], int(y[i]))
    c0 = time.process_time()
    for i in range(n):
        s.train_sample(x[i % len(x)], int(y[i % len(y)]))
    cpu_ms = (time.process_time() - c0) / max(n, 1) * 1e3
    ws = s.weights
print(f"{mode} p_in {p_in} p_rec {p_rec}: cpu {cpu_ms:.2f} ms per sample;",
      "w_in sum", float(np.sum(ws["w_in"].astype(np.float64))), "w_rec sum", float(np.sum(ws["w_rec"].astype(np.float64))))
