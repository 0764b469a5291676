"""Emulator layer: the board's wire format (docs/protocol.md), written once for the board server and the
host's UDP transport: SpiNNaker's SDP framing carrying SCP, the SC&MP commands VER, READ and WRITE,
our own commands for what SpiNNaker has none for (spike input as EIEIO-style lists of input ids among
them), and the optional HMAC-SHA256 trailer.

Datagram: 2 padding bytes | SDP header (8 B: flags, tag, dest port<<5|cpu, src port<<5|cpu, dest y,
dest x, src y, src x) | SCP (cmd u16, seq u16, arg1..arg3 u32; little-endian) | data (<= 256 B; a SEND_MANY, an
ADVANCE or a reply <= 1,024 B, a STREAM chunk <= 60 KiB)
[| HMAC-SHA256 (32 B) when the board has a key]. A reply carries the result code (RC_*) in the cmd
field and the request's sequence number.
"""
from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from dataclasses import dataclass

import numpy as np

# 2: the CRC of own commands covers the whole datagram; HELLO flags, BYE. 3: TIMING_CTL and TIMING (a timed
# board's compliance record on request), SYNC (held host messages start together). 4: STREAM chunks and POLL
# replies carry up to MAX_BULK_DATA_BYTES (fewer datagrams a sample). 5: SEND_MANY (a sample's host messages, one
# to each core, in one datagram). 6: STREAM chunks of up to MAX_STREAM_DATA_BYTES (the host sends 1,024 B over a
# network, larger ones on loopback); ADVANCE carries the host messages that go before its ticks, and its reply the
# cores' messages and the brief status after them (ADVANCE_REPORT): one round trip a sample
PROTOCOL_VERSION = 6
DEFAULT_PORT = 17893
MAX_DATA_BYTES = 256  # SDP's (SC&MP READ / WRITE), and every datagram's but the bulk ones below
# the data of a STREAM chunk and of a POLL reply: SpiNNaker's SDP stops at 256 B, this board takes more, as
# much as one Ethernet frame holds with the headers and the MAC (26 + 1,024 + 32 B, plus 28 of IPv4 and UDP)
MAX_BULK_DATA_BYTES = 1024
PAD = b"\x00\x00"
SDP_HEADER = struct.Struct("<8B")
SCP_HEADER = struct.Struct("<HHIII")
HEADER_BYTES = len(PAD) + SDP_HEADER.size + SCP_HEADER.size  # 2 + 8 + 16
MAC_BYTES = 32
# the data of a STREAM chunk the board takes: what one datagram holds on loopback (IPv4's 65,507 B of UDP payload,
# less headers and MAC), where no Ethernet frame limits it; a host sends MAX_BULK_DATA_BYTES over a network
MAX_STREAM_DATA_BYTES = 60 * 1024
MAX_DATAGRAM_BYTES = HEADER_BYTES + MAX_STREAM_DATA_BYTES + MAC_BYTES  # what a receive buffer must hold
FLAGS_REPLY_EXPECTED = 0x87
FLAGS_NO_REPLY = 0x07
SDP_PORT_SCP = 0  # SDP port 0 of a core: SCP (SC&MP's own)

