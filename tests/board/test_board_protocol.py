"""The board's wire protocol, spoken raw (struct, from SpiNNaker's published SDP/SCP layout, not our
encoder), and its refusals."""
from __future__ import annotations

import socket
import struct

import numpy as np
import pytest

from s2eprop.host.errors import TransportError
from s2eprop.host.transport.udp import UdpTransport


def _raw(board, cmd: int, seq: int, args: tuple[int, int, int], data: bytes = b"", x=0, y=0, cpu=0) -> bytes:
    """One SCP request as SpiNNMan would send it: 2 pad bytes, SDP header (flags 0x87, tag 0xff, dest
    port 0 | cpu, src port 7 | cpu 31, dest y, dest x, src y, src x), cmd, seq, arg1..3, data."""
    sdp = bytes([0x87, 0xFF, (0 << 5) | cpu, (7 << 5) | 31, y, x, 0, 0])
    scp = struct.pack("<HHIII", cmd, seq, *args)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    host, port = board.server.address
    s.sendto(b"\0\0" + sdp + scp + data, (host, port))
    reply = s.recv(1024)
    s.close()
    return reply


def test_ver_over_raw_scp(board) -> None:
    reply = _raw(board, 0, 7, (0, 0, 0))
    assert reply[:2] == b"\0\0"
    rc, seq, arg1, arg2, _arg3 = struct.unpack_from("<HHIII", reply, 10)
    assert rc == 0x80 and seq == 7
    assert arg2 & 0xFFFF == 256                      # buffer size: 256 data bytes
    assert arg1 & 0xFF == 0 and arg1 >> 16 == 0      # cpu 0 at p2p address (0, 0)
    # version number 0xFFFF: the version is the string after the name (SpiNNMan VersionInfo), which must be
    # SC&MP 4.x for SpiNNMan's bring-up; the hardware and the version's tail say what the board is
    assert arg2 >> 16 == 0xFFFF
    assert reply[26:].split(b"\0")[:2] == [b"SC&MP/SpiNNaker2-emulated-s2eprop-board", b"4.0.0-s2eprop-protocol-6"]


def test_ver_answers_with_the_boards_own_coordinates_wherever_it_is_addressed(board) -> None:
    """SpiNNMan's bring-up sends VER to (255, 255) and takes an answer naming (255, 255) as 'not booted'."""
    for x, y in ((255, 255), (4, 6)):
        reply = _raw(board, 0, 11, (0, 0, 0), x=x, y=y)
        rc, _seq, arg1, _arg2, _arg3 = struct.unpack_from("<HHIII", reply, 10)
        assert rc == 0x80 and arg1 >> 16 == 0


def test_write_then_read_sdram_and_sram_over_raw_scp(board) -> None:
    payload = bytes(range(200))
    reply = _raw(board, 3, 8, (0x00300000, len(payload), 0), payload)                 # WRITE to SDRAM
    assert struct.unpack_from("<HH", reply, 10) == (0x80, 8)
    reply = _raw(board, 2, 9, (0x00300000, len(payload), 0))                          # READ it back
    assert struct.unpack_from("<HH", reply, 10) == (0x80, 9) and reply[14:] == payload
    # a core: QPE (7, 6), cpu 1 is core 1 of the default chip file; its SRAM at offset 1024
    _raw(board, 3, 10, (1024, 4, 0), b"\x01\x02\x03\x04", x=7, y=6, cpu=1)
    assert board.server.chip.read_sram(1, 1024, 4) == b"\x01\x02\x03\x04"
    reply = _raw(board, 2, 11, (1024, 4, 0), x=7, y=6, cpu=1)
    assert reply[14:] == b"\x01\x02\x03\x04"


def test_bad_requests_get_error_codes(board) -> None:
    rc = struct.unpack_from("<H", _raw(board, 2, 12, (0, 300, 0)), 10)[0]              # READ past 256 B
    assert rc == 0x81                                                                  # RC_LEN
    rc = struct.unpack_from("<H", _raw(board, 2, 13, (0, 4, 0), x=4, y=3, cpu=0), 10)[0]  # no QPE at (4, 3)
    assert rc == 0x88                                                                  # RC_CPU


def test_a_command_of_ours_without_a_session_is_refused_clearly(board) -> None:
    import zlib

    # ADVANCE 5 ticks, never greeted; its CRC32 covers the whole datagram as _raw sends it, arg3 taken as 0
    whole = b"\0\0" + bytes([0x87, 0xFF, 0, (7 << 5) | 31, 0, 0, 0, 0]) + struct.pack("<HHIII", 0x46, 14, 5, 0, 0)
    reply = _raw(board, 0x46, 14, (5, 0, zlib.crc32(whole)))
    rc = struct.unpack_from("<H", reply, 10)[0]
    assert rc == 0x85 and b"no session" in reply[26:]
    assert board.server.chip.tick_count == 0


def test_no_server_at_the_address_is_one_clear_error() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(TransportError, match=rf"no reply from the board at udp://127.0.0.1:{port} to HELLO for [0-9.]+ s \(3 tries"):
        UdpTransport(f"udp://127.0.0.1:{port}", timeout_s=0.05, retries=2)


def test_protocol_version_mismatch_is_named(board, monkeypatch) -> None:
    monkeypatch.setattr(UdpTransport, "protocol_version", 99)
    with pytest.raises(TransportError, match="refused HELLO .RC_ARG.: protocol version 99: this board speaks version 6"):
        UdpTransport(board.target)


def test_wrong_key_and_no_key_get_no_answer(serve) -> None:
    keyed = serve(key=b"right key")
    with pytest.raises(TransportError, match="with the same key"):
        UdpTransport(keyed.target, key=b"wrong key", timeout_s=0.05, retries=1)
    t = UdpTransport(keyed.target, key=b"right key")
    t.write_sdram(0x00400000, np.arange(100, dtype=np.uint32))
    assert np.array_equal(np.frombuffer(t.read_sdram(0x00400000, 400), np.uint32), np.arange(100))
    t.close()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # plain SpiNNaker tools cannot talk to a keyed board
    s.settimeout(0.2)
    s.sendto(b"\0\0" + bytes([0x87, 0xFF, 0, 0xFF, 0, 0, 0, 0]) + struct.pack("<HHIII", 0, 1, 0, 0, 0),
             keyed.server.address)
    with pytest.raises(socket.timeout):
        s.recv(1024)
    assert keyed.server.link.bad_mac >= 3


def test_an_image_too_big_for_the_board_is_named(serve, tmp_path) -> None:
    t = UdpTransport(serve().target)
    with pytest.raises(TransportError, match="outside its 131,072 B of SRAM"):
        t.write_sram(0, 0, np.zeros(140_000, np.uint8))
    t.close()
