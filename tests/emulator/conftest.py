"""Shared fixtures of the emulator tests: the paper's configuration, seeded samples, the authors' C
fixture, and helpers that compare weights relative to max|w| per matrix."""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import pytest

from s2eprop.host.config import ExperimentConfig
from s2eprop.host.weights import Weights, init_weights

MATRICES = ("w_in", "w_rec", "w_out")


@pytest.fixture(scope="session")
def cfg() -> ExperimentConfig:
    """The paper's network: 80 inputs, 120 ALIF neurons, 12 outputs, 12 cores of 10 neurons, batch 1."""
    return ExperimentConfig().validate()


def make_samples(n: int, seed: int, n_steps: int = 100, n_in: int = 80, n_out: int = 12):
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((n, n_steps, n_in))).astype(np.float32)
    y = rng.integers(0, n_out, n).astype(np.int64)
    return x, y


@pytest.fixture(scope="session")
def samples20() -> tuple[np.ndarray, np.ndarray]:
    """20 samples, inputs 3 * N(0, 1) (so that the network spikes), random labels; seeded."""
    return make_samples(20, seed=1234)


@pytest.fixture(scope="session")
def init_w(cfg: ExperimentConfig) -> Weights:
    return init_weights(cfg.network, seed=7)


def rel_errors(a: Weights, b: Weights) -> dict[str, float]:
    """max|a - b| / max|b| for each matrix."""
    return {k: float(np.max(np.abs(getattr(a, k) - getattr(b, k))) / float(np.max(np.abs(getattr(b, k)))))
            for k in MATRICES}


def assert_weights_close(a: Weights, b: Weights, tol: float, what: str) -> None:
    errs = rel_errors(a, b)
    bad = {k: e for k, e in errs.items() if not e <= tol}
    assert not bad, f"{what}: weights differ by more than {tol:g} of max|w|: " + ", ".join(
        f"{k} {e:.3g}" for k, e in bad.items())


def assert_weights_identical(a: Weights, b: Weights, what: str) -> None:
    for k in MATRICES:
        wa, wb = getattr(a, k), getattr(b, k)
        assert wa.dtype == np.float32 and wb.dtype == np.float32, f"{what}: {k} is not float32"
        same = wa.view(np.uint32) == wb.view(np.uint32)
        assert same.all(), (f"{what}: {k} differs in {int((~same).sum())} of {same.size} words "
                            f"(max abs diff {float(np.max(np.abs(wa - wb))):.3g})")


@pytest.fixture(scope="session")
def weights_close() -> Callable[[Weights, Weights, float, str], None]:
    return assert_weights_close


@pytest.fixture(scope="session")
def weights_identical() -> Callable[[Weights, Weights, str], None]:
    return assert_weights_identical


@pytest.fixture(scope="session")
def rel_err() -> Callable[[Weights, Weights], dict[str, float]]:
    return rel_errors


@pytest.fixture(scope="session")
def with_options() -> Callable[..., ExperimentConfig]:
    """cfg -> copy with some fields of its sections replaced: with_options(cfg, train={...}, ...)."""
    def make(cfg: ExperimentConfig, **sections: dict) -> ExperimentConfig:
        parts = {name: dataclasses.replace(getattr(cfg, name), **vals) for name, vals in sections.items()}
        return dataclasses.replace(cfg, **parts).validate()
    return make


@pytest.fixture(scope="session")
def sample_maker() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """make(n, seed) -> (x, y): inputs 3 * N(0, 1), random labels."""
    return make_samples


@pytest.fixture(scope="session")
def arm_elf():
    """The ARM build of the current sources (build/arm's when up to date, else built into the cache);
    skips without arm-none-eabi-gcc or the ISS packages (CI has both: `make test` runs `make arm`)."""
    from s2eprop.firmware import arm_build

    for module in ("unicorn", "capstone", "elftools"):
        pytest.importorskip(module, reason=f"the ISS runner needs {module} (pip install -e .)")
    if not arm_build.compiler_available():
        pytest.skip("arm-none-eabi-gcc not installed (make arm installs it as root)")
    return arm_build.current_elf()


@pytest.fixture(scope="session")
def subnormal_case(cfg, with_options):
    """A 3-core network (16 inputs, 24 ALIF neurons, 4 outputs, 30 steps) that, computed without the
    firmware's flush of tiny values (docs/chip.md section 9), makes subnormal floats on purpose: a
    constant input -1 drives neuron j to u about -s_j, s_j from -10 (spiking) to 60 (far below threshold,
    where the multi-Gaussian psi passes through 2^-64 ... 2^-149 and 0), and some weights start
    subnormal or tiny (1e-39, 3e-39, 1e-37, -2e-39). Returns (cfg, weights, x, y)."""
    small = with_options(cfg, network={"n_in": 16, "n_rec": 24, "n_out": 4, "n_steps": 30},
                         partition={"neurons_per_core": 8})
    w = init_weights(small.network, seed=3)
    drive = np.linspace(-10.0, 60.0, 24, dtype=np.float32)
    w.w_in[:] = (drive / 16.0)[None, :]
    w.w_rec *= np.float32(0.1)
    w.w_rec[23, 19:23] = np.array([1e-39, 3e-39, 1e-37, -2e-39], np.float32)
    w.w_out[23, :] = np.array([1e-39, -1e-39, 1e-37, 5e-38], np.float32)
    rng = np.random.default_rng(21)
    x = -np.ones((4, 30, 16), np.float32)
    x[:, :, :4] += rng.standard_normal((4, 30, 4)).astype(np.float32)  # some variety in time
    y = np.array([0, 1, 2, 3], np.int64)
    return small, w, x, y