# SC&MP commands we speak as SC&MP does (SpiNNMan scp_command.py)
CMD_VER, CMD_READ, CMD_WRITE = 0, 2, 3
CMD_IPTAG = 26          # only its "set the tag timeout" operation (SpiNNMan's bring-up sends it), answered RC_OK
IPTAG_TTO = 4           # the IPTAG operation (arg1 >> 16) that sets the timeout
# VER's answer (SpiNNMan VersionInfo, "name/hardware\0version\0" with version number 0xFFFF in arg2's high half):
# SpiNNMan's bring-up accepts only SC&MP 4.x; the hardware and the version's tail say what this board is
SCAMP_NAME = b"SC&MP/SpiNNaker2-emulated-s2eprop-board"
SCAMP_VERSION = b"4.0.0-s2eprop-protocol-"  # then PROTOCOL_VERSION
# our own (0x40..): arg3 of a request and of its reply is the CRC32 of the whole datagram (datagram_crc)
CMD_HELLO = 0x40       # arg1 protocol version, data: client nonce (8 B) -> reply data: server nonce (8 B)
CMD_ROUTES = 0x41      # arg1 first entry, arg2 total entries; data: entries (key, mask, dest[5]) u32
CMD_START = 0x42       # to a core; arg1 arena bytes -> reply arg1 the firmware's status word
CMD_STOP = 0x43        # to a core
CMD_SEND = 0x44        # to a core; data: a host message (u32 words)
CMD_POLL = 0x45        # -> reply arg1 messages in data, arg2 still queued; data: [core, n, words] ...
CMD_ADVANCE = 0x46     # arg1 ticks; arg2 bits 0-15: host messages in data (SEND_MANY's format and rules: all
                       # delivered before the ticks run, or, one refused, none and no tick), bit 16 ADVANCE_REPORT
                       # -> reply arg1/arg2 the board's tick (low/high); with ADVANCE_REPORT, data: REPORT_HEAD
                       # (messages in it, messages still queued, status bytes), the brief STATUS JSON, the messages
CMD_STATUS = 0x47      # arg1 page -> reply arg1 page, arg2 pages; data: JSON (ticks, packets, losses, link)
CMD_STREAM = 0x48      # no reply (flags 0x07): arg1 SDRAM address, arg2 stream << 16 | chunk; data: bytes
CMD_STREAM_ACK = 0x49  # arg1 stream, arg2 chunks -> reply data: bitmap of the chunks the board holds
CMD_MEM_READ = 0x4A    # as READ (arg1 address, arg2 bytes; a core's SRAM, or SDRAM at the monitor), CRC-sealed
CMD_SPIKES = 0x4B      # one step's input spikes (or a part of them): arg1 the slot's SDRAM address, arg2 sample id;
                       # data: SPIKES_HEAD, then an EIEIO data message of 16- or 32-bit keys (the input ids)
CMD_BYE = 0x4C        # ends the session; the board is no longer owned by this host
CMD_TIMING_CTL = 0x4D  # a timed board's compliance record: arg1 TIMING_RECORD (arg2 1: keep the next ticks'
                       # records, 0: stop) or TIMING_PART (data: the part the next ticks run, "train" or "inference")
CMD_TIMING = 0x4E      # arg1 TIMING_SNAPSHOT (data: what, TIMING_WHAT) -> reply arg1 bytes, arg2 their CRC32, data
                       # the first page; arg1 TIMING_PAGE, arg2 byte offset -> data: that page of the snapshot
CMD_SYNC = 0x4F        # delivers every held host message (SEND with SEND_HOLD) at once, on one tick -> reply arg1
                       # messages delivered, arg2 the board's tick (low word)
CMD_SEND_MANY = 0x50   # to the monitor; arg1 bit 0 SEND_HOLD (every message), arg2 messages; data: [core, n, words]
                       # ... (POLL's format, <= MAX_BULK_DATA_BYTES) -> reply arg1 messages taken, arg2 held now.
                       # All or none: one refused (no such core, a stopped one, too many held) delivers none
CMD_NAMES = {CMD_VER: "VER", CMD_IPTAG: "IPTAG", CMD_READ: "READ", CMD_WRITE: "WRITE", CMD_HELLO: "HELLO", CMD_ROUTES: "ROUTES",
             CMD_START: "START", CMD_STOP: "STOP", CMD_SEND: "SEND", CMD_POLL: "POLL", CMD_ADVANCE: "ADVANCE",
             CMD_STATUS: "STATUS", CMD_STREAM: "STREAM", CMD_STREAM_ACK: "STREAM_ACK", CMD_MEM_READ: "MEM_READ",
             CMD_SPIKES: "SPIKES", CMD_BYE: "BYE", CMD_TIMING_CTL: "TIMING_CTL", CMD_TIMING: "TIMING",
             CMD_SYNC: "SYNC", CMD_SEND_MANY: "SEND_MANY"}
