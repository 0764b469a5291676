"""No subnormals (docs/chip.md section 9): the firmware stores psi and Adam's gradient, moments and
weights as 0 where they are below 2^-64 in magnitude, so that nothing it keeps (weights, moments,
traces, neuron state) decays into subnormal floats, which x86 computes in microcode, many times slower.
The network of `subnormal_case` makes them on purpose; the ISS gives the same bits (test_iss_parity)."""
from __future__ import annotations

import numpy as np

from s2eprop.firmware.abi import Firmware
from s2eprop.host.reference.golden import GoldenModel, surrogate
from s2eprop.host.session.runtime import BoardTrainer

# every float region of the learning state, in the arena's order
FLOAT_STATE = ("w_in", "w_rec", "w_out", "m_in", "v_in", "m_rec", "v_rec", "m_out", "v_out", "ea_in", "eb_in",
               "acc_in", "ea_rec", "eb_rec", "acc_rec", "ev_in", "ev_rec", "v", "a", "psi")


def subnormal_words(fw: Firmware, sram: np.ndarray) -> dict[str, int]:
    """Per float region of one core's arena: how many of its words are subnormal floats."""
    h = fw.ffi.cast("fw_header_t *", fw.ffi.from_buffer(sram))
    starts = sorted(int(getattr(h.layout, r)) for r in fw.layout_regions)
    out = {}
    for region in FLOAT_STATE:
        lo = int(getattr(h.layout, region))
        hi = min([s for s in starts if s > lo] + [int(h.layout.end)])
        words = sram[lo:hi - (hi - lo) % 4].view(np.uint32)
        out[region] = int(np.count_nonzero(((words & 0x7F800000) == 0) & ((words & 0x007FFFFF) != 0)))
    return out


def test_case_makes_tiny_psi_and_starts_with_subnormal_weights(subnormal_case) -> None:
    """Rule: the case has teeth: without a flush, the surrogate of its quiet neurons (u about -s_j - v_th)
    lies in (0, 2^-64), some of it subnormal, and some of its weights are subnormal to begin with."""
    small, w, _, _ = subnormal_case
    u = -np.linspace(-10.0, 60.0, 24, dtype=np.float32) - np.float32(small.network.v_th)
    psi = np.abs(surrogate(u, small.network))
    assert np.count_nonzero((psi > 0) & (psi < 2.0 ** -64)) >= 2
    assert np.count_nonzero((psi > 0) & (psi < np.finfo(np.float32).tiny)) >= 1
    assert np.count_nonzero((w.w_rec != 0) & (np.abs(w.w_rec) < np.finfo(np.float32).tiny)) == 3


def test_learning_state_never_holds_subnormals(subnormal_case, weights_close) -> None:
    """Rule: after every training sample of the case, no core's weights, Adam moments, traces or neuron
    state hold a subnormal float, and the weights stay within the golden model's 1e-6 of max|w| (the
    golden model keeps its subnormals: what the flush drops is below 2^-64)."""
    small, w, x, y = subnormal_case
    fw = Firmware()
    board = BoardTrainer(small, w.copy(), firmware=fw)
    golden = GoldenModel(small.network, small.train, w.copy())
    chip = board.transport.chip
    for i in range(len(x)):
        board.train_batch(x[i:i + 1], y[i:i + 1])
        golden.train_batch(x[i:i + 1], y[i:i + 1])
        for core in range(board.plan.n_cores):
            found = {k: n for k, n in subnormal_words(fw, chip.runner.sram[core]).items() if n}
            assert not found, f"sample {i}, core {core}: subnormal floats in {found}"
    weights_close(board.weights, golden.weights, 1e-6, "board vs golden on the subnormal case")
    assert (board.weights.w_rec[23, 19:23] == 0).all() and (board.weights.w_out[23] == 0).all()
