"""The emulated chip (and the golden model) against the authors' own C code: six samples of their
plain-C E-prop, batch 1 (fixture README), through BoardTrainer and through `s2eprop train`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from s2eprop.host.cli.main import main
from s2eprop.host.reference.golden import GoldenModel
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.weights import Weights

TOL = 1e-5
MATRICES = ("w_in", "w_rec", "w_out")
REPORT_KEYS = ("target", "samples_trained", "train_accuracy", "test_accuracy", "wall_s")
EMULATOR_KEYS = ("cores", "neurons_per_core", "sram_bytes_per_core", "training_state_bytes_total", "emulated_ms")


def _initial(authors) -> Weights:
    return Weights(authors["w_in_init"], authors["w_rec_init"], authors["w_out_init"])


def _final(authors) -> Weights:
    return Weights(authors["w_in"], authors["w_rec"], authors["w_out"])


def test_board_trainer_reproduces_authors_c(cfg, authors, weights_close, rel_err) -> None:
    """Rule: 12 emulated cores, one sample at a time, give the authors' per-sample losses within 1e-5,
    their predictions exactly, their time-mean outputs within 1e-5, and their final weights within 1e-5
    of max|w| per matrix; no packet or frame is lost."""
    board = BoardTrainer(cfg, _initial(authors))
    board.start_epoch(0)
    x, y = authors["x"], authors["y"]
    for i in range(len(x)):
        r = board.train_batch(x[i:i + 1], y[i:i + 1])
        assert abs(float(r.loss[0]) - float(authors["loss"][i])) <= TOL, f"sample {i}: loss {r.loss[0]}"
        assert int(r.pred[0]) == int(authors["pred"][i]), f"sample {i}: prediction {r.pred[0]}"
        np.testing.assert_allclose(r.output_mean[0], authors["output_mean"][i], rtol=0, atol=TOL)
    weights_close(board.weights, _final(authors), TOL, "board vs authors' C after 6 samples")
    moved = rel_err(_initial(authors), _final(authors))
    assert min(moved.values()) > 100 * TOL  # the fixture's weights moved: the comparison has teeth
    assert board.adam.t == len(x)
    assert all(v == 0 for v in board.provenance().values()), board.provenance()


def _write_inputs(tmp_path: Path, authors) -> tuple[Path, Path]:
    data = tmp_path / "features.npz"
    np.savez(data, x=authors["x"], y=authors["y"])
    w = tmp_path / "init.npz"
    np.savez(w, w_in=authors["w_in_init"], w_rec=authors["w_rec_init"], w_out=authors["w_out_init"])
    return data, w


@pytest.mark.parametrize("target", ["emulator", "golden"])
def test_cli_train_reproduces_authors_c(tmp_path, capsys, authors, cfg, weights_close, target) -> None:
    """Rule: `s2eprop train --target T --data features.npz --init-weights w.npz --epochs 1` exits 0 and
    writes weights.npz within 1e-5 of max|w| of the authors' final weights, and a report.json with the
    run's facts (6 samples, accuracy of the predictions taken before each update, no test split; for
    the emulator: 12 cores of 10 neurons, per-core SRAM, training-state bytes, emulated ms); the
    epoch loss is mean(CE + l2 * sum W^2) over the six samples."""
    data, w = _write_inputs(tmp_path, authors)
    out = tmp_path / "run"
    rc = main(["train", "--target", target, "--data", str(data), "--init-weights", str(w), "--out", str(out),
               "--epochs", "1", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "Traceback" not in captured.err
    with np.load(out / "weights.npz") as f:
        got = Weights(f["w_in"], f["w_rec"], f["w_out"])
    weights_close(got, _final(authors), TOL, f"CLI {target} vs authors' C")
    report = json.loads((out / "report.json").read_text())
    for key in REPORT_KEYS:
        assert key in report, f"report.json lacks {key!r}"
    assert report["target"] == target
    assert report["samples_trained"] == 6
    expected_acc = float(np.mean(authors["pred"] == authors["y"]))
    assert report["train_accuracy"] == pytest.approx(expected_acc)
    assert report["test_accuracy"] is None
    assert report["wall_s"] > 0
    # epoch loss: the authors' CE per sample plus the L2 term of the weights before each update
    golden = GoldenModel(cfg.network, cfg.train, _initial(authors))
    l2 = [golden.train_batch(authors["x"][i:i + 1], authors["y"][i:i + 1]).l2_loss for i in range(6)]
    want = float(np.mean(authors["loss"].astype(np.float64) + np.array(l2)))
    assert report["epochs"][0]["loss"] == pytest.approx(want, abs=1e-5)
    if target == "emulator":
        for key in EMULATOR_KEYS:
            assert key in report, f"report.json lacks {key!r}"
        assert report["cores"] == 12 and report["neurons_per_core"] == 10
        assert len(report["sram_bytes_per_core"]) == 12
        assert all(0 < b <= 96 * 1024 for b in report["sram_bytes_per_core"])
        assert 0 < report["training_state_bytes_total"] <= 612_000
        # each sample streams 100 one-ms frames; its result needs at least those 100 ticks
        assert 6 * 100 <= report["emulated_ms"] <= 6 * 116
        assert all(v == 0 for v in report["provenance"].values()), report["provenance"]
    with np.load(out / "checkpoint.npz") as ck:
        assert int(ck["samples_trained"]) == 6 and int(ck["adam_t"]) == 6
        for k in MATRICES:
            assert np.array_equal(ck[k].view(np.uint32), getattr(got, k).view(np.uint32))
