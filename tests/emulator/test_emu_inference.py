"""On-chip inference: BoardTrainer.forward and `s2eprop eval --target emulator` give the golden model's
forward pass (predictions, losses, output means) and never change the weights on the board."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from s2eprop.host.cli.main import main
from s2eprop.host.data.dataset import KWS_LABELS
from s2eprop.host.reference.golden import GoldenModel
from s2eprop.host.session.runtime import BoardTrainer
from s2eprop.host.weights import Weights

N_EVAL = 8
N_RIGHT = 5  # of the 8 test labels, this many are set to the golden model's prediction


@pytest.fixture(scope="module")
def trained(cfg, init_w, sample_maker) -> Weights:
    """The golden model's weights after 24 training samples (so that the predictions vary by sample)."""
    x, y = sample_maker(24, seed=61)
    golden = GoldenModel(cfg.network, cfg.train, init_w)
    for i in range(len(x)):
        golden.train_batch(x[i:i + 1], y[i:i + 1])
    return golden.weights.copy()


@pytest.fixture(scope="module")
def eval_set(cfg, trained, sample_maker) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8 samples, the golden model's predictions on them, and labels of which exactly 5 are right."""
    x, _ = sample_maker(N_EVAL, seed=62)
    pred = GoldenModel(cfg.network, cfg.train, trained).forward(x).pred
    y = np.where(np.arange(N_EVAL) < N_RIGHT, pred, (pred + 1) % cfg.network.n_out).astype(np.int64)
    return x, y, pred


def test_forward_on_the_board_is_the_golden_forward(cfg, trained, eval_set, weights_identical) -> None:
    """Rule: BoardTrainer.forward over 8 samples from the same weights gives the golden model's forward
    predictions exactly, its losses and output means within 1e-5, and leaves the board's weights
    bit-identical to the ones it was given and its Adam state untouched (inference does not learn)."""
    x, y, pred_g = eval_set
    assert len(set(pred_g.tolist())) > 1, f"the test needs predictions that vary: {pred_g}"
    board = BoardTrainer(cfg, trained.copy())
    rb = board.forward(x, y)
    rg = GoldenModel(cfg.network, cfg.train, trained.copy()).forward(x, y)
    assert rb.pred.tolist() == rg.pred.tolist() == pred_g.tolist()
    assert (rb.pred == y).sum() == N_RIGHT
    np.testing.assert_allclose(rb.loss, rg.loss, rtol=0, atol=1e-5)
    np.testing.assert_allclose(rb.output_mean, rg.output_mean, rtol=0, atol=1e-5)
    assert rb.spikes.tolist() == rg.spikes.tolist()
    assert rb.spikes.min() > 0
    weights_identical(board.weights, trained, "board weights after inference")
    adam = board.adam
    assert adam.t == 0 and all(not adam.m[k].any() and not adam.v[k].any() for k in adam.m)
    assert board.chip_ms == (0, N_EVAL * (cfg.network.n_steps + 1))
    assert board.provenance() == dict.fromkeys(board.provenance(), 0)


def _eval(capsys, target: str, weights, features, *extra: str) -> str:
    assert main(["eval", "--target", target, "--weights", str(weights), "--data", str(features),
                 "--quiet", *extra]) == 0
    return capsys.readouterr().out


def test_cli_eval_on_the_emulator_matches_golden(cfg, trained, eval_set, tmp_path, capsys) -> None:
    """Rule: `s2eprop eval --target emulator` exits 0 and prints the accuracy `--target golden` prints on
    the same weights and features .npz (5 of 8 test labels right: 62.50 %), with the same loss (1e-5)."""
    x, y, _ = eval_set
    w_path, f_path = tmp_path / "w.npz", tmp_path / "features.npz"
    np.savez(w_path, **trained.as_dict(), labels=np.asarray(KWS_LABELS))
    np.savez(f_path, x=x[:2], y=y[:2], x_test=x, y_test=y)
    texts = {t: _eval(capsys, t, w_path, f_path) for t in ("emulator", "golden")}
    lines = {t: re.search(r"^test split on \S+: accuracy ([\d.]+) % over (\d+) samples", s, re.M) for t, s in texts.items()}
    assert all(lines.values()), texts
    assert lines["emulator"].groups() == lines["golden"].groups() == ("62.50", str(N_EVAL)), texts
    js = {t: json.loads(_eval(capsys, t, w_path, f_path, "--json")) for t in ("emulator", "golden")}
    assert js["emulator"]["accuracy"] == js["golden"]["accuracy"] == N_RIGHT / N_EVAL
    assert abs(js["emulator"]["loss"] - js["golden"]["loss"]) <= 1e-5, js
    assert js["emulator"]["split"] == "test" and js["emulator"]["samples"] == N_EVAL
