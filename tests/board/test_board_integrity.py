"""At most once: an own command damaged in any byte (header included) is dropped as if lost, and neither it
nor an SC&MP datagram moves the session's reply cache or sequence window; and the host survives any bytes a
board sends (fuzzed with mutated replies re-sealed with valid CRCs, so that they reach its parsers)."""
from __future__ import annotations

import socket
import struct
import threading
import zlib

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from s2eprop.emulator.board import protocol as sdp
from s2eprop.emulator.board.server import BoardServer
from s2eprop.host.cli.board import build_board
from s2eprop.host.errors import TransportError
from s2eprop.host.transport.udp import UdpTransport

CLIENT = ("127.0.0.1", 40000)


def _greeted(cores: int = 4) -> BoardServer:
    chip, desc = build_board(None, "functional", None, cores)
    server = BoardServer(chip, desc, port=0)
    hello = sdp.sealed(sdp.Scp(sdp.CMD_HELLO, 1, sdp.PROTOCOL_VERSION, sdp.HELLO_CLAIM, data=b"12345678"))
    assert sdp.unpack(server.handle(sdp.pack(hello), CLIENT)).cmd == sdp.RC_OK
    return server


def _reseal(raw: bytes) -> bytes:
    """`raw` with arg3 set to the CRC32 of all its bytes, arg3 taken as zero (computed here, not by protocol.py)."""
    if len(raw) < 26:
        return raw
    body = raw[:22] + b"\0\0\0\0" + raw[26:]
    return raw[:22] + struct.pack("<I", zlib.crc32(body)) + raw[26:]


def test_an_own_command_damaged_in_any_byte_is_dropped_and_its_clean_copy_runs_once() -> None:
    server = _greeted()
    try:
        raw = sdp.pack(sdp.sealed(sdp.Scp(sdp.CMD_ADVANCE, 2, 3)), src=(0, 0, 31))
        for i in range(len(raw)):  # every byte: padding, flags, tag, ports, both x and y, cmd, seq, args
            for bit in (0, 7):
                bad = raw[:i] + bytes([raw[i] ^ (1 << bit)]) + raw[i + 1:]
                reply = server.handle(bad, CLIENT)
                # dropped (CRC), or, when the flip made cmd no command of ours, refused as unknown: never run
                assert reply is None or sdp.unpack(reply).cmd == sdp.RC_CMD, f"byte {i} bit {bit}"
        assert server.chip.tick_count == 0 and server.link.bad_crc >= 2 * len(raw) - 4
        first = server.handle(raw, CLIENT)
        assert server.handle(raw, CLIENT) == first  # the retransmission is answered from the cache
        assert server.chip.tick_count == 3
    finally:
        server.sock.close()


def test_a_datagram_turned_into_sc_mp_with_a_far_seq_does_not_poison_the_window() -> None:
    """A damaged own command whose cmd became an SC&MP one (no CRC to catch it) with a sequence number far
    ahead made the board drop every later request of that host as stale."""
    server = _greeted()
    try:
        ver = sdp.pack(sdp.Scp(sdp.CMD_VER, 2 + 0x7000))  # far ahead of the session's seq 1
        assert sdp.unpack(server.handle(ver, CLIENT)).cmd == sdp.RC_OK
        raw = sdp.pack(sdp.sealed(sdp.Scp(sdp.CMD_ADVANCE, 2, 1)))
        assert sdp.unpack(server.handle(raw, CLIENT)).cmd == sdp.RC_OK
        assert server.chip.tick_count == 1 and server.link.stale == 0
    finally:
        server.sock.close()


class MangledBoard:
    """A real board's replies, mangled on their way to the host and then re-sealed with a valid CRC: cut
    (to 0..30 B, 12 and 13 included), grown, bytes flipped (header, args, data), or replaced by random bytes."""

    def __init__(self, seed: int) -> None:
        chip, desc = build_board(None, "functional", None, 4)
        self.server = BoardServer(chip, desc, port=0)
        self.rng = np.random.default_rng(seed)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.target = f"udp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.sent = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _mangle(self, reply: bytes) -> bytes:
        rng, kind = self.rng, int(self.rng.integers(6))
        if kind == 0:
            return reply
        if kind == 1:
            return _reseal(reply[:int(rng.integers(0, 31))])
        if kind == 2:
            return rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
        b = bytearray(reply)
        if kind == 3:
            b += rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8).tobytes()
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(len(b))) if kind != 4 else int(rng.integers(min(len(b), 26)))
            b[at] ^= int(rng.integers(1, 256))
        return _reseal(bytes(b))

    def _run(self) -> None:
        while not self._stop:
            try:
                raw, addr = self.sock.recvfrom(sdp.MAX_DATAGRAM_BYTES + 1)
            except (socket.timeout, OSError):
                continue
            reply = self.server.handle(raw, addr)
            if reply is not None:
                self.sock.sendto(self._mangle(reply), addr)
                self.sent += 1

    def close(self) -> None:
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()
        self.server.sock.close()


