"""Host layer: runs E-prop training on a board (emulated or real) through a `Transport`.

It partitions the network, loads the images and routing table, starts the cores, then streams each
sample (its 100 frames one per 1 ms tick, a few ticks ahead) and reads back the per-sample result.
Weights and Adam state are read back from the cores on demand (checkpoints, end of training).
The interface matches the golden model's (`train_batch`, `forward`, `start_epoch`, `weights`, `adam`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from emulator.fw_bridge import Firmware
from emulator.messages import ResultMsg, ScaleLrMsg
from host.config import ExperimentConfig
from host.errors import ConfigError, DataError, TransportError
from host.images import CoreImage, build_images, gather_matrices, training_state_bytes
from host.partition import Plan, plan_partition
from host.reference.golden import AdamState, BatchResult, random_feedback
from host.routing import routing_table
from host.transport import EmulatorTransport, Transport
from host.weights import Weights

LOOKAHEAD_TICKS = 4
# fw_state_t loss counters, consecutive uint32 fields: read after every sample, must stay 0
LOSS_COUNTERS = ("outbox_overflows", "ring_overflows", "input_underruns", "partials_incomplete", "bad_host_msgs",
                 "unknown_keys", "late_packets")


class BoardTrainer:
    """On-chip E-prop: online (one sample, one update), as on SpiNNaker 2."""

    def __init__(self, cfg: ExperimentConfig, weights: Weights, adam: AdamState | None = None,
                 transport: Transport | None = None, backend: str = "c", firmware: Firmware | None = None,
                 track_l2: bool = True) -> None:
        if cfg.train.batch_size != 1:
            raise ConfigError(
                f"the emulated chip learns online, one sample per update: batch size must be 1, "
                f"got {cfg.train.batch_size} (use --target golden for mini-batches)")
        self.cfg = cfg
        self.net = cfg.network
        self.fw = firmware or Firmware()
        self.plan: Plan = plan_partition(cfg.network, cfg.partition)
        self.labels = weights.labels
        feedback = random_feedback(self.net, cfg.train.seed) if cfg.train.feedback == "random" else None
        self.images: list[CoreImage] = build_images(self.fw, cfg, self.plan, weights.check(self.net), adam, feedback)
        self.transport: Transport = transport or EmulatorTransport(self.plan.n_cores, backend=backend)
        for img in self.images:
            self.transport.write_memory(img.plan.core_id, 0, img.data)
        self.transport.load_routes(routing_table(self.net, self.plan))
        for img in self.images:
            self.transport.start(img.plan.core_id, img.layout.arena_bytes)
        self.track_l2 = track_l2  # read weights back before each sample to report the L2 loss
        self._next_id = 0
        self._last_spikes = 0
        self._dropped = 0
        ffi = self.fw.ffi
        self._counters_at = self.fw.state_offset + ffi.offsetof("fw_state_t", LOSS_COUNTERS[0])
        assert ffi.offsetof("fw_state_t", LOSS_COUNTERS[-1]) - ffi.offsetof("fw_state_t", LOSS_COUNTERS[0]) \
            == 4 * (len(LOSS_COUNTERS) - 1), "fw_state_t loss counters must be consecutive"
        self._counters = self._loss_counters()
        self.ticks_train = 0  # emulated 1 ms ticks spent training
        self.ticks_eval = 0   # ... and on inference

    # -- the trainer interface ---------------------------------------------------------------
    def train_batch(self, x: np.ndarray, y: np.ndarray) -> BatchResult:
        return self._run(x, y, train=True)

    def forward(self, x: np.ndarray, y: np.ndarray | None = None) -> BatchResult:
        return self._run(x, y, train=False)

    def start_epoch(self, epoch: int) -> None:
        tr = self.cfg.train
        if epoch > 0 and epoch % tr.lr_decay_every_epochs == 0:
            msg = ScaleLrMsg(tr.lr_decay).pack()
            for core in self.plan.neuron_cores:
                self.transport.send(core, msg)

    @property
    def weights(self) -> Weights:
        w = gather_matrices(self.images, self.transport.read_memory, "w", self._shapes())
        return Weights(w["w_in"], w["w_rec"], w["w_out"], self.labels)

    @property
    def adam(self) -> AdamState:
        shapes = self._shapes()
        m = gather_matrices(self.images, self.transport.read_memory, "m", shapes)
        v = gather_matrices(self.images, self.transport.read_memory, "v", shapes)
        s = self.core_state(self.plan.neuron_cores[0])
        return AdamState(m=m, v=v, t=int(s["adam_t"]), lr=np.float32(s["lr"]),
                         b1_pow=np.float32(s["b1_pow"]), b2_pow=np.float32(s["b2_pow"]))

    # -- reporting -----------------------------------------------------------------------------
    def core_state(self, core: int) -> dict[str, Any]:
        raw = self.transport.read_memory(core, self.fw.state_offset, self.fw.state_bytes)
        st = self.fw.ffi.new("fw_state_t *")
        self.fw.ffi.memmove(st, raw, len(raw))
        return {name: getattr(st, name) for name, _ in self.fw.ffi.typeof("fw_state_t").fields}

    def memory_report(self) -> dict[str, Any]:
        return {
            "cores": self.plan.n_cores,
            "neurons_per_core": self.cfg.partition.neurons_per_core,
            "sram_bytes_per_core": [img.layout.arena_bytes for img in self.images],
            "training_state_bytes_total": training_state_bytes(img.layout for img in self.images),
        }

    def provenance(self) -> dict[str, Any]:
        """Losses the cores and router counted (all should be zero in a healthy run)."""
        totals = dict(zip(LOSS_COUNTERS, (int(v) for v in self._loss_counters().sum(axis=0))))
        st = self.transport.status()
        totals["packets_dropped"] = int(st["packets_dropped"])
        totals["queue_overflows"] = int(st.get("queue_overflows", 0))
        return totals

    def _loss_counters(self) -> np.ndarray:
        """(cores, counters) of the firmware's loss counters, read from each core's state."""
        n = 4 * len(LOSS_COUNTERS)
        return np.stack([np.frombuffer(self.transport.read_memory(img.plan.core_id, self._counters_at, n), np.uint32)
                         for img in self.images])

    # -- internals -------------------------------------------------------------------------------
    def _shapes(self) -> dict[str, tuple[int, int]]:
        n = self.net
        return {"w_in": (n.n_in, n.n_rec), "w_rec": (n.n_rec, n.n_rec), "w_out": (n.n_rec, n.n_out)}

    def _run(self, x: np.ndarray, y: np.ndarray | None, train: bool) -> BatchResult:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 2:
            x = x[None]
        if x.shape[1:] != (self.net.n_steps, self.net.n_in):
            raise ConfigError(f"input must have shape (B, {self.net.n_steps}, {self.net.n_in}), got {x.shape}")
        labels = np.zeros(len(x), dtype=np.int64) if y is None else np.asarray(y, dtype=np.int64).reshape(-1)
        if train and y is None:
            raise ConfigError("training needs labels")
        if len(labels) != len(x):
            raise DataError(f"{len(x)} samples but {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.net.n_out):
            raise DataError(f"labels must lie in 0..{self.net.n_out - 1}, got {labels.min()}..{labels.max()}")
        l2 = float(self.cfg.train.l2) * sum(float(np.sum(np.square(w, dtype=np.float32)))
                                            for w in self.weights.as_dict().values()) if (train and self.track_l2) else 0.0
        loss = np.zeros(len(x), dtype=np.float32)
        pred = np.zeros(len(x), dtype=np.int64)
        out = np.zeros((len(x), self.net.n_out), dtype=np.float32)
        spikes = np.zeros(len(x), dtype=np.int64)
        for b in range(len(x)):
            sid = self._next_id
            self._next_id += 1
            used = self.transport.stream_sample(sid, int(labels[b]), train, x[b], list(self.plan.neuron_cores),
                                                LOOKAHEAD_TICKS, self.net.n_steps + 16)
            if used < 0:
                raise TransportError(self._no_result_message(sid))
            dropped, last = self.transport.packets_dropped()
            if dropped != self._dropped:
                src, key = last if last else (-1, 0)
                lost, self._dropped = dropped - self._dropped, dropped
                raise TransportError(
                    f"sample {sid}: the router dropped {lost} packet(s), last key 0x{key:08x} from core {src} "
                    f"(no routing entry matches): the result of this sample cannot be trusted; check the routing table")
            self._check_counters(sid)
            if train:
                self.ticks_train += used
            else:
                self.ticks_eval += used
            result = self._take_result(sid)
            pred[b] = result.pred
            loss[b] = result.loss
            spikes[b] = result.spikes_total - self._last_spikes
            self._last_spikes = result.spikes_total
            out[b] = result.output_mean[:self.net.n_out]
        if y is None:
            loss[:] = np.nan
        return BatchResult(loss=loss, pred=pred, output_mean=out, l2_loss=l2, spikes=spikes)

    def _check_counters(self, sid: int) -> None:
        now = self._loss_counters()
        grew = np.argwhere(now != self._counters)
        self._counters = now
        if len(grew):
            what = ", ".join(f"core {self.images[c].plan.core_id} {LOSS_COUNTERS[k]} now {int(now[c, k])}"
                             for c, k in grew[:6])
            raise TransportError(f"sample {sid}: the cores counted losses ({what}): the result cannot be trusted")

    def _take_result(self, sid: int) -> ResultMsg:
        found = [words for _, words in self.transport.receive() if ResultMsg.is_result(words, sid)]
        if len(found) != 1:
            raise TransportError(f"sample {sid}: the readout core sent {len(found)} result messages, expected 1")
        return ResultMsg.unpack(found[0])

    def _no_result_message(self, sid: int) -> str:
        prov = self.provenance()
        st = self.transport.status()
        lost = {k: v for k, v in prov.items() if v}
        detail = ", ".join(f"{k} {v}" for k, v in lost.items()) or "no loss counted"
        where = ""
        if st.get("last_drop"):
            src, key = st["last_drop"]
            where = f"; last dropped packet: key 0x{key:08x} from core {src} (no routing entry matches)"
        return f"sample {sid}: no result from the readout core within {self.net.n_steps + 16} ticks ({detail}{where})"

