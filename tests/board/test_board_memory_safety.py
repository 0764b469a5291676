"""Nothing written into a core's memory can crash the board: a core whose header or state a write made
invalid is stopped with a run-time error (reported by STATUS and, naming the core, by the host), the other
cores and the server go on, and reloaded cores train to the in-process bits."""
from __future__ import annotations

import socket

import numpy as np
import pytest

from s2eprop.emulator.board import protocol as sdp
from s2eprop.firmware.abi import Firmware
from s2eprop.host.errors import TransportError
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport.udp import UdpTransport
from s2eprop.host.weights import init_weights

from board_data import counting_config, random_samples


def _offsets() -> dict[str, int]:
    ffi = Firmware().ffi
    layout, state = ffi.offsetof("fw_header_t", "layout"), ffi.offsetof("fw_header_t", "state")
    return {"status": ffi.offsetof("fw_header_t", "status"), "outbox": layout + ffi.offsetof("fw_layout_t", "outbox"),
            "outbox_count": state + ffi.offsetof("fw_state_t", "outbox_count"),
            "label": state + ffi.offsetof("fw_state_t", "label")}


def _write(sock: socket.socket, at: tuple[int, int, int], addr: int, data: bytes, seq: int) -> int:
    """A plain SC&MP WRITE (no CRC, no session) from `sock`; the reply's result code."""
    sock.send(sdp.pack(sdp.Scp(sdp.CMD_WRITE, seq, addr, len(data), sdp.TYPE_BYTE, data, *at)))
    sock.settimeout(2.0)
    return sdp.unpack(sock.recv(2048), has_args=False).cmd


def _ver(target_addr: tuple[str, int]) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(target_addr)
        s.settimeout(2.0)
        s.send(sdp.pack(sdp.Scp(sdp.CMD_VER, 1)))
        return sdp.unpack(s.recv(2048)).cmd == sdp.RC_OK


def _same_bits(a: BoardTrainer, b: BoardTrainer) -> bool:
    return all(np.array_equal(getattr(a.weights, k).view(np.uint32), getattr(b.weights, k).view(np.uint32))
               for k in ("w_in", "w_rec", "w_out"))


@pytest.mark.parametrize("field, value", [("outbox", 0x7FFFFFF0), ("outbox_count", 0xFFFFFFF0), ("label", 1000)])
def test_a_write_into_a_running_cores_state_stops_that_core_not_the_board(serve, field, value) -> None:
    """The issue's crash: two 4-byte WRITEs (layout.outbox, state.outbox_count), then a tick, segfaulted the
    server. Now the core is stopped (STATUS names it), the server answers, and the host names the core."""
    board = serve()
    cfg = counting_config()
    x, y = random_samples(2)
    trainer = BoardTrainer(cfg, init_weights(cfg.network, seed=3), transport=UdpTransport(board.target))
    trainer.train_batch(x[0], y[:1])
    t = trainer.transport
    at = t._core_at(3)
    off = _offsets()
    assert _write(t.sock, at, off[field], np.uint32(value).tobytes(), t._next_seq()) == sdp.RC_OK
    if field == "outbox":
        assert _write(t.sock, at, off["outbox_count"], np.uint32(3).tobytes(), t._next_seq()) == sdp.RC_OK
    t.advance(1)  # one tick: the board runs core 3's handlers no more
    assert _ver(board.server.address)
    st = t.board_status()
    assert list(st["core_errors"]) == ["3"] and st["core_errors"]["3"]["at"] == list(at)
    with pytest.raises(TransportError, match=r"core 3 .*stopped (with|by) a run-time error"):
        trainer.train_batch(x[1], y[1:2])
    assert _ver(board.server.address)
    t.close()


def test_a_forged_header_and_a_kilobyte_into_a_running_core_stop_it(serve) -> None:
    """A 1 KiB WRITE of random bytes over a running core's header, and a header claiming to run with a layout
    its config does not give: stopped cores, a live server."""
    board = serve()
    cfg = counting_config()
    x, y = random_samples(1)
    trainer = BoardTrainer(cfg, init_weights(cfg.network, seed=3), transport=UdpTransport(board.target))
    trainer.train_batch(x[0], y[:1])
    t = trainer.transport
    rng = np.random.default_rng(7)
    junk = rng.integers(0, 256, 1024, dtype=np.uint8).tobytes()
    for i in range(4):
        _write(t.sock, t._core_at(2), 256 * i, junk[256 * i:256 * (i + 1)], t._next_seq())
    # core 5: its own header, still "running", its outbox moved past its arena by 4 KiB
    off = _offsets()
    outbox = int(np.frombuffer(t.read_sram(5, off["outbox"], 4), np.uint32)[0])
    _write(t.sock, t._core_at(5), off["outbox"], np.uint32(outbox + 200_000).tobytes(), t._next_seq())
    _write(t.sock, t._core_at(2), off["status"], np.uint32(int(Firmware().lib.FW_RUNNING)).tobytes(), t._next_seq())
    t.advance(3)
    assert _ver(board.server.address)
    assert sorted(t.board_status()["core_errors"]) == ["2", "5"]
    t.close()


