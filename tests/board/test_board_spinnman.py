"""SpiNNMan meets a board: its Transceiver, made with ensure_board_is_ready=True, gets past bring-up (VER to
(255, 255) answered as SC&MP 4.0.0 on the board's own chip (0, 0); the IPTAG timeout accepted), reads and
writes SDRAM and a core's SRAM, and what the board does not offer fails at once with an error naming the
command (docs/protocol.md, SpiNNMan). Skipped where spinnman is not installed (it is no dependency)."""
from __future__ import annotations

import time

import pytest

spinnman = pytest.importorskip("spinnman")


def test_spinnman_brings_the_board_up_and_reads_and_writes_its_memory(board) -> None:
    from spinn_utilities.config_holder import set_config
    from spinnman.config_setup import unittest_setup
    from spinnman.connections.udp_packet_connections import SCAMPConnection
    from spinnman.exceptions import SpinnmanException
    from spinnman.transceiver import create_transceiver_from_connections

    unittest_setup()
    set_config("Machine", "version", "5")  # SpiNNMan has a Transceiver for SpiNNaker 1 boards only
    _host, port = board.server.address
    t0 = time.monotonic()
    tx = create_transceiver_from_connections([SCAMPConnection(remote_host="localhost", remote_port=port)],
                                             ensure_board_is_ready=True)
    try:
        assert time.monotonic() - t0 < 10
        version = tx._get_scamp_version(255, 255)
        assert (version.x, version.y) == (0, 0) and version.name == "SC&MP"
        assert version.version_string.endswith("s2eprop-protocol-6") and "s2eprop" in version.hardware
        tx.write_memory(0, 0, 0x1000, b"hello board!")                  # SDRAM: the monitor, (0, 0, 0)
        assert bytes(tx.read_memory(0, 0, 0x1000, 12)) == b"hello board!" == board.server.chip.read_sdram(0x1000, 12)
        tx.write_memory(7, 6, 64, b"\x01\x02\x03\x04", cpu=1)            # core 1: QPE (7, 6), slot 1
        assert board.server.chip.read_sram(1, 64, 4) == b"\x01\x02\x03\x04"
        t0 = time.monotonic()
        with pytest.raises(SpinnmanException, match="CMD_READ"):  # no system variables: refused, not waited for
            tx.get_machine_details()
        assert time.monotonic() - t0 < 10
    finally:
        tx.close()
    assert board.server.link.internal_errors == 0
