"""Host layer, mapping: per-core memory images packed from the firmware's own layout, and their read-back.

Offsets come from `fw_layout` in the C code (through cffi); each neuron core gets its columns of W_in
and W_rec, its rows of W_out (and of a random feedback matrix), and the matching Adam moments.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from s2eprop.firmware.abi import Firmware, Layout, abi
from s2eprop.firmware.arm_size import arena_budget
from s2eprop.host.config import ExperimentConfig
from s2eprop.host.connectivity import Masks, connectivity_masks
from s2eprop.host.errors import ConfigError
from s2eprop.emulator.chip.description import default_chip
from s2eprop.host.mapping.partition import ROLE_NEURON, CorePlan, Plan, cores_needed, plan_partition
from s2eprop.host.mapping.routing import KEY_COUNT, KEY_ERR, KEY_PARTIAL, KEY_SPIKE, key_offset
from s2eprop.host.mapping.recording import RecordingPlan
from s2eprop.firmware.sdram_map import InputRing, input_kind_code
from s2eprop.host.weights import Weights

OUTBOX_WORDS = 1024
MATRICES = ("w_in", "w_rec", "w_out")
# the [pre][local] regions of each block: stored compressed on a sparse core (fw_abi.h, network.connectivity)
BLOCK_REGIONS = {"w_in": ("w_in", "m_in", "v_in"), "w_rec": ("w_rec", "m_rec", "v_rec")}


@dataclass(frozen=True)
class CoreIndex:
    """A sparse core's index of one block (fw_abi.h): the present synapses of its columns lo .. lo + n_local of
    the mask, by presynaptic row; `present` (n_pre, n_local) bool; row (n_pre + 1) uint16, col (nnz) uint8."""

    present: np.ndarray
    row: np.ndarray
    col: np.ndarray

    @classmethod
    def of(cls, mask: np.ndarray, lo: int, n_local: int) -> "CoreIndex":
        present = np.ascontiguousarray(mask[:, lo:lo + n_local])
        row = np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.uint16)
        col = np.nonzero(present)[1].astype(np.uint8)  # row-major: rows ascending, local neurons ascending
        return cls(present, row, col)

    @property
    def nnz(self) -> int:
        return int(self.col.size)

    def pack(self, block: np.ndarray) -> np.ndarray:
        """The present entries of a (n_pre, n_local) block, [pre][local] order."""
        return block[self.present]

    def unpack(self, values: np.ndarray) -> np.ndarray:
        """The (n_pre, n_local) block of the present entries `values`, 0 at absent synapses."""
        block = np.zeros(self.present.shape, dtype=np.float32)
        block[self.present] = values
        return block


def core_indexes(masks: Masks | None, core: CorePlan) -> dict[str, CoreIndex] | None:
    """A neuron core's index per block ("w_in", "w_rec"), or None where the network is dense."""
    if masks is None or not core.role & ROLE_NEURON:
        return None
    return {key: CoreIndex.of(masks.of(key), core.neuron_lo, core.n_local) for key in ("w_in", "w_rec")}


@dataclass
class CoreImage:
    plan: CorePlan
    layout: Layout
    data: np.ndarray  # uint8, layout.arena_bytes long


def surrogate_code(name: str) -> int:
    """fw_config_t.surrogate (FW_SURR_*) of network.surrogate; piecewise_linear is the triangle."""
    lib = abi()
    return {"multi_gaussian": lib.FW_SURR_MULTI_GAUSSIAN, "triangle": lib.FW_SURR_TRIANGLE,
            "piecewise_linear": lib.FW_SURR_TRIANGLE, "exponential": lib.FW_SURR_EXPONENTIAL,
            "fast_sigmoid": lib.FW_SURR_FAST_SIGMOID, "arctan": lib.FW_SURR_ARCTAN}[name]


