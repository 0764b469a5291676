"""The memory study against independent arithmetic: sizeof of the firmware's structs, array shapes,
the ARM image's sections, the BPTT arrays allocated per step."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from s2eprop.firmware.abi import Firmware
from s2eprop.host.config import ExperimentConfig, NetworkConfig
from s2eprop.host.studies import memory
from s2eprop.host.studies import memory_scaling

F = 4  # bytes per float32


@pytest.fixture(scope="module")
def fm(tmp_path_factory: pytest.TempPathFactory) -> dict:
    report = tmp_path_factory.mktemp("arm") / "size.json"
    report.write_text(json.dumps({"text_bytes": 7000, "data_bytes": 16, "bss_bytes": 8, "stack_bytes": 4096,
                                  "arena_room_bytes": 118784}))
    return memory.firmware_memory(ExperimentConfig(), report)


def test_arena_parts_are_sizeof_and_shapes(fm: dict) -> None:
    """Each core's header is sizeof(fw_header_t) and the alignment after it; weights, Adam and traces are its
    synapses x float32; the parts cover the arena to the byte."""
    n = ExperimentConfig().network
    header = Firmware().ffi.sizeof("fw_header_t")
    for c in fm["per_core"]:
        nl = c["neurons"][1] - c["neurons"][0]
        p = c["parts"]
        assert 0 <= p["header"] - header < 64 and p["header"] == c["regions"][0]["offset"]
        assert p["weights"] == F * ((n.n_in + n.n_rec) * nl + nl * n.n_out)
        assert p["optimizer"] == 2 * p["weights"]
        assert p["traces"] == F * (3 * (n.n_in + n.n_rec) * nl + (n.n_in + n.n_rec))
        assert sum(p[k] for k in memory.ARENA_PARTS) == c["arena_bytes"]
        assert sum(r["bytes"] for r in c["regions"]) + p["header"] == c["arena_bytes"]
        assert (p["code"], p["stack"]) == (7024, 4096)


def test_totals_against_the_paper(fm: dict) -> None:
    """Training state = weights + Adam + traces + neuron + readout over 12 cores; the 680 KB reconstruction."""
    t = fm["totals_bytes"]
    assert fm["cores"] == 12
    assert t["weights"] == F * 25_440
    assert fm["training_state_bytes_total"] == sum(t[k] for k in ("weights", "optimizer", "traces", "neuron", "readout"))
    assert fm["paper_layout_reconstruction_bytes"] == 695_040
    assert fm["training_state_vs_paper"] == round(fm["training_state_bytes_total"] / (680 * 1024), 4)
    assert fm["all_bytes_total"] == fm["arena_bytes_total"] + 12 * (7024 + 4096)


def test_code_and_stack_from_the_arm_image() -> None:
    """With the ARM build present, code and stack are the ELF's own sections (none without: not counted)."""
    if not memory.SIZE_JSON.is_file():
        assert memory.arm_image_sizes() is None
        pytest.skip("no ARM build (make arm)")
    from s2eprop.firmware.arm_image import load_image

    rep = load_image(Path(json.loads(memory.SIZE_JSON.read_text())["elf"])).size_report()
    img = memory.arm_image_sizes()
    assert img is not None
    assert img["code_bytes"] == rep["text_bytes"] + rep["data_bytes"]
    assert img["stack_bytes"] == rep["stack_bytes"]


SMALL = NetworkConfig(n_in=6, n_rec=8, n_out=3, n_steps=10)


def test_bptt_keeps_what_it_allocates_per_step() -> None:
    """BPTT holds x, z and psi of every step: T (n_in + 2 n_rec) floats, plus two (n_rec,)/(n_out,) sums."""
    for t in (10, 40):
        m = memory_scaling.bptt_measured(dataclasses.replace(SMALL, n_steps=t))
        assert m["per_step_bytes"] == F * t * (SMALL.n_in + 2 * SMALL.n_rec)
        assert m["held_bytes"] == m["per_step_bytes"] + F * (SMALL.n_rec + SMALL.n_out)
        assert m["peak_bytes"] >= m["held_bytes"]


def test_eprop_state_does_not_grow_with_t() -> None:
    """The golden model holds four (n_pre, n_rec) trace arrays and eps_v per presynaptic neuron, whatever T."""
    a, b = (memory_scaling.eprop_measured(dataclasses.replace(SMALL, n_steps=t)) for t in (10, 40))
    n_pre = SMALL.n_in + SMALL.n_rec
    assert a["traces_bytes"] == F * (4 * n_pre * SMALL.n_rec + n_pre)
    assert a["held_bytes"] == b["held_bytes"]


def test_crossover_formula_of_the_paper_network() -> None:
    """T* = (3 * 200 * 120 + 200) / (80 + 3 * 120) = 164.1 steps for the paper's network."""
    assert memory_scaling.crossover_formula(NetworkConfig()) == pytest.approx(72_200 / 440)


def test_run_writes_result_and_figures(tmp_path: Path) -> None:
    """run() writes result.json and both PNGs; the measured T* lies where the two measured lines cross."""
    cfg = ExperimentConfig()
    r = memory.run(tmp_path, cfg, steps=(20, 40, 80), sizes=(8, 16))
    assert json.loads((tmp_path / "result.json").read_text())["study"] == "memory"
    for name in r["figures"].values():
        assert (tmp_path / name).stat().st_size > 1000
    s = r["eprop_vs_bptt"]
    per_step = s["over_steps"][1]["bptt"]["held_bytes"] - s["over_steps"][0]["bptt"]["held_bytes"]
    expect = (s["over_steps"][0]["eprop"]["held_bytes"] - s["over_steps"][0]["bptt"]["held_bytes"]) / (per_step / 20) + 20
    assert s["crossover_steps"]["measured"] == pytest.approx(expect, abs=0.1)
