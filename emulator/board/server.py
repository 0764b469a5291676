"""Emulator layer: the emulated board behind SpiNNaker's host protocol (docs/protocol.md, emulator/board/protocol.py).

One UDP socket, one thread that parses, executes and answers every datagram (or drops and counts it);
none can crash or stall the server. Replies are kept per client and sequence number, so that a
retransmitted command is answered again, not executed twice. In functional and timed modes the
board's clock moves only on ADVANCE; in realtime mode it runs on its own, one tick per millisecond of
wall time, between datagrams.

An ADVANCE that the serving loop receives runs its ticks on a second thread (the C loop lets go of the
GIL), so that the host can upload the next sample's input meanwhile: while it runs, SDRAM stream chunks
and STREAM_ACKs are handled at once (they touch only SDRAM and the stream's bookkeeping; the host writes
there only what the running ticks do not read), and every other datagram waits, in the order it came,
until the run has ended and been answered (as it waited in the socket before). `handle` itself always
runs an ADVANCE to its end before it returns.
"""
from __future__ import annotations

import io
import json
import os
import queue
import select
import socket
import struct
import threading
import time
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from s2eprop.emulator.board import protocol as sdp
from s2eprop.emulator.chip.functional import FunctionalChip
from s2eprop.emulator.chip.description import ChipDescription
from s2eprop.emulator.chip.pacing import Lag
from s2eprop.emulator.errors import EmulatorError
from s2eprop.firmware.routes import RouteEntry
from s2eprop.emulator.board.spike_injector import SpikeInjector

REPLY_CACHE = 1024   # replies kept per client (retransmissions are answered from here)
SEQ_WINDOW = 4096    # a sequence number this far behind the newest is a replay: dropped
MAX_CLIENTS = 256    # sessions kept; the oldest that is not the owner's goes first
LEASE_S = 60.0       # the owner's session lapses after this long without a datagram from it
# a chunk of a stream acknowledged complete less than this long ago is a late copy (stream ids are 16 bits:
# a host posting a stream a tick wraps them in about a minute, so an older id is a new stream)
STREAM_LATE_S = 10.0
MAX_ADVANCE_TICKS = 100_000  # per ADVANCE: the server answers other hosts again within a minute or so


@dataclass
class LinkCounters:
    datagrams: int = 0
    replies: int = 0
    malformed: int = 0        # not SDP/SCP, or a bad length
    bad_mac: int = 0          # unauthenticated (no key, wrong key, another session's nonce)
    stale: int = 0            # sequence number far behind the session's newest: a replay
    stream_chunks: int = 0    # SDRAM stream chunks written
    stream_duplicates: int = 0  # chunks received twice (a retransmission the first copy made needless)
    stream_late: int = 0      # chunks of a stream already acknowledged complete: dropped
    stream_errors: int = 0    # chunks that could not be written (outside memory): STREAM_ACK says why
    stream_reordered: int = 0  # chunks that came after a later chunk of their stream
    stream_during_run: int = 0  # stream chunks and STREAM_ACKs handled while an ADVANCE ran (pipelined input)
    deferred: int = 0         # datagrams that came while an ADVANCE ran and waited for its end
    duplicates: int = 0       # retransmissions answered from the reply cache
    bad_crc: int = 0          # own commands whose CRC32 does not match their data
    errors: int = 0           # commands refused with an error code
    ticks_behind: int = 0     # realtime: ticks run more than 100 ms after their wall-clock time
    spikes_posted: int = 0    # posted spike datagrams (CMD_SPIKES, no reply): each written, duplicate, late or refused
    spikes_parts: int = 0     # spike datagrams (posted or acknowledged) whose ids went into their slot's bitmap
    spikes_steps: int = 0     # input slots completed from spike datagrams (all parts of the step in)
    spikes_duplicates: int = 0  # a part received twice: harmless, not written again
    spikes_late: int = 0      # a part of a step a core has already read its slot for: dropped
    spikes_incomplete: int = 0  # a step's slot taken over by another step before all its parts came
    spikes_errors: int = 0    # spike datagrams refused: malformed, an id >= n_in, a slot outside SDRAM
    stale_messages: int = 0   # messages a core queued for the host before it was started again: dropped
    busy: int = 0             # datagrams refused (or, unanswered ones, dropped) because another host owns the board
    held_dropped: int = 0     # held host messages (SEND_HOLD) not delivered: their core stopped, or their host left
    internal_errors: int = 0  # datagrams whose handling failed inside the server (a bug): dropped (last_internal_error)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Run:
    """An ADVANCE running on the run thread: what its answer needs when it ends."""

    msg: sdp.Scp
    client: "_Client"
    key: tuple[int, int]
    addr: tuple[str, int]
    raw: bytes
    error: BaseException | None = None
    done: bool = False  # set by the run thread as its last act before it wakes the serving loop


@dataclass
class _Client:
    nonce: bytes = b""
    newest: int | None = None
    # (seq, CRC32 of the whole request) -> reply datagram: only a byte-identical repeat is a duplicate, so a
    # request damaged into another command cannot answer for the real one
    replies: OrderedDict = field(default_factory=OrderedDict)
    streams: dict = field(default_factory=dict)                # open stream -> chunks received
    stream_top: dict = field(default_factory=dict)             # open stream -> its highest chunk received
    closed_streams: dict = field(default_factory=dict)         # stream acknowledged complete -> when
    stream_errors: dict = field(default_factory=dict)          # stream -> why a chunk could not be written
    status_pages: list = field(default_factory=list)           # the pages of this session's last STATUS snapshot
    timing_blob: bytes = b""                                   # this session's last TIMING snapshot


