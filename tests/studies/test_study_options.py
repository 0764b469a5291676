"""`s2eprop study options`: the accuracy table of the learning options, one row per variant of the config."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from s2eprop.host.cli.main import main
from s2eprop.host.config import ExperimentConfig
from s2eprop.host.data.dataset import Dataset
from s2eprop.host.reference.golden import GoldenModel
from s2eprop.host.session.api import load_config
from s2eprop.host.studies import options
from s2eprop.host.weights import init_weights

N_TRAIN, N_TEST = 3, 4


def _tiny() -> Dataset:
    rng = np.random.default_rng(0)
    labels = tuple(f"c{i}" for i in range(12))
    return Dataset((3 * rng.standard_normal((N_TRAIN, 100, 80))).astype(np.float32), rng.integers(0, 12, N_TRAIN),
                   labels, (3 * rng.standard_normal((N_TEST, 100, 80))).astype(np.float32),
                   rng.integers(0, 12, N_TEST), name="tiny")


def _golden_test_loss(overrides: dict, data: Dataset) -> float:
    """The variant trained by hand on the golden model (one epoch, batch 1), its mean test loss."""
    cfg = load_config(ExperimentConfig(), overrides)
    model = GoldenModel(cfg.network, cfg.train, init_weights(cfg.network, cfg.train.seed, data.labels))
    for i in range(N_TRAIN):
        model.train_batch(data.x_train[i:i + 1], data.y_train[i:i + 1])
    return float(np.mean(model.forward(data.x_test, data.y_test).loss))


def test_options_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rule: the study trains every variant of the list on the chip from the same seed and writes one row
    each to options.json (and result.json): the variants really differ (each ends with other weight bits),
    each row's test loss is that of the golden model trained by hand with the row's overrides (within the
    chip-vs-golden tolerance: so the overrides reached the chip), and a variant the config does not know
    (p_rec before network.connectivity exists) is a skipped row that says why."""
    d = _tiny()
    data = tmp_path / "tiny.npz"
    np.savez(data, x=d.x_train, y=d.y_train, x_test=d.x_test, y_test=d.y_test, labels=np.asarray(d.labels))
    out = tmp_path / "o"
    assert main(["study", "options", "--out", str(out), "--data", str(data), "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    table = json.loads((out / "options.json").read_text())
    assert json.loads((out / "result.json").read_text())["rows"] == table["rows"]
    assert (out / "options.png").stat().st_size > 1000
    assert (table["epochs"], table["train_samples_per_epoch"], table["test_samples"]) == (1, N_TRAIN, N_TEST)
    rows = {r["key"]: r for r in table["rows"]}
    assert list(rows) == [v.key for v in options.VARIANTS]
    knows_connectivity = "connectivity" in {f.name for f in dataclasses.fields(ExperimentConfig().network)}
    done = [r for r in table["rows"] if r["status"] == "done"]
    assert len(done) == len(options.VARIANTS) - (0 if knows_connectivity else 1)
    if not knows_connectivity:
        assert rows["p_rec"]["status"] == "skipped" and "network.connectivity" in rows["p_rec"]["reason"]
        assert "network.connectivity" in printed
    for r in done:
        assert r["samples_trained"] == N_TRAIN and 0.0 <= r["test_accuracy"] <= 1.0
        assert np.isfinite([r["test_loss"], r["final_train_loss"], r["wall_s"], r["cpu_s"]]).all()
        assert f"| {r['variant']} | {100 * r['test_accuracy']:.1f} % |" in printed
    assert len({r["weights_sha256_16"] for r in done}) == len(done), "two variants trained the same weights"
    for key in ("default", "triangle", "n_regular", "rate_reg"):
        want = _golden_test_loss({s: dict(v) for s, v in rows[key]["overrides"].items()}, d)
        assert rows[key]["test_loss"] == pytest.approx(want, abs=1e-4), key
    losses = {r["key"]: r["test_loss"] for r in done}
    assert len(set(losses.values())) == len(losses)


def test_a_variant_of_an_unknown_key_is_skipped(tmp_path: Path) -> None:
    """Rule: a variant whose key the config lacks is skipped with a reason naming the key; the others run."""
    bogus = options.Variant("bogus", "bogus", {"network": {"no_such_option": 1}})
    r = options.run(tmp_path, epochs=1, variants=(options.VARIANTS[0], bogus), data=_tiny())
    assert [row["status"] for row in r["rows"]] == ["done", "skipped"]
    assert "network.no_such_option" in r["rows"][1]["reason"]
    assert "| bogus | skipped |" in r["table"]


def test_unknown_variant_name_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "options", "--out", str(tmp_path / "o"), "--variant", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown --variant 'nope'" in err and "'triangle'" in err and err.count("\n") == 1
