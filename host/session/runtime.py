"""Host layer: runs E-prop training on a board (emulated or real) through a `Transport`.

It partitions the network, loads the images and routing table, starts the cores, then runs each
sample through the streamer (host/session/streamer.py) and turns the cores' RESULT and SAMPLE_DONE messages
into the per-sample figures: no memory is read back per sample. Weights and Adam state are read back
on demand (checkpoints, end of training). What a loss the chip counted does is `train.on_loss`.
The interface matches the golden model's (`train_batch`, `forward`, `start_epoch`, `weights`, `adam`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from s2eprop.firmware.abi import Firmware
from s2eprop.host.config import ExperimentConfig
from s2eprop.host.data.dataset import check_inputs
from s2eprop.host.engines import check_engine, engine_of
from s2eprop.host.errors import ConfigError, DataError, TransportError
from s2eprop.host.fault_config import injected
from s2eprop.host.connectivity import connectivity_masks
from s2eprop.host.mapping.images import CoreImage, build_images, gather_feedback, gather_matrices, training_state_bytes
from s2eprop.firmware.messages import ScaleLrMsg
from s2eprop.host.mapping.partition import Plan, plan_partition
from s2eprop.host.mapping.recording import RecordingPlan, SampleRecord
from s2eprop.host.reference.golden import AdamState, BatchResult, l2_loss, random_feedback
from s2eprop.host.mapping.routing import routing_table
from s2eprop.firmware.sdram_map import InputRing
from s2eprop.host.session.streamer import GRACE_TICKS, SampleOutcome, SampleStreamer
from s2eprop.host.transport.base import TimingRecord
from s2eprop.host.transport import Transport, TransportStatus, open_transport
from s2eprop.host.weights import FeedbackState, Weights


class SampleResults:
    """The rows of a BatchResult, filled one sample at a time."""

    def __init__(self, n: int, n_out: int, l2: float) -> None:
        self.loss = np.zeros(n, dtype=np.float32)
        self.pred = np.zeros(n, dtype=np.int64)
        self.out = np.zeros((n, n_out), dtype=np.float32)
        self.spikes = np.zeros(n, dtype=np.int64)
        self.l2 = l2

    def result(self, labels_given: bool) -> BatchResult:
        if not labels_given:
            self.loss[:] = np.nan
        return BatchResult(loss=self.loss, pred=self.pred, output_mean=self.out, l2_loss=self.l2, spikes=self.spikes)


class BoardTrainer:
    """On-chip E-prop: online (one sample, one update), as on SpiNNaker 2."""

    def __init__(self, cfg: ExperimentConfig, weights: Weights, adam: AdamState | None = None,
                 transport: Transport | None = None, backend: str = "c", firmware: Firmware | None = None,
                 outbox_words: int | None = None, copy: int = 0, copies: int = 1,
                 feedback: FeedbackState | None = None) -> None:
        """`copy` of `copies`: this network's place among identical ones sharing the chip (host/session/copies.py
        loads their routing table; a network alone loads its own). `feedback`: adaptive feedback's B and its
        moments to start from (a resumed run; None: B from train.seed, moments zero)."""
        check_engine(engine_of(cfg, "emulator", backend))
        self.cfg = cfg
        self.net = cfg.network
        self.fw = firmware or Firmware()
        self.plan: Plan = plan_partition(cfg.network, cfg.partition, copy, copies)
        self.labels = weights.labels
        weights = weights.check(self.net)  # network.connectivity: refuses weights at absent synapses
        self.masks = connectivity_masks(self.net)
        b, moments = None, None
        if feedback is not None:
            if cfg.train.feedback != "adaptive":
                raise ConfigError(f"a learned feedback state is given, train.feedback is {cfg.train.feedback!r}: "
                                  f"it belongs to train.feedback adaptive (give none)")
            fb = feedback.check(self.net, "feedback state")
            b, moments = fb.b, (fb.m, fb.v)
        elif cfg.train.feedback != "symmetric":
            b = random_feedback(self.net, cfg.train.seed)
        extra = {} if outbox_words is None else {"outbox_words": outbox_words}
        self.recording = RecordingPlan(cfg, self.plan) if cfg.record.active else None
        self.images: list[CoreImage] = build_images(self.fw, cfg, self.plan, weights, adam, b,
                                                    recording=self.recording, feedback_moments=moments, **extra)
        self.transport: Transport = transport or open_transport("emulator", self.plan.n_cores, backend)
        if cfg.chip.faults:
            set_faults = getattr(self.transport, "set_faults", None)
            if set_faults is None:
                raise ConfigError("chip.faults are injected by the in-process emulator's router; this transport "
                                  "has none: use target emulator (or drop chip.faults)")
            set_faults(cfg.chip.faults)
        for img in self.images:
            self.transport.write_sram(img.plan.core_id, 0, img.data)
        if self.recording is not None:
            self.recording.allocate(self.transport.write_sdram)
        self._records: list[SampleRecord] = []
        self.routes = routing_table(self.net, self.plan)
        if copies == 1:
            self.transport.load_routes(self.routes)
        for img in self.images:
            self.transport.start(img.plan.core_id, img.layout.arena_bytes)
        tr = cfg.train
        self.streamer = SampleStreamer(self.transport, InputRing.for_network(self.net.n_in, self.net.n_steps, copy,
                                                                         cfg.input.kind),
                                       tuple(c.core_id for c in self.plan.cores), self.plan.readout_core,
                                       self.net.n_steps, tr.input_mode, tr.input_lookahead_ticks)
        self._l2_term = l2_loss(weights, tr.l2)  # of the weights the next update starts from
        self._next_id = 0
        self._expected: np.ndarray | None = None  # the input of the sample after the next batch (expect)
        ffi = self.fw.ffi
        self._counters_at = self.fw.state_offset + ffi.offsetof("fw_state_t", "counters")
        self._counters_bytes = ffi.sizeof("fw_counters_t")
        self._chip_seen = self._chip_losses(self.transport.status())
        self.samples_lost = 0      # samples without a RESULT or a SAMPLE_DONE (on_loss: count)
        self.stray_messages = 0    # core messages of no sample the host waited for (late ones of a lost sample)
        self.ticks_train = 0       # emulated 1 ms ticks spent training
        self.ticks_eval = 0        # ... and on inference
        self._part = "train"       # what the chip's ticks run now (its timing reports the parts apart)
        self._late_by_part = {"train": 0, "inference": 0}  # late packets the cores counted, per part
        self._late_mark = 0

    # -- the trainer interface ---------------------------------------------------------------
    def train_batch(self, x: np.ndarray, y: np.ndarray, record: np.ndarray | None = None) -> BatchResult:
        """`record`: per sample, whether the cores record it (cfg.record; taken with `recorded`)."""
        return self._run(x, y, train=True, record=record)

    def forward(self, x: np.ndarray, y: np.ndarray | None = None, record: np.ndarray | None = None) -> BatchResult:
        return self._run(x, y, train=False, record=record)

    def expect(self, x: np.ndarray | None) -> None:
        """The input (n_steps, n_in) of the sample that will follow the next batch, if known (None: not known):
        its frames go up to the board while the batch's last sample runs (host/session/streamer.py). Only a
        hint: whatever sample comes next runs on its own frames."""
        self._expected = None
        if x is not None:
            x = np.asarray(x, dtype=np.float32)
            if x.shape == (self.net.n_steps, self.net.n_in):
                self._expected = x

    def recorded(self) -> list[SampleRecord]:
        """The records of the samples marked since the last call, in order."""
        out, self._records = self._records, []
        return out

    def start_epoch(self, epoch: int) -> None:
        tr = self.cfg.train
        if epoch > 0 and epoch % tr.lr_decay_every_epochs == 0:
            msg = ScaleLrMsg(tr.lr_decay).pack()
            self.transport.send_many([(core, msg) for core in self.plan.neuron_cores])

    @property
    def weights(self) -> Weights:
        w = gather_matrices(self.images, self.transport.read_sram, "w", self._shapes(), self.masks)
        return Weights(w["w_in"], w["w_rec"], w["w_out"], self.labels)

    @property
    def feedback(self) -> np.ndarray | None:
        """The feedback matrix B (n_rec, n_out) the cores hold (train.feedback random or adaptive), else None."""
        if self.cfg.train.feedback == "symmetric":
            return None
        return gather_feedback(self.images, self.transport.read_sram, self.net.n_rec, self.net.n_out)

    @property
    def feedback_state(self) -> FeedbackState | None:
        """Adaptive feedback's B and its optimizer moments as the cores hold them (None unless adaptive)."""
        if self.cfg.train.feedback != "adaptive":
            return None
        read, n_rec, n_out = self.transport.read_sram, self.net.n_rec, self.net.n_out
        return FeedbackState(*(gather_feedback(self.images, read, n_rec, n_out, r) for r in ("fb", "m_fb", "v_fb")))

    @property
    def adam(self) -> AdamState:
        shapes = self._shapes()
        m = gather_matrices(self.images, self.transport.read_sram, "m", shapes, self.masks)
        v = gather_matrices(self.images, self.transport.read_sram, "v", shapes, self.masks)
        s = self.core_state(self.plan.neuron_cores[0])
        return AdamState(m=m, v=v, t=int(s["adam_t"]), lr=np.float32(s["lr"]),
                         b1_pow=np.float32(s["b1_pow"]), b2_pow=np.float32(s["b2_pow"]))

    @property
    def chip_ms(self) -> tuple[int, int]:
        """Emulated 1 ms ticks spent training and on inference."""
        return self.ticks_train, self.ticks_eval

    @property
    def timing(self) -> TimingRecord | None:
        """The compliance record of the timed chip behind the transport (None for a functional one)."""
        get = getattr(self.transport, "timing", None)
        return get() if get is not None else None

    def timing_summary(self, per_core: dict[int, dict[str, int]] | None = None,
                       part: str = "train") -> dict[str, Any] | None:
        """report.json `timing` (part "train": the training samples' ticks) or `timing_inference`."""
        chip = self.timing
        if chip is None:
            return None
        per_core = self.core_counters() if per_core is None else per_core
        late = self._late_by_part[part] + (self._late_now(per_core) - self._late_mark if part == self._part else 0)
        out = chip.summary(late, part)
        out["on_loss"] = "count (timed modes measure losses)"
        return out

    @staticmethod
    def _late_now(per_core: dict[int, dict[str, int]]) -> int:
        return sum(c["late_packets"] for c in per_core.values())

    def _enter_part(self, part: str) -> None:
        """The next samples train (part "train") or run inference: the timed chip reports them apart."""
        chip = self.timing
        if chip is None or part == self._part:
            return
        late = self._late_now(self.core_counters())
        self._late_by_part[self._part] += late - self._late_mark
        self._late_mark, self._part = late, part
        chip.part(part)

    def save_timing(self, out_dir: Path) -> dict[str, str]:
        """timing.npz and its figures (timing.png, tick.png) in out_dir; {} for a functional chip."""
        chip = self.timing
        if chip is None:
            return {}
        from s2eprop.host.plots.timing import plot_timing_files

        chip.save(out_dir / "timing.npz")
        return plot_timing_files(out_dir / "timing.npz", out_dir)

    def report(self) -> dict[str, Any]:
        """What report.json says of the chip: memory per core, emulated time, every loss counter, timing."""
        per_core = self.core_counters()
        timing = self.timing_summary(per_core)
        inference = self.timing_summary(per_core, "inference") if timing is not None else None
        link = getattr(self.transport, "link_stats", None)
        board = getattr(self.transport, "board_report", None)
        return {**({"board": board()} if board is not None else {}),
                **({"timing": timing} if timing is not None else {}),
                **({"timing_inference": inference} if inference is not None and inference["ticks"] else {}),
                **({"link": link()} if link is not None else {}),
            "cores": self.plan.n_cores,
            "neurons_per_core": self.cfg.partition.neurons_per_core,
            "sram_bytes_per_core": [img.layout.arena_bytes for img in self.images],
            "training_state_bytes_total": training_state_bytes(img.layout for img in self.images),
            **({"recording": self.recording_costs()} if self.recording is not None else {}),
            **({"faults_injected": self.faults_injected()} if self.cfg.chip.faults else {}),
            "provenance": self.provenance(per_core),
            "provenance_per_core": {str(core): {k: v for k, v in c.items() if v} for core, c in per_core.items()
                                    if any(c.values())},
        }

    def faults_injected(self) -> dict[str, dict[str, int]]:
        """Packets the router's faults (chip.faults) hit so far, per kind and action."""
        return injected(self.cfg.chip.faults, self.transport.fault_hits())

    def recording_costs(self) -> dict[str, Any]:
        """What recording costs: record buffers in each core's SRAM, and the DMA writes per recorded sample
        (bytes, and the time of one core's writes at the chip file's DMA latency and bandwidth)."""
        from s2eprop.emulator.chip.description import load_chip

        assert self.recording is not None
        desc = load_chip(self.cfg.chip.file or None)
        steps = self.net.n_steps
        per_core_ps = {c.core_id: steps * sum(desc.dma_setup_latency_ps + 4e12 * w / desc.dma_bandwidth_bytes_per_s
                                              for w in (c.neuron_words, c.readout_words) if w)
                       for c in self.recording.cores.values()}
        return {"sram_bytes_per_core": [int(img.layout.accounting["record_bytes"]) for img in self.images],
                "dma_bytes_per_sample": self.recording.dma_bytes_per_sample(),
                "dma_us_per_sample_worst_core": max(per_core_ps.values()) / 1e6,
                "sdram_region_bytes_per_core": self.recording.stride}

    # -- reporting -----------------------------------------------------------------------------
    def core_state(self, core: int) -> dict[str, Any]:
        raw = self.transport.read_sram(core, self.fw.state_offset, self.fw.state_bytes)
        st = self.fw.ffi.new("fw_state_t *")
        self.fw.ffi.memmove(st, raw, len(raw))
        return {name: getattr(st, name) for name, _ in self.fw.ffi.typeof("fw_state_t").fields}

    def core_counters(self) -> dict[int, dict[str, int]]:
        """Each core's loss counters (fw_counters_t), read from its state."""
        out = {}
        for img in self.images:
            raw = self.transport.read_sram(img.plan.core_id, self._counters_at, self._counters_bytes)
            out[img.plan.core_id] = dict(zip(self.fw.counter_fields, (int(v) for v in np.frombuffer(raw, np.uint32))))
        return out

    def provenance(self, per_core: dict[int, dict[str, int]] | None = None) -> dict[str, int]:
        """Losses the cores, the chip and the host counted (all zero in a healthy run)."""
        per_core = self.core_counters() if per_core is None else per_core
        totals = {name: sum(c[name] for c in per_core.values()) for name in self.fw.counter_fields}
        totals.update(self._chip_losses(self.transport.status()))
        totals["samples_lost"] = self.samples_lost
        totals["stray_messages"] = self.stray_messages
        return totals

    def close(self) -> None:
        """Stop the cores and close the transport (the board keeps its memory for a later read)."""
        for img in self.images:
            self.transport.stop(img.plan.core_id)
        self.transport.close()

    # -- internals -------------------------------------------------------------------------------
    def _shapes(self) -> dict[str, tuple[int, int]]:
        n = self.net
        return {"w_in": (n.n_in, n.n_rec), "w_rec": (n.n_rec, n.n_rec), "w_out": (n.n_rec, n.n_out)}

    @staticmethod
    def _chip_losses(st: TransportStatus) -> dict[str, int]:
        return {"packets_dropped": st.packets_dropped, **st.losses}

    def _run(self, x: np.ndarray, y: np.ndarray | None, train: bool, record: np.ndarray | None = None) -> BatchResult:
        x, labels = self.check_batch(x, y, train)
        self._enter_part("train" if train else "inference")
        acc = SampleResults(len(x), self.net.n_out, self._l2_term if train else 0.0)
        expected, self._expected = self._expected, None
        for b in range(len(x)):
            rec = record is not None and bool(record[b])
            if rec and self.recording is None:
                raise ConfigError("a sample is marked for recording, but the config's record section names nothing")
            sid = self.next_sample_id()
            after = x[b + 1] if b + 1 < len(x) else expected
            upcoming = None if after is None else (sid + 1, after)
            self.account(self.streamer.run_sample(sid, int(labels[b]), train, x[b], rec, upcoming), train, acc, b)
            if rec:
                assert self.recording is not None
                self._records.append(self.recording.read(self.transport.read_sdram, sid))
        return acc.result(labels_given=y is not None)

    def check_batch(self, x: np.ndarray, y: np.ndarray | None, train: bool) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 2:
            x = x[None]
        if x.shape[1:] != (self.net.n_steps, self.net.n_in):
            raise ConfigError(f"input must have shape (B, {self.net.n_steps}, {self.net.n_in}), got {x.shape}")
        check_inputs(x, "the batch's input")
        labels = np.zeros(len(x), dtype=np.int64) if y is None else np.asarray(y, dtype=np.int64).reshape(-1)
        if train and y is None:
            raise ConfigError("training needs labels")
        if len(labels) != len(x):
            raise DataError(f"{len(x)} samples but {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.net.n_out):
            raise DataError(f"labels must lie in 0..{self.net.n_out - 1}, got {labels.min()}..{labels.max()}")
        return x, labels

    def next_sample_id(self) -> int:
        sid = self._next_id
        self._next_id += 1
        return sid

    def account(self, o: SampleOutcome, train: bool, acc: "SampleResults", b: int) -> None:
        """What came back for one sample: ticks, losses (self._check), and its row of the results."""
        if train:
            self.ticks_train += o.ticks
        else:
            self.ticks_eval += o.ticks
        self._check(o)
        acc.spikes[b] = sum(d.spikes for d in o.done.values())
        if o.result is None:
            acc.pred[b], acc.loss[b] = -1, np.nan
            return
        acc.pred[b] = o.result.pred
        acc.loss[b] = o.result.loss
        acc.out[b] = o.result.output_mean[:self.net.n_out]
        if train and len(o.done) == len(self.streamer.cores):
            self._l2_term = float(self.cfg.train.l2 * sum(d.sum_w2 for d in o.done.values()))

    def _check(self, o: SampleOutcome) -> None:
        """The losses of one sample: with on_loss 'stop', the first is an error naming core, counter, sample."""
        # timed chips and realtime boards measure losses: they go on
        stop = self.cfg.train.on_loss == "stop" and self.timing is None and not getattr(self.transport, "realtime", False)
        st = self.transport.status()
        mine = sorted((c, why) for c, why in st.core_errors.items() if c in {img.plan.core_id for img in self.images})
        if mine:  # a stopped core runs nothing more: whatever on_loss says, the run cannot go on
            core, why = mine[0]
            raise TransportError(f"sample {o.sample_id}: core {core} stopped with a run-time error: {why}. Its memory "
                                 f"was overwritten while it ran (another program writing to the board?); start the "
                                 f"run again (--resume from its checkpoint), which loads every core anew")
        now = self._chip_losses(st)
        grew = {k: now[k] - self._chip_seen.get(k, 0) for k in now if now[k] != self._chip_seen.get(k, 0)}
        self._chip_seen = now
        hint = "; set train.on_loss: count to measure losses and go on"
        if stop and grew.get("packets_dropped"):
            src, key = st.last_drop if st.last_drop else (-1, 0)
            raise TransportError(
                f"sample {o.sample_id}: the router dropped {grew['packets_dropped']} packet(s), last key 0x{key:08x} "
                f"from core {src} (no routing entry matches): the result of this sample cannot be trusted; "
                f"check the routing table")
        if stop and grew:
            raise TransportError(f"sample {o.sample_id}: the chip counted losses "
                                 f"({', '.join(f'{k} +{v}' for k, v in grew.items())}){hint}")
        moved = sorted(core for core, d in o.done.items() if d.counters_moved)
        if stop and moved:
            counters = self.core_counters()
            items = [f"core {core} {name} now {counters[core][name]}" for core in moved
                     for i, name in enumerate(self.fw.counter_fields) if o.done[core].counters_moved >> i & 1]
            what = ", ".join(items[:4]) + (f", and {len(items) - 4} more" if len(items) > 4 else "")
            raise TransportError(f"sample {o.sample_id}: the cores counted losses ({what}): "
                                 f"the result cannot be trusted{hint}")
        self.stray_messages += o.stray_messages
        if stop and o.stray_messages:
            raise TransportError(f"sample {o.sample_id}: {o.stray_messages} message(s) from the cores belonged to no "
                                 f"sample the host waited for{hint}")
        missing = [c for c in self.streamer.cores if c not in o.done]
        if o.result is None or missing:
            self.samples_lost += 1
            if stop:
                raise TransportError(self._no_result_message(o, missing))

    def _no_result_message(self, o: SampleOutcome, missing: list[int]) -> str:
        lost = {k: v for k, v in self.provenance().items() if v}
        detail = ", ".join(f"{k} {v}" for k, v in lost.items()) or "no loss counted"
        what = (f"no result from the readout core {self.plan.readout_core}" if o.result is None
                else f"no SAMPLE_DONE from core(s) {missing}")
        return f"sample {o.sample_id}: {what} within {self.net.n_steps + 1 + GRACE_TICKS} ticks ({detail})"