def core_config_fields(cfg: ExperimentConfig, plan: Plan, core: CorePlan, adam: Any | None,
                       outbox_words: int = OUTBOX_WORDS, recording: RecordingPlan | None = None,
                       masks: Masks | None = None) -> dict[str, Any]:
    """A core's fw_config_t fields; `recording`: the plan's record regions (made here from cfg.record when
    it is active and none is given: callers looping over the cores pass one made once); `masks`: the
    network's connectivity masks (likewise drawn here when the network is sparse and none is given)."""
    if recording is None and cfg.record.active:
        recording = RecordingPlan(cfg, plan)
    if masks is None:
        masks = connectivity_masks(cfg.network)
    index = core_indexes(masks, core)
    sparse = {} if index is None else dict(sparse=1, nnz_in=index["w_in"].nnz, nnz_rec=index["w_rec"].nnz)
    net, tr = cfg.network, cfg.train
    ring = InputRing.for_network(net.n_in, net.n_steps, plan.copy, cfg.input.kind)
    off = key_offset(plan)
    alpha, rho, kappa = net.decays()
    f32 = np.float32
    one_alpha, one_rho = float(f32(1) - f32(alpha)), float(f32(1) - f32(rho))
    return dict(
        core_id=core.core_id, role=core.role, n_in=net.n_in, n_rec=net.n_rec, n_out=net.n_out,
        n_steps=net.n_steps, neuron_lo=core.neuron_lo, n_local=core.n_local, src_index=core.src_index,
        n_src=len(plan.neuron_cores), key_spike=KEY_SPIKE + off, key_partial=KEY_PARTIAL + off,
        key_err=KEY_ERR + off, key_count=KEY_COUNT + off,
        sdram_ring=ring.sdram_addr, ring_slots=ring.n_slots, outbox_words=outbox_words,
        surrogate=surrogate_code(net.surrogate),
        feedback={"symmetric": abi().FW_FEEDBACK_SYMMETRIC, "random": abi().FW_FEEDBACK_RANDOM,
                  "adaptive": abi().FW_FEEDBACK_ADAPTIVE}[tr.feedback],
        alpha=alpha, one_alpha=one_alpha, rho=rho, one_rho=one_rho,
        one_alpha_x_one_rho=float(f32(one_alpha) * f32(one_rho)), kappa=kappa,
        v_th=net.v_th, beta=net.beta, mg_gamma=net.mg_gamma, mg_sigma=net.mg_sigma, mg_scale=net.mg_scale,
        mg_height=net.mg_height, surr_gamma=net.surrogate_gamma, surr_beta=net.surrogate_beta,
        n_regular=net.n_regular,
        optimizer=abi().FW_OPT_SGD if tr.optimizer == "sgd" else abi().FW_OPT_ADAM, momentum=tr.momentum,
        c_reg=tr.rate_reg.c_reg, f_target=tr.rate_reg.f_target_per_step(net.dt_ms),
        lr=float(adam.lr) if adam is not None else tr.lr, adam_b1=tr.adam_b1, adam_b2=tr.adam_b2,
        adam_eps=tr.adam_eps, l2x2=2.0 * tr.l2,
        adam_t0=int(adam.t) if adam is not None else 0,
        b1_pow0=float(adam.b1_pow) if adam is not None else tr.adam_b1,
        b2_pow0=float(adam.b2_pow) if adam is not None else tr.adam_b2,
        input_kind=input_kind_code(cfg.input.kind),
        **(recording.config_fields(core) if recording is not None else {}),
        **sparse,
    )


