"""Host layer: the transport to a board over UDP (docs/protocol.md; the wire format is emulator/board/protocol.py).

Every command is acknowledged; one without a reply in time is sent again with the same sequence
number (the board answers a repeat from its reply cache, without executing it twice). Bulk reads and
writes keep up to `window` datagrams in flight; every other command waits for the ones before it, so
that the board executes them in the host's order. One exception: an ADVANCE begun with `start_advance`
stays in flight while SDRAM streams (chunks and STREAM_ACKs) go up (the next sample's input, into ring
slots the running ticks do not read); any other command first waits for its answer. What the link lost,
repeated or delivered late is counted (`link_stats`, report.json `link`).
"""
from __future__ import annotations

import ipaddress
import json
import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import numpy as np

from s2eprop.emulator.board import protocol as sdp
from s2eprop.firmware.routes import RouteEntry
from s2eprop.host.errors import ConfigError, TransportError
from s2eprop.host.transport.base import TransportStatus

if TYPE_CHECKING:
    from s2eprop.host.transport.board_timing import BoardTiming

KEY_ENV = "S2EPROP_BOARD_KEY"
PATIENCE_S = 10.0   # a command fails after this long without a reply (SpiNNMan waits about as long)
MIN_RTO_S = 0.004   # retransmission timeouts from measured round trips (RFC 6298), clamped to this...
MAX_RTO_S = 1.0     # ... and, backing off, to this (beyond an ADVANCE's own run time)
TAKE_ENV = "S2EPROP_TAKE_BOARD"  # "1": take over a board another host owns (that host died; docs/protocol.md)


@dataclass
class ClientLinkCounters:
    sent: int = 0
    retransmits: int = 0       # commands sent again after a timeout
    late_replies: int = 0      # replies to a command already answered (its retransmission's or a duplicate)
    foreign: int = 0           # datagrams that were not a reply of this session (bad MAC, malformed)
    timeouts: int = 0          # waits that expired
    stream_lost: int = 0       # SDRAM stream chunks the board had not received at STREAM_ACK (sent again)
    stream_resent: int = 0
    host_late_ticks: int = 0   # realtime board: advances that found the board already past the host's tick
    host_max_lateness_ticks: int = 0
    host_ticks_waited: int = 0  # realtime board: one-tick advances, and the jitter of their wall-clock spacing
    host_jitter_max_us: int = 0
    posted: int = 0            # SDRAM chunks sent without acknowledgement (live frames to a realtime board)
    spike_datagrams: int = 0   # CMD_SPIKES datagrams sent (acknowledged or posted; not counting retransmissions)
    spikes_posted: int = 0     # of those, posted (live spike input to a realtime board)
    spikes_late: int = 0       # acknowledged parts the board dropped: a core had read their slot already
    stream_during_advance: int = 0  # SDRAM stream chunks sent while an ADVANCE was in flight (pipelined input)
    advance_messages: int = 0  # host messages that went up inside an ADVANCE (no SEND_MANY round trip of their own)
    reports: int = 0           # ADVANCE replies that carried the cores' messages and the brief status (ADVANCE_REPORT)
    reports_used: int = 0      # POLLs and STATUSes answered from the last report, without a round trip

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class _Request:
    """A command in flight: its datagram, its retransmission timer, and its reply once it came."""

    __slots__ = ("call", "index", "raw", "msg", "deadline", "tries", "first", "rto", "give_up", "nonce", "reply")

    def __init__(self, call: int, index: int, raw: bytes, msg: sdp.Scp, now: float, rto: float, patience_s: float,
                 nonce: bytes) -> None:
        self.call, self.index, self.raw, self.msg = call, index, raw, msg
        # patience counts from the first send; an ADVANCE's own run time (its round trip) comes on top
        self.deadline, self.tries, self.first, self.rto, self.give_up = now + rto, 1, now, rto, now + patience_s + rto
        self.nonce = nonce
        self.reply: sdp.Scp | None = None


def parse_target(target: str) -> tuple[str, int]:
    u = urlparse(target)
    if u.scheme != "udp" or not u.hostname:
        raise ConfigError(f"board target {target!r}: give udp://HOST:PORT (e.g. udp://127.0.0.1:{sdp.DEFAULT_PORT})")
    try:
        port = u.port or sdp.DEFAULT_PORT
    except ValueError:
        raise ConfigError(f"board target {target!r}: the port must be a number in 1..65535") from None
    return u.hostname, port


def read_key(key_file: str | os.PathLike | None) -> bytes | None:
    """The shared key: from key_file, else from $S2EPROP_BOARD_KEY, else None (no authentication)."""
    if key_file is not None:
        try:
            key = open(key_file, "rb").read().strip()
        except OSError as exc:
            raise ConfigError(f"key file {key_file}: {exc.strerror}") from None
        if not key:
            raise ConfigError(f"key file {key_file} is empty")
        return key
    env = os.environ.get(KEY_ENV)
    return env.encode() if env else None