MAX_STREAM_CHUNKS = 8 * MAX_DATA_BYTES  # chunks one STREAM_ACK bitmap (a reply's 256 B) can report
OWN_COMMANDS = frozenset(c for c in CMD_NAMES if c >= CMD_HELLO)
# HELLO arg2: what the host means to do. A host that drives the board (loads, starts, sends, advances) claims
# it; one that only looks (board status) does not. TAKE_OVER claims a board another host owns (that host died).
HELLO_CLAIM, HELLO_TAKE_OVER = 1, 2
# STATUS arg2: flags of page 0's snapshot. BRIEF: only ticks, delivered, dropped, last_drop, losses and core_errors
# (what a host checks after every sample: one page instead of several; a board that predates it sends all)
STATUS_BRIEF = 1
# commands that change the board: only its owner may send them (the first to send one to a free board owns it)
DRIVING_COMMANDS = frozenset((CMD_ROUTES, CMD_START, CMD_STOP, CMD_SEND, CMD_POLL, CMD_ADVANCE, CMD_STREAM,
                              CMD_STREAM_ACK, CMD_SPIKES, CMD_TIMING_CTL, CMD_SYNC, CMD_SEND_MANY))
# ADVANCE arg2: the count of host messages its data carries (ADVANCE_MESSAGES bits), and ADVANCE_REPORT: answer with
# what the cores queued for the host (as a POLL) and the brief STATUS after the ticks (a host's per-sample check)
ADVANCE_MESSAGES = 0xFFFF
ADVANCE_REPORT = 1 << 16
REPORT_HEAD = struct.Struct("<III")  # messages in the report, messages still queued on the board, status JSON bytes
# SEND arg1 bit 0: hold the message on the board until SYNC (SpiNNaker's SYNC0 barrier: the cores of one sample
# start on one tick of a realtime board, a lost and resent SEND included); at most MAX_HELD held at a time
SEND_HOLD = 1
MAX_HELD = 4096
# TIMING_CTL and TIMING ops (arg1)
TIMING_RECORD, TIMING_PART = 0, 1
TIMING_SNAPSHOT, TIMING_PAGE = 0, 1
# what a TIMING snapshot holds (its data names one, and the part where it has one): "summary PART" (report.json
# `timing` as JSON, late_packets 0: the host counts those), "arrays PART" (the part's per-core arrays, .npz),
# "window" (the training tick records kept, .npz of one structured array `window`), "npz" (timing.npz itself),
# "state" (JSON: budget_cycles, overruns_seen, mode)
TIMING_WHAT = ("summary", "arrays", "window", "npz", "state")

# result codes (SpiNNMan scp_result.py)
RC_OK, RC_LEN, RC_SUM, RC_CMD, RC_ARG, RC_PORT, RC_TIMEOUT, RC_ROUTE, RC_CPU = range(0x80, 0x89)
RC_NAMES = {RC_OK: "RC_OK", RC_LEN: "RC_LEN", RC_SUM: "RC_SUM", RC_CMD: "RC_CMD", RC_ARG: "RC_ARG",
            RC_PORT: "RC_PORT", RC_TIMEOUT: "RC_TIMEOUT", RC_ROUTE: "RC_ROUTE", RC_CPU: "RC_CPU"}
# READ / WRITE access type (arg3): byte, short, word
TYPE_BYTE, TYPE_SHORT, TYPE_WORD = 0, 1, 2
MONITOR = (0, 0, 0)  # (x, y, cpu) of the board's monitor: VER, SDRAM reads and writes
ROUTE_WORDS = 7      # key, mask, 5 words of destination bits


# CMD_SPIKES data: step u32, n_in u32, part u16, parts u16, then SpiNNaker's EIEIO data header (count u8, flags
# u8: no key prefix, no payload base, not timed, tag 0; bits 3:2 the type, KEY_16_BIT or KEY_32_BIT) and the keys
SPIKES_HEAD = struct.Struct("<IIHHBB")
EIEIO_KEY_16_BIT, EIEIO_KEY_32_BIT = 0, 2  # SpiNNMan EIEIOType
MAX_SPIKE_INPUTS = 1 << 18  # n_in of a spike datagram: a 32 KiB bitmap slot (a core fetches two into its SRAM)
SPIKE_REPLY_WRITTEN, SPIKE_REPLY_DUPLICATE, SPIKE_REPLY_LATE = 0, 1, 2  # arg1 of an acknowledged part's reply