def _core_blocks(core: CorePlan, mats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """This core's slice of each full matrix ([pre][post] for inputs, [neuron][out] for readout)."""
    lo, hi = core.neuron_lo, core.neuron_lo + core.n_local
    return {"w_in": mats["w_in"][:, lo:hi], "w_rec": mats["w_rec"][:, lo:hi], "w_out": mats["w_out"][lo:hi, :]}


def build_images(fw: Firmware, cfg: ExperimentConfig, plan: Plan, weights: Weights, adam: Any | None = None,
                 feedback: np.ndarray | None = None, outbox_words: int = OUTBOX_WORDS,
                 recording: RecordingPlan | None = None,
                 feedback_moments: tuple[np.ndarray, np.ndarray] | None = None) -> list[CoreImage]:
    """Every core's arena image. `feedback`: B (n_rec, n_out) of train.feedback random or adaptive;
    `feedback_moments`: adaptive feedback's optimizer moments (m, v) of B, each (n_rec, n_out) (a resumed
    run; None: zeros, as the arena starts)."""
    images = []
    if recording is None and cfg.record.active:
        recording = RecordingPlan(cfg, plan)
    limit = arena_budget(cfg.partition.arena_limit_bytes)[0]
    masks = connectivity_masks(cfg.network)
    if masks is not None:
        weights.check(cfg.network, "weights for the chip")  # none at absent synapses: the chip cannot hold them
    for core in plan.cores:
        c = fw.new_config(core_config_fields(cfg, plan, core, adam, outbox_words, recording, masks))
        layout = fw.layout(c)
        if layout.arena_bytes > limit:
            raise ConfigError(
                f"core {core.core_id} needs {layout.arena_bytes:,} B of SRAM for its arena, has {limit:,} B "
                f"(the data part of its 128 KB left by code and stack): lower partition.neurons_per_core "
                f"(now {cfg.partition.neurons_per_core}) to {largest_neurons_per_core(cfg, fw)} or less, "
                f"or set it to auto")
        data = np.zeros(layout.arena_bytes, dtype=np.uint8)
        hdr = fw.ffi.new("fw_header_t *")
        hdr.magic = fw.lib.FW_MAGIC
        hdr.abi_version = fw.lib.FW_ABI_VERSION
        hdr.arena_bytes = layout.arena_bytes
        hdr.config = c[0]
        hdr.layout = layout.raw[0]
        data[:fw.header_bytes] = np.frombuffer(fw.ffi.buffer(hdr), dtype=np.uint8)
        if core.role & ROLE_NEURON:
            regions = _core_blocks(core, weights.as_dict())
            if adam is not None:
                m_blocks, v_blocks = _core_blocks(core, adam.m), _core_blocks(core, adam.v)
                for name in MATRICES:
                    suffix = name[1:]  # "_in", "_rec", "_out"
                    regions["m" + suffix] = m_blocks[name]
                    regions["v" + suffix] = v_blocks[name]
            rows = slice(core.neuron_lo, core.neuron_lo + core.n_local)
            if feedback is not None:
                regions["fb"] = feedback[rows, :]
            if feedback_moments is not None:
                if not (layout.region("m_fb") and layout.region("v_fb")):
                    raise ConfigError(f"core {core.core_id} holds no feedback moments (train.feedback is "
                                      f"{cfg.train.feedback!r}): give feedback moments only with train.feedback "
                                      f"adaptive")
                regions["m_fb"], regions["v_fb"] = feedback_moments[0][rows, :], feedback_moments[1][rows, :]
            index = core_indexes(masks, core)
            if index is not None:  # network.connectivity: the present synapses only, and the index
                for key, names in BLOCK_REGIONS.items():
                    for name in names:
                        if name in regions:
                            regions[name] = index[key].pack(np.asarray(regions[name]))
                suffix = {"w_in": "_in", "w_rec": "_rec"}
                for key, idx in index.items():
                    for part, arr in (("row", idx.row), ("col", idx.col)):
                        raw8 = arr.view(np.uint8)
                        off = layout.region(part + suffix[key])
                        data[off:off + raw8.size] = raw8
            for name, arr in regions.items():
                raw = np.ascontiguousarray(arr, dtype=np.float32).view(np.uint8).ravel()
                off = layout.region(name)
                data[off:off + raw.size] = raw
        images.append(CoreImage(plan=core, layout=layout, data=data))
    return images


def gather_matrices(images: list[CoreImage], read: Any, prefix: str, shapes: dict[str, tuple[int, int]],
                    masks: Masks | None = None) -> dict[str, np.ndarray]:
    """Reassemble full matrices from the cores: prefix "w" (weights), "m" or "v" (Adam moments).
    `read(core_id, offset, n_bytes) -> bytes` reads a core's memory. `masks` (network.connectivity): the
    sparse cores' present synapses, unpacked into the dense matrices with 0 at the absent ones."""
    full = {name: np.zeros(shape, dtype=np.float32) for name, shape in shapes.items()}
    for img in images:
        core = img.plan
        if not core.role & ROLE_NEURON:
            continue
        lo, nl = core.neuron_lo, core.n_local
        index = core_indexes(masks, core)
        for name, (rows, cols) in shapes.items():
            region = prefix + name[1:]
            block_shape = (rows, nl) if name != "w_out" else (nl, cols)
            if index is not None and name in index:
                idx = index[name]
                raw = read(core.core_id, img.layout.region(region), 4 * idx.nnz) if idx.nnz else b""
                block = idx.unpack(np.frombuffer(raw, dtype=np.float32))
            else:
                n = block_shape[0] * block_shape[1]
                block = np.frombuffer(read(core.core_id, img.layout.region(region), 4 * n), dtype=np.float32)
                block = block.reshape(block_shape)
            if name == "w_out":
                full[name][lo:lo + nl, :] = block
            else:
                full[name][:, lo:lo + nl] = block
    return full


def gather_feedback(images: list[CoreImage], read: Any, n_rec: int, n_out: int, region: str = "fb") -> np.ndarray:
    """The feedback matrix B (n_rec, n_out) from the neuron cores' fb regions ([local][n_out] each); region
    "m_fb" or "v_fb": adaptive feedback's optimizer moments of B, laid out the same way."""
    full = np.zeros((n_rec, n_out), dtype=np.float32)
    for img in images:
        core = img.plan
        if core.role & ROLE_NEURON:
            raw = read(core.core_id, img.layout.region(region), 4 * core.n_local * n_out)
            full[core.neuron_lo:core.neuron_lo + core.n_local] = np.frombuffer(raw, np.float32).reshape(-1, n_out)
    return full


def training_state_bytes(layouts: Iterable[Layout]) -> int:
    """Weights, optimizer state, traces, neuron and readout state over all cores (buffers, config excluded)."""
    keys = ("weights_bytes", "optimizer_bytes", "trace_bytes", "neuron_bytes", "readout_bytes", "index_bytes")
    return sum(layout.accounting[k] for layout in layouts for k in keys)


def core_layouts(cfg: ExperimentConfig, plan: Plan, fw: Firmware) -> list[Layout]:
    """The firmware's layout (fw_layout) of each core of `plan`, as the image builder lays them out."""
    rec = RecordingPlan(cfg, plan) if cfg.record.active else None
    masks = connectivity_masks(cfg.network)
    return [fw.layout(fw.new_config(core_config_fields(cfg, plan, core, None, recording=rec, masks=masks)))
            for core in plan.cores]


def largest_neurons_per_core(cfg: ExperimentConfig, firmware: Firmware | None = None) -> int:
    """The most neurons per neuron core (`partition.neurons_per_core: auto`) for which every core's arena,
    training state included, fits the arena budget of the host's SRAM check (arm_size.arena_budget: the
    ARM build's arena room, else partition.arena_limit_bytes); ConfigError where not even 1 fits."""
    fw = firmware or Firmware()
    net = cfg.network
    limit, limit_from = arena_budget(cfg.partition.arena_limit_bytes)
    masks = connectivity_masks(net)  # the network's: the same for every partition tried
    need = 0
    for npc in range(min(net.n_rec, int(fw.lib.FW_MAX_LOCAL)), 0, -1):
        trial = dataclasses.replace(cfg, partition=dataclasses.replace(cfg.partition, neurons_per_core=npc))
        if cores_needed(net, trial.partition) > default_chip().n_cores:
            raise ConfigError(
                f"partition.neurons_per_core auto: {npc + 1} neurons per core need {need:,} B of arena on a core, "
                f"more than its {limit:,} B ({limit_from}), and {npc} would need more than a chip's "
                f"{default_chip().n_cores} cores for {net.n_rec} neurons: fewer network.n_in, n_rec or n_out")
        plan = plan_partition(net, trial.partition)
        rec = RecordingPlan(trial, plan) if trial.record.active else None
        need = 0
        for core in plan.cores:  # core 0 first, the largest with a shared readout: most candidates stop there
            need = fw.layout(fw.new_config(core_config_fields(trial, plan, core, None, recording=rec,
                                                              masks=masks))).arena_bytes
            if need > limit:
                break
        else:
            return npc
    raise ConfigError(f"partition.neurons_per_core auto: even 1 neuron per core needs {need:,} B of arena on a core, "
                      f"more than its {limit:,} B ({limit_from}): fewer network.n_in, n_rec or n_out"
                      + ("; `make arm` measures the real arena room" if limit_from == "default" else ""))
