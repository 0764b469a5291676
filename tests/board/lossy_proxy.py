"""A proxy between one host and a board that drops what a test asks it to (board tests of loss)."""
from __future__ import annotations

import select
import socket
import threading
import time

from s2eprop.emulator.board import protocol as sdp


class Proxy:
    """Passes datagrams between one host and a board; `drop_next(cmd)` drops the host's next request of
    that command once, `outage(s)` drops everything both ways for that long."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.client: tuple[str, int] | None = None
        self.target = f"udp://127.0.0.1:{self.front.getsockname()[1]}"
        self._drop_cmd: int | None = None
        self._dark_until = 0.0
        self.dropped = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def drop_next(self, cmd: int) -> None:
        self._drop_cmd = cmd

    def outage(self, seconds: float) -> None:
        self._dark_until = time.monotonic() + seconds

    def _run(self) -> None:
        while not self._stop:
            ready, _, _ = select.select([self.front, self.back], [], [], 0.05)
            for sock in ready:
                raw, addr = sock.recvfrom(sdp.MAX_DATAGRAM_BYTES + 1)
                if time.monotonic() < self._dark_until:
                    self.dropped += 1
                    continue
                if sock is self.front:
                    self.client = addr
                    if self._drop_cmd is not None and sdp.peek_cmd(raw) == self._drop_cmd:
                        self._drop_cmd = None
                        self.dropped += 1
                        continue
                    self.back.sendto(raw, self.server)
                elif self.client is not None:
                    self.front.sendto(raw, self.client)

    def close(self) -> None:
        self._stop = True
        self.thread.join(timeout=2)
        self.front.close()
        self.back.close()