class WireError(ValueError):
    """A datagram that is not one of ours: too short, too long, a bad MAC."""


@dataclass(slots=True)
class Scp:
    """One SCP message: a request (cmd = CMD_*) or a reply (cmd = RC_*), addressed to (x, y, cpu)."""

    cmd: int
    seq: int
    arg1: int = 0
    arg2: int = 0
    arg3: int = 0
    data: bytes = b""
    x: int = 0
    y: int = 0
    cpu: int = 0
    flags: int = FLAGS_REPLY_EXPECTED
    has_args: bool = True  # SC&MP's READ reply carries data right after cmd and seq
    seal: bool = False     # an own command or its reply: arg3 is the datagram's CRC32 (datagram_crc)


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


ARG3_AT = len(PAD) + SDP_HEADER.size + 12  # byte offset of arg3 in a datagram (where an own command's CRC goes)


def datagram_crc(body: bytes) -> int:
    """CRC32 of every byte of a datagram (its MAC trailer excepted) with arg3, where the CRC travels, taken as
    zero: padding, SDP header (flags, tag, ports, x and y of both ends), cmd, seq, args and data. SCP has no
    checksum of its own; this makes a datagram damaged anywhere a lost one."""
    return zlib.crc32(body[ARG3_AT + 4:], zlib.crc32(b"\0\0\0\0", zlib.crc32(body[:ARG3_AT]))) & 0xFFFFFFFF


def seal_body(body: bytes) -> bytes:
    """`body` (packed with arg3 = 0) with its datagram_crc in arg3."""
    return body[:ARG3_AT] + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF) + body[ARG3_AT + 4:]


def crc_ok(raw: bytes, has_mac: bool) -> bool:
    """Whether an own command's (or its reply's) datagram carries its datagram_crc in arg3."""
    body = raw[:-MAC_BYTES] if has_mac else raw
    if len(body) < HEADER_BYTES:
        return False
    return struct.unpack_from("<I", body, ARG3_AT)[0] == datagram_crc(body)


def sealed(msg: "Scp") -> "Scp":
    """msg, marked to travel with its datagram_crc in arg3 (`pack` puts it there)."""
    msg.seal = True
    return msg


def max_data_bytes(cmd: int) -> int:
    """The most data a datagram with this cmd field carries: MAX_STREAM_DATA_BYTES for a STREAM chunk,
    MAX_BULK_DATA_BYTES for a SEND_MANY, an ADVANCE (its host messages) and a reply (a POLL's, an ADVANCE's report),
    MAX_DATA_BYTES (SDP's) for every other request."""
    if cmd == CMD_STREAM:
        return MAX_STREAM_DATA_BYTES
    return MAX_BULK_DATA_BYTES if cmd in (CMD_SEND_MANY, CMD_ADVANCE) or RC_OK <= cmd <= RC_CPU else MAX_DATA_BYTES


def pack(msg: Scp, src: tuple[int, int, int] = (0, 0, 0), mac_key: bytes | None = None, nonce: bytes = b"") -> bytes:
    """The datagram of msg (with its HMAC trailer when mac_key is given)."""
    if len(msg.data) > max_data_bytes(msg.cmd):
        raise WireError(f"SCP data of {len(msg.data)} B: at most {max_data_bytes(msg.cmd)} B fit a datagram")
    head = sdp_header(msg.flags, msg.x, msg.y, msg.cpu, src)
    if msg.has_args:
        scp = SCP_HEADER.pack(msg.cmd & 0xFFFF, msg.seq & 0xFFFF, msg.arg1 & 0xFFFFFFFF, msg.arg2 & 0xFFFFFFFF,
                              msg.arg3 & 0xFFFFFFFF)
    else:
        scp = struct.pack("<HH", msg.cmd & 0xFFFF, msg.seq & 0xFFFF)
    out = head + scp + msg.data
    if msg.seal:
        if not msg.has_args:
            raise WireError("a sealed datagram carries its CRC in arg3: it needs the args")
        out = seal_body(out[:ARG3_AT] + b"\0\0\0\0" + out[ARG3_AT + 4:])
        msg.arg3 = struct.unpack_from("<I", out, ARG3_AT)[0]
    if mac_key is not None:
        out += mac(mac_key, nonce, out)
    return out


