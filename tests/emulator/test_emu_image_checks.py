"""The firmware and the emulator refuse bad images and arguments instead of running off their memory."""
from __future__ import annotations

import numpy as np
import pytest

from s2eprop.emulator.chip.functional import FunctionalChip
from s2eprop.emulator.errors import EmulatorError
from s2eprop.host.config import ExperimentConfig
from s2eprop.host.errors import DataError, TransportError
from s2eprop.firmware.messages import SampleMsg, frame_slots
from s2eprop.host.mapping.routing import KEY_ERR, KEY_PARTIAL, KEY_SPIKE
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.weights import init_weights


def _board() -> BoardTrainer:
    cfg = ExperimentConfig().validate()
    return BoardTrainer(cfg, init_weights(cfg.network, 0))


def test_wrapping_neuron_range_is_rejected() -> None:
    """Rule: fw_init refuses a config whose neuron_lo + n_local wraps around 2^32 (it would index outside
    the spike bitmap), and the host reports it as a refused image."""
    board = _board()
    fw, t = board.fw, board.transport
    hdr = fw.ffi.new("fw_header_t *")
    raw = t.read_sram(1, 0, fw.header_bytes)
    fw.ffi.memmove(hdr, raw, fw.header_bytes)
    hdr.config.neuron_lo = 0xFFFFFFF6
    t.write_sram(1, 0, bytes(fw.ffi.buffer(hdr)))
    with pytest.raises(TransportError, match="core 1"):
        t.start(1, board.images[1].layout.arena_bytes)


@pytest.mark.parametrize("field, value", [("ring_slots", 100_000), ("outbox_words", 0x40000000),
                                          ("sdram_ring", 0xFFFF0000), ("key_spike", 0x01010000),
                                          ("key_spike", 0x0100FFA0), ("key_err", 0x0300FFF8)])
def test_oversized_buffers_are_rejected(field, value) -> None:
    """Rule: fw_layout refuses ring and outbox sizes past their caps (no arithmetic wrap of the layout),
    an input ring that runs past the end of the 32-bit address space, and a key base with bits in the
    tag field or an index offset that leaves no room for its n_rec (or n_out) indices."""
    board = _board()
    fields = {name: getattr(board.fw.new_config({}), name) for name, _ in board.fw.ffi.typeof("fw_config_t").fields}
    from s2eprop.host.mapping.images import core_config_fields
    fields.update(core_config_fields(board.cfg, board.plan, board.plan.cores[1], None))
    fields[field] = value
    with pytest.raises(EmulatorError, match="rejects"):
        board.fw.layout(board.fw.new_config(fields))


def _unchecked_board(backend: str) -> tuple[BoardTrainer, list[bytes]]:
    """A started 12-core board (routes loaded) whose cores all have a sample announced and its frames in
    the SDRAM ring, then every core's status word overwritten with 0 (as an image the host wrote but
    fw_init never checked); returns the board and each core's whole arena at that point."""
    cfg = ExperimentConfig().validate()
    board = BoardTrainer(cfg, init_weights(cfg.network, 0), backend=backend)
    chip = board.transport.chip
    x = (3 * np.random.default_rng(5).standard_normal((cfg.network.n_steps, cfg.network.n_in))).astype(np.float32)
    board.transport.write_sdram(board.streamer.ring.sdram_addr, frame_slots(0, x))  # ring slots 0..99
    for img in board.images:  # announced while the image is still running: pending_valid is set
        chip.host_send(img.plan.core_id, SampleMsg(0, 3, True, 0).pack())
    status_at = board.fw.ffi.offsetof("fw_header_t", "status")
    for img in board.images:
        chip.write_sram(img.plan.core_id, status_at, np.zeros(1, np.uint32))
    arenas = [chip.read_sram(img.plan.core_id, 0, img.layout.arena_bytes) for img in board.images]
    assert all(board.core_state(img.plan.core_id)["pending_valid"] == 1 for img in board.images)
    return board, arenas


def _changed_cores(board: BoardTrainer, before: list[bytes]) -> list[int]:
    chip = board.transport.chip
    return [img.plan.core_id for img, old in zip(board.images, before)
            if chip.read_sram(img.plan.core_id, 0, img.layout.arena_bytes) != old]


@pytest.mark.parametrize("backend", ["c", "python"])
def test_unchecked_image_never_runs(backend) -> None:
    """Rule: a core whose status word is not fw_init's FW_RUNNING (0, as the host wrote it) does nothing on
    its timer ticks even with a sample announced and its frames in SDRAM: over n_steps + 2 ticks no byte
    of any arena changes and no core sends a packet, starts a DMA or reports to the host."""
    board, before = _unchecked_board(backend)
    chip = board.transport.chip
    chip.run(board.net.n_steps + 2)
    assert _changed_cores(board, before) == []
    assert chip.take_host_messages() == []
    work = chip.work_counts()
    assert int(work["mc_sent"].sum()) == 0 and int(work["dma_bytes"].sum()) == 0, work
    assert chip.stats().dma_bytes == 0


@pytest.mark.parametrize("backend", ["c", "python"])
def test_unchecked_image_ignores_packets(backend) -> None:
    """Rule: a core whose status word is not FW_RUNNING ignores every multicast packet: a spike (one tick
    ahead, which a running core files), a partial sum, an output error and a key no core uses are routed
    to the cores (delivered, none dropped) but change no byte of any arena and count no work."""
    board, before = _unchecked_board(backend)
    chip = board.transport.chip
    delivered0 = chip.stats().delivered
    keys = [KEY_SPIKE | 17, KEY_PARTIAL | 5, KEY_ERR | 2, KEY_SPIKE | 0xFFFF]
    for key in keys:
        chip.inject(key, int(np.float32(0.5).view(np.uint32)))
    st = chip.stats()
    n_neuron, n_readout = len(board.plan.neuron_cores), 1
    assert st.dropped == 0
    assert st.delivered - delivered0 == 3 * n_neuron + n_readout  # spike, error, unused key: 12 each; partial: 1
    assert _changed_cores(board, before) == []
    assert int(chip.work_counts()["mc_received"].sum()) == 0


@pytest.mark.parametrize("backend", ["c", "python"])
def test_bad_core_and_oversized_host_message_raise(backend) -> None:
    """Rule: the chip raises EmulatorError for a core that does not exist, a host message over 64 words
    (256 B, SpiNNaker's SDP payload) and an SDRAM access past its end."""
    chip = FunctionalChip(2, backend=backend)
    with pytest.raises(EmulatorError, match="core 20"):
        chip.host_send(20, np.zeros(4, np.uint32))
    with pytest.raises(EmulatorError, match="65 words"):
        chip.host_send(0, np.zeros(65, np.uint32))
    chip.host_send(0, np.zeros(64, np.uint32))  # the largest message is taken (and refused by the core)
    with pytest.raises(EmulatorError, match="outside"):
        chip.write_sdram(chip.sdram.size_bytes - 2, np.zeros(1, np.uint32))


def test_label_out_of_range_is_refused() -> None:
    """Rule: a label outside 0..n_out-1 is refused by the host (DataError) instead of training toward
    another class."""
    board = _board()
    x = np.zeros((1, 100, 80), np.float32)
    for bad in (12, -1):
        with pytest.raises(DataError, match="labels"):
            board.train_batch(x, np.array([bad]))
