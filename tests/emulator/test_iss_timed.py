"""The ARM build in time (`--mode timed --cpu iss --engine simpy`, emulator/chip/timed_iss.py): the ISS
counts each handler's cycles and packets preempt. One training sample of a 3-core network (the paper's
12 cores take about 120 s of CPU a sample: the dispatcher slices every handler at the chip's next event)."""
from __future__ import annotations

import numpy as np
import pytest

from s2eprop.firmware.abi import Firmware
from s2eprop.host.config import ChipConfig
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.transport import open_transport


@pytest.fixture(scope="module")
def small_cfg(cfg, with_options):
    return with_options(cfg, network={"n_in": 16, "n_rec": 24, "n_out": 4, "n_steps": 30},
                        partition={"neurons_per_core": 8})


def train_one(cfg, weights, x, y, chip: ChipConfig) -> BoardTrainer:
    board = BoardTrainer(cfg, weights.copy(), firmware=Firmware(), transport=open_transport("emulator", 3, chip=chip))
    board.train_batch(x, y)
    return board


def test_iss_in_time_learns_the_native_bits_with_preemption(arm_elf, small_cfg, sample_maker, tmp_path, capsys) -> None:
    """Rule: one training sample on the ISS in time gives the native timed run's weights, its worst tick
    within 3 % of the calibrated model's (see below), packets that preempted (> 0) and a measured stack under nesting
    within the 4 KiB budget, which `s2eprop memory --measured` shows."""
    from s2eprop.host.weights import init_weights

    x, y = sample_maker(1, seed=5, n_steps=30, n_in=16, n_out=4)
    w = init_weights(small_cfg.network, seed=3)
    native = train_one(small_cfg, w, x, y, ChipConfig(mode="timed"))
    iss = train_one(small_cfg, w, x, y, ChipConfig(mode="timed", engine="simpy", cpu="iss"))
    for k in ("w_in", "w_rec", "w_out"):
        assert (getattr(native.weights, k).view(np.uint32) == getattr(iss.weights, k).view(np.uint32)).all(), k
    a, b = native.timing_summary(), iss.timing_summary()
    assert b["preemptions"] > 0 and "preemptions" not in a
    worst_native = a["max_tick_utilisation"]
    # 0.4 % before main's faster neuron step and traces were merged, 2.0 % after (10.74 % against 10.96 %:
    # cycle_costs.yaml not re-fitted to them; a re-fit moves this shape to 2.9 %): 3 % until the fit follows
    assert abs(b["max_tick_utilisation"] - worst_native) <= 0.03 * worst_native, (b["max_tick_utilisation"], worst_native)
    st = b["stack_measured"]
    assert st["nested_calls"] > 0 and 0 < st["nested_bytes"] <= st["budget_bytes"]
    assert st["nested_bytes"] > st["bytes"] - 200 and a["overruns"] == b["overruns"] == 0
    # `s2eprop memory --measured RUN` shows the measured stack beside the static bound
    import json

    from s2eprop.host.cli.main import main

    (tmp_path / "report.json").write_text(json.dumps({"timing": b}))
    assert main(["memory", "--measured", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"nested {st['nested_bytes']:,} B (a packet over {st['nested_over']}" in out and "beside the static" in out


def test_memory_measured_needs_a_run_of_the_arm_build_in_time(tmp_path, capsys) -> None:
    """Rule: `memory --measured` of a folder without report.json, or of a run that did not measure the
    stack, exits 2 with one line naming the folder and the run to make."""
    from s2eprop.host.cli.main import main

    assert main(["memory", "--measured", str(tmp_path)]) == 2
    assert "no report.json" in capsys.readouterr().err
    (tmp_path / "report.json").write_text('{"timing": {"preemptions": 0}}')
    assert main(["memory", "--measured", str(tmp_path)]) == 2
    assert "--cpu iss --engine simpy" in capsys.readouterr().err


def test_iss_timed_with_the_c_engine_is_refused() -> None:
    """Rule: cpu iss in a timed mode on the C event loop is refused, naming --engine simpy."""
    from s2eprop.host.errors import ConfigError

    with pytest.raises(ConfigError, match="add chip.engine simpy"):
        open_transport("emulator", 3, chip=ChipConfig(mode="timed", cpu="iss"))
