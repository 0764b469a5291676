"""Host layer, CLI: `s2eprop serve` inside a script. A `LocalBoard` serves an emulated chip on a loopback
UDP port from a thread, so that a script can train against `udp://` as against a board on the network
(the same wire protocol, the same bits as the in-process emulator)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from s2eprop.host.cli.board import build_board


class LocalBoard:
    """An emulated board on 127.0.0.1 (a free port unless `port` is given), served until `close()` or
    the end of a `with` block. `target` is the address a Session takes."""

    def __init__(self, mode: str = "functional", cores: int | None = None, chip: str | Path | None = None,
                 clock_mhz: float | None = None, port: int = 0, key: bytes | None = None, engine: str = "c") -> None:
        """`engine`: timed modes' event loop, "c" or "simpy" (the SimPy model; same bits)."""
        from s2eprop.emulator.board.server import BoardServer

        chip_model, desc = build_board(None if chip is None else Path(chip), mode, clock_mhz, cores, engine)
        self.server = BoardServer(chip_model, desc, port=port, key=key, mode=mode)
        host, bound = self.server.address
        self.target = f"udp://{host}:{bound}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="s2eprop-board", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.stop()
        self._thread.join(timeout=5)

    def __enter__(self) -> "LocalBoard":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
