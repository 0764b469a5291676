"""Host layer: which engines can run together, in one table.

An engine is a target (the NumPy golden model, the in-process emulator, a board over UDP), the chip's
mode (functional, timed, realtime), its core runner (native, iss), the emulator's loop (C or Python),
the batch size, a board key, a chip file and a clock. `check_engine` refuses a combination that cannot
run, or whose option would be silently ignored, with one line that names the fix; the session checks
it when it is made (before any data is loaded or any board is opened) and the transports rely on it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from s2eprop.host.config import ExperimentConfig
from s2eprop.host.errors import ConfigError

TARGET_KINDS = ("golden", "emulator", "udp")


@dataclass(frozen=True)
class Engine:
    target: str            # golden | emulator | udp (a udp://HOST:PORT board)
    mode: str = "functional"
    cpu: str = "native"
    backend: str = "c"
    batch_size: int = 1
    key_file: bool = False
    chip_file: bool = False
    clock: bool = False
    input_mode: str = "prefetch"
    threads: bool = False  # chip.threads > 1 asked (0, the default, takes the host cores only where the C loop can)
    engine: str = "c"      # the timed chip's event loop: c, or simpy (its SimPy model)
    faults: bool = False   # chip.faults: the in-process emulator's router injects them


def target_kind(target: str) -> str:
    """golden, emulator or udp, for a target as the user names it; ConfigError for anything else."""
    if target in ("golden", "emulator"):
        return target
    if isinstance(target, str) and target.startswith("udp://"):
        return "udp"
    raise ConfigError(f"unknown target {target!r}: choose golden, emulator or udp://HOST:PORT")


# (when this holds, the combination is refused with this message); the first that holds is reported
RULES: tuple[tuple[Callable[[Engine], bool], str], ...] = (
    (lambda e: e.target == "golden" and e.mode != "functional",
     "chip mode {mode} times the emulated chip; the golden model has no chip: use target emulator (or a "
     "udp:// board served with --mode {mode})"),
    (lambda e: e.target == "golden" and e.cpu != "native",
     "cpu {cpu} runs the ARM build on the emulated chip; the golden model has no cores: use target emulator"),
    (lambda e: e.target == "golden" and e.backend != "c",
     "backend {backend} picks the emulator's event loop; the golden model has none: drop it"),
    (lambda e: e.target == "golden" and e.key_file,
     "a key file authenticates a udp:// board; the golden model needs none: drop it"),
    (lambda e: e.target == "golden" and (e.chip_file or e.clock),
     "a chip file or clock describes the emulated chip; the golden model has none: drop chip.file and clock_mhz"),
    (lambda e: e.target != "emulator" and e.threads,
     "threads split the in-process emulator's C loop over host cores; target {target} runs elsewhere: drop it"),
    (lambda e: e.target == "emulator" and e.threads and (e.backend != "c" or e.cpu != "native" or e.engine != "c"),
     "threads split the C event loops of native cores (functional, and timed with engine c); backend {backend}, "
     "cpu {cpu} and engine {engine} run on one thread: drop threads"),
    (lambda e: e.target == "golden" and e.input_mode != "prefetch",
     "train.input_mode {input_mode} streams frames to a chip; the golden model reads them directly: drop it"),
    (lambda e: e.target != "golden" and e.batch_size != 1,
     "the chip learns online (batch size 1), got batch size {batch_size}: use target golden for mini-batches"),
    (lambda e: e.target == "emulator" and e.key_file,
     "a key file authenticates a udp:// board; the in-process emulator needs none: drop it"),
    (lambda e: e.target == "udp" and (e.mode != "functional" or e.chip_file or e.clock or e.cpu != "native"),
     "the board's chip, mode, clock and cores are the server's (s2eprop serve --mode, --chip, --clock-mhz, --cpu): "
     "drop them from this session and from the config's chip section"),
    (lambda e: e.target == "udp" and e.backend != "c",
     "backend {backend} picks the in-process emulator's loop; a udp:// board runs its own: drop it"),
    (lambda e: e.target == "emulator" and e.cpu == "iss" and e.mode != "functional" and e.engine != "simpy",
     "chip.cpu iss in mode {mode} runs the ARM build on the timed chip's SimPy model (the ISS counts the cycles, "
     "packets preempt); the C event loop (engine {engine}) runs the native build only: add chip.engine simpy "
     "(--engine simpy), or use cpu native"),
    (lambda e: e.mode != "functional" and e.backend != "c",
     "chip mode {mode} runs on the C event loop only: drop backend {backend}"),
    (lambda e: e.target == "golden" and e.engine != "c",
     "chip.engine {engine} picks the timed chip's event loop; the golden model has no chip: drop it"),
    (lambda e: e.target == "emulator" and e.mode == "functional" and e.engine != "c",
     "chip.engine {engine} runs the timed chip's SimPy model; the functional chip has no time: add mode timed "
     "(or realtime)"),
    (lambda e: e.target == "udp" and e.engine != "c",
     "chip.engine {engine} picks the in-process timed chip's loop; a udp:// board runs its own (s2eprop serve "
     "--engine): drop it"),
    (lambda e: e.target != "emulator" and e.faults,
     "chip.faults are injected by the in-process emulator's router; target {target} has no such router: "
     "use target emulator (or drop chip.faults)"),
    (lambda e: e.target == "emulator" and e.mode == "functional" and e.clock,
     "a clock sets the timed chip's speed; the functional chip has no time: add mode timed (or realtime)"),
)


def check_engine(engine: Engine) -> None:
    """ConfigError naming the fix where `engine` cannot run as asked."""
    if engine.target not in TARGET_KINDS:
        raise ConfigError(f"unknown target kind {engine.target!r}: choose one of {', '.join(TARGET_KINDS)}")
    for refused, message in RULES:
        if refused(engine):
            raise ConfigError(message.format(**engine.__dict__))


def engine_of(cfg: ExperimentConfig, target: str, backend: str = "c", key_file: str | None = None) -> Engine:
    """The engine a config asks for on `target`."""
    chip = cfg.chip
    return Engine(target_kind(target), chip.mode, chip.cpu, backend, cfg.train.batch_size, bool(key_file),
                  bool(chip.file), bool(chip.clock_mhz), cfg.train.input_mode, chip.threads > 1, chip.engine,
                  bool(chip.faults))
