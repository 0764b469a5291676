"""Memory (DESIGN section 3): each core's arena fits its data budget (the ARM image's arena room when
the ARM build is present, else 96 KiB), the paper's network keeps
its training state within the paper's 612 KB, and a partition that does not fit is refused clearly."""
from __future__ import annotations

import json
import re

import pytest

from s2eprop.firmware.arm_size import DEFAULT_ARENA_BYTES, arena_budget
from s2eprop.host.cli.main import main
from s2eprop.host.errors import ConfigError
from s2eprop.host.mapping.memory import memory_map
from s2eprop.host.session.runtime import BoardTrainer

ARENA_LIMIT = arena_budget(DEFAULT_ARENA_BYTES)[0]
PAPER_STATE_BYTES = 612_000


def _arena_by_hand(n_in: int, n_rec: int, n_out: int, n_local: int, n_src: int, readout: bool,
                   header_bytes: int) -> tuple[int, int]:
    """(training-state bytes, arena bytes) of one neuron core, from the network's sizes: float32
    weights, two Adam moments per weight, three traces per input and recurrent synapse plus eps_v per
    presynaptic neuron, six neuron variables per neuron and the spike bitmaps (this step's, two
    received), the output error; the readout's partial sums of two steps, its output sums and
    seen-bitmaps; buffers: the two input frames of the DMA double buffer (3 head words + n_in) and the
    outbox of 1,024 words. Regions follow the header rounded up to 16 B."""
    words = lambda n_bits: -(-n_bits // 32)  # noqa: E731 (32-bit bitmap words)
    weights = 4 * (n_in * n_local + n_rec * n_local + n_local * n_out)
    optimizer = 2 * weights
    traces = 4 * (3 * (n_in + n_rec) * n_local + n_in + n_rec)
    neuron = 4 * (6 * n_local + 3 * words(n_rec))
    err = 4 * n_out
    readout_state = 4 * (2 * n_src * n_out + n_out + 2 * words(n_src * n_out)) if readout else 0
    buffers = 4 * (2 * (3 + n_in) + 1024)
    state = weights + optimizer + traces + neuron + err + readout_state
    return state, -(-header_bytes // 16) * 16 + state + buffers


def test_paper_network_fits(cfg, init_w, with_options) -> None:
    """Rule: the paper's network (12 cores of 10 neurons) has training state <= 612,000 B in all and
    every core's arena <= 96 KiB; report()'s arena per core and state total equal a hand computation
    from the network's sizes (weights, 2x for Adam, 3 traces per synapse, neuron, readout, buffers),
    which gives 106,400 B for 20 neurons per core (header 736 B, ABI 7)."""
    board = BoardTrainer(cfg, init_w.copy())
    rep = board.report()
    assert rep["cores"] == 12 and rep["neurons_per_core"] == 10
    assert len(rep["sram_bytes_per_core"]) == 12
    assert max(rep["sram_bytes_per_core"]) <= ARENA_LIMIT, rep["sram_bytes_per_core"]
    assert rep["training_state_bytes_total"] <= PAPER_STATE_BYTES
    net = cfg.network
    header = board.fw.header_bytes  # the C structs of config, layout and state: no network size in them
    by_hand = [_arena_by_hand(net.n_in, net.n_rec, net.n_out, 10, 12, readout=(c == 0), header_bytes=header)
               for c in range(12)]
    assert by_hand[1] == (50_576, -(-header // 16) * 16 + 50_576 + 4_760)  # 8,480 + 16,960 + 24,800 + 288 + 48
    assert rep["sram_bytes_per_core"] == [arena for _, arena in by_hand]
    assert rep["training_state_bytes_total"] == sum(state for state, _ in by_hand) == 12 * 50_576 + 1_240
    # the README's figure for 20 neurons per core (6 cores; core 0 also the readout of 6 sources)
    assert _arena_by_hand(net.n_in, net.n_rec, net.n_out, 20, 6, readout=True, header_bytes=header)[1] == 106_400
    m20 = memory_map(with_options(cfg, partition={"neurons_per_core": 20}), stack=False)
    assert m20["per_core"][0]["arena_bytes"] == 106_400
    assert m20["per_core"][0]["fits"] == (106_368 <= ARENA_LIMIT)  # the ARM build's 114,688 B hold 20 (and 21)


def test_handlers_fit_the_stack_budget_nested() -> None:
    """Rule: the deepest handler with the packet interrupt nested over it (and two exception frames)
    fits a core's 4 KiB stack; every handler's figure is at least its own worst callee path's frames
    (fw_on_dma_done runs the neuron step, so it is deeper than the packet handler)."""
    from s2eprop.host.mapping.memory import stack_map

    st = stack_map()
    if "error" in st:
        pytest.skip(st["error"])
    h = st["handlers"]
    assert st["fits"] and st["worst_nesting_bytes"] <= st["budget_bytes"] == 4096, st["lines"]
    assert st["worst_nesting_bytes"] >= max(v for k, v in h.items() if k != "fw_init") + h["fw_on_mc_packet"]
    assert h["fw_on_dma_done"] > h["fw_on_mc_packet"]


def test_partition_that_does_not_fit_is_refused(cfg, init_w, with_options) -> None:
    """Rule: 60 neurons per core need more than the arena budget: building the board raises ConfigError
    naming the core, the bytes it needs and partition.neurons_per_core."""
    big = with_options(cfg, partition={"neurons_per_core": 60})
    with pytest.raises(ConfigError) as info:
        BoardTrainer(big, init_w.copy())
    msg = str(info.value)
    assert re.search(r"core \d+", msg), msg
    need = re.search(r"needs ([\d,]+) B", msg)
    assert need and int(need.group(1).replace(",", "")) > ARENA_LIMIT, msg
    assert f"{ARENA_LIMIT:,}" in msg or str(ARENA_LIMIT) in msg, msg
    assert "neurons_per_core" in msg, msg
    m = memory_map(big)
    assert m["cores"] == 2 and not any(c["fits"] for c in m["per_core"])


def test_cli_memory_prints_the_map(capsys, tmp_path) -> None:
    """Rule: `s2eprop memory` exits 0 and prints the per-core byte map of the paper's partition (12 cores,
    the training-state total, each core's arena, the regions of core 0); --json gives the same numbers;
    a partition that does not fit is flagged per core, still with exit 0."""
    assert main(["memory"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("12 cores")
    assert len(re.findall(r"^core +\d+ ", text, flags=re.M)) == 12
    for region in ("w_in", "w_rec", "w_out", "m_in", "v_in", "ea_in", "acc_rec", "outbox"):
        assert re.search(rf"^\s+0x[0-9a-f]+\s+[\d,]+ B\s+{region}$", text, flags=re.M), region
    assert "DOES NOT FIT" not in text
    for handler in ("fw_on_timer", "fw_on_mc_packet", "fw_on_dma_done", "fw_on_host_msg", "fw_on_user_event"):
        assert re.search(rf"^  {handler} +[\d,]+ B  \({handler}", text, flags=re.M), handler
    assert re.search(r"^worst nesting .*fw_on_mc_packet.*: [\d,]+ B of a 4,096 B stack budget: fits", text, flags=re.M)
    assert main(["memory", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["cores"] == 12 and len(m["per_core"]) == 12
    assert f"{m['training_state_bytes_total']:,}" in text
    for c in m["per_core"]:
        assert f"arena {c['arena_bytes']:7,} B" in text
    yaml_file = tmp_path / "big.yaml"
    yaml_file.write_text("partition:\n  neurons_per_core: 60\n")
    assert main(["memory", "--config", str(yaml_file)]) == 0
    assert capsys.readouterr().out.count("DOES NOT FIT") == 2


def test_sparse_connectivity_memory(cfg, with_options) -> None:
    """Rule: with network.connectivity p_in = p_rec = 0.25 a neuron core stores 6 floats per present input or
    recurrent synapse (weight, Adam m and v, ea, eb, acc) and none per absent one, plus its index (n_pre + 1
    uint16 row starts and one uint8 local neuron per present synapse, per block, each rounded up to words):
    core 1 of the paper's network (its mask: 182 input and 268 recurrent synapses of 800 and 1,200) by hand;
    the training state falls from 608,152 B to 183,980 B, and `auto` fits 76 neurons per core instead of 21
    (the ARM build's 114,688 B arena room; 96 KiB without it: more than 3x as many too)."""
    from s2eprop.host.config import ConnectivityConfig
    from s2eprop.host.connectivity import connectivity_masks
    from s2eprop.host.mapping.images import largest_neurons_per_core

    c = with_options(cfg, network={"connectivity": ConnectivityConfig(p_in=0.25, p_rec=0.25)})
    masks = connectivity_masks(c.network)
    nnz_in, nnz_rec = int(masks.w_in[:, 10:20].sum()), int(masks.w_rec[:, 10:20].sum())
    assert (nnz_in, nnz_rec) == (182, 268)
    dense, sparse = memory_map(cfg, stack=False), memory_map(c, stack=False)
    a_dense, a = dense["per_core"][1]["accounting"], sparse["per_core"][1]["accounting"]
    n_out, words = 12, lambda n_bytes: 4 * -(-n_bytes // 4)  # noqa: E731
    assert a["weights_bytes"] == 4 * (182 + 268 + 10 * n_out) == 2_280          # dense: 8,480
    assert a["optimizer_bytes"] == 2 * a["weights_bytes"] == 4_560               # dense: 16,960
    assert a["trace_bytes"] == 4 * (3 * (182 + 268) + 80 + 120) == 6_200         # dense: 24,800
    assert a["index_bytes"] == words(2 * 81) + words(182) + words(2 * 121) + words(268) == 860
    assert a_dense["index_bytes"] == 0 and a_dense["trace_bytes"] == 24_800
    saved = sum(a_dense[k] - a[k] for k in ("weights_bytes", "optimizer_bytes", "trace_bytes"))
    assert dense["per_core"][1]["arena_bytes"] - sparse["per_core"][1]["arena_bytes"] == saved - 860 == 36_340
    assert dense["training_state_bytes_total"] == 608_152 and sparse["training_state_bytes_total"] == 183_980
    most_dense, most_sparse = largest_neurons_per_core(cfg), largest_neurons_per_core(c)
    assert most_sparse > 3 * most_dense, (most_dense, most_sparse)
    if ARENA_LIMIT == 114_688:
        assert (most_dense, most_sparse) == (21, 76)
