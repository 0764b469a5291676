"""Host layer, CLI: `s2eprop serve` (the emulated chip as a board on UDP) and `s2eprop board status`."""
from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import sys
from pathlib import Path

from s2eprop.emulator.board import protocol as sdp
from s2eprop.host.cli.common import port_number, positive_int
from s2eprop.host.config import CHIP_MODES
from s2eprop.host.errors import HostError


def build_board(chip_file: Path | None, mode: str, clock_mhz: float | None, cores: int | None, engine: str = "c",
                threads: int = 0):
    """The emulated chip behind a server: (chip, its description). `threads`: the chip's C event loop's
    (0: the host cores this process may use; the SimPy engine runs on one)."""
    from s2eprop.emulator.chip.functional import FunctionalChip
    from s2eprop.emulator.chip.description import load_chip

    desc = load_chip(chip_file)
    if clock_mhz:
        desc = desc.with_clock(round(clock_mhz * 1e6))
    n = desc.n_cores if cores is None else cores
    if not 0 < n <= desc.n_cores:
        raise HostError(f"--cores {n}: the chip ({desc.path}) has 1..{desc.n_cores}")
    if mode == "functional" and engine != "c":
        raise HostError(f"--engine {engine} runs the timed chip's SimPy model; the functional chip has no time: "
                        f"add --mode timed (or realtime)")
    if not 0 <= threads <= 64:
        raise HostError(f"--threads {threads}: give 1..64 host threads, or 0 for the host cores this process may use")
    if threads > 1 and engine != "c":
        raise HostError(f"--threads {threads}: the SimPy model runs on one thread; threads are the C event loops' "
                        f"(--engine c)")
    from s2eprop.host.config import ChipConfig

    if mode == "functional":
        return FunctionalChip(n, sram_bytes=desc.sram_bytes_per_core, sdram_bytes=desc.sdram_bytes,
                              threads=ChipConfig(threads=threads).n_threads()), desc
    from s2eprop.emulator.chip.timed import timed_chip

    # a realtime board paces the timed chip itself, a tick when its time comes, serving datagrams between
    # ticks (SimPy's RealtimeEnvironment would block the socket while it waits)
    return timed_chip(n, desc, "timed", engine, threads=ChipConfig(threads=threads).n_threads()), desc


def cmd_serve(args: argparse.Namespace) -> int:
    from s2eprop.emulator.board.server import BoardServer
    from s2eprop.host.transport.udp import read_key

    key = read_key(args.key_file)
    chip, desc = build_board(args.chip, args.mode, args.clock_mhz, args.cores, args.engine, args.threads)
    server = BoardServer(chip, desc, bind=args.bind, port=args.port, key=key, mode=args.mode, lease_s=args.lease_s)
    try:
        loopback = ipaddress.ip_address(args.bind).is_loopback
    except ValueError:
        loopback = args.bind == "localhost"
    if not loopback and key is None:
        print(f"warning: serving on {args.bind} without a key: anyone who reaches this address can drive the board "
              f"(set --key-file or $S2EPROP_BOARD_KEY)", file=sys.stderr)
    host, port = server.address
    print(f"serving {desc.name} ({chip.n_cores} cores, {args.mode}) on udp://{host}:{port}"
          + (" with a shared key" if key else "") + "; Ctrl-C stops", flush=True)

    def stop(signum, frame):  # noqa: ARG001
        server.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()
    print(f"stopped after {server.link.datagrams:,} datagrams ({json.dumps(server.link.as_dict())})", flush=True)
    return 0


def cmd_board(args: argparse.Namespace) -> int:
    from s2eprop.host.transport.udp import UdpTransport, read_key

    t = UdpTransport(args.target, key=read_key(args.key_file), retries=args.retries, claim=False)
    try:
        st = t.board_status()
    finally:
        t.close()
    info = {"target": args.target, "protocol_version": sdp.PROTOCOL_VERSION, **t.board_info, **st}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"board at {args.target}: {t.board_info.get('chip', '?')}, {st['cores']} cores, {st['mode']} mode, "
          f"tick {st['ticks']:,}")
    print(f"  packets: {st['delivered']:,} delivered, {st['dropped']:,} dropped; losses: {st['losses']}")
    owner = st.get("owner")
    print(f"  owner: {owner['host']} (idle {owner['idle_s']:.1f} s of a {owner['lease_s']:g} s lease)" if owner
          else "  owner: none (free)")
    for core, e in sorted((st.get("core_errors") or {}).items(), key=lambda kv: int(kv[0])):
        print(f"  core {core} (x {e['at'][0]}, y {e['at'][1]}, cpu {e['at'][2]}) stopped: {e['error']}")
    print(f"  link: {st['link']}")
    return 0


def add_board_commands(sub) -> None:
    s = sub.add_parser("serve", help="serve the emulated chip as a board on UDP (SpiNNaker's SDP/SCP, docs/protocol.md)")
    s.add_argument("--port", type=port_number, default=sdp.DEFAULT_PORT, help=f"UDP port (default {sdp.DEFAULT_PORT}; 0: any)")
    s.add_argument("--bind", default="127.0.0.1", help="address to listen on (default loopback only)")
    s.add_argument("--chip", type=Path, help="chip description YAML (default emulator/chip/configs/spinnaker2.yaml)")
    s.add_argument("--mode", choices=CHIP_MODES, default="functional",
                   help="functional or timed: the clock moves when the host says; realtime: 1 tick per ms")
    s.add_argument("--clock-mhz", type=float, help="core clock, one of the chip file's levels")
    s.add_argument("--engine", choices=("c", "simpy"), default="c",
                   help="timed modes: the chip's event loop, c (fast) or simpy (its SimPy model, same bits)")
    s.add_argument("--cores", type=positive_int, help="cores of the board (default: all of the chip file's)")
    s.add_argument("--threads", type=int, default=0, help="host threads of a functional board's C loop (same "
                   "bits for any number; default 0: the host cores this process may use, each run on them only "
                   "where they pay; the SimPy engine runs on one)")
    s.add_argument("--key-file", help="shared key: every datagram is authenticated (HMAC-SHA256); default "
                                      "$S2EPROP_BOARD_KEY, none: no authentication")
    s.add_argument("--lease-s", type=float, default=60.0,
                   help="the host that drives the board owns it until it ends or is silent this long (default 60)")
    s.set_defaults(func=cmd_serve)
    b = sub.add_parser("board", help="what a board reports: s2eprop board status udp://HOST:PORT")
    b.add_argument("what", choices=("status",))
    b.add_argument("target", help="udp://HOST:PORT")
    b.add_argument("--key-file")
    b.add_argument("--retries", type=positive_int, default=4, help="tries per command (default 4)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_board)
