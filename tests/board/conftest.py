"""Fixtures of the board tests: an emulated board served on a loopback port, in a thread."""
from __future__ import annotations

import threading
from typing import Iterator

import pytest

from s2eprop.emulator.board.server import BoardServer
from s2eprop.host.cli.board import build_board


class Served:
    def __init__(self, mode: str = "functional", key: bytes | None = None, cores: int | None = 24,
                 clock_mhz: float | None = None, threads: int = 1) -> None:
        chip, desc = build_board(None, mode, clock_mhz, cores, threads=threads)
        self.server = BoardServer(chip, desc, port=0, key=key, mode=mode)
        host, port = self.server.address
        self.target = f"udp://{host}:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.stop()
        self.thread.join(timeout=5)


@pytest.fixture
def board() -> Iterator[Served]:
    s = Served()
    yield s
    s.close()


@pytest.fixture
def serve():
    made: list[Served] = []

    def start(**kw) -> Served:
        made.append(Served(**kw))
        return made[-1]

    yield start
    for s in made:
        s.close()