def sdp_header(flags: int, x: int, y: int, cpu: int, src: tuple[int, int, int] = (0, 0, 0)) -> bytes:
    """The padding and SDP header `pack` writes (for senders of many datagrams to one place)."""
    sx, sy, scpu = src
    return PAD + SDP_HEADER.pack(flags, 0xFF, (SDP_PORT_SCP << 5) | (cpu & 31), (7 << 5) | (scpu & 31), y & 0xFF,
                                 x & 0xFF, sy & 0xFF, sx & 0xFF)


def mac(key: bytes, nonce: bytes, body: bytes) -> bytes:
    return hmac.new(key, nonce + body, hashlib.sha256).digest()


def unpack(raw: bytes, mac_key: bytes | None = None, nonce: bytes = b"", has_args: bool = True) -> Scp:
    """The SCP message of a datagram; WireError when it is not a well-formed one (or its MAC is wrong)."""
    if mac_key is not None:
        if len(raw) < MAC_BYTES:
            raise WireError("shorter than its MAC")
        raw, got = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if not hmac.compare_digest(got, mac(mac_key, nonce, raw)):
            raise WireError("bad MAC")
    short = len(PAD) + SDP_HEADER.size + 4
    if len(raw) < (HEADER_BYTES if has_args else short):
        raise WireError(f"{len(raw)} B: shorter than the SDP and SCP headers")
    flags, _tag, dport_cpu, _sport_cpu, dy, dx, _sy, _sx = SDP_HEADER.unpack_from(raw, len(PAD))
    at = len(PAD) + SDP_HEADER.size
    if has_args:
        cmd, seq, a1, a2, a3 = SCP_HEADER.unpack_from(raw, at)
        data = raw[at + SCP_HEADER.size:]
    else:
        cmd, seq = struct.unpack_from("<HH", raw, at)
        a1 = a2 = a3 = 0
        data = raw[at + 4:]
    if len(data) > max_data_bytes(cmd):
        raise WireError(f"{len(data)} B of data: at most {max_data_bytes(cmd)} B")
    return Scp(cmd, seq, a1, a2, a3, bytes(data), x=dx, y=dy, cpu=dport_cpu & 31, flags=flags, has_args=has_args)


def peek_cmd(raw: bytes) -> int | None:
    """The cmd field of a datagram, or None when it is too short to have one."""
    at = len(PAD) + SDP_HEADER.size
    return struct.unpack_from("<H", raw, at)[0] if len(raw) >= at + 2 else None


def pack_messages(messages: "list[tuple[int, list[int] | np.ndarray]]", limit: int = MAX_DATA_BYTES) -> tuple[bytes, int]:
    """As many (core, words) messages as fit `limit` bytes, from the first on: [core, n_words, words...] u32 each
    (a POLL reply's data, a SEND_MANY's); returns the bytes and how many messages went in."""
    out, n = bytearray(), 0
    for core, words in messages:
        if isinstance(words, np.ndarray):
            body = struct.pack("<2I", core, len(words)) + np.ascontiguousarray(words, dtype="<u4").tobytes()
        else:
            body = struct.pack(f"<2I{len(words)}I", core, len(words), *words)
        if len(out) + len(body) > limit:
            break
        out += body
        n += 1
    return bytes(out), n


def unpack_messages(data: bytes, count: int, exact: bool = False) -> list[tuple[int, list[int]]]:
    """The `count` messages of pack_messages' data; `exact`: and no byte after them (a SEND_MANY's)."""
    out, at = [], 0
    for _ in range(count):
        if at + 8 > len(data):
            raise WireError(f"{len(data)} B of data: shorter than its {count} messages")
        core, n = struct.unpack_from("<2I", data, at)
        if at + 8 + 4 * n > len(data):
            raise WireError(f"{len(data)} B of data: shorter than its {count} messages")
        out.append((core, list(struct.unpack_from(f"<{n}I", data, at + 8))))
        at += 8 + 4 * n
    if exact and at != len(data):
        raise WireError(f"{len(data)} B of data: {len(data) - at} B more than its {count} messages")
    return out


