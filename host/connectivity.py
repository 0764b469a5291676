"""Host layer: the sparse connectivity mask (`network.connectivity: {p_in, p_rec, seed}`, docs/options.md).

The mask is the network's, drawn once from `network.connectivity.seed` (not the training seed, so a run's
checkpoints, its init-weights file and a resumed run agree on it): with rng = numpy's
default_rng(seed), input synapse i -> j is present where rng.random((n_in, n_rec))[i, j] < p_in, then
recurrent synapse i -> j where rng.random((n_rec, n_rec))[i, j] < p_rec (both arrays are always drawn,
in this order, so p_in never changes the recurrent mask). The recurrent diagonal is drawn like every
other synapse; a present self-connection stays as in the dense network (used in the forward pass,
no trace: only L2 moves it). With p_in = p_rec = 1 every synapse is present (all-to-all).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s2eprop.host.config import NetworkConfig


@dataclass(frozen=True)
class Masks:
    """Present synapses, [pre][post] as the weights: w_in (n_in, n_rec), w_rec (n_rec, n_rec), bool."""

    w_in: np.ndarray
    w_rec: np.ndarray

    def of(self, key: str) -> np.ndarray:
        return self.w_in if key == "w_in" else self.w_rec


def connectivity_masks(net: NetworkConfig) -> Masks | None:
    """The network's masks, or None when it is all-to-all (p_in = p_rec = 1: the dense paths everywhere)."""
    conn = net.connectivity
    if not conn.sparse:
        return None
    rng = np.random.default_rng(conn.seed)
    m_in = rng.random((net.n_in, net.n_rec)) < conn.p_in
    m_rec = rng.random((net.n_rec, net.n_rec)) < conn.p_rec
    m_in.setflags(write=False)
    m_rec.setflags(write=False)
    return Masks(m_in, m_rec)