def test_random_bytes_in_every_idle_cores_sram_then_a_clean_training_gives_the_in_process_bits(serve) -> None:
    """Random SC&MP WRITEs into the first 2 KiB of every core of an idle board (every other core's status
    forged to 'running'), ticks, then a training over UDP: the server lives and the weights are the
    in-process ones (START reloads and checks every core)."""
    board = serve()
    rng = np.random.default_rng(2026)
    running = np.uint32(int(Firmware().lib.FW_RUNNING)).tobytes()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(board.server.address)
        seq = 0
        for core in range(board.server.chip.n_cores):
            at = board.server.desc.placement(core)
            for k in range(8):
                seq += 1
                data = rng.integers(0, 256, 256, dtype=np.uint8).tobytes()
                if k == 0 and core % 2 == 0:
                    data = data[:12] + running + data[16:]
                assert _write(s, at, 256 * k, data, seq) == sdp.RC_OK
    t = UdpTransport(board.target)
    t.advance(5)
    assert len(t.board_status()["core_errors"]) >= board.server.chip.n_cores // 2 - 1
    t.close()
    cfg = counting_config()
    w0 = init_weights(cfg.network, seed=3)
    x, y = random_samples(2)
    over_udp = BoardTrainer(cfg, w0, transport=UdpTransport(board.target))
    local = BoardTrainer(cfg, w0)
    for i in range(2):
        a, b = over_udp.train_batch(x[i], y[i:i + 1]), local.train_batch(x[i], y[i:i + 1])
        assert a.pred[0] == b.pred[0] and a.loss[0] == b.loss[0]
    assert _same_bits(over_udp, local)
    # the 12 cores it loaded run again; the board's other cores stay stopped until someone loads them
    assert all(int(c) >= 12 for c in over_udp.transport.board_status()["core_errors"])
    over_udp.close()
    local.close()


def test_a_zero_length_stream_chunk_at_the_end_of_sdram_is_harmless(board) -> None:
    """A STREAM chunk of no bytes at SDRAM's last address ended the server with an IndexError."""
    t = UdpTransport(board.target)
    end = board.server.chip.sdram.size_bytes
    seq = t._next_seq()
    msg = sdp.sealed(sdp.Scp(sdp.CMD_STREAM, seq, end, 7 << 16, 0, b"", *sdp.MONITOR, flags=sdp.FLAGS_NO_REPLY))
    t.sock.send(sdp.pack(msg))
    assert t.board_status()["link"]["internal_errors"] == 0
    assert _ver(board.server.address)
    t.close()


@pytest.mark.parametrize("runner", ["native", "iss"])
def test_the_python_loops_runners_stop_a_core_with_a_forged_header_too(runner) -> None:
    """The Python event loop's core runners (native build, ARM build in the ISS) check a written core as the C
    loops do: a header forged to 'running' stops that core with a run-time error; the others run on."""
    from s2eprop.emulator.chip.functional import FunctionalChip

    fw = Firmware()
    if runner == "iss":
        from s2eprop.firmware import arm_build

        for module in ("unicorn", "capstone", "elftools"):
            pytest.importorskip(module, reason=f"the ISS runner needs {module} (pip install -e .)")
        if not arm_build.compiler_available():
            pytest.skip("arm-none-eabi-gcc not installed (make arm installs it as root)")
        elf = arm_build.current_elf()
        from s2eprop.emulator.runners.iss import IssRunner

        chip = FunctionalChip(2, backend="python", runner=IssRunner(None, 2, 128 * 1024, elf_path=elf))
    else:
        chip = FunctionalChip(2, backend="python")
    off = _offsets()
    ffi = fw.ffi
    config, layout = ffi.offsetof("fw_header_t", "config"), ffi.offsetof("fw_header_t", "layout")
    header = bytearray(1024)

    def put(at: int, value: int) -> None:
        header[at:at + 4] = np.uint32(value).tobytes()

    # a readout core "running" with 160 x 56 partial sums whose bitmap lies 2 GiB past its arena: its timer
    # would read there
    put(0, int(fw.lib.FW_MAGIC))
    put(off["status"], int(fw.lib.FW_RUNNING))
    put(config + ffi.offsetof("fw_config_t", "role"), int(fw.lib.FW_ROLE_READOUT))
    put(config + ffi.offsetof("fw_config_t", "n_src"), 160)
    put(config + ffi.offsetof("fw_config_t", "n_out"), 56)
    put(layout + ffi.offsetof("fw_layout_t", "partial_seen"), 0x7FFF0000)
    put(off["outbox"], 4096)
    chip.write_sram(1, 0, bytes(header))
    chip.run(2)
    assert list(chip.core_errors()) == [1]
    with pytest.raises(Exception, match="core 1 is stopped"):
        chip.host_send(1, np.array([1], np.uint32))


def test_board_status_names_a_stopped_core_and_the_owner(board, capsys) -> None:
    """`s2eprop board status` prints each core stopped by a run-time error with its (x, y, cpu), and who owns
    the board."""
    from s2eprop.host.cli.main import main

    owner = UdpTransport(board.target)
    at = owner._core_at(6)
    assert _write(owner.sock, at, _offsets()["status"], np.uint32(int(Firmware().lib.FW_RUNNING)).tobytes(),
                  owner._next_seq()) == sdp.RC_OK
    assert main(["board", "status", board.target]) == 0
    out = capsys.readouterr().out
    assert f"core 6 (x {at[0]}, y {at[1]}, cpu {at[2]}) stopped: its header is no longer a valid image's" in out
    assert "owner: 127.0.0.1:%d" % owner.sock.getsockname()[1] in out
    owner.close()
