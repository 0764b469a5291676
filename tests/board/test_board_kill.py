"""Processes killed mid-session: the host (SIGKILL, then --resume) and the board server (a clear error,
then --resume against a new server) end with the weights of an uninterrupted run."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

S2EPROP = [sys.executable, "-m", "s2eprop.host.cli.main"]
ROOT = Path(__file__).resolve().parents[2]


def _serve(port: int = 0) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen([*S2EPROP, "serve", "--port", str(port), "--cores", "16"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    m = re.search(r"udp://127\.0\.0\.1:(\d+)", line)
    assert m, line
    return p, f"udp://127.0.0.1:{m.group(1)}"


def _train(*args: str, take_board: bool = False) -> subprocess.Popen:
    """`take_board`: take over the board a killed host still owns (its lease has not lapsed)."""
    env = {**os.environ, "S2EPROP_TAKE_BOARD": "1"} if take_board else None
    return subprocess.Popen([*S2EPROP, "train", "--quiet", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(path: Path, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    end = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, f"{path} never came"
        time.sleep(0.005)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    rng = np.random.default_rng(17)
    path = tmp_path_factory.mktemp("kill") / "f.npz"
    np.savez(path, x=(3 * rng.standard_normal((48, 100, 80))).astype(np.float32), y=rng.integers(0, 12, 48))
    return path


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("kill") / "whole"
    p = _train("--data", str(data), "--out", str(out))
    assert p.wait() == 0, p.communicate()
    with np.load(out / "weights.npz") as w:
        return {k: w[k] for k in ("w_in", "w_rec", "w_out")}


def _resume_to(target: str, data: Path, run: Path, want: dict[str, np.ndarray]) -> None:
    """--resume the run from its checkpoint; it must end with the weights `want`."""
    again = _train("--target", target, "--data", str(data), "--out", str(run), "--resume", str(run / "checkpoint.npz"),
                   take_board=True)
    assert again.wait() == 0, again.communicate()
    _same(run, want)


def _same(run: Path, want: dict[str, np.ndarray]) -> None:
    import json

    report = json.loads((run / "report.json").read_text())
    assert 0 < report["samples_trained_this_session"] < 48  # it resumed, mid-epoch
    with np.load(run / "weights.npz") as w:
        for k, v in want.items():
            assert np.array_equal(w[k].view(np.uint32), v.view(np.uint32)), k


def test_a_killed_host_resumes_to_the_same_weights(data, uninterrupted, tmp_path) -> None:
    server, target = _serve()
    try:
        run = tmp_path / "run"
        host = _train("--target", target, "--data", str(data), "--out", str(run), "--checkpoint-every", "8")
        _wait_for(run / "checkpoint.npz", host)
        host.send_signal(signal.SIGKILL)
        host.wait()
        _resume_to(target, data, run, uninterrupted)
    finally:
        server.kill()
        server.wait()


def test_a_killed_board_is_a_clear_error_and_resume_on_a_new_one_completes(data, uninterrupted, tmp_path) -> None:
    server, target = _serve()
    port = int(target.rsplit(":", 1)[1])
    run = tmp_path / "run"
    host = _train("--target", target, "--data", str(data), "--out", str(run), "--checkpoint-every", "8",
                  "--link-patience-s", "2")
    try:
        _wait_for(run / "checkpoint.npz", host)
    finally:
        server.kill()
        server.wait()
    out, err = host.communicate(timeout=120)
    assert host.returncode == 2, (out, err)
    assert "Traceback" not in err and f"no reply from the board at {target}" in err
    # the command that found the board dead, not the clean-up's STOP, and the command that resumes the run
    assert "to STOP" not in err and "resume with: s2eprop train " in err and f"--target {target}" in err, err
    server, target = _serve(port)
    try:
        _resume_to(target, data, run, uninterrupted)
    finally:
        server.kill()
        server.wait()
