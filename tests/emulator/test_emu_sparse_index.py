"""Sparse connectivity's index (fw_abi.h: row, col) is core memory anyone can write: an index that breaks its
rules stops the core with a run-time error (the emulator's core check, fw_index_valid), never a read outside
its regions; fw_init refuses such an image."""
from __future__ import annotations

import numpy as np
import pytest

from s2eprop.firmware.abi import Firmware
from s2eprop.host.config import ConnectivityConfig
from s2eprop.host.errors import TransportError
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.weights import init_weights


@pytest.mark.parametrize("region, value", [("col_in", 200), ("row_rec", 0xFFFF)])
def test_a_broken_index_stops_the_core(cfg, with_options, sample_maker, region, value) -> None:
    """Rule: a local neuron past n_local (col_in 200 on a core of 10) or a row start past the block's present
    synapses (row_rec 65,535), written into a running core, stops that core with a run-time error the host
    names; the same index in an image makes fw_init refuse it (FW_ERR_LAYOUT)."""
    c = with_options(cfg, network={"connectivity": ConnectivityConfig(p_in=0.5, p_rec=0.25)})
    x, y = sample_maker(2, seed=3)
    board = BoardTrainer(c, init_weights(c.network, seed=1))
    board.train_batch(x[:1], y[:1])
    img = board.images[1]
    at = img.layout.region(region) + (2 if region == "row_rec" else 0)  # row_rec[1]: past row_rec[n_rec]
    board.transport.write_sram(1, at, np.array([value], np.uint16 if region == "row_rec" else np.uint8).view(np.uint8))
    with pytest.raises(TransportError, match=r"core 1 is stopped: .*sparse index"):
        board.train_batch(x[1:], y[1:])
    fw = Firmware()
    data = img.data.copy()
    data[at:at + (2 if region == "row_rec" else 1)] = np.array([value], np.uint16 if region == "row_rec" else np.uint8
                                                               ).view(np.uint8)
    arena = fw.ffi.from_buffer(data)
    assert int(fw.lib.fw_init(arena, data.size)) == int(fw.lib.FW_ERR_LAYOUT)
    good = img.data.copy()
    assert int(fw.lib.fw_init(fw.ffi.from_buffer(good), good.size)) == int(fw.lib.FW_RUNNING)
