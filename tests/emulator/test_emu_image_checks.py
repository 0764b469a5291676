"""The firmware and the emulator refuse bad images and arguments instead of running off their memory."""
from __future__ import annotations

import numpy as np
import pytest

from emulator.chip import FunctionalChip
from emulator.errors import EmulatorError
from host.config import ExperimentConfig
from host.errors import DataError, TransportError
from host.runtime import BoardTrainer
from host.weights import init_weights


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
                                          ("sdram_ring", 0xFFFF0000), ("key_spike", 0x01000100)])
def test_oversized_buffers_are_rejected(field, value) -> None:
    """Rule: fw_layout refuses ring and outbox sizes past their caps (no arithmetic wrap of the layout),
    an input ring that runs past the end of the 32-bit address space, and a key base with bits in the
    tag or index fields."""
    board = _board()
    fields = {name: getattr(board.fw.new_config({}), name) for name, _ in board.fw.ffi.typeof("fw_config_t").fields}
    from host.images import core_config_fields
    fields.update(core_config_fields(board.cfg, board.plan, board.plan.cores[1], None))
    fields[field] = value
    with pytest.raises(EmulatorError, match="rejects"):
        board.fw.layout(board.fw.new_config(fields))


def test_unchecked_image_never_runs() -> None:
    """Rule: an image whose status word was never set by fw_init (status 0 as written by the host) does
    nothing on a timer tick."""
    board = _board()
    chip = board.transport.chip
    hdr_state = board.core_state(0)
    chip.write_sram(0, board.fw.ffi.offsetof("fw_header_t", "status"), np.zeros(1, np.uint32))
    before = chip.read_sram(0, 0, board.images[0].layout.arena_bytes)
    chip.run(1)
    assert chip.read_sram(0, 0, board.images[0].layout.arena_bytes) == before
    assert hdr_state["phase"] == 0


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
