"""The firmware's own exp and log (no libm on the core, fw_math.h): accuracy in ulps against the
correctly rounded float32 of the double result. Ulps are the distance of the float bit patterns."""
from __future__ import annotations

import numpy as np
import pytest

from s2eprop.firmware.abi import Firmware


@pytest.fixture(scope="module")
def lib():
    return Firmware().lib


def _ordered(bits: np.ndarray) -> np.ndarray:
    """float32 bit patterns -> integers in the order of the floats (so that -0 and +0 are 0 apart)."""
    b = bits.astype(np.int64)
    return np.where(b < 0, -(b & 0x7FFFFFFF), b)


def ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    g = np.asarray(got, np.float32).view(np.int32)
    w = np.asarray(want, np.float32).view(np.int32)
    return np.abs(_ordered(g) - _ordered(w))


def _call(fn, xs: np.ndarray) -> np.ndarray:
    return np.fromiter((fn(v) for v in xs.tolist()), dtype=np.float32, count=len(xs))


def _assert_within_ulps(fn, name: str, xs: np.ndarray, reference, max_ulps: int) -> np.ndarray:
    """fn(x) for every x, against the correctly rounded float32 of reference(double(x)); returns fn's results."""
    got = _call(fn, xs)
    want = reference(xs.astype(np.float64)).astype(np.float32)
    d = ulps(got, want)
    worst = int(np.argmax(d))
    assert d.max() <= max_ulps, (f"{name}({xs[worst]!r}) = {got[worst]!r}, correctly rounded {want[worst]!r}: "
                                 f"{d.max()} ulp")
    return got


def _all_floats(lo: float, hi: float, step: int = 1) -> np.ndarray:
    """Every `step`-th float32 in [lo, hi] (lo, hi of the same sign)."""
    a, b = np.float32(lo).view(np.int32), np.float32(hi).view(np.int32)
    a, b = min(a, b), max(a, b)
    return np.arange(a, b + 1, step, dtype=np.int32).view(np.float32)


def test_fw_expf_within_one_ulp(lib) -> None:
    """Rule: fw_expf(x) is within 1 ulp of float32(exp(double(x))) for float32 x in [-104, 88.7]:
    a dense grid, random points, every float near 0, and the range whose results are subnormal."""
    rng = np.random.default_rng(0)
    xs = np.concatenate([
        np.linspace(-104.0, 88.7, 120_001, dtype=np.float32),
        rng.uniform(-104.0, 88.7, 40_000).astype(np.float32),
        _all_floats(-1e-3, -1e-12, step=4099), _all_floats(1e-12, 1e-3, step=4099),       # near 0
        np.float32([0.0, -0.0, 1e-45, -1e-45, 1.2e-38, -1.2e-38, 88.7, 88.72283, 1.0, -1.0]),
        np.linspace(-103.98, -87.3, 20_000, dtype=np.float32),                          # subnormal results
        _all_floats(0.34, 0.35, step=97),                                                # one reduction interval edge
    ])
    assert len(xs) >= 200_000
    got = _assert_within_ulps(lib.fw_expf, "fw_expf", xs, np.exp, 1)
    sub = np.exp(xs.astype(np.float64)).astype(np.float32) < np.float32(1.1754944e-38)
    assert sub.sum() > 1000 and (got[sub] > 0).sum() > 900  # subnormal results were exercised, not flushed
    assert got[xs == 0].tolist() == [1.0, 1.0]
    assert np.isfinite(got).all()


def test_fw_expf_edges(lib) -> None:
    """Rule: exp overflows to +inf above ln(FLT_MAX), underflows to +0 below ln(denorm_min / 2), and
    propagates NaN."""
    assert lib.fw_expf(89.0) == float("inf")
    assert lib.fw_expf(-105.0) == 0.0
    assert np.isnan(lib.fw_expf(float("nan")))


def test_fw_expf_vectors_give_the_scalar_bits(lib) -> None:
    """Rule: the native build's 8-wide exp (the neuron step's multi-Gaussian path on an AVX2 CPU) gives
    fw_expf's bits lane by lane over the whole float range: every 4099th float of each sign, NaN, the
    infinities, the range edges and the results that are subnormal or scaled past 2^127, and counts that
    leave a partial last vector."""
    ffi = Firmware().ffi
    xs = np.concatenate([
        np.arange(0, 0x7F800000, 4099, dtype=np.int64).astype(np.int32).view(np.float32),
        np.arange(0, 0x7F800000, 4099, dtype=np.int64).astype(np.uint32).__or__(0x80000000).view(np.float32),
        np.linspace(-103.98, -87.3, 20_001, dtype=np.float32), np.linspace(88.0, 88.8, 2_001, dtype=np.float32),
        np.float32([np.nan, np.inf, -np.inf, 88.7228391, 88.72284, -103.972084, -103.97209, 0.0, -0.0]),
    ])
    if len(xs) % 8 == 0:
        xs = np.append(xs, np.float32(0.5))  # a partial last vector
    assert len(xs) % 8
    scalar, vector = np.empty_like(xs), np.empty_like(xs)
    x_ptr = ffi.cast("float *", ffi.from_buffer(xs))
    lib.fw_expf_n(x_ptr, ffi.cast("float *", ffi.from_buffer(scalar)), len(xs), 0)
    lib.fw_expf_n(x_ptr, ffi.cast("float *", ffi.from_buffer(vector)), len(xs), 1)
    assert scalar.view(np.uint32)[100] == np.float32(lib.fw_expf(float(xs[100]))).view(np.uint32)
    bad = np.flatnonzero(scalar.view(np.uint32) != vector.view(np.uint32))
    assert bad.size == 0, f"x = {xs[bad[0]]!r}: scalar {scalar[bad[0]]!r}, vectors {vector[bad[0]]!r} ({bad.size} lanes differ)"


def test_fw_logf_within_two_ulp(lib) -> None:
    """Rule: fw_logf(x) is within 2 ulp of float32(log(double(x))) for float32 x in (1e-30, 1e30): a
    log-spaced grid, random points, and every float of [0.5, 2] at a fine stride (around log's zero)."""
    rng = np.random.default_rng(1)
    xs = np.concatenate([
        np.exp(np.linspace(np.log(1e-30), np.log(1e30), 100_001)).astype(np.float32),
        np.exp(rng.uniform(np.log(1e-30), np.log(1e30), 30_000)).astype(np.float32),
        _all_floats(0.5, 2.0, step=211),
        np.float32([1.0, 0.70710677, 0.7071068, 1.4142135, 1.4142137, 1.0000001, 0.99999994]),
    ])
    xs = xs[(xs > np.float32(1e-30)) & (xs < np.float32(1e30))]
    assert len(xs) >= 200_000
    _assert_within_ulps(lib.fw_logf, "fw_logf", xs, np.log, 2)
    assert lib.fw_logf(1.0) == 0.0