def test_the_host_survives_any_bytes_a_board_sends() -> None:
    """Every host operation either works or raises TransportError naming the board: no struct.error,
    IndexError, KeyError or hang, whatever comes back."""
    board = MangledBoard(seed=28)
    outcomes = {"ok": 0, "TransportError": 0}
    try:
        for i in range(150):
            try:
                t = UdpTransport(board.target, timeout_s=0.01, retries=2, take_over=True)
            except TransportError:
                outcomes["TransportError"] += 1
                continue
            ops = (lambda: t.board_status(), lambda: t.status(), lambda: t.poll(), lambda: t.advance(1),
                   lambda: t.read_sram(0, 64, 300), lambda: t.write_sdram(0x100000, bytes(600)),
                   lambda: t.read_sdram(0x100000, 16), lambda: t.start(1, 4096))
            for op in ops:
                try:
                    op()
                    outcomes["ok"] += 1
                except TransportError:
                    outcomes["TransportError"] += 1
            t.close()
    finally:
        board.close()
    assert board.sent > 1000
    assert outcomes["ok"] > 50 and outcomes["TransportError"] > 50


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), p_drop=st.floats(0, 0.2), p_dup=st.floats(0, 0.2), p_reorder=st.floats(0, 0.2),
       p_corrupt=st.floats(0, 0.1),
       program=st.lists(st.tuples(st.sampled_from(["advance", "send", "write"]), st.integers(0, 3)),
                        min_size=5, max_size=25))
def test_every_command_runs_exactly_once_through_any_damage(seed, p_drop, p_dup, p_reorder, p_corrupt,
                                                            program) -> None:
    """Property: through a link that drops, repeats, reorders and damages datagrams both ways, every command
    of the host runs exactly once on the board, and the host's view equals the board's: the board's tick is
    the sum of the ADVANCEs (and what the last one answered), each core counted exactly the host messages
    sent to it (a core not running counts each as bad_host_msgs, in its own memory), and SDRAM holds the
    last bytes written to each place."""
    from s2eprop.firmware.abi import Firmware
    from test_board_faults import FaultyLink  # tests/board is on the path (pytest's rootdir-less test modules)

    ffi = Firmware().ffi
    counter_at = ffi.offsetof("fw_header_t", "state") + ffi.offsetof("fw_state_t", "counters") \
        + ffi.offsetof("fw_counters_t", "bad_host_msgs")
    chip, desc = build_board(None, "functional", None, 4)
    server = BoardServer(chip, desc, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    link = FaultyLink(server.address, seed, p_drop, p_dup, p_reorder, p_corrupt)
    try:
        t = UdpTransport(link.target, timeout_s=0.02)
        rng = np.random.default_rng(seed)
        ticks, sends, memory, told = 0, [0] * 4, {}, 0
        for op, arg in program:
            if op == "advance":
                ticks += arg
                told = t.advance(arg)
            elif op == "send":
                t.send(arg, np.array([99, arg], np.uint32))  # no such message type: counted by the core
                sends[arg] += 1
            else:
                data = rng.integers(0, 256, int(rng.integers(1, 700)), dtype=np.uint8).tobytes()
                memory[0x100000 + 0x1000 * arg] = data
                t.write_sdram(0x100000 + 0x1000 * arg, data)
        t.flush()
        told = t.advance(0)
        assert told == ticks == chip.tick_count
        for core in range(4):
            assert int(np.frombuffer(t.read_sram(core, counter_at, 4), np.uint32)[0]) == sends[core]
        for addr, data in memory.items():
            assert t.read_sdram(addr, len(data)) == data == chip.read_sdram(addr, len(data))
        t.close()
    finally:
        link.close()
        server.stop()
        thread.join(timeout=5)