class BoardServer:
    def __init__(self, chip: FunctionalChip, desc: ChipDescription, bind: str = "127.0.0.1",
                 port: int = sdp.DEFAULT_PORT, key: bytes | None = None, mode: str = "functional",
                 lease_s: float = LEASE_S) -> None:
        self.chip = chip
        self.desc = desc
        self.key = key
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        try:
            self.sock.bind((bind, port))
        except OSError as exc:
            self.sock.close()
            raise EmulatorError(f"cannot serve on {bind}:{port} ({exc.strerror}): choose another --port or --bind") from None
        self.address = self.sock.getsockname()
        self.link = LinkCounters()
        self._clients: OrderedDict[tuple[str, int], _Client] = OrderedDict()
        self._where = {desc.placement(c): c for c in range(chip.n_cores)}
        self._routes: dict[int, RouteEntry] = {}
        self._routes_total = 0
        self._outbox: list[tuple[int, list[int]]] = []
        self._stop = False
        self._next_tick_s: float | None = None
        self._run: _Run | None = None  # the ADVANCE running on the run thread
        self._runs: queue.SimpleQueue[_Run | None] = queue.SimpleQueue()  # to the run thread (None: end)
        self._runner: threading.Thread | None = None
        self._deferred: deque[tuple[bytes, tuple[str, int]]] = deque()  # datagrams waiting for its end
        self._wake_r, self._wake_w = socket.socketpair()  # the run thread's "done" wakes the serving loop
        self.spikes = SpikeInjector(chip, self.link)
        self.last_internal_error: str | None = None
        # the host that drives the board (docs/protocol.md, Sessions): its address, since when (wall clock), and
        # when it was last heard (monotonic); None: free
        self.lease_s = lease_s
        self._owner: tuple[str, int] | None = None
        self._owner_since = 0.0
        self._owner_seen = 0.0
        self._held: list[tuple[int, np.ndarray]] = []  # host messages held for SYNC: (core, words)
        self.lag = Lag()  # realtime: how late each tick started on the wall clock (report.json timing.realtime_lag)

    # -- the loop -----------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        try:
            while not self._stop:
                self.serve_once(timeout_s=0.2)
        finally:
            if self._runner is not None:  # the run thread ends after the run it has, if any
                self._runs.put(None)
                self._runner.join()
            self.sock.close()
            self._wake_r.close()
            self._wake_w.close()

    def stop(self) -> None:
        self._stop = True

    def serve_once(self, timeout_s: float) -> None:
        """Answer what has arrived within timeout_s (in realtime mode, run the ticks that fall due)."""
        if self.mode == "realtime" and self._next_tick_s is not None:
            now = time.perf_counter()
            tick_s = self.desc.tick_us * 1e-6
            while now >= self._next_tick_s:
                self.lag = self.lag.noted(time.perf_counter() - self._next_tick_s, tick_s)
                self.chip.run(1)
                self._outbox.extend((c, w.tolist()) for c, w in self.chip.take_host_messages())
                self._next_tick_s += tick_s
                if time.perf_counter() - self._next_tick_s > 0.1:  # far behind the wall clock: counted, not caught up
                    self.link.ticks_behind += 1
            timeout_s = max(0.0, min(timeout_s, self._next_tick_s - now))
        ready, _, _ = select.select([self.sock, self._wake_r], [], [], timeout_s)
        if self._wake_r in ready:
            self._wake_r.recv(64)
            self._end_run()
        if self.sock not in ready:
            return
        self.sock.setblocking(False)
        try:
            for _ in range(256):  # a burst, without starving the clock
                try:
                    raw, addr = self.sock.recvfrom(sdp.MAX_DATAGRAM_BYTES + 1)
                except BlockingIOError:
                    break
                self._dispatch(raw, addr)
        finally:
            self.sock.setblocking(True)

    def _dispatch(self, raw: bytes, addr: tuple[str, int]) -> None:
        """Handle one datagram now, or, while an ADVANCE runs, keep it for the run's end (SDRAM stream chunks and
        STREAM_ACKs go at once, unless something that came before them waits)."""
        run = self._run
        if run is not None:
            if raw == run.raw and addr == run.addr:  # a repeat of the running ADVANCE: answered when it ends
                self.link.duplicates += 1
                return
            if self._deferred or not self._during_run_ok(raw):
                self.link.deferred += 1
                self._deferred.append((raw, addr))
                return
            self.link.stream_during_run += 1
        self._answer(self.handle(raw, addr, background=True), addr)

    @staticmethod
    def _during_run_ok(raw: bytes) -> bool:
        """Whether a datagram may be handled while an ADVANCE runs: a STREAM_ACK, or a stream chunk to SDRAM (the
        monitor's address). What it claims is checked by `handle` as always (a damaged one is dropped there)."""
        cmd = sdp.peek_cmd(raw)
        if cmd == sdp.CMD_STREAM_ACK:
            return True
        if cmd != sdp.CMD_STREAM or len(raw) < sdp.HEADER_BYTES:
            return False
        _flags, _tag, dport_cpu, _sport, dy, dx, _sy, _sx = sdp.SDP_HEADER.unpack_from(raw, len(sdp.PAD))
        return (dx, dy, dport_cpu & 31) == sdp.MONITOR

    def _answer(self, reply: bytes | None, addr: tuple[str, int]) -> None:
        if reply is None:
            return
        try:
            self.sock.sendto(reply, addr)
        except BlockingIOError:  # the send buffer is full: the client will ask again
            return
        self.link.replies += 1

    def _run_worker(self) -> None:
        """The run thread: one for the board's life (a thread a sample cost 0.05 ms), running each ADVANCE given."""
        while True:
            run = self._runs.get()
            if run is None:
                return
            try:
                self.chip.run(run.msg.arg1)
            except BaseException as exc:  # noqa: BLE001 - answered as the error it is, in the serving thread
                run.error = exc
            finally:
                run.done = True
                self._wake_w.send(b"!")

    def _start_run(self, run: _Run) -> None:
        if self._runner is None:
            self._runner = threading.Thread(target=self._run_worker, name="s2eprop-board-run", daemon=True)
            self._runner.start()
        self._run = run
        self._runs.put(run)

    def _end_run(self) -> None:
        """The running ADVANCE has ended: answer it (and keep the answer for its repeats), then handle what
        waited for it, in order, until one of them starts a run again."""
        run = self._run
        if run is None or not run.done:
            return
        self._run = None
        msg = run.msg
        if run.error is None:
            reply = self._advanced(msg)
        elif isinstance(run.error, EmulatorError):
            reply = self._error(msg, sdp.RC_ARG, str(run.error))
        else:
            self.link.internal_errors += 1
            self.last_internal_error = f"{type(run.error).__name__}: {run.error}"
            reply = self._error(msg, sdp.RC_ARG, f"{type(run.error).__name__}: {run.error}")
        self._answer(self._remember(run.client, run.key, msg, self._seal(reply, msg, run.client.nonce)), run.addr)
        while self._deferred and self._run is None:
            raw, addr = self._deferred.popleft()
            self._answer(self.handle(raw, addr, background=True), addr)

    # -- one datagram ---------------------------------------------------------------------------------
    def handle(self, raw: bytes, addr: tuple[str, int], background: bool = False) -> bytes | None:
        """The reply to one datagram, or None (dropped and counted; or, with `background`, an ADVANCE started on
        the run thread, answered when it ends). Never raises for bad input."""
        self.link.datagrams += 1
        try:
            return self._handle(raw, addr, background)
        except Exception as exc:  # noqa: BLE001 - a datagram must never take the board down: dropped, counted
            self.link.internal_errors += 1
            self.last_internal_error = f"{type(exc).__name__}: {exc}"
            return None

    def _handle(self, raw: bytes, addr: tuple[str, int], background: bool = False) -> bytes | None:
        client = self._clients.get(addr)
        cmd = sdp.peek_cmd(raw)
        nonce = b"" if cmd == sdp.CMD_HELLO or client is None else client.nonce
        try:
            msg = sdp.unpack(raw, self.key, nonce)
        except sdp.WireError as exc:
            if "MAC" in str(exc):
                self.link.bad_mac += 1
            else:
                self.link.malformed += 1
            return None
        seq = msg.seq
        own = msg.cmd in sdp.OWN_COMMANDS
        if own and not sdp.crc_ok(raw, self.key is not None):  # damaged anywhere: as if lost (sent again)
            self.link.bad_crc += 1
            return None
        now = time.monotonic()
        if self._owner is not None and now - self._owner_seen > self.lease_s:
            self._owner = None  # the owner went silent: its lease lapsed, the board is free
        if addr == self._owner:
            self._owner_seen = now
        if own and msg.cmd != sdp.CMD_HELLO and client is None:
            return self._seal(self._error(msg, sdp.RC_PORT, "no session: this board has not been greeted by this "
                                                            "host (it was restarted?); start the host again, with "
                                                            "--resume to continue a run"), msg, b"")
        busy = self._busy(addr, msg, now)
        if msg.cmd == sdp.CMD_STREAM:
            if busy is not None:
                self.link.busy += 1
                client.stream_errors[msg.arg2 >> 16] = busy
                return None
            self._stream_chunk(msg, client)
            return None
        if msg.cmd == sdp.CMD_SPIKES and msg.flags == sdp.FLAGS_NO_REPLY:  # posted live input: counted, no reply
            if busy is not None:
                self.link.busy += 1
                return None
            self.link.spikes_posted += 1
            try:
                self.spikes.put(msg)
            except Exception as exc:  # noqa: BLE001 - a datagram must never take the board down; it is counted
                self.spikes.refused(exc)
            return None
        key = (seq, zlib.crc32(raw))
        if client is not None and key in client.replies:
            self.link.duplicates += 1
            return client.replies[key]
        if busy is not None:  # another host owns the board: refused, and neither cached nor a session moved
            self.link.busy += 1
            return self._seal(self._error(msg, sdp.RC_PORT, busy), msg, b"" if client is None else client.nonce)
        if msg.cmd == sdp.CMD_HELLO:  # HELLO opens a new session (nonce set in its answer)
            client = self._new_client(addr, b"")
        elif not own:  # SC&MP (VER, READ, WRITE; idempotent, and with no CRC to prove them undamaged): answered,
            # and neither a session, its reply cache nor its sequence window is made or moved by them
            try:
                return self._seal(self._execute(msg, _Client()), msg, b"" if client is None else client.nonce)
            except EmulatorError as exc:
                return self._seal(self._error(msg, sdp.RC_ARG, str(exc)), msg, b"" if client is None else client.nonce)
        if client.newest is not None and ((client.newest - seq) & 0xFFFF) < 0x8000 \
                and ((client.newest - seq) & 0xFFFF) > SEQ_WINDOW:
            self.link.stale += 1
            return None
        if background and msg.cmd == sdp.CMD_ADVANCE and self.mode != "realtime" and 0 < msg.arg1 <= MAX_ADVANCE_TICKS:
            refused = self._deliver(msg, msg.data, msg.arg2 & sdp.ADVANCE_MESSAGES, hold=False, what="ADVANCE")
            if refused is None:
                self._start_run(_Run(msg, client, key, addr, raw))
                return None
            return self._remember(client, key, msg, self._seal(refused, msg, client.nonce))
        try:
            reply = self._execute(msg, client)
        except EmulatorError as exc:
            reply = self._error(msg, sdp.RC_ARG, str(exc))
        except Exception as exc:  # noqa: BLE001 - a datagram must never take the board down; it is answered
            reply = self._error(msg, sdp.RC_ARG, f"{type(exc).__name__}: {exc}")
        out = self._remember(client, key, msg, self._seal(reply, msg, b"" if msg.cmd == sdp.CMD_HELLO else client.nonce))
        if msg.cmd == sdp.CMD_BYE:  # the host is done: its session ends, and the board is free if it owned it
            self._release(addr)
        return out

    @staticmethod
    def _remember(client: _Client, key: tuple[int, int], msg: sdp.Scp, out: bytes) -> bytes:
        """Keep a reply for the repeats of its request, and move the session's sequence window."""
        seq = msg.seq
        client.replies[key] = out
        while len(client.replies) > REPLY_CACHE:
            client.replies.popitem(last=False)
        client.newest = seq if client.newest is None or ((seq - client.newest) & 0xFFFF) < 0x8000 else client.newest
        return out

    def _seal(self, reply: sdp.Scp, msg: sdp.Scp, nonce: bytes) -> bytes:
        """The reply's datagram: CRC-sealed when it answers an own command, with its MAC when keyed."""
        if msg.cmd in sdp.OWN_COMMANDS:
            sdp.sealed(reply)
        return sdp.pack(reply, src=(msg.x, msg.y, msg.cpu), mac_key=self.key, nonce=nonce)

    def _new_client(self, addr: tuple[str, int], nonce: bytes) -> _Client:
        client = _Client(nonce=nonce)
        self._clients.pop(addr, None)
        self._clients[addr] = client
        if len(self._clients) > MAX_CLIENTS:  # the oldest session that is not the owner's
            oldest = next(a for a in self._clients if a != self._owner)
            del self._clients[oldest]
        return client

    def _busy(self, addr: tuple[str, int], msg: sdp.Scp, now: float) -> str | None:
        """Why this datagram is refused because another host owns the board, or None. A driving command (or a
        claiming HELLO) from a host when the board is free makes that host its owner; a plain SC&MP WRITE is
        allowed on a free board only; a HELLO with TAKE_OVER takes the board from its owner."""
        claim = msg.cmd == sdp.CMD_HELLO and msg.arg2 & (sdp.HELLO_CLAIM | sdp.HELLO_TAKE_OVER)
        # an ADVANCE of 0 ticks with nothing in it only asks the tick (a realtime board's host waits with it)
        driving = msg.cmd in sdp.DRIVING_COMMANDS and not (msg.cmd == sdp.CMD_ADVANCE and msg.arg1 == 0
                                                            and msg.arg2 == 0 and not msg.data)
        if not (claim or driving or msg.cmd == sdp.CMD_WRITE) or addr == self._owner:
            return None
        if self._owner is None or (claim and msg.arg2 & sdp.HELLO_TAKE_OVER):
            if claim or driving:
                self._drop_held()  # what the last owner held is no message of this one
                self._owner, self._owner_since, self._owner_seen = addr, time.time(), now
            return None
        host, port = self._owner
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self._owner_since))
        return (f"board busy: owned by {host}:{port} since {since} (last heard {now - self._owner_seen:.1f} s ago); it "
                f"is free when that host ends, or {self.lease_s:g} s after its last datagram; if that host is dead, "
                f"set S2EPROP_TAKE_BOARD=1 to take the board over now")

    def _drop_held(self) -> None:
        self.link.held_dropped += len(self._held)
        self._held = []

    def _release(self, addr: tuple[str, int]) -> None:
        if addr == self._owner:
            self._owner = None
            self._drop_held()
        self._clients.pop(addr, None)

    def owner(self) -> dict[str, Any] | None:
        """The host that owns the board (address, since, last heard), or None when it is free."""
        if self._owner is None or time.monotonic() - self._owner_seen > self.lease_s:
            return None
        return {"host": f"{self._owner[0]}:{self._owner[1]}", "since": round(self._owner_since, 3),
                "idle_s": round(time.monotonic() - self._owner_seen, 3), "lease_s": self.lease_s}

    def _error(self, msg: sdp.Scp, rc: int, text: str) -> sdp.Scp:
        self.link.errors += 1
        data = text.encode("utf-8", "replace")[:sdp.MAX_DATA_BYTES]
        return sdp.Scp(rc, msg.seq, data=data, x=msg.x, y=msg.y, cpu=msg.cpu)

    def _ok(self, msg: sdp.Scp, arg1: int = 0, arg2: int = 0, data: bytes = b"") -> sdp.Scp:
        return sdp.Scp(sdp.RC_OK, msg.seq, arg1, arg2, 0, data, x=msg.x, y=msg.y, cpu=msg.cpu)

    def _core(self, msg: sdp.Scp) -> int | None:
        return self._where.get((msg.x, msg.y, msg.cpu))

    def _execute(self, msg: sdp.Scp, client: _Client) -> sdp.Scp:
        at = (msg.x, msg.y, msg.cpu)
        core = self._core(msg)
        if msg.cmd == sdp.CMD_VER:
            return self._version(msg)
        if msg.cmd == sdp.CMD_IPTAG:  # SC&MP's IP tags: the board sends nothing unasked, so it has none to set
            if msg.arg1 >> 16 == sdp.IPTAG_TTO:
                return self._ok(msg)
            return self._error(msg, sdp.RC_CMD, f"IPTAG operation {msg.arg1 >> 16}: this board has no IP tags (only "
                                                f"the tag timeout, operation {sdp.IPTAG_TTO}, is accepted)")
        if msg.cmd in (sdp.CMD_READ, sdp.CMD_WRITE, sdp.CMD_MEM_READ):
            return self._memory(msg, core, at)
        if msg.cmd == sdp.CMD_HELLO:
            if msg.arg1 != sdp.PROTOCOL_VERSION:
                return self._error(msg, sdp.RC_ARG, f"protocol version {msg.arg1}: this board speaks version "
                                                    f"{sdp.PROTOCOL_VERSION}")
            client.nonce = os.urandom(8) + msg.data[:8]
            qpes = bytes(v for q in self.desc.qpes for v in q)
            info = json.dumps({"mode": self.mode, "chip": self.desc.name, "tick_us": self.desc.tick_us}).encode()
            data = client.nonce[:8] + struct.pack("<BB", self.desc.cores_per_qpe, len(self.desc.qpes)) + qpes + info
            return self._ok(msg, sdp.PROTOCOL_VERSION, self.chip.n_cores, data[:sdp.MAX_DATA_BYTES])
        if msg.cmd == sdp.CMD_ROUTES:
            return self._load_routes(msg)
        if msg.cmd == sdp.CMD_BYE:
            return self._ok(msg)
        if msg.cmd == sdp.CMD_POLL:
            return self._poll(msg)
        if msg.cmd == sdp.CMD_ADVANCE:
            if self.mode != "realtime" and msg.arg1 > MAX_ADVANCE_TICKS:
                return self._error(msg, sdp.RC_ARG, f"ADVANCE of {msg.arg1:,} ticks: at most {MAX_ADVANCE_TICKS:,} "
                                                    f"per command")
            refused = self._deliver(msg, msg.data, msg.arg2 & sdp.ADVANCE_MESSAGES, hold=False, what="ADVANCE")
            if refused is not None:
                return refused
            if self.mode != "realtime":  # a realtime board's clock runs on its own: the answer is where it is now
                self.chip.run(msg.arg1)
            return self._advanced(msg)
        if msg.cmd == sdp.CMD_STATUS:
            return self._status(msg, client)
        if msg.cmd == sdp.CMD_SYNC:
            return self._sync(msg)
        if msg.cmd == sdp.CMD_SEND_MANY:
            return self._send_many(msg)
        if msg.cmd == sdp.CMD_TIMING_CTL:
            return self._timing_ctl(msg)
        if msg.cmd == sdp.CMD_TIMING:
            return self._timing(msg, client)
        if msg.cmd == sdp.CMD_STREAM_ACK:
            return self._stream_ack(msg, client)
        if msg.cmd == sdp.CMD_SPIKES:
            try:
                return self._ok(msg, self.spikes.put(msg))
            except EmulatorError as exc:
                self.spikes.refused(exc)
                raise
        if msg.cmd in (sdp.CMD_START, sdp.CMD_STOP, sdp.CMD_SEND):
            if core is None:
                return self._error(msg, sdp.RC_CPU, f"no core at (x {msg.x}, y {msg.y}, cpu {msg.cpu})")
            if msg.cmd == sdp.CMD_START:
                self._drop_messages_of(core)
                status = self.chip.init_core(core, msg.arg1)
                self.spikes.cores_changed()
                if self.mode == "realtime" and self._next_tick_s is None:
                    self._next_tick_s = time.perf_counter()
                return self._ok(msg, status)
            if msg.cmd == sdp.CMD_STOP:
                self.chip.write_sram(core, self.chip.fw.ffi.offsetof("fw_header_t", "status"), np.zeros(1, np.uint32))
                return self._ok(msg)
            if len(msg.data) % 4:
                return self._error(msg, sdp.RC_LEN, f"a host message is whole 32-bit words, got {len(msg.data)} B")
            stopped = self.chip.core_error(core)
            if stopped is not None:
                return self._error(msg, sdp.RC_CPU, f"core {core} (x {msg.x}, y {msg.y}, cpu {msg.cpu}) is stopped by a "
                                                    f"run-time error: {stopped}; load its image and START it again")
            words = np.frombuffer(msg.data, dtype="<u4")
            if msg.arg1 & sdp.SEND_HOLD:  # delivered by SYNC, with the others held, on one tick
                if len(self._held) >= sdp.MAX_HELD:
                    return self._error(msg, sdp.RC_ARG, f"{len(self._held):,} host messages held already (at most "
                                                        f"{sdp.MAX_HELD:,}): send SYNC to deliver them")
                self._held.append((core, words.copy()))
                return self._ok(msg, len(self._held))
            self.chip.host_send(core, words)
            return self._ok(msg)
        return self._error(msg, sdp.RC_CMD, f"unknown command {msg.cmd}")

    def _stream_chunk(self, msg: sdp.Scp, client: _Client) -> None:
        """One chunk of an SDRAM stream (no reply: STREAM_ACK reports what arrived)."""
        stream, chunk = msg.arg2 >> 16, msg.arg2 & 0xFFFF
        closed = client.closed_streams.get(stream)
        if closed is not None:
            if time.monotonic() - closed < STREAM_LATE_S:  # done: a late copy
                self.link.stream_late += 1
                return
            del client.closed_streams[stream]
        got = client.streams.setdefault(stream, set())
        if chunk in got:
            self.link.stream_duplicates += 1
            return
        core = self._core(msg)
        try:
            if (msg.x, msg.y, msg.cpu) == sdp.MONITOR:
                self.chip.write_sdram(msg.arg1, msg.data)
            elif core is not None:
                self.chip.write_sram(core, msg.arg1, msg.data)
            else:
                raise EmulatorError(f"no core at ({msg.x}, {msg.y}, {msg.cpu})")
        except EmulatorError as exc:
            client.stream_errors[stream] = str(exc)
            self.link.stream_errors += 1  # reported by the stream's STREAM_ACK
            return
        top = client.stream_top.get(stream, -1)
        if chunk < top:
            self.link.stream_reordered += 1
        else:
            client.stream_top[stream] = chunk
        got.add(chunk)
        self.link.stream_chunks += 1
        while len(client.streams) > 16:  # streams a client abandoned
            abandoned = next(iter(client.streams))
            del client.streams[abandoned]
            client.stream_top.pop(abandoned, None)
        while len(client.stream_errors) > 16:
            client.stream_errors.pop(next(iter(client.stream_errors)))

    def _stream_ack(self, msg: sdp.Scp, client: _Client) -> sdp.Scp:
        stream, n = msg.arg1 & 0xFFFF, msg.arg2
        if n > sdp.MAX_STREAM_CHUNKS:
            return self._error(msg, sdp.RC_ARG, f"a stream has at most {sdp.MAX_STREAM_CHUNKS} chunks, got {n}")
        if stream in client.stream_errors:
            return self._error(msg, sdp.RC_ARG, client.stream_errors.pop(stream))
        got = client.streams.get(stream, set())
        bits = np.zeros((n + 7) // 8, dtype=np.uint8)
        for c in got:
            if c < n:
                bits[c >> 3] |= 1 << (c & 7)
        if len(got) >= n:
            client.streams.pop(stream, None)
            client.stream_top.pop(stream, None)
            client.closed_streams[stream] = time.monotonic()
            while len(client.closed_streams) > 4096:
                client.closed_streams.pop(next(iter(client.closed_streams)))
        return self._ok(msg, len(got), n, bits.tobytes())

    def _version(self, msg: sdp.Scp) -> sdp.Scp:
        """VER answers with the board's own chip coordinates, (0, 0), wherever it is addressed: SpiNNMan's
        bring-up sends it to (255, 255), and an answer from (255, 255) means 'not booted' to it. It names SC&MP
        4.0.0 (all that SpiNNMan's bring-up accepts) on SpiNNaker2-emulated-s2eprop-board, and the board's
        protocol version after the version number (docs/protocol.md, SpiNNMan)."""
        p2p = 0
        data = sdp.SCAMP_NAME + b"\x00" + sdp.SCAMP_VERSION + str(sdp.PROTOCOL_VERSION).encode() + b"\x00"
        return sdp.Scp(sdp.RC_OK, msg.seq, (p2p << 16) | (msg.cpu << 8) | msg.cpu,
                       (0xFFFF << 16) | sdp.MAX_DATA_BYTES, int(time.time()) & 0xFFFFFFFF, data,
                       x=msg.x, y=msg.y, cpu=msg.cpu)

    def _memory(self, msg: sdp.Scp, core: int | None, at: tuple[int, int, int]) -> sdp.Scp:
        addr, size = msg.arg1, msg.arg2
        if at != sdp.MONITOR and core is None:
            return self._error(msg, sdp.RC_CPU, f"no core at (x {msg.x}, y {msg.y}, cpu {msg.cpu})")
        if size > sdp.MAX_DATA_BYTES:
            return self._error(msg, sdp.RC_LEN, f"{size} B: at most {sdp.MAX_DATA_BYTES} B per READ or WRITE")
        if msg.cmd == sdp.CMD_WRITE:
            if len(msg.data) != size:
                return self._error(msg, sdp.RC_LEN, f"WRITE of {size} B carries {len(msg.data)} B")
            if at == sdp.MONITOR:
                self.chip.write_sdram(addr, msg.data)
            else:
                self.chip.write_sram(core, addr, msg.data)
            return sdp.Scp(sdp.RC_OK, msg.seq, has_args=False, x=msg.x, y=msg.y, cpu=msg.cpu)
        data = self.chip.read_sdram(addr, size) if at == sdp.MONITOR else self.chip.read_sram(core, addr, size)
        if msg.cmd == sdp.CMD_MEM_READ:
            return self._ok(msg, addr, size, data)
        return sdp.Scp(sdp.RC_OK, msg.seq, data=data, has_args=False, x=msg.x, y=msg.y, cpu=msg.cpu)

    def _load_routes(self, msg: sdp.Scp) -> sdp.Scp:
        first, total = msg.arg1, msg.arg2
        words = len(msg.data) // 4
        if len(msg.data) % (4 * sdp.ROUTE_WORDS) or total > self.desc.router_entries or first + words // sdp.ROUTE_WORDS > total:
            return self._error(msg, sdp.RC_ARG, f"route entries {first}.. of {total}: bad chunk (the router holds "
                                                f"{self.desc.router_entries:,})")
        if first == 0 or total != self._routes_total:
            self._routes, self._routes_total = {}, total
        vals = np.frombuffer(msg.data, dtype="<u4").reshape(-1, sdp.ROUTE_WORDS)
        for i, row in enumerate(vals):
            cores = tuple(c for c in range(self.chip.n_cores) if (int(row[2 + (c >> 5)]) >> (c & 31)) & 1)
            self._routes[first + i] = RouteEntry(int(row[0]), int(row[1]), cores)
        if len(self._routes) == total:
            self.chip.load_routes([self._routes[i] for i in range(total)])
        return self._ok(msg, len(self._routes), total)

    def _advanced(self, msg: sdp.Scp) -> sdp.Scp:
        """The answer to an ADVANCE whose ticks have run: the board's tick and, asked for (ADVANCE_REPORT), the report:
        the brief STATUS and the messages the cores queued for the host, as many as fit (the rest stay for POLL)."""
        self._outbox.extend((c, w.tolist()) for c, w in self.chip.take_host_messages())
        t = self.chip.tick_count
        data = b""
        if msg.arg2 & sdp.ADVANCE_REPORT:
            status = json.dumps(self.status(brief=True), separators=(",", ":")).encode()
            if sdp.REPORT_HEAD.size + len(status) > sdp.MAX_BULK_DATA_BYTES:
                status = b""  # does not fit: the host asks STATUS itself
            room = sdp.MAX_BULK_DATA_BYTES - sdp.REPORT_HEAD.size - len(status)
            packed, n = sdp.pack_messages(self._outbox, room)
            del self._outbox[:n]
            data = sdp.REPORT_HEAD.pack(n, len(self._outbox), len(status)) + status + packed
        return self._ok(msg, t & 0xFFFFFFFF, t >> 32, data)

    def _send_many(self, msg: sdp.Scp) -> sdp.Scp:
        """SEND_MANY: several host messages (one to each core of a sample) in one datagram, all delivered (or all
        held for SYNC, arg1 SEND_HOLD) in their order, or, when one is refused, none."""
        if (msg.x, msg.y, msg.cpu) != sdp.MONITOR:
            return self._error(msg, sdp.RC_CPU, f"SEND_MANY goes to the monitor {sdp.MONITOR}, not (x {msg.x}, "
                                                f"y {msg.y}, cpu {msg.cpu}); its data names each message's core")
        refused = self._deliver(msg, msg.data, msg.arg2, bool(msg.arg1 & sdp.SEND_HOLD), "SEND_MANY")
        return refused if refused is not None else self._ok(msg, msg.arg2, len(self._held))

    def _deliver(self, msg: sdp.Scp, data: bytes, count: int, hold: bool, what: str) -> sdp.Scp | None:
        """Deliver `count` host messages packed in `data` (SEND_MANY's format), in order (or hold them for SYNC), all
        or, when one is refused, none: None, or the error reply that says why."""
        if count == 0 and not data:
            return None
        try:
            messages = sdp.unpack_messages(data, count, exact=True)
        except sdp.WireError as exc:
            return self._error(msg, sdp.RC_LEN, f"{what} of {count} messages: {exc}")
        for core, _words in messages:
            if not 0 <= core < self.chip.n_cores:
                return self._error(msg, sdp.RC_CPU, f"{what} to core {core}: the board has cores "
                                                    f"0..{self.chip.n_cores - 1}; nothing delivered")
            stopped = self.chip.core_error(core)
            if stopped is not None:
                return self._error(msg, sdp.RC_CPU, f"core {core} is stopped by a run-time error: {stopped}; load "
                                                    f"its image and START it again (nothing of this {what} delivered)")
        if hold and len(self._held) + len(messages) > sdp.MAX_HELD:
            return self._error(msg, sdp.RC_ARG, f"{len(self._held):,} host messages held already and {len(messages)} "
                                                f"more (at most {sdp.MAX_HELD:,}): send SYNC to deliver them")
        for i, (core, words) in enumerate(messages):
            if hold:
                self._held.append((core, np.array(words, dtype=np.uint32)))
                continue
            try:
                self.chip.host_send(core, np.array(words, dtype=np.uint32))
            except EmulatorError as exc:  # a message before it stopped this core: the reply says how far it got
                return self._error(msg, sdp.RC_CPU, f"{what} message {i} of {len(messages)} (to core {core}): "
                                                    f"{exc}; the {i} before it were delivered, none after")
        return None

    def _sync(self, msg: sdp.Scp) -> sdp.Scp:
        """Deliver the held host messages, all now: no tick runs between them, so they reach their cores on one
        tick. One whose core stopped with a run-time error meanwhile is dropped and counted (`held_dropped`)."""
        held, self._held = self._held, []
        sent = 0
        for core, words in held:
            if self.chip.core_error(core) is not None:
                self.link.held_dropped += 1
                continue
            self.chip.host_send(core, words)
            sent += 1
        return self._ok(msg, sent, self.chip.tick_count & 0xFFFFFFFF)

    # -- the timed chip's compliance record (TIMING_CTL, TIMING) -------------------------------------
    def _timed(self) -> Any:
        """The timed chip behind the board; EmulatorError (RC_ARG) on a functional board."""
        if not hasattr(self.chip, "compliance"):
            raise EmulatorError(f"this board is {self.mode}: it keeps no timing record; serve it with "
                                f"--mode timed or realtime for one")
        return self.chip

    def _timing_ctl(self, msg: sdp.Scp) -> sdp.Scp:
        chip = self._timed()
        if msg.arg1 == sdp.TIMING_RECORD:
            chip.record(bool(msg.arg2))
        elif msg.arg1 == sdp.TIMING_PART:
            chip.set_part(msg.data.decode("ascii", "replace"))
        else:
            return self._error(msg, sdp.RC_ARG, f"TIMING_CTL op {msg.arg1}: 0 (record) or 1 (part)")
        return self._ok(msg, chip.tick_count & 0xFFFFFFFF)

    def timing_snapshot(self, what: str) -> bytes:
        """The bytes of one TIMING snapshot (protocol.TIMING_WHAT): what the in-process TimingRecord answers."""
        chip = self._timed()
        kind, _, part = what.partition(" ")
        part = part or "train"
        if kind == "summary":
            summary = chip.compliance.summary(chip.timing_arrays(part), 0, self.mode, self.lag, part)
            return json.dumps(summary, default=str).encode()
        if kind == "arrays":
            return _npz(**chip.timing_arrays(part))
        if kind == "window":
            return _npz(window=chip.compliance.window())
        if kind == "npz":
            return chip.timing_npz()
        if kind == "state":
            c = chip.compliance
            return json.dumps({"budget_cycles": c.budget_cycles, "overruns_seen": c.overruns_seen,
                               "mode": self.mode}).encode()
        raise EmulatorError(f"TIMING snapshot {what!r}: one of {', '.join(sdp.TIMING_WHAT)} (summary and arrays "
                            f"with a part: train or inference)")

    def _timing(self, msg: sdp.Scp, client: _Client) -> sdp.Scp:
        """A snapshot of the compliance record (op TIMING_SNAPSHOT: its size, CRC and first page), or a page of
        this session's last one (TIMING_PAGE, arg2 its byte offset)."""
        step = sdp.MAX_DATA_BYTES
        if msg.arg1 == sdp.TIMING_SNAPSHOT:
            client.timing_blob = self.timing_snapshot(msg.data.decode("ascii", "replace"))
            blob = client.timing_blob
            return self._ok(msg, len(blob), sdp.crc32(blob), blob[:step])
        if msg.arg1 == sdp.TIMING_PAGE:
            blob, at = client.timing_blob, msg.arg2
            if at >= len(blob) or at % step:
                return self._error(msg, sdp.RC_ARG, f"TIMING page at byte {at:,}: the snapshot has {len(blob):,} B "
                                                    f"in pages of {step} B (take a snapshot first)")
            return self._ok(msg, at, len(blob), blob[at:at + step])
        return self._error(msg, sdp.RC_ARG, f"TIMING op {msg.arg1}: 0 (snapshot) or 1 (page)")

    def _drop_messages_of(self, core: int) -> None:
        """A core started again: what it queued for the host before (a host killed mid-sample never polled
        it) belongs to no run now, and would reach the new host as messages of no sample: dropped, counted."""
        self._outbox.extend((c, w.tolist()) for c, w in self.chip.take_host_messages())
        kept = [(c, w) for c, w in self._outbox if c != core]
        self.link.stale_messages += len(self._outbox) - len(kept)
        self._outbox = kept

    def _poll(self, msg: sdp.Scp) -> sdp.Scp:
        self._outbox.extend((c, w.tolist()) for c, w in self.chip.take_host_messages())
        data, n = sdp.pack_messages(self._outbox, sdp.MAX_BULK_DATA_BYTES)
        del self._outbox[:n]
        return self._ok(msg, n, len(self._outbox), data)

    def status(self, brief: bool = False) -> dict[str, Any]:
        """The board's status (STATUS); `brief`: only the clock, the chip's counters and the cores in error (what a
        host checks after every sample; it fits one page)."""
        st = self.chip.stats()
        losses = {"queue_overflows": st.queue_overflows, "dma_faults": st.dma_faults}
        if hasattr(self.chip, "compliance"):
            losses["rx_queue_overflows"] = st.rx_queue_overflows
        # cores stopped by a run-time error (their memory was written into an invalid state): SpiNNaker's RTE
        core_errors = {str(c): {"at": list(self.desc.placement(c)), "error": why}
                       for c, why in self.chip.core_errors().items()}
        timed = {"overruns_seen": int(self.chip.compliance.overruns_seen)} if hasattr(self.chip, "compliance") else {}
        if brief:
            return {"ticks": self.chip.tick_count, "delivered": st.delivered, "dropped": st.dropped,
                    "last_drop": list(st.last_drop) if st.last_drop else None, "losses": losses,
                    "core_errors": core_errors, **timed}
        return {"ticks": self.chip.tick_count, "delivered": st.delivered, "dropped": st.dropped,
                "last_drop": list(st.last_drop) if st.last_drop else None, "losses": losses,
                "link": self.link.as_dict(), "mode": self.mode, "cores": self.chip.n_cores,
                "last_spike_error": self.spikes.last_error, "core_errors": core_errors,
                "last_internal_error": self.last_internal_error, "owner": self.owner(), **timed,
                "board": {"mode": self.mode, "chip": self.desc.name, "chip_file": str(self.desc.path),
                          "clock_hz": self.desc.clock_hz, "tick_us": self.desc.tick_us}}

    def _status(self, msg: sdp.Scp, client: _Client) -> sdp.Scp:
        """A page of the session's STATUS snapshot (each session its own: another's page 0 does not move it)."""
        if msg.arg1 == 0 or not client.status_pages:  # page 0 takes a new snapshot (arg2 bit 0: a brief one)
            text = json.dumps(self.status(brief=bool(msg.arg2 & sdp.STATUS_BRIEF)), separators=(",", ":")).encode()
            step = sdp.MAX_DATA_BYTES
            client.status_pages = [text[i:i + step] for i in range(0, len(text), step)] or [b""]
        page = msg.arg1
        if page >= len(client.status_pages):
            return self._error(msg, sdp.RC_ARG, f"status page {page} of {len(client.status_pages)}")
        return self._ok(msg, page, len(client.status_pages), client.status_pages[page])


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()
