"""Host layer: the experiment configuration (network, training, partition, dataset) and its YAML form.

Every section is a frozen dataclass with the reference values of the authors' C code as defaults
(reference notes, section 2 and 10). `load_config` validates a YAML file and names the offending key.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from s2eprop.emulator.chip.description import default_chip
from s2eprop.firmware.sdram_map import INPUT_KINDS, INPUT_RING_SAMPLES
from s2eprop.host.errors import ConfigError
from s2eprop.host.fault_config import FaultConfig, parse_faults

# piecewise_linear is NEST's name of the triangle; the last four are NEST's surrogate_gradient_function
SURROGATES = ("multi_gaussian", "triangle", "piecewise_linear", "exponential", "fast_sigmoid", "arctan")
FEEDBACKS = ("symmetric", "random", "adaptive")  # adaptive: B starts random, learns as W_out does
OPTIMIZERS = ("adam", "sgd")
READOUT_PLACEMENTS = ("shared", "extra")
DATASET_KINDS = ("synth", "gsc", "npz", "shd")
ON_LOSS = ("stop", "count")
INPUT_MODES = ("prefetch", "realtime")
CHIP_MODES = ("functional", "timed", "realtime")
TIMED_ENGINES = ("c", "simpy")  # the timed chip's event loop (emulator/chip/timed.py ENGINES)
CPUS = ("native", "iss")
ENCODERS = ("delta", "poisson", "none")  # none: the dataset already holds spikes (0/1)
MAX_ARENA_BYTES = 16 << 20  # what-if chips with more SRAM per core; the chip's own SRAM is checked at load


@dataclass(frozen=True)
class ConnectivityConfig:
    """Sparse connectivity (issue 27; NEST's N-MNIST e-prop example keeps 0.25 / 0.01 of the synapses): each
    input synapse i -> j is present with probability p_in, each recurrent one with p_rec, drawn once from
    `seed` (host/connectivity.py). Absent synapses have weight 0, no gradient, and no state on the chip.
    1.0, 1.0: all-to-all (the default, today's bits and dense loops)."""

    p_in: float = 1.0
    p_rec: float = 1.0
    seed: int = 0

    @property
    def sparse(self) -> bool:
        return self.p_in < 1.0 or self.p_rec < 1.0


@dataclass(frozen=True)
class NetworkConfig:
    """Sizes and neuron/surrogate parameters of the ALIF SRNN."""

    n_in: int = 80
    n_rec: int = 120
    n_out: int = 12
    n_steps: int = 100
    dt_ms: float = 1.0
    tau_m_ms: float = 5.0
    tau_a_ms: float = 150.0
    tau_out_ms: float = 10.0
    v_th: float = 1.6
    beta: float = 0.184
    # LIF neurons (no adaptation: beta 0, eps_a 0) among the hidden ones, as Bellec et al.'s n_regular: the
    # first n_regular (global ids 0 .. n_regular-1); the other n_rec - n_regular are ALIF
    n_regular: int = 0
    surrogate: str = "multi_gaussian"
    # multi-Gaussian surrogate (Yin et al. 2021): gamma * [(1+h) N(u;0,s) - h N(u;s,k s) - h N(u;-s,k s)]
    mg_gamma: float = 0.5
    mg_sigma: float = 0.5
    mg_scale: float = 6.0
    mg_height: float = 0.15
    # NEST's surrogates (eprop_iaf_adapt `beta`, `gamma`; NEST's adaptation beta is our `beta`), of u = v - A:
    #   triangle = piecewise_linear: gamma / v_th * max(0, 1 - beta |u / v_th|)  (Bellec's: beta 1, gamma 0.3)
    #   exponential: gamma exp(-beta |u|);  fast_sigmoid: gamma (1 + beta |u|)^-2;
    #   arctan: gamma / pi / (1 + (beta pi u)^2)   (docs/options.md)
    surrogate_beta: float = 1.0
    surrogate_gamma: float = 0.3
    # sparse connectivity: the mask of present input and recurrent synapses (docs/options.md)
    connectivity: ConnectivityConfig = field(default_factory=ConnectivityConfig)

    def decays(self) -> tuple[float, float, float]:
        """(alpha, rho, kappa) as float32 values, computed in double like the authors' code."""
        import numpy as np

        def decay(tau_ms: float) -> float:
            return float(np.float32(math.exp(float(np.float32(-self.dt_ms) / np.float32(tau_ms)))))

        return decay(self.tau_m_ms), decay(self.tau_a_ms), decay(self.tau_out_ms)

    @property
    def n_weights(self) -> int:
        return self.n_in * self.n_rec + self.n_rec * self.n_rec + self.n_rec * self.n_out


@dataclass(frozen=True)
class RateRegConfig:
    """Firing-rate regularisation (Bellec et al. 2020; NEST's c_reg, f_target): E_reg = c_reg / 2 sum_j
    (f_j - f_target)^2 with f_j the neuron's spikes per step over the sample (n_j / T) and f_target =
    target_hz dt; its gradient c_reg (f_j - f_target) / T sum_t e_ji^t is added to the learning signal's
    (docs/options.md). c_reg 0: off."""

    c_reg: float = 0.0
    target_hz: float = 10.0

    @property
    def active(self) -> bool:
        return self.c_reg != 0.0

    def f_target_per_step(self, dt_ms: float) -> float:
        return self.target_hz * dt_ms / 1000.0


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and schedule (authors' C defaults: batch 1, Adam, lr x0.3 every 2 epochs)."""

    epochs: int = 1
    batch_size: int = 1
    lr: float = 0.01
    lr_decay: float = 0.3
    lr_decay_every_epochs: int = 2
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-5
    l2: float = 1e-5
    # weight optimizer: adam (the authors', bias-corrected lr, adam_* below) or sgd (m = momentum m + g,
    # W -= lr m; NEST's gradient_descent with momentum 0); both take lr and its schedule, and g includes 2 l2 W
    optimizer: str = "adam"
    momentum: float = 0.0
    rate_reg: RateRegConfig = field(default_factory=RateRegConfig)
    feedback: str = "symmetric"
    seed: int = 0
    max_samples: int | None = None
    checkpoint_every_samples: int = 1000  # also at every epoch end and on Ctrl-C / SIGTERM; 0: only those
    shuffle: bool = False  # a new order of the training samples every epoch, seeded by (seed, epoch)
    # SpecAugment-style masks on every training sample (s2eprop.host.data.feature_masks); 0 = none
    freq_masks: int = 0
    freq_mask_max_bands: int = 0
    time_masks: int = 0
    time_mask_max_steps: int = 0
    # on-chip training (--target emulator): what a loss the chip counts does (stop: end the run with
    # an error naming the core, counter and sample; count: go on and report every counter), and how
    # input frames reach the chip's SDRAM (prefetch: a whole sample ahead; realtime: a few ticks ahead)
    on_loss: str = "stop"
    input_mode: str = "prefetch"
    input_lookahead_ticks: int = 4


@dataclass(frozen=True)
class PartitionConfig:
    """How the network is split over cores: neurons per neuron core and where the readout lives.

    `neurons_per_core: auto` in the YAML takes the most neurons per core whose arenas fit a core's arena
    budget (host/mapping/memory.py: largest_neurons_per_core), resolved when the config is read; the default stays
    the paper's 10 (12 cores for 120 neurons), which a network too large for it must change."""

    neurons_per_core: int = 10
    readout: str = "shared"  # "shared": core 0 also reduces the readout; "extra": one more core does
    arena_limit_bytes: int = 96 * 1024


@dataclass(frozen=True)
class ChipConfig:
    """The emulated chip (--target emulator): functional (no time, fastest), timed (virtual time with the
    chip file's cycle costs and latencies, real-time compliance recorded) or realtime (timed, paced to the
    wall clock). Timed modes count losses and go on (train.on_loss is taken as count)."""

    mode: str = "functional"
    file: str = ""          # chip description YAML; "" = emulator/chip/configs/spinnaker2.yaml
    clock_mhz: float = 0.0  # one of the chip file's clock levels; 0 = the file's clock_hz
    cpu: str = "native"     # core runner: native (the firmware built for this machine) or iss (the ARM
                            # build in the instruction-set simulator: same bits, ~1,000x slower; functional)
    threads: int = 0        # host threads of the functional C loop (same bits for any number); 0 = the
                            # host cores this process may use (each run takes them only where they pay:
                            # docs/chip.md section 7)

    def n_threads(self) -> int:
        """`threads`, or for 0 the host cores this process may use."""
        if self.threads:
            return self.threads
        import os

        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    engine: str = "c"       # timed modes: the C event loop (fast) or "simpy", the SimPy model it is proven
                            # equal to (same bits and records, ~50x slower; docs/timing.md)
    faults: tuple[FaultConfig, ...] = ()  # packets the router drops, duplicates or delays (host/fault_config.py)


@dataclass(frozen=True)
class InputConfig:
    """What the chip's input layer receives each step: the analog features (default) or spikes (0/1 per
    input and step), encoded from the features on the host (host/data/encoders.py): `delta` (level
    crossing of each log-mel band by `threshold`, an on and an off channel per band) or `poisson`
    (each feature column a Poisson source of up to `max_rate_hz` at `clip` and above); `none` when
    the dataset is spikes already. Both targets get the same spikes."""

    kind: str = "analog"
    encoder: str = "delta"
    threshold: float = 0.5      # delta: feature units (the columns have unit std over a clip)
    max_rate_hz: float = 250.0  # poisson: the rate of a feature at `clip` or above
    clip: float = 1.0           # poisson: the feature value of the maximal rate (columns have unit std)
    seed: int = 0               # poisson: spikes drawn from (seed, split)


@dataclass(frozen=True)
class RecordConfig:
    """What the chip records, per step, of chosen samples (host/mapping/recording.py): the spikes and the membrane
    voltage v of the hidden neurons named (global ids, or "all"), and the readout's output y_t; for
    every `train_every`-th training sample of each epoch (index in the epoch % train_every == 0) and the
    first `test` samples of the test split at the last evaluation (-1: all of them)."""

    spikes: tuple[int, ...] = ()
    v: tuple[int, ...] = ()
    readout: bool = True
    train_every: int = 0
    test: int = 0

    @property
    def active(self) -> bool:
        return bool(self.spikes or self.v or self.readout) and bool(self.train_every or self.test)


@dataclass(frozen=True)
class DatasetConfig:
    """Which data to train on: the built-in synthetic keywords, a GSC folder or a features .npz."""

    kind: str = "synth"
    path: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExperimentConfig:
    network: NetworkConfig = field(default_factory=NetworkConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    chip: ChipConfig = field(default_factory=ChipConfig)
    input: InputConfig = field(default_factory=InputConfig)
    record: RecordConfig = field(default_factory=RecordConfig)

    def validate(self) -> "ExperimentConfig":
        n, t, p, d = self.network, self.train, self.partition, self.dataset
        for name in ("n_in", "n_rec", "n_out", "n_steps"):
            if getattr(n, name) < 1:
                raise ConfigError(f"network.{name} must be >= 1, got {getattr(n, name)}")
        # limits of the firmware (fw_abi.h FW_MAX_*): checked here so that the error names the key
        from s2eprop.firmware.abi import abi

        lib = abi()
        for name, most in (("n_in", lib.FW_MAX_IN), ("n_rec", lib.FW_MAX_REC), ("n_out", lib.FW_MAX_OUT),
                           ("n_steps", lib.FW_MAX_SLOTS // INPUT_RING_SAMPLES)):
            if getattr(n, name) > most:
                raise ConfigError(f"network.{name} is {getattr(n, name)}, the firmware supports at most {most}")
        if not 0 <= n.n_regular <= n.n_rec:
            raise ConfigError(f"network.n_regular (LIF neurons among the hidden ones) must be in 0..{n.n_rec} "
                              f"(network.n_rec), got {n.n_regular}")
        if not isinstance(n.connectivity, ConnectivityConfig):
            raise ConfigError(f"network.connectivity must be a mapping {{p_in, p_rec, seed}}, got {n.connectivity!r}")
        for name in ("p_in", "p_rec"):
            if not 0 < getattr(n.connectivity, name) <= 1:
                raise ConfigError(f"network.connectivity.{name} (the fraction of synapses present) must be in (0, 1], "
                                  f"got {getattr(n.connectivity, name)}")
        if n.connectivity.seed < 0:
            raise ConfigError(f"network.connectivity.seed must be >= 0, got {n.connectivity.seed}")
        if p.neurons_per_core > lib.FW_MAX_LOCAL:
            raise ConfigError(f"partition.neurons_per_core is {p.neurons_per_core}, the firmware supports at most "
                              f"{lib.FW_MAX_LOCAL}")
        most = MAX_ARENA_BYTES if self.chip.file else default_chip().sram_bytes_per_core
        if not 0 < p.arena_limit_bytes <= most:
            raise ConfigError(f"partition.arena_limit_bytes must be in 1..{most:,}, got {p.arena_limit_bytes:,}"
                              + ("" if self.chip.file else " (a core's SRAM; a what-if chip with more SRAM per core "
                                                           "needs chip.file naming its chip file)"))
        for name in ("mg_sigma", "mg_scale", "mg_gamma", "surrogate_beta", "surrogate_gamma"):
            if not getattr(n, name) > 0:
                raise ConfigError(f"network.{name} must be > 0, got {getattr(n, name)}")
        for name in ("beta", "mg_height"):  # 0 turns adaptation / the side Gaussians off
            if not getattr(n, name) >= 0:
                raise ConfigError(f"network.{name} must be >= 0, got {getattr(n, name)}")
        for name in ("adam_b1", "adam_b2"):
            if not 0 <= getattr(t, name) < 1:
                raise ConfigError(f"train.{name} must be in [0, 1), got {getattr(t, name)}")
        if not t.adam_eps > 0:
            raise ConfigError(f"train.adam_eps must be > 0, got {t.adam_eps}")
        if not 0 < t.lr_decay <= 1:
            raise ConfigError(f"train.lr_decay must be in (0, 1], got {t.lr_decay}")
        if t.lr_decay_every_epochs < 1:
            raise ConfigError(f"train.lr_decay_every_epochs must be >= 1, got {t.lr_decay_every_epochs}")
        if t.l2 < 0:
            raise ConfigError(f"train.l2 must be >= 0, got {t.l2}")
        if t.seed < 0:
            raise ConfigError(f"train.seed must be >= 0, got {t.seed}")
        if not isinstance(t.shuffle, bool):
            raise ConfigError(f"train.shuffle must be true or false, got {t.shuffle!r}")
        for name in ("freq_masks", "freq_mask_max_bands", "time_masks", "time_mask_max_steps"):
            if getattr(t, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(t, name)}")
        if t.freq_mask_max_bands > n.n_in // 2:
            raise ConfigError(f"train.freq_mask_max_bands is {t.freq_mask_max_bands}, more than the "
                              f"{n.n_in // 2} mel bands of {n.n_in} inputs (bands + deltas)")
        if t.time_mask_max_steps > n.n_steps:
            raise ConfigError(f"train.time_mask_max_steps is {t.time_mask_max_steps}, more than the "
                              f"{n.n_steps} steps of a sample")
        if t.checkpoint_every_samples < 0:
            raise ConfigError(f"train.checkpoint_every_samples must be >= 0, got {t.checkpoint_every_samples}")
        for name in ("dt_ms", "tau_m_ms", "tau_a_ms", "tau_out_ms", "v_th"):
            if not getattr(n, name) > 0:
                raise ConfigError(f"network.{name} must be > 0, got {getattr(n, name)}")
        _choice("network.surrogate", n.surrogate, SURROGATES)
        _choice("train.feedback", t.feedback, FEEDBACKS)
        _choice("train.optimizer", t.optimizer, OPTIMIZERS)
        if not isinstance(t.rate_reg, RateRegConfig):
            raise ConfigError(f"train.rate_reg must be a mapping {{c_reg, target_hz}}, got {t.rate_reg!r}")
        if not t.rate_reg.c_reg >= 0:
            raise ConfigError(f"train.rate_reg.c_reg must be >= 0 (0: off), got {t.rate_reg.c_reg}")
        if not 0 <= t.rate_reg.target_hz <= 1000.0 / n.dt_ms:
            raise ConfigError(f"train.rate_reg.target_hz must be in 0..{1000.0 / n.dt_ms:g} (one spike per step of "
                              f"{n.dt_ms} ms), got {t.rate_reg.target_hz}")
        if not 0 <= t.momentum < 1:
            raise ConfigError(f"train.momentum (sgd) must be in [0, 1), got {t.momentum}")
        if t.momentum and t.optimizer != "sgd":
            raise ConfigError(f"train.momentum is {t.momentum} but train.optimizer is {t.optimizer!r}: momentum is "
                              f"sgd's (Adam's is adam_b1); set train.optimizer: sgd or drop train.momentum")
        _choice("train.on_loss", t.on_loss, ON_LOSS)
        _choice("train.input_mode", t.input_mode, INPUT_MODES)
        if t.input_lookahead_ticks < 1:
            raise ConfigError(f"train.input_lookahead_ticks must be >= 1, got {t.input_lookahead_ticks}")
        _choice("partition.readout", p.readout, READOUT_PLACEMENTS)
        _choice("chip.mode", self.chip.mode, CHIP_MODES)
        _choice("chip.cpu", self.chip.cpu, CPUS)
        if not 0 <= self.chip.threads <= 64:
            raise ConfigError(f"chip.threads must be in 0..64 (0: the host cores this process may use), "
                              f"got {self.chip.threads}")
        _choice("chip.engine", self.chip.engine, TIMED_ENGINES)
        for i, fault in enumerate(self.chip.faults):
            fault.check(f"chip.faults[{i}]")
        if self.chip.clock_mhz < 0:
            raise ConfigError(f"chip.clock_mhz must be > 0 (or 0 for the chip file's clock), got {self.chip.clock_mhz}")
        _choice("dataset.kind", d.kind, DATASET_KINDS)
        _choice("input.kind", self.input.kind, INPUT_KINDS)
        _choice("input.encoder", self.input.encoder, ENCODERS)
        for name in ("threshold", "max_rate_hz", "clip"):
            if not getattr(self.input, name) > 0:
                raise ConfigError(f"input.{name} must be > 0, got {getattr(self.input, name)}")
        if self.input.max_rate_hz * n.dt_ms / 1000.0 > 1.0:
            raise ConfigError(f"input.max_rate_hz is {self.input.max_rate_hz}: at most one spike per step of "
                              f"{n.dt_ms} ms, so at most {1000.0 / n.dt_ms:g} Hz")
        if self.input.seed < 0:
            raise ConfigError(f"input.seed must be >= 0, got {self.input.seed}")
        if t.epochs < 1 or t.batch_size < 1:
            raise ConfigError(f"train.epochs and train.batch_size must be >= 1, got {t.epochs}, {t.batch_size}")
        if t.max_samples is not None and t.max_samples < 1:
            raise ConfigError(f"train.max_samples must be >= 1 or null, got {t.max_samples}")
        if not t.lr > 0:
            raise ConfigError(f"train.lr must be > 0, got {t.lr}")
        if p.neurons_per_core < 1:
            raise ConfigError(f"partition.neurons_per_core must be >= 1, got {p.neurons_per_core}")
        r = self.record
        if r.train_every < 0 or r.test < -1:
            raise ConfigError(f"record.train_every must be >= 0 and record.test >= -1 (-1: the whole test split), "
                              f"got {r.train_every} and {r.test}")
        if (r.spikes or r.v) and not (r.train_every or r.test):
            raise ConfigError("record names neurons but no samples: set record.train_every (every Nth training "
                              "sample) or record.test (the first N test samples, -1 all)")
        if d.kind in ("gsc", "npz", "shd") and not d.path:
            raise ConfigError(f"dataset.kind {d.kind!r} needs dataset.path")
        return self


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} is {value!r}; choose one of {', '.join(allowed)}")


def _section(cls: type, key: str, raw: Any) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"section {key!r} must be a mapping, got {type(raw).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) in {key!r}: {', '.join(unknown)}; known: {', '.join(known)}")
    values: dict[str, Any] = {}
    defaults = cls()
    for name, value in raw.items():
        default = getattr(defaults, name)
        values[name] = _coerce(f"{key}.{name}", value, default)
    return cls(**values)


def _coerce(key: str, value: Any, default: Any) -> Any:
    if dataclasses.is_dataclass(default):  # a nested section (train.rate_reg)
        return value if isinstance(value, type(default)) else _section(type(default), key, value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if default is None and value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{key} must be an integer or null, got {value!r}")  # the optional fields are ints
    return value


def parse_config(raw: Mapping[str, Any] | None) -> tuple[ExperimentConfig, bool]:
    """The validated config of a mapping (a YAML file's content), and whether partition.neurons_per_core
    is `auto` (then it holds its default until the mapping layer resolves it: s2eprop.host.mapping.resolve)."""
    raw = dict(raw or {})
    sections = {"network": NetworkConfig, "train": TrainConfig, "partition": PartitionConfig, "chip": ChipConfig,
                "input": InputConfig}
    unknown = sorted(set(raw) - set(sections) - {"dataset", "record"})
    if unknown:
        raise ConfigError(f"unknown top-level key(s): {', '.join(unknown)}; known: network, train, partition, "
                          f"dataset, chip, input, record")
    auto = _pop_auto(raw)
    faults = ()
    if isinstance(raw.get("chip"), Mapping) and "faults" in raw["chip"]:
        faults = parse_faults(raw["chip"]["faults"])
        raw["chip"] = {k: v for k, v in raw["chip"].items() if k != "faults"}
    parts = {name: _section(cls, name, raw.get(name)) for name, cls in sections.items()}
    parts["chip"] = dataclasses.replace(parts["chip"], faults=faults)
    parts["dataset"] = _dataset_section(raw.get("dataset"))
    parts["record"] = _record_section(raw.get("record"), parts["network"])
    return ExperimentConfig(**parts).validate(), auto


def _pop_auto(raw: dict[str, Any]) -> bool:
    """Whether partition.neurons_per_core is `auto` (then taken out of `raw`, to be resolved once the rest
    of the config is valid)."""
    part = raw.get("partition")
    if not isinstance(part, Mapping) or not isinstance(part.get("neurons_per_core"), str):
        return False
    if part["neurons_per_core"] != "auto":
        raise ConfigError(f"partition.neurons_per_core must be an integer or auto, got {part['neurons_per_core']!r}")
    raw["partition"] = {k: v for k, v in part.items() if k != "neurons_per_core"}
    return True


def _record_section(raw: Any, net: NetworkConfig) -> RecordConfig:
    """record: spikes and v are "all", "none" or a list of hidden-neuron ids (kept sorted, once each)."""
    if raw is None:
        return RecordConfig()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"section 'record' must be a mapping, got {type(raw).__name__}")
    raw = dict(raw)
    neurons = {}
    for name in ("spikes", "v"):
        value = raw.pop(name, ())
        if value == "all":
            neurons[name] = tuple(range(net.n_rec))
        elif value in ("none", None):
            neurons[name] = ()
        elif isinstance(value, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in value):
            bad = [i for i in value if not 0 <= i < net.n_rec]
            if bad:
                raise ConfigError(f"record.{name} names neuron(s) {bad[:5]}: the hidden neurons are 0..{net.n_rec - 1}")
            neurons[name] = tuple(sorted(set(value)))
        else:
            raise ConfigError(f"record.{name} must be \"all\", \"none\" or a list of neuron ids, got {value!r}")
    rest = _section(RecordConfig, "record", {k: v for k, v in raw.items()})  # the other keys, checked
    return dataclasses.replace(rest, **neurons)


def _dataset_section(raw: Any) -> DatasetConfig:
    if raw is None:
        return DatasetConfig()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"section 'dataset' must be a mapping, got {type(raw).__name__}")
    raw = dict(raw)
    if "kind" not in raw:
        raise ConfigError("dataset needs a 'kind' (synth, gsc, npz or shd)")
    kind = raw.pop("kind")
    path = raw.pop("path", None)
    return DatasetConfig(kind=str(kind), path=None if path is None else str(path), options=raw)


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_config_file(path: str | Path) -> Mapping[str, Any] | None:
    """The content of an experiment YAML (a mapping, or None for an empty file), with clear errors."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder: give a YAML file (e.g. experiments/configs/paper.yaml)")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                          f"{exc.start}): save it as UTF-8") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"config file {path} is not valid YAML{where}: {what}") from None
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return raw


def with_overrides(cfg: ExperimentConfig, chip: Mapping[str, Any] | None = None,
                   **train_overrides: Any) -> ExperimentConfig:
    """Apply command-line overrides (None means 'not given') to the train and chip sections."""
    given = {k: v for k, v in train_overrides.items() if v is not None}
    chip_given = {k: v for k, v in (chip or {}).items() if v is not None}
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **given),
                               chip=dataclasses.replace(cfg.chip, **chip_given)).validate()
