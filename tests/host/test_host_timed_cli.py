"""`s2eprop train --mode timed`: the run folder's timing record, its figures, and the refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest

from s2eprop.host.cli.main import main


@pytest.fixture(scope="module")
def timed_run(features_npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "timed"
    assert main(["train", "--data", str(features_npz), "--mode", "timed", "--epochs", "2", "--out", str(out),
                 "--quiet"]) == 0
    return out


def test_a_timed_run_writes_its_timing(timed_run) -> None:
    report = json.loads((timed_run / "report.json").read_text())
    tm = report["timing"]
    assert tm["mode"] == "timed" and tm["clock_hz"] == 300_000_000 and tm["overruns"] == 0
    # 8 training samples of 102 ticks on 12 cores; every record but each core's last tick is closed
    assert tm["ticks"] == 12 * (8 * 102 - 1)
    assert set(tm["cycles_by_phase"]) == {"neuron_update", "trace_update", "packet_handling", "learning_update",
                                          "overhead"}
    assert tm["dominant_phase"] == max(tm["cycles_by_phase"], key=tm["cycles_by_phase"].get)
    assert 0 < tm["p99_tick_utilisation"] <= tm["max_tick_utilisation"] + 0.01 < 1
    assert report["figures"]["timing"] == "timing.png" and report["figures"]["tick"] == "tick.png"
    with np.load(timed_run / "timing.npz") as t:
        ticks = np.unique(t["tick_tick"])
        # the window: the first and the last sample of each of the 2 epochs of 4 samples
        starts = [0, 3 * 102, 4 * 102, 7 * 102]
        assert set(ticks.tolist()) == {s + k for s in starts for k in range(102)} - {8 * 102 - 1}
        assert t["sample_start_ticks"].tolist() == starts  # marked on timing.png
        assert t["core_util_hist"].sum() == tm["ticks"]
        assert int(t["gantt_worst_at_tick"]) == tm["worst_tick"]
        assert len(t["gantt_typical_core"]) > 0


def test_plot_timing_redraws_the_figures(timed_run, capsys) -> None:
    for name in ("timing.png", "tick.png"):
        (timed_run / name).unlink()
    assert main(["plot", "timing", str(timed_run)]) == 0
    assert (timed_run / "timing.png").stat().st_size > 10_000 and (timed_run / "tick.png").stat().st_size > 10_000


@pytest.mark.parametrize("args, says", [
    (["--mode", "timed", "--target", "golden"], "the golden model has no chip: use target emulator"),
    (["--mode", "timed", "--clock-mhz", "200"], "200 MHz is not one of the chip's levels (150, 300 MHz)"),
    (["--mode", "timed", "--chip", "no/such/chip.yaml"], "--chip no/such/chip.yaml: no such file"),
    (["--mode", "timed", "--backend", "python"], "runs on the C event loop only"),
    (["--engine", "simpy"], "the functional chip has no time: add mode timed"),
])
def test_bad_timing_options_are_one_line(features_npz, tmp_path, capsys, args, says) -> None:
    assert main(["train", "--data", str(features_npz), "--out", str(tmp_path / "r"), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_cpu_iss_puts_the_arm_build_behind_the_chip() -> None:
    pytest.importorskip("unicorn")
    from s2eprop.emulator.runners.iss import IssRunner
    from s2eprop.host.config import ChipConfig
    from s2eprop.host.transport import open_transport

    try:
        t = open_transport("emulator", 2, chip=ChipConfig(cpu="iss"))
    except Exception as exc:  # no ARM toolchain here: the ISS tests say so too
        pytest.skip(f"no ARM build: {exc}")
    assert isinstance(t.chip.runner, IssRunner) and t.chip.backend == "python"


def test_cpu_iss_in_timed_mode_is_refused(features_npz, tmp_path, capsys) -> None:
    assert main(["train", "--data", str(features_npz), "--out", str(tmp_path / "r"), "--quiet", "--cpu", "iss",
                 "--mode", "timed"]) == 2
    assert "the C event loop (engine c) runs the native build only: add chip.engine simpy" in capsys.readouterr().err


def test_a_timed_run_reports_training_and_inference_apart(tmp_path) -> None:
    """Rule: report.json `timing` describes the training samples' ticks, the test set's inference has its
    own `timing_inference`, and timing.npz shows training ticks only. A training step's cycles go mostly
    (70 %) to the eligibility traces; inference updates none (it only clears buffers, counted there)."""
    rng = np.random.default_rng(5)
    data = tmp_path / "split.npz"
    np.savez(data, x=(3 * rng.standard_normal((3, 100, 80))).astype(np.float32), y=np.array([1, 4, 9]),
             x_test=(3 * rng.standard_normal((2, 100, 80))).astype(np.float32), y_test=np.array([2, 5]))
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--mode", "timed", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    tm, inf = report["timing"], report["timing_inference"]
    assert tm["part"] == "train" and inf["part"] == "inference"
    share = {name: p["cycles_by_phase"]["trace_update"] / sum(p["cycles_by_phase"].values()) for name, p in
             (("train", tm), ("inference", inf))}
    assert tm["dominant_phase"] == "trace_update" and share["train"] > 0.5 and share["inference"] < 0.02
    assert tm["ticks"] == 12 * 3 * 102 and inf["ticks"] == 12 * (2 * 102 - 1)  # the last tick never closes
    with np.load(out / "timing.npz") as t:
        assert t["tick_tick"].max() < 3 * 102 and t["core_ticks"].sum() == tm["ticks"]
        assert t["inference_core_ticks"].sum() == inf["ticks"]
        assert int(t["gantt_worst_at_tick"]) < 3 * 102


def test_serve_builds_the_timed_chip_on_the_engine_asked_for() -> None:
    """Rule: `s2eprop serve --engine simpy` serves the timed chip's SimPy model; a functional board has none."""
    from s2eprop.emulator.chip.timed import SimpyTimedChip, TimedChip
    from s2eprop.host.cli.board import build_board
    from s2eprop.host.errors import HostError

    assert type(build_board(None, "timed", None, 4, "simpy")[0]) is SimpyTimedChip
    assert type(build_board(None, "timed", None, 4)[0]) is TimedChip
    with pytest.raises(HostError, match="--engine simpy runs the timed chip's SimPy model"):
        build_board(None, "functional", None, 4, "simpy")
