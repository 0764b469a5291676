"""Host layer, mapping: recording of spikes, membrane voltages and readout outputs (config `record:`).

The firmware writes one record per step of a marked sample into SDRAM by DMA (fw_abi.h FW_REC_*): a
neuron core the spikes and v of its recorded neurons, the readout core the step's output y_t. The host
places each core's record regions (RECORD_ADDR on, after the input rings), allocates them (writes
them once, so that the cores' DMA writes land in SDRAM that exists), reads a sample's records back
after its SAMPLE_DONE, checks every header (a record missing or of another sample is counted, never
taken) and keeps them for `recordings.npz`. The golden model records the same quantities
(host/reference/golden.py `GoldenModel.record`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2eprop.firmware.abi import Firmware, abi
from s2eprop.host.config import ExperimentConfig, RecordConfig
from s2eprop.host.errors import DataError
from s2eprop.host.files import atomic_write
from s2eprop.host.mapping.partition import ROLE_NEURON, ROLE_READOUT, CorePlan, Plan

RECORD_ADDR = 0x1000_0000  # 256 MiB into SDRAM: far above the input rings of every copy
RECORD_ALIGN_BYTES = 1 << 16


@dataclass(frozen=True)
class CoreRecords:
    """Where one core writes its records and which neurons they hold."""

    core_id: int
    z_neurons: tuple[int, ...]   # global ids, in bit order of the spike bitmap
    v_neurons: tuple[int, ...]   # global ids, in the order of the v words
    neuron_addr: int
    neuron_words: int            # words of one record (0: none)
    readout_addr: int
    readout_words: int


@dataclass(frozen=True)
class SampleRecord:
    """One sample's records: spikes (n_steps, n_z) uint8, v (n_steps, n_v) float32, y (n_steps, n_out)
    float32 (NaN rows, and spikes 0, where a record is missing); `missing` records counted."""

    spikes: np.ndarray
    v: np.ndarray
    y: np.ndarray
    missing: int = 0


def _mask(local: list[int]) -> list[int]:
    words = [0] * int(abi().FW_REC_MASK_WORDS)
    for j in local:
        words[j >> 5] |= 1 << (j & 31)
    return words


def _fields(core: CorePlan, z: tuple[int, ...], v: tuple[int, ...], readout: bool) -> dict[str, Any]:
    """fw_config_t recording fields of a core that records neurons z (spikes) and v (global ids)."""
    lo = core.neuron_lo
    return dict(rec_out=int(readout), rec_z_mask=_mask([i - lo for i in z]), rec_v_mask=_mask([i - lo for i in v]))


class RecordingPlan:
    """The record regions of one network's cores (copy `plan.copy` on its chip)."""

    def __init__(self, cfg: ExperimentConfig, plan: Plan) -> None:
        rec, net = cfg.record, cfg.network
        self.net, self.rec = net, rec
        fw = Firmware()
        z_all, v_all = set(rec.spikes), set(rec.v)
        sizes = []
        for core in plan.cores:
            ids = range(core.neuron_lo, core.neuron_lo + core.n_local) if core.role & ROLE_NEURON else range(0)
            z, v = tuple(i for i in ids if i in z_all), tuple(i for i in ids if i in v_all)
            readout = bool(core.role & ROLE_READOUT) and rec.readout
            # the record sizes as the firmware computes them (fw_record_words), from the fields it reads
            c = fw.new_config(dict(role=core.role, n_local=core.n_local, n_out=net.n_out, **_fields(core, z, v, readout)))
            sizes.append((core, z, v, readout, int(fw.lib.fw_record_words(c, fw.lib.FW_REC_NEURON)),
                          int(fw.lib.fw_record_words(c, fw.lib.FW_REC_READOUT))))
        # every core gets the same stride (the largest), so the regions of copy k lie where they always lie
        per_core = max(4 * net.n_steps * (nw + rw) for *_, nw, rw in sizes)
        self.stride = -(-max(per_core, 1) // RECORD_ALIGN_BYTES) * RECORD_ALIGN_BYTES
        self.cores: dict[int, CoreRecords] = {}
        self._fields: dict[int, dict[str, Any]] = {}
        for core, z, v, readout, nw, rw in sizes:
            base = RECORD_ADDR + core.core_id * self.stride
            self.cores[core.core_id] = CoreRecords(core.core_id, z, v, base, nw, base + 4 * net.n_steps * nw, rw)
            self._fields[core.core_id] = dict(rec_sdram=base, rec_sdram_out=base + 4 * net.n_steps * nw,
                                              **_fields(core, z, v, readout))
        self.z_neurons = np.array([i for c in self.cores.values() for i in c.z_neurons], dtype=np.int32)
        self.v_neurons = np.array([i for c in self.cores.values() for i in c.v_neurons], dtype=np.int32)

    def config_fields(self, core: CorePlan) -> dict[str, Any]:
        """The fw_config_t recording fields of one core."""
        return self._fields[core.core_id]

    def regions(self) -> list[tuple[int, int]]:
        """(SDRAM address, bytes) of every record region."""
        steps = self.net.n_steps
        return [(addr, 4 * steps * words) for c in self.cores.values()
                for addr, words in ((c.neuron_addr, c.neuron_words), (c.readout_addr, c.readout_words)) if words]

    def allocate(self, write_sdram: Any) -> None:
        """Write every region once (zeros): a core's DMA writes go only to SDRAM the host has written."""
        for addr, n in self.regions():
            write_sdram(addr, np.zeros(n, dtype=np.uint8))

    def dma_bytes_per_sample(self) -> int:
        return sum(n for _, n in self.regions())

    def read(self, read_sdram: Any, sample_id: int) -> SampleRecord:
        """A sample's records from SDRAM; a record whose header is not (magic, sample_id, step) is missing."""
        lib, steps, net = abi(), self.net.n_steps, self.net
        head = int(lib.FW_FRAME_HEAD_WORDS)
        spikes = np.zeros((steps, len(self.z_neurons)), dtype=np.uint8)
        v = np.full((steps, len(self.v_neurons)), np.nan, dtype=np.float32)
        y = np.full((steps, net.n_out if self.rec.readout else 0), np.nan, dtype=np.float32)
        missing, zc, vc = 0, 0, 0
        for c in self.cores.values():
            if c.neuron_words:
                words, ok = self._records(read_sdram, c.neuron_addr, c.neuron_words, int(lib.FW_REC_MAGIC), sample_id)
                nz, nv, zw = len(c.z_neurons), len(c.v_neurons), -(-len(c.z_neurons) // 32)
                bits = np.unpackbits(words[:, head:head + zw].copy().view(np.uint8), axis=1, bitorder="little")
                spikes[ok, zc:zc + nz] = bits[ok, :nz]
                v[ok, vc:vc + nv] = words[ok, head + zw:head + zw + nv].view(np.float32)
                missing += int(np.count_nonzero(~ok))
                zc, vc = zc + nz, vc + nv
            if c.readout_words:
                words, ok = self._records(read_sdram, c.readout_addr, c.readout_words, int(lib.FW_REC_OUT_MAGIC),
                                          sample_id)
                y[ok] = words[ok, head:head + net.n_out].view(np.float32)
                missing += int(np.count_nonzero(~ok))
        return SampleRecord(spikes, v, y, missing)

    def _records(self, read_sdram: Any, addr: int, words: int, magic: int, sample_id: int
                 ) -> tuple[np.ndarray, np.ndarray]:
        steps = self.net.n_steps
        raw = np.frombuffer(read_sdram(addr, 4 * steps * words), dtype=np.uint32).reshape(steps, words)
        ok = (raw[:, 0] == magic) & (raw[:, 1] == np.uint32(sample_id & 0xFFFFFFFF)) & \
             (raw[:, 2] == np.arange(steps, dtype=np.uint32))
        return raw, ok


@dataclass
class Recordings:
    """Records of the samples a run chose (`RecordConfig`), kept until `save`."""

    rec: RecordConfig
    z_neurons: np.ndarray
    v_neurons: np.ndarray
    rows: list[dict[str, Any]] = field(default_factory=list)

    def wants(self, split: str, index: int) -> bool:
        if split == "train":
            return self.rec.train_every > 0 and index % self.rec.train_every == 0
        return self.rec.test == -1 or index < self.rec.test

    def flags(self, split: str, positions: range) -> np.ndarray | None:
        """Which samples of a batch (their places in the epoch or the split) to record; None if none."""
        marks = np.array([self.wants(split, i) for i in positions], dtype=bool)
        return marks if marks.any() else None

    def collect(self, records: list[SampleRecord], split: str, epoch: int, flags: np.ndarray, index: np.ndarray,
                labels: np.ndarray, pred: np.ndarray, x: np.ndarray) -> None:
        """Keep a batch's records (one per flagged sample, in order); index, labels, pred and x per sample."""
        for i, r in zip(np.flatnonzero(flags), records):
            self.rows.append(dict(split=split, epoch=epoch, index=int(index[i]), label=int(labels[i]),
                                  pred=int(pred[i]), input=x[i], spikes=r.spikes, v=r.v, y=r.y, missing=r.missing))

    @property
    def missing(self) -> int:
        return sum(r["missing"] for r in self.rows)

    def save(self, path: Path, labels: tuple[str, ...]) -> Path:
        """recordings.npz (docs/recording.md): one row per recorded sample, in the order recorded."""
        if not self.rows:
            raise DataError("no sample was recorded: nothing to save")
        arrays: dict[str, np.ndarray] = {
            "split": np.array([r["split"] for r in self.rows]),
            "epoch": np.array([r["epoch"] for r in self.rows], dtype=np.int32),
            "index": np.array([r["index"] for r in self.rows], dtype=np.int64),
            "label": np.array([r["label"] for r in self.rows], dtype=np.int32),
            "pred": np.array([r["pred"] for r in self.rows], dtype=np.int32),
            "missing": np.array([r["missing"] for r in self.rows], dtype=np.int32),
            "input": np.stack([r["input"] for r in self.rows]).astype(np.float32),
            "spikes": np.stack([r["spikes"] for r in self.rows]),
            "v": np.stack([r["v"] for r in self.rows]),
            "y": np.stack([r["y"] for r in self.rows]),
            "spike_neurons": self.z_neurons, "v_neurons": self.v_neurons,
            "labels": np.array(labels),
        }
        return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def load_recordings(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read recordings {path}: {e}") from None
