"""`s2eprop bench udp`: the loopback board against in-process, through the path `s2eprop train` runs (its
speed goal is stated in docs/protocol.md, measured, not asserted here)."""
from __future__ import annotations

from s2eprop.host.cli.bench import bench_udp


def test_bench_udp_times_both_targets_and_compares_their_bits() -> None:
    """Rule: each round times the in-process chip and a `s2eprop serve` child over UDP, the ratio is their
    quotient, and `same_bits` holds when the two runs end with byte-equal weights (they must: the board is the
    same chip behind a wire)."""
    r = bench_udp(n_samples=3, rounds=2)
    assert len(r["inproc_ms_per_sample"]) == len(r["udp_ms_per_sample"]) == len(r["udp_over_inproc"]) == 2
    for ratio, udp, inproc in zip(r["udp_over_inproc"], r["udp_ms_per_sample"], r["inproc_ms_per_sample"]):
        assert inproc > 0 and abs(ratio - udp / inproc) < 2e-3 * ratio + 1e-3
    assert r["same_bits"] is True
    assert all(c > 0 for c in r["board_cpu_ms_per_sample"])