@dataclass(frozen=True, slots=True)
class SpikePart:
    """One CMD_SPIKES datagram's content: part `part` of `parts` of step `step`'s active input ids (< n_in)."""

    step: int
    n_in: int
    part: int
    parts: int
    ids: "np.ndarray"  # uint32


def spike_id_bytes(n_in: int) -> int:
    """Bytes per input id on the wire: 2 (EIEIO KEY_16_BIT) while every id fits 16 bits, else 4."""
    return 2 if n_in <= 1 << 16 else 4


def spike_parts(step: int, n_in: int, ids: "np.ndarray", limit: int = MAX_DATA_BYTES) -> list[bytes]:
    """The CMD_SPIKES data of one step's active ids, in as few parts as fit `limit` bytes each (at least one,
    an empty step too: the board writes its slot all the same)."""
    if not 1 <= n_in <= MAX_SPIKE_INPUTS:
        raise WireError(f"spike input of n_in {n_in:,}: spike datagrams carry 1..{MAX_SPIKE_INPUTS:,} inputs")
    width = spike_id_bytes(n_in)
    per = min((limit - SPIKES_HEAD.size) // width, 255)  # EIEIO's count is a byte
    if per < 1:
        raise WireError(f"a spike datagram of at most {limit} B holds no id ({SPIKES_HEAD.size} B of header)")
    ids = np.ascontiguousarray(ids, dtype="<u2" if width == 2 else "<u4")
    n_parts = max(1, -(-len(ids) // per))
    if n_parts > 0xFFFF:
        raise WireError(f"step {step}: {len(ids):,} active inputs need {n_parts:,} spike datagrams, at most 65,535")
    eieio_type = EIEIO_KEY_16_BIT if width == 2 else EIEIO_KEY_32_BIT
    out = []
    for p in range(n_parts):
        chunk = ids[p * per:(p + 1) * per]
        out.append(SPIKES_HEAD.pack(step & 0xFFFFFFFF, n_in, p, n_parts, len(chunk), eieio_type << 2) + chunk.tobytes())
    return out


def unpack_spikes(data: bytes) -> SpikePart:
    """The content of a CMD_SPIKES datagram; WireError when it is not well formed (ids are checked against
    n_in by the board, which says which)."""
    if len(data) < SPIKES_HEAD.size:
        raise WireError(f"spike datagram of {len(data)} B: shorter than its {SPIKES_HEAD.size} B header")
    step, n_in, part, parts, count, flags = SPIKES_HEAD.unpack_from(data)
    eieio_type = (flags >> 2) & 3
    if flags & ~0x0C or eieio_type not in (EIEIO_KEY_16_BIT, EIEIO_KEY_32_BIT):
        raise WireError(f"spike datagram EIEIO flags 0x{flags:02x}: only 16- or 32-bit keys without prefix, "
                        f"payload or tag")
    width = 2 if eieio_type == EIEIO_KEY_16_BIT else 4
    if width != spike_id_bytes(n_in):
        raise WireError(f"spike datagram of {8 * width}-bit ids for n_in {n_in:,}: expected "
                        f"{8 * spike_id_bytes(n_in)}-bit ids")
    if len(data) != SPIKES_HEAD.size + width * count:
        raise WireError(f"spike datagram of {count} ids ({width} B each) carries {len(data) - SPIKES_HEAD.size} B")
    if not (0 <= part < parts) or not 1 <= n_in <= MAX_SPIKE_INPUTS:
        raise WireError(f"spike datagram part {part} of {parts}, n_in {n_in:,}: bad header (n_in is "
                        f"1..{MAX_SPIKE_INPUTS:,})")
    ids = np.frombuffer(data, dtype="<u2" if width == 2 else "<u4", count=count, offset=SPIKES_HEAD.size)
    return SpikePart(step, n_in, part, parts, ids.astype(np.uint32))