class UdpTransport:
    protocol_version = sdp.PROTOCOL_VERSION  # what this host speaks (HELLO); a board refuses another

    def __init__(self, target: str, key: bytes | None = None, timeout_s: float = 0.25, retries: int | None = None,
                 window: int = 32, spike_limit_bytes: int = sdp.MAX_DATA_BYTES, claim: bool = True,
                 take_over: bool | None = None, patience_s: float = PATIENCE_S,
                 stream_chunk_bytes: int | None = None) -> None:
        """`timeout_s`: the first retransmission timeout, until round trips are measured (then RFC 6298's
        SRTT + 4 RTTVAR per kind of command, doubled at each retransmission up to MAX_RTO_S). `patience_s`: a
        command fails when it has had no reply this long (an ADVANCE: plus its expected run time); `retries`
        (None: no limit): or after this many tries. `claim`: this host drives the board and owns it until it
        closes (another host is refused as busy); False for a host that only looks (board status).
        `take_over`: claim it even from another owner (default: $S2EPROP_TAKE_BOARD is 1). `stream_chunk_bytes`: the
        data of one SDRAM stream chunk (None: MAX_STREAM_DATA_BYTES to a board on loopback, where no Ethernet frame
        limits a datagram, else MAX_BULK_DATA_BYTES, one Ethernet frame)."""
        if not patience_s > 0:
            raise ConfigError(f"link patience {patience_s} s: give a positive number of seconds (default {PATIENCE_S:g})")
        self.target = target
        self.address = parse_target(target)
        self.key = key
        self.timeout_s = timeout_s
        self.retries = retries
        self.patience_s = patience_s
        self._rtt: dict[tuple[int, int], list[float]] = {}  # kind of command -> [srtt, rttvar] (s)
        self.window = window
        self.spike_limit_bytes = spike_limit_bytes  # a spike datagram's data (a step's ids are split to fit)
        self.link = ClientLinkCounters()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        try:
            self.sock.connect(self.address)
        except OSError as exc:
            self.sock.close()
            raise TransportError(f"board at {target}: cannot reach it ({exc.strerror})") from None
        if stream_chunk_bytes is None:
            try:
                loopback = ipaddress.ip_address(self.sock.getpeername()[0]).is_loopback
            except ValueError:
                loopback = False
            stream_chunk_bytes = sdp.MAX_STREAM_DATA_BYTES if loopback else sdp.MAX_BULK_DATA_BYTES
        if not 1 <= stream_chunk_bytes <= sdp.MAX_STREAM_DATA_BYTES:
            self.sock.close()
            raise ConfigError(f"stream chunks of {stream_chunk_bytes:,} B: give 1..{sdp.MAX_STREAM_DATA_BYTES:,} B")
        self.stream_chunk_bytes = stream_chunk_bytes
        self._seq = int.from_bytes(os.urandom(2), "little")
        self._inflight: dict[int, _Request] = {}  # seq -> a command sent and not answered yet
        self._calls = 0                            # which call of _many a request belongs to
        self._advancing: _Request | None = None    # an ADVANCE begun by start_advance, not finished yet
        self._advanced_to: int | None = None       # ... or the tick a realtime board's start_advance reached
        self._queued: list[tuple[int, np.ndarray, bool]] = []  # host messages not sent yet: (core, words, hold)
        self._inbox: list[tuple[int, np.ndarray]] = []  # the cores' messages an ADVANCE's report brought, not polled yet
        # the last ADVANCE's report while nothing has been sent since (the board is as it said): (brief status or
        # None, messages still queued on the board); None: stale
        self._report: tuple[dict | None, int] | None = None
        self._stream_id = int.from_bytes(os.urandom(2), "little")
        self._host_tick: int | None = None  # realtime board: the tick the host has advanced to
        self._last_wait_s: float | None = None
        self._nonce = b""
        self._closed = False
        self._timing: "BoardTiming | None" = None
        self._overruns_seen: int | None = None
        if take_over is None:
            take_over = os.environ.get(TAKE_ENV, "") == "1"
        self._hello_flags = (sdp.HELLO_CLAIM if claim else 0) | (sdp.HELLO_TAKE_OVER if claim and take_over else 0)
        try:
            self._hello()
        except BaseException:
            self.sock.close()
            raise

    # -- addressing -----------------------------------------------------------------------------------
    def _hello(self) -> None:
        mine = os.urandom(8)
        reply = self._call(sdp.Scp(sdp.CMD_HELLO, 0, self.protocol_version, self._hello_flags, data=mine), nonce=b"")
        if len(reply.data) < 10:
            raise TransportError(f"board at {self.target}: its HELLO reply is too short ({len(reply.data)} B)")
        self._nonce = reply.data[:8] + mine
        self.n_cores = reply.arg2
        per_qpe, n_qpes = struct.unpack_from("<BB", reply.data, 8)
        coords = reply.data[10:10 + 2 * n_qpes]
        try:
            self.board_info = json.loads(reply.data[10 + 2 * n_qpes:] or b"{}")
            if len(coords) != 2 * n_qpes or per_qpe == 0 or not isinstance(self.board_info, dict):
                raise ValueError("bad layout")
        except ValueError:
            raise TransportError(f"board at {self.target}: its HELLO reply does not describe a board "
                                 f"({len(reply.data)} B; is it an s2eprop board of protocol {self.protocol_version}?)") from None
        qpes = [(coords[2 * i], coords[2 * i + 1]) for i in range(n_qpes)]
        self._at = [(*qpes[c // per_qpe], c % per_qpe) for c in range(min(self.n_cores, per_qpe * n_qpes))]

    def _core_at(self, core: int) -> tuple[int, int, int]:
        if not 0 <= core < len(self._at):
            raise TransportError(f"core {core} does not exist on the board at {self.target} ({len(self._at)} cores)")
        return self._at[core]

    # -- requests ---------------------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    def _packed(self, msg: sdp.Scp, nonce: bytes | None) -> tuple[int, bytes, sdp.Scp]:
        msg = sdp.Scp(msg.cmd, self._next_seq(), msg.arg1, msg.arg2, msg.arg3, msg.data,
                      x=msg.x, y=msg.y, cpu=msg.cpu, flags=msg.flags)
        if msg.cmd in sdp.OWN_COMMANDS:
            sdp.sealed(msg)
        raw = sdp.pack(msg, mac_key=self.key, nonce=self._nonce if nonce is None else nonce)
        return msg.seq, raw, msg

    def _call(self, msg: sdp.Scp, nonce: bytes | None = None, timeout_s: float | None = None) -> sdp.Scp:
        return self._many([msg], nonce, timeout_s)[0]

    def _send(self, raw: bytes) -> None:
        """Send one datagram; a port found closed (the board is gone, or not up yet) is a lost datagram: the
        retransmissions and the link patience decide when that is an error."""
        try:
            self.sock.send(raw)
        except ConnectionRefusedError:
            pass

    @staticmethod
    def _kind(m: sdp.Scp) -> tuple[int, int]:
        """Commands whose round trips are alike: an ADVANCE's depends on its ticks, the others' on their cmd."""
        return (m.cmd, m.arg1 if m.cmd == sdp.CMD_ADVANCE else 0)

    def _rto(self, m: sdp.Scp) -> float:
        """The retransmission timeout of a command (RFC 6298: SRTT + max(G, 4 RTTVAR), at least MIN_RTO_S);
        before any round trip of its kind is measured, timeout_s (an ADVANCE: plus 5 ms a tick)."""
        est = self._rtt.get(self._kind(m))
        if est is None:
            return self.timeout_s + (0.005 * m.arg1 if m.cmd == sdp.CMD_ADVANCE else 0.0)
        return max(MIN_RTO_S, est[0] + max(0.001, 4.0 * est[1]))

    def _measured(self, m: sdp.Scp, rtt_s: float) -> None:
        """A round trip of a command answered at its first try (Karn: a retransmitted one says nothing)."""
        est = self._rtt.get(self._kind(m))
        if est is None:
            self._rtt[self._kind(m)] = [rtt_s, rtt_s / 2.0]
        else:
            est[1] = 0.75 * est[1] + 0.25 * abs(est[0] - rtt_s)
            est[0] = 0.875 * est[0] + 0.125 * rtt_s

    def _many(self, msgs: list[sdp.Scp], nonce: bytes | None = None, timeout_s: float | None = None,
              flush: bool = True) -> list[sdp.Scp]:
        """Send msgs with up to `window` in flight; their replies in order. Errors raise TransportError.
        `timeout_s`: a fixed retransmission timeout instead of the measured one. An ADVANCE in flight
        (start_advance) is answered first unless all of msgs are STREAM_ACKs (the board answers those while it
        runs), so that the board still executes every command in the host's order."""
        if self._closed:
            raise TransportError(f"the transport to {self.target} is closed")
        if self._advancing is not None and any(m.cmd != sdp.CMD_STREAM_ACK for m in msgs):
            self.finish_advance(timeout_s)
        if flush and self._queued:
            self.flush(timeout_s)
        self._calls += 1
        call, mine, nxt, answered = self._calls, [], 0, 0
        while nxt < len(msgs) or answered < len(mine):
            while nxt < len(msgs) and len(mine) - answered < self.window:
                mine.append(self._submit(msgs[nxt], call, nxt, nonce, timeout_s))
                nxt += 1
            answered += self._pump(call, timeout_s)
        return [r.reply for r in mine]  # type: ignore[misc]

    def _submit(self, msg: sdp.Scp, call: int, index: int, nonce: bytes | None, timeout_s: float | None) -> _Request:
        seq, raw, m = self._packed(msg, nonce)
        self._report = None  # the board may change from here on
        self._send(raw)
        self.link.sent += 1
        rto = self._rto(m) if timeout_s is None else timeout_s
        req = _Request(call, index, raw, m, time.monotonic(), rto, self.patience_s,
                       self._nonce if nonce is None else nonce)
        self._inflight[seq] = req
        return req

    def _pump(self, call: int, timeout_s: float | None) -> int:
        """Wait for one datagram (or the next retransmission timeout) and file it; retransmit what timed out.
        Returns how many requests of `call` were answered (0 or 1)."""
        now = time.monotonic()
        earliest = min((r.deadline for r in self._inflight.values()), default=now + 0.05)
        self.sock.settimeout(max(0.0005, earliest - now))
        try:
            req = self._take_reply(self.sock.recv(sdp.MAX_DATAGRAM_BYTES + 1))
            return 1 if req is not None and req.call == call else 0
        except socket.timeout:
            pass
        except ConnectionRefusedError:  # nothing listens there (yet): as a lost datagram
            time.sleep(0.05)
        now = time.monotonic()
        for req in self._inflight.values():
            if req.deadline <= now:
                self.link.timeouts += 1
                if now >= req.give_up or (self.retries is not None and req.tries > self.retries):
                    what = sdp.CMD_NAMES.get(req.msg.cmd, str(req.msg.cmd))
                    self._lost()
                    raise TransportError(f"no reply from the board at {self.target} to {what} for "
                                         f"{now - req.first:.1f} s ({req.tries} tries; link patience "
                                         f"{self.patience_s:g} s, --link-patience-s): is `s2eprop serve` "
                                         f"running there" + (", with the same key?" if self.key else "?"))
                self._send(req.raw)
                self.link.sent += 1
                self.link.retransmits += 1
                req.rto = min(2.0 * req.rto, max(MAX_RTO_S, req.rto)) if timeout_s is None else req.rto
                req.deadline, req.tries = min(now + req.rto, req.give_up), req.tries + 1
        return 0

    def _lost(self) -> None:
        """After an error: nothing in flight is waited for any more (the run ends; a later host starts anew)."""
        self._inflight.clear()
        self._advancing = None

    def _take_reply(self, raw: bytes) -> _Request | None:
        """File one datagram from the board under the command it answers (returned). Any bytes may come: what is
        not a well-formed, undamaged reply to a command in flight is counted and dropped, never raised."""
        seq_at = len(sdp.PAD) + sdp.SDP_HEADER.size + 2
        cmd = sdp.peek_cmd(raw)
        seq = struct.unpack_from("<H", raw, seq_at)[0] if len(raw) >= seq_at + 2 else None
        req = self._inflight.get(seq) if seq is not None else None
        if req is None:
            self.link.late_replies += 1 if seq is not None else 0
            self.link.foreign += 1 if seq is None else 0
            return None
        m = req.msg
        has_args = not (m.cmd in (sdp.CMD_READ, sdp.CMD_WRITE) and cmd == sdp.RC_OK)
        try:
            reply = sdp.unpack(raw, self.key, req.nonce, has_args=has_args)
        except sdp.WireError:
            self.link.foreign += 1
            return None
        if m.cmd in sdp.OWN_COMMANDS and (not sdp.crc_ok(raw, self.key is not None)
                                          or (reply.x, reply.y, reply.cpu) != (m.x, m.y, m.cpu)):
            self.link.foreign += 1  # damaged on the way: as if lost (sent again at its timeout)
            return None
        del self._inflight[seq]
        if req.tries == 1:
            self._measured(m, time.monotonic() - req.first)
        if reply.cmd != sdp.RC_OK:
            text = reply.data.decode("utf-8", "replace") if reply.data else ""
            what = sdp.CMD_NAMES.get(m.cmd, str(m.cmd))
            self._lost()
            raise TransportError(f"board at {self.target} refused {what} ({sdp.RC_NAMES.get(reply.cmd, hex(reply.cmd))})"
                                 + (f": {text}" if text else ""))
        req.reply = reply
        return req

    # -- the Transport protocol -------------------------------------------------------------------------
    def _read(self, at: tuple[int, int, int], addr: int, n_bytes: int, timeout_s: float | None) -> bytes:
        step = sdp.MAX_DATA_BYTES
        msgs = [sdp.Scp(sdp.CMD_MEM_READ, 0, addr + i, min(step, n_bytes - i), 0, b"", *at)
                for i in range(0, n_bytes, step)]
        out = b"".join(r.data for r in self._many(msgs, timeout_s=timeout_s))
        if len(out) != n_bytes:
            raise TransportError(f"board at {self.target}: a read of {n_bytes:,} B at 0x{addr:08x} of {at} returned "
                                 f"{len(out):,} B")
        return out

    def write_sram(self, core: int, offset: int, data: bytes | np.ndarray, timeout_s: float | None = None) -> None:
        self._write_stream(self._core_at(core), offset, data, timeout_s)

    def read_sram(self, core: int, offset: int, n_bytes: int, timeout_s: float | None = None) -> bytes:
        return self._read(self._core_at(core), offset, n_bytes, timeout_s)

    def write_sdram(self, addr: int, data: bytes | np.ndarray, timeout_s: float | None = None) -> None:
        self._write_stream(sdp.MONITOR, addr, data, timeout_s)

    def _write_stream(self, at: tuple[int, int, int], addr: int, data: bytes | np.ndarray,
                      timeout_s: float | None) -> None:
        """Memory writes are streamed: chunks without a reply each, then STREAM_ACK says which arrived and
        the missing ones are sent again (input frames: the SDRAM ring is the jitter buffer)."""
        raw = bytes(memoryview(data).cast("B")) if not isinstance(data, bytes) else data
        span = self.stream_chunk_bytes * sdp.MAX_STREAM_CHUNKS
        for base in range(0, len(raw), span):
            self._stream(at, addr + base, raw[base:base + span], timeout_s)

    def post_sdram(self, addr: int, data: bytes | np.ndarray) -> None:
        """Write SDRAM without waiting for an acknowledgement (live input to a realtime board: a chunk lost
        is a frame missing at its tick, counted by the firmware as an input underrun)."""
        raw = bytes(memoryview(data).cast("B")) if not isinstance(data, bytes) else data
        self._stream(sdp.MONITOR, addr, raw, None, acknowledged=False)

    def write_spike_slots(self, addr: int, slots: np.ndarray, n_in: int, posted: bool = False,
                          timeout_s: float | None = None) -> None:
        """Write spike-input ring slots (s2eprop.firmware.messages.spike_slots rows, consecutive from `addr`) as spike
        datagrams: one per step, its active input ids (split when they do not fit one), from which the board
        builds the same slot. Acknowledged (each part answered, sent again until it is), or `posted` for live
        input to a realtime board: a part lost is a step whose slot never completes, which the firmware counts
        as an input underrun."""
        from s2eprop.firmware.messages import spike_slot_ids

        slots = np.asarray(slots, dtype=np.uint32)
        samples, steps, ids = spike_slot_ids(slots, n_in)
        stride = 4 * slots.shape[1]
        msgs = [(addr + i * stride, int(samples[i]), data) for i in range(len(slots))
                for data in sdp.spike_parts(int(steps[i]), n_in, ids[i], self.spike_limit_bytes)]
        self.link.spike_datagrams += len(msgs)
        if not posted:
            replies = self._many([sdp.Scp(sdp.CMD_SPIKES, 0, a, s, 0, d, *sdp.MONITOR) for a, s, d in msgs],
                                 timeout_s=timeout_s)
            self.link.spikes_late += sum(r.arg1 == sdp.SPIKE_REPLY_LATE for r in replies)
            return
        if self._advancing is not None:
            self.finish_advance(timeout_s)
        if self._queued:
            self.flush(timeout_s)
        head = sdp.sdp_header(sdp.FLAGS_NO_REPLY, *sdp.MONITOR)
        self._report = None
        for a1, a2, data in msgs:
            seq = self._next_seq()
            body = sdp.seal_body(head + sdp.SCP_HEADER.pack(sdp.CMD_SPIKES, seq, a1, a2, 0) + data)
            self._send(body + sdp.mac(self.key, self._nonce, body) if self.key is not None else body)
        self.link.sent += len(msgs)
        self.link.spikes_posted += len(msgs)

    def _stream(self, at: tuple[int, int, int], addr: int, raw: bytes, timeout_s: float | None,
                acknowledged: bool = True) -> None:
        """Chunks, then STREAM_ACK until none is missing. While an ADVANCE is in flight only SDRAM streams go
        (the board writes them while it runs); a stream into a core's SRAM first waits for its answer."""
        if self._advancing is not None and at != sdp.MONITOR:
            self.finish_advance(timeout_s)
        if self._queued:
            self.flush(timeout_s)
        step = self.stream_chunk_bytes
        self._report = None
        self._stream_id = (self._stream_id + 1) & 0xFFFF
        sid, n = self._stream_id, -(-len(raw) // step)
        missing = list(range(n))
        head = sdp.sdp_header(sdp.FLAGS_NO_REPLY, *at)
        scp, send, key, nonce, seal = sdp.SCP_HEADER.pack, self._send, self.key, self._nonce, sdp.seal_body
        rounds = 64 if self.retries is None else self.retries + 1  # each round's STREAM_ACK waits with patience
        for attempt in range(rounds):
            for c in missing:  # packed here, not through Scp objects: this is the bulk of every sample's bytes
                chunk, seq, a1, a2 = raw[c * step:(c + 1) * step], self._next_seq(), addr + c * step, sid << 16 | c
                body = seal(head + scp(sdp.CMD_STREAM, seq, a1, a2, 0) + chunk)
                send(body + sdp.mac(key, nonce, body) if key is not None else body)
            self.link.sent += len(missing)
            if attempt:
                self.link.stream_resent += len(missing)
            if self._advancing is not None:
                self.link.stream_during_advance += len(missing)
            if not acknowledged:
                self.link.posted += len(missing)
                return
            bits = np.frombuffer(self._call(sdp.Scp(sdp.CMD_STREAM_ACK, 0, sid, n, 0, b"", *at),
                                            timeout_s=timeout_s).data, dtype=np.uint8)
            have = np.unpackbits(bits, bitorder="little")[:n] if len(bits) else np.zeros(n, dtype=np.uint8)
            missing = [int(c) for c in np.flatnonzero(have == 0)]
            if not missing:
                return
            self.link.stream_lost += len(missing)
        raise TransportError(f"board at {self.target}: {len(missing)} of {n} chunks of an SDRAM write at "
                             f"0x{addr:08x} never arrived after {rounds} rounds")

    def read_sdram(self, addr: int, n_bytes: int, timeout_s: float | None = None) -> bytes:
        return self._read(sdp.MONITOR, addr, n_bytes, timeout_s)

    def load_routes(self, entries: list[RouteEntry], timeout_s: float | None = None) -> None:
        rows = np.zeros((len(entries), sdp.ROUTE_WORDS), dtype="<u4")
        for i, e in enumerate(entries):
            rows[i, 0], rows[i, 1] = e.key, e.mask
            for c in e.cores:
                rows[i, 2 + (c >> 5)] |= 1 << (c & 31)
        per = sdp.MAX_DATA_BYTES // (4 * sdp.ROUTE_WORDS)
        msgs = [sdp.Scp(sdp.CMD_ROUTES, 0, i, len(entries), data=rows[i:i + per].tobytes())
                for i in range(0, len(entries), per)] or [sdp.Scp(sdp.CMD_ROUTES, 0, 0, 0)]
        self._many(msgs[:1], timeout_s=timeout_s)  # chunk 0 starts a new table
        self._many(msgs[1:], timeout_s=timeout_s)

    def start(self, core: int, arena_bytes: int, timeout_s: float | None = None) -> None:
        from s2eprop.host.transport.base import FW_STATUS
        from s2eprop.firmware.abi import abi

        r = self._call(sdp.Scp(sdp.CMD_START, 0, arena_bytes, 0, 0, b"", *self._core_at(core)), timeout_s=timeout_s)
        if r.arg1 != int(abi().FW_RUNNING):
            raise TransportError(f"core {core}: firmware refused its image ({FW_STATUS.get(r.arg1, r.arg1)})")

    def stop(self, core: int, timeout_s: float | None = None) -> None:
        self._call(sdp.Scp(sdp.CMD_STOP, 0, 0, 0, 0, b"", *self._core_at(core)), timeout_s=timeout_s)

    def send(self, core: int, words: np.ndarray, timeout_s: float | None = None, hold: bool = False) -> None:
        """Queued, and sent with the other queued messages (SEND_MANY datagrams, up to `window` in flight) before
        the next command of any other kind: the board still sees every command in the host's order. `hold`: the
        board keeps the message until `sync` delivers all held ones on one tick."""
        self.send_many([(core, words)], timeout_s, hold)

    def send_many(self, messages: list[tuple[int, np.ndarray]], timeout_s: float | None = None,
                  hold: bool = False) -> None:
        """send() of each (core, words), in order: they go up together, as few SEND_MANY datagrams as hold them."""
        for core, words in messages:
            w = np.ascontiguousarray(words, dtype="<u4")
            if 4 * len(w) > sdp.MAX_DATA_BYTES:
                raise TransportError(f"host message of {len(w)} words to core {core}: at most "
                                     f"{sdp.MAX_DATA_BYTES // 4} words a message")
            self._core_at(core)
            self._queued.append((core, w, hold))

    @property
    def starts_together(self) -> bool:
        """Whether the host holds a sample's SAMPLE messages and starts them with one `sync`: on a realtime board,
        whose clock would otherwise run between them (and past a lost one until it is sent again)."""
        return self.realtime

    def sync(self, timeout_s: float | None = None) -> int:
        """Deliver the held host messages (send(hold=True)), each acknowledged before, on one tick of the board
        (SpiNNaker's SYNC signal); returns how many were delivered."""
        return self._call(sdp.Scp(sdp.CMD_SYNC, 0), timeout_s=timeout_s).arg1

    def flush(self, timeout_s: float | None = None) -> None:
        """Send the queued host messages and wait for their acknowledgements."""
        queued, self._queued = self._queued, []
        msgs, at = [], 0
        while at < len(queued):  # a run of messages alike in `hold`, in as few datagrams as hold it
            hold, end = queued[at][2], at
            while end < len(queued) and queued[end][2] == hold:
                end += 1
            run = [(c, w) for c, w, _ in queued[at:end]]
            while run:
                data, n = sdp.pack_messages(run, sdp.MAX_BULK_DATA_BYTES)
                msgs.append(sdp.Scp(sdp.CMD_SEND_MANY, 0, sdp.SEND_HOLD if hold else 0, n, 0, data, *sdp.MONITOR))
                run = run[n:]
            at = end
        if msgs:
            self._many(msgs, timeout_s=timeout_s, flush=False)

    def poll(self, timeout_s: float | None = None) -> list[tuple[int, np.ndarray]]:
        """The cores' messages to the host since the last poll: those the last ADVANCE's report brought, and, unless
        that report said none were left and nothing was sent since, POLL's."""
        out, self._inbox = self._inbox, []
        if self._report is not None and self._report[1] == 0 and not self._queued:
            self.link.reports_used += 1
            return out
        while True:
            r = self._call(sdp.Scp(sdp.CMD_POLL, 0), timeout_s=timeout_s)
            try:
                out.extend((c, np.array(w, dtype=np.uint32)) for c, w in sdp.unpack_messages(r.data, r.arg1))
            except sdp.WireError as exc:
                raise TransportError(f"board at {self.target}: {exc}") from None
            if r.arg2 == 0 or r.arg1 == 0:
                return out

    @property
    def realtime(self) -> bool:
        return self.board_info.get("mode") == "realtime"

    def advance(self, ticks: int, timeout_s: float | None = None) -> int:
        """Functional and timed boards run `ticks` ticks; a realtime board runs on its own, and this waits
        until it has reached the host's tick + `ticks` (the host's lateness is counted: `link`)."""
        if self.realtime:
            if self._advancing is not None:
                self.finish_advance(timeout_s)
            return self._wait_for_tick(ticks, timeout_s)
        if self._advancing is not None:
            self.finish_advance(timeout_s)
        req = self._submit_advance(ticks, timeout_s)
        while req.reply is None:
            self._pump(req.call, timeout_s)
        return self._advanced(req.reply)

    def _submit_advance(self, ticks: int, timeout_s: float | None) -> _Request:
        """Send an ADVANCE of a functional or timed board: the queued host messages go in it when they fit one
        datagram and none is held (else they go first, as SEND_MANYs), and its reply brings the report."""
        if self._closed:
            raise TransportError(f"the transport to {self.target} is closed")
        data, n = b"", 0
        if self._queued and not any(hold for _, _, hold in self._queued) and len(self._queued) <= sdp.ADVANCE_MESSAGES:
            data, n = sdp.pack_messages([(c, w) for c, w, _ in self._queued], sdp.MAX_BULK_DATA_BYTES)
            if n == len(self._queued):
                self._queued = []
                self.link.advance_messages += n
            else:
                data, n = b"", 0
        if self._queued:
            self.flush(timeout_s)
        self._calls += 1
        return self._submit(sdp.Scp(sdp.CMD_ADVANCE, 0, ticks, n | sdp.ADVANCE_REPORT, 0, data), self._calls, 0,
                            None, timeout_s)

    def _advanced(self, reply: sdp.Scp) -> int:
        """File an ADVANCE's report (its messages for poll, its status for status); the board's tick after it."""
        data = reply.data
        try:
            if len(data) < sdp.REPORT_HEAD.size:
                raise ValueError(f"{len(data)} B, shorter than its head")
            n, queued, status_bytes = sdp.REPORT_HEAD.unpack_from(data)
            at = sdp.REPORT_HEAD.size + status_bytes
            if at > len(data):
                raise ValueError(f"a status of {status_bytes:,} B in {len(data)} B")
            status = json.loads(data[sdp.REPORT_HEAD.size:at]) if status_bytes else None
            if status is not None and not isinstance(status, dict):
                raise ValueError("its status is not a JSON object")
            messages = sdp.unpack_messages(data[at:], n, exact=True)
        except (ValueError, sdp.WireError) as exc:
            raise TransportError(f"board at {self.target}: its ADVANCE report is garbled ({exc})") from None
        self._inbox.extend((c, np.array(w, dtype=np.uint32)) for c, w in messages)
        self._report = (status, queued)
        self.link.reports += 1
        return reply.arg1 | reply.arg2 << 32

    def start_advance(self, ticks: int, timeout_s: float | None = None) -> None:
        """Begin `advance(ticks)` and return at once: until finish_advance, SDRAM writes (write_sdram) go up while
        the board runs (they must not touch what the running ticks read); any other command first waits for
        the ADVANCE's answer. A realtime board's advance (a wait for its clock) is done here, whole."""
        if self._advancing is not None or self._advanced_to is not None:
            raise TransportError("start_advance while another ADVANCE is in flight: call finish_advance first")
        if self.realtime:
            self._advanced_to = self.advance(ticks, timeout_s)
            return
        self._advancing = self._submit_advance(ticks, timeout_s)

    def finish_advance(self, timeout_s: float | None = None) -> int:
        """Wait for the ADVANCE begun by start_advance; the board's tick after it."""
        req, tick = self._advancing, self._advanced_to
        self._advanced_to = None
        if req is None:
            if tick is None:
                raise TransportError("finish_advance without start_advance")
            return tick
        while req.reply is None:
            self._pump(req.call, timeout_s)
        self._advancing = None
        return self._advanced(req.reply)

    def _board_tick(self, timeout_s: float | None) -> int:
        r = self._call(sdp.Scp(sdp.CMD_ADVANCE, 0, 0), timeout_s=timeout_s)
        return r.arg1 | r.arg2 << 32

    def _wait_for_tick(self, ticks: int, timeout_s: float | None) -> int:
        tick = self._wait_for(ticks, timeout_s)
        t = time.perf_counter()
        if ticks == 1 and self._last_wait_s is not None:  # a streaming host: one tick at a time
            self.link.host_ticks_waited += 1
            jitter_us = abs(t - self._last_wait_s - float(self.board_info.get("tick_us", 1000)) * 1e-6) * 1e6
            self.link.host_jitter_max_us = max(self.link.host_jitter_max_us, int(jitter_us))
        self._last_wait_s = t
        return tick

    def _wait_for(self, ticks: int, timeout_s: float | None) -> int:
        now = self._board_tick(timeout_s)
        if self._host_tick is None:
            self._host_tick = now
        self._host_tick += ticks
        if now > self._host_tick:  # the board got there first: the host is late, and goes on from there
            self.link.host_late_ticks += 1
            self.link.host_max_lateness_ticks = max(self.link.host_max_lateness_ticks, now - self._host_tick)
            self._host_tick = now
            return now
        tick_s = float(self.board_info.get("tick_us", 1000)) * 1e-6
        while now < self._host_tick:
            time.sleep(max(0.0, (self._host_tick - now) * tick_s - 0.0002))
            now = self._board_tick(timeout_s)
        return now

    def board_status(self, timeout_s: float | None = None, brief: bool = False) -> dict:
        """The board's STATUS (JSON); `brief`: the clock, chip counters and cores in error only (one page)."""
        first = self._call(sdp.Scp(sdp.CMD_STATUS, 0, 0, sdp.STATUS_BRIEF if brief else 0), timeout_s=timeout_s)
        if not 1 <= first.arg2 <= 4096:
            raise TransportError(f"board at {self.target}: its STATUS has {first.arg2:,} pages (1..4,096 expected)")
        pages = [first.data] + [r.data for r in self._many([sdp.Scp(sdp.CMD_STATUS, 0, p) for p in range(1, first.arg2)],
                                                            timeout_s=timeout_s)]
        try:
            st = json.loads(b"".join(pages))
        except ValueError:
            raise TransportError(f"board at {self.target}: its STATUS is not JSON") from None
        if not isinstance(st, dict):
            raise TransportError(f"board at {self.target}: its STATUS is not a JSON object")
        return st

    def status(self, timeout_s: float | None = None) -> TransportStatus:
        """The board's brief status: the last ADVANCE's report's when nothing was sent since, else STATUS's."""
        if self._report is not None and self._report[0] is not None and not self._queued:
            st = self._report[0]
            self.link.reports_used += 1
        else:
            st = self.board_status(timeout_s, brief=True)
        seen = st.get("overruns_seen")
        self._overruns_seen = seen if isinstance(seen, int) else None
        try:
            return TransportStatus(ticks=int(st["ticks"]), packets_delivered=int(st["delivered"]),
                                   packets_dropped=int(st["dropped"]),
                                   last_drop=tuple(st["last_drop"]) if st.get("last_drop") else None,
                                   losses=dict(st.get("losses", {})), core_errors=self._core_errors(st))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TransportError(f"board at {self.target}: its STATUS lacks or garbles {exc}") from None

    @staticmethod
    def _core_errors(st: dict) -> dict[int, str]:
        """The board's cores stopped by a run-time error, each as 'core N (x X, y Y, cpu P): why'."""
        out: dict[int, str] = {}
        errors = st.get("core_errors")
        for core, e in (errors.items() if isinstance(errors, dict) else ()):
            c = int(core) if str(core).isdigit() else -1
            try:
                x, y, p = e["at"]
                out[c] = f"{e['error']} (at x {x}, y {y}, cpu {p})"
            except (TypeError, ValueError, KeyError):
                out[c] = str(e)
        return out

    # -- a timed board's compliance record (docs/protocol.md, TIMING) ---------------------------------
    def timing(self) -> "BoardTiming | None":
        """The board's compliance record when it is timed or realtime (None for a functional board): the same
        TimingRecord an in-process timed chip gives."""
        if self.board_info.get("mode") not in ("timed", "realtime"):
            return None
        if self._timing is None:
            from s2eprop.host.transport.board_timing import BoardTiming

            self._timing = BoardTiming(self)
        return self._timing

    def timing_ctl(self, op: int, arg: int = 0, data: bytes = b"") -> None:
        """Mark the board's next ticks (TIMING_RECORD: keep their records; TIMING_PART: the part they run)."""
        self._call(sdp.Scp(sdp.CMD_TIMING_CTL, 0, op, arg, 0, data))

    def timing_snapshot(self, what: str) -> bytes:
        """One snapshot of the board's compliance record (protocol.TIMING_WHAT), read in pages (up to `window`
        in flight) and checked against the CRC32 the board gave."""
        first = self._call(sdp.Scp(sdp.CMD_TIMING, 0, sdp.TIMING_SNAPSHOT, 0, 0, what.encode("ascii")))
        size, crc, step = first.arg1, first.arg2, sdp.MAX_DATA_BYTES
        if size > 1 << 30:
            raise TransportError(f"board at {self.target}: its TIMING {what!r} is {size:,} B (at most 1 GiB expected)")
        pages = [first.data] + [r.data for r in self._many([sdp.Scp(sdp.CMD_TIMING, 0, sdp.TIMING_PAGE, at)
                                                            for at in range(step, size, step)])]
        blob = b"".join(pages)
        if len(blob) != size or sdp.crc32(blob) != crc:
            raise TransportError(f"board at {self.target}: its TIMING {what!r} came as {len(blob):,} B with CRC32 "
                                 f"0x{sdp.crc32(blob):08x}, announced {size:,} B with 0x{crc:08x}")
        return blob

    def last_overruns_seen(self) -> int | None:
        """The overruns the board had counted at its last STATUS (None: no STATUS yet)."""
        return self._overruns_seen

    def board_report(self) -> dict:
        """report.json `board`: where the board is, its mode, chip file and clock."""
        board = self.board_status().get("board")
        return {"target": self.target, **(board if isinstance(board, dict) else {"mode": self.board_info.get("mode")})}

    def link_stats(self) -> dict[str, dict[str, int]]:
        """The link's counters seen from both ends (report.json `link`)."""
        return {"host": self.link.as_dict(), "board": self.board_status().get("link", {})}

    def close(self) -> None:
        """Flush, end the session (BYE: the board is free for another host at once) and close the socket."""
        if not self._closed:
            try:
                self.flush()
            finally:
                retries, self.retries = self.retries, 2
                try:  # best effort (3 tries of 50 ms): without it the board is free when the lease lapses
                    self._many([sdp.Scp(sdp.CMD_BYE, 0)], timeout_s=0.05, flush=False)
                except TransportError:
                    pass
                finally:
                    self.retries = retries
                self._closed = True
                self.sock.close()
