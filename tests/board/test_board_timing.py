"""A timed board's compliance record crosses the wire: `s2eprop train --target udp://` against `s2eprop serve
--mode timed` writes the timing block, timing.npz and figures that `s2eprop train --mode timed` writes in-process,
from the same ticks (docs/protocol.md, TIMING; docs/timing.md)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from s2eprop.host.cli.main import main


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    rng = np.random.default_rng(5)
    path = tmp_path_factory.mktemp("data") / "split.npz"
    np.savez(path, x=(3 * rng.standard_normal((3, 100, 80))).astype(np.float32), y=np.array([1, 4, 9]),
             x_test=(3 * rng.standard_normal((2, 100, 80))).astype(np.float32), y_test=np.array([2, 5]))
    return path


@pytest.mark.parametrize("clock_mhz", [None, 150])
def test_a_timed_board_over_udp_times_as_in_process(serve, split, tmp_path, capsys, clock_mhz) -> None:
    """Rule: the same timing arrays (every timing.npz entry), the same report.json `timing` and `timing_inference`,
    the same weights and the same console line; at 150 MHz (every sample overruns) the run counts and goes on
    over UDP as in-process, on_loss defaulting to count on a timed board as on a timed chip."""
    clock = [] if clock_mhz is None else ["--clock-mhz", str(clock_mhz)]
    board = serve(mode="timed", cores=12, clock_mhz=clock_mhz)
    local, remote = tmp_path / "local", tmp_path / "remote"
    assert main(["train", "--data", str(split), "--mode", "timed", *clock, "--out", str(local)]) == 0
    said_local = capsys.readouterr().out
    assert main(["train", "--data", str(split), "--target", board.target, "--out", str(remote)]) == 0
    said_remote = capsys.readouterr().out
    a, b = (json.loads((d / "report.json").read_text()) for d in (local, remote))
    for part in ("timing", "timing_inference"):
        assert b[part] == a[part], part
    assert a["timing"]["ticks"] >= 12 * 3 * 102  # more when overrunning samples take grace ticks
    assert (a["timing"]["overruns"] > 0) == (clock_mhz == 150)
    assert b["samples_lost"] == a["samples_lost"]
    assert b["board"]["mode"] == "timed" and b["board"]["clock_hz"] == a["timing"]["clock_hz"]
    assert b["board"]["chip_file"] == a["timing"]["chip_file"] and b["board"]["target"] == board.target
    with np.load(local / "timing.npz") as t, np.load(remote / "timing.npz") as u:
        assert sorted(t.files) == sorted(u.files)
        for k in t.files:
            assert np.array_equal(t[k], u[k]), k
    with np.load(local / "weights.npz") as w, np.load(remote / "weights.npz") as v:
        for k in ("w_in", "w_rec", "w_out"):
            assert np.array_equal(w[k].view(np.uint32), v[k].view(np.uint32))
    for d in (local, remote):
        assert (d / "timing.png").stat().st_size > 10_000 and (d / "tick.png").stat().st_size > 10_000
    line = [s for s in said_local.splitlines() if s.startswith("timing (")]
    assert line and line == [s for s in said_remote.splitlines() if s.startswith("timing (")]


def test_timing_commands_of_any_content_are_answered_and_pages_rebuild_the_snapshot() -> None:
    """Rule: TIMING_CTL and TIMING datagrams with random ops, arguments and data (a functional board's too) are
    answered, as refusals where they are wrong, and never fail inside the server; a snapshot's pages, read at
    every offset, are its bytes, and an offset past it or off a page boundary is refused."""
    import zlib

    from s2eprop.emulator.board import protocol as sdp
    from s2eprop.emulator.board.server import BoardServer
    from s2eprop.host.cli.board import build_board

    rng = np.random.default_rng(28)
    for mode in ("functional", "timed"):
        chip, desc = build_board(None, mode, None, 4)
        server = BoardServer(chip, desc, port=0, mode=mode)
        try:
            addr = ("127.0.0.1", 7)
            hello = sdp.sealed(sdp.Scp(sdp.CMD_HELLO, 1, sdp.PROTOCOL_VERSION, sdp.HELLO_CLAIM, data=b"12345678"))
            assert server.handle(sdp.pack(hello), addr) is not None
            chip.run(3)
            names = [b"train", b"inference", b"summary train", b"arrays inference", b"window", b"npz", b"state",
                     b"summary", b"x", b""]
            for i in range(3000):
                cmd = sdp.CMD_TIMING if rng.random() < 0.5 else sdp.CMD_TIMING_CTL
                data = names[int(rng.integers(len(names)))] if rng.random() < 0.8 else \
                    rng.integers(0, 256, int(rng.integers(0, 40)), dtype=np.uint8).tobytes()
                a2 = int(rng.choice([0, 1, 256, int(rng.integers(0, 1 << 32))]))
                msg = sdp.sealed(sdp.Scp(cmd, 2 + i, int(rng.integers(0, 4)), a2, 0, data))
                reply = server.handle(sdp.pack(msg), addr)
                assert reply is not None and sdp.unpack(reply).cmd in (sdp.RC_OK, sdp.RC_ARG)
            assert server.link.internal_errors == 0, server.last_internal_error
            if mode == "functional":
                continue
            seq = 10_000
            for what in ("npz", "summary inference", "window"):
                seq += 1
                first = sdp.unpack(server.handle(sdp.pack(sdp.sealed(sdp.Scp(
                    sdp.CMD_TIMING, seq, sdp.TIMING_SNAPSHOT, 0, 0, what.encode()))), addr))
                blob = first.data
                for at in range(sdp.MAX_DATA_BYTES, first.arg1, sdp.MAX_DATA_BYTES):
                    seq += 1
                    page = sdp.unpack(server.handle(sdp.pack(sdp.sealed(sdp.Scp(sdp.CMD_TIMING, seq, sdp.TIMING_PAGE,
                                                                                 at))), addr))
                    assert page.cmd == sdp.RC_OK
                    blob += page.data
                assert blob == server.timing_snapshot(what) or what == "npz"  # (npz: a zip's file times)
                assert len(blob) == first.arg1 and zlib.crc32(blob) == first.arg2
                for bad in (first.arg1 + sdp.MAX_DATA_BYTES - first.arg1 % sdp.MAX_DATA_BYTES, 1):
                    seq += 1
                    r = sdp.unpack(server.handle(sdp.pack(sdp.sealed(sdp.Scp(sdp.CMD_TIMING, seq, sdp.TIMING_PAGE,
                                                                              bad))), addr))
                    assert r.cmd == sdp.RC_ARG and b"TIMING page" in r.data
        finally:
            server.sock.close()
