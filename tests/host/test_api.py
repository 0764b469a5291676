"""The scripting API (`import s2eprop`, docs/api.md): configs, the engine table, refused input, the run
folder a session saves, and a session resumed from a checkpoint."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import s2eprop
from s2eprop.host.engines import RULES, Engine, check_engine
from s2eprop.host.errors import ConfigError, DataError, HostError

MATRICES = ("w_in", "w_rec", "w_out")


@pytest.fixture(scope="module")
def six(authors) -> s2eprop.Dataset:
    return s2eprop.Dataset(authors["x"], authors["y"], tuple(f"c{k}" for k in range(12)), name="authors' six")


def _w0(authors) -> dict[str, np.ndarray]:
    return {k: authors[k + "_init"] for k in MATRICES}


def test_load_config_takes_a_path_a_dict_and_a_config_with_overrides(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train: {epochs: 3, lr: 0.02}\nnetwork: {n_rec: 60}\n")
    from_path = s2eprop.load_config(path, overrides={"train": {"epochs": 2}})
    assert (from_path.train.epochs, from_path.train.lr, from_path.network.n_rec) == (2, 0.02, 60)
    from_dict = s2eprop.load_config({"train": {"epochs": 3, "lr": 0.02}, "network": {"n_rec": 60}},
                                    overrides={"train": {"epochs": 2}})
    assert from_dict == from_path
    assert s2eprop.load_config(from_path, overrides={"train": {"seed": 4}}).train.seed == 4
    assert s2eprop.load_config().network.n_rec == 120  # the paper's network
    with pytest.raises(ConfigError, match="unknown"):
        s2eprop.load_config({"train": {"epochs": 1}}, overrides={"train": {"epoch": 2}})
    with pytest.raises(ConfigError, match="YAML path, a dict or an ExperimentConfig"):
        s2eprop.load_config(3)


def test_load_config_resolves_auto() -> None:
    cfg = s2eprop.load_config({"partition": {"neurons_per_core": "auto"}})
    assert isinstance(cfg.partition.neurons_per_core, int) and cfg.partition.neurons_per_core >= 10


@pytest.mark.parametrize("i", range(len(RULES)))
def test_every_rule_of_the_engine_table_refuses_something(i) -> None:
    """Rule: each row of the table is reached (no dead row): some engine of the grid is refused by it first."""
    grid = [Engine(*e) for e in itertools.product(("golden", "emulator", "udp"), ("functional", "timed"),
                                                  ("native", "iss"), ("c", "python"), (1, 8), (False, True),
                                                  (False, True), (False, True), ("prefetch", "realtime"),
                                                  (False, True), ("c", "simpy"), (False, True))]
    first = []
    for e in grid:
        hit = next((k for k, (refused, _) in enumerate(RULES) if refused(e)), None)
        first.append(hit)
    assert i in first


@pytest.mark.parametrize("engine", [Engine("golden", batch_size=32), Engine("emulator", "timed", clock=True),
                                    Engine("emulator", cpu="iss", backend="python"), Engine("udp", key_file=True),
                                    Engine("emulator", "realtime", chip_file=True, input_mode="realtime"),
                                    Engine("emulator", "timed", engine="simpy"),
                                    Engine("emulator", "timed", cpu="iss", engine="simpy"),
                                    Engine("emulator", "timed", threads=True)])
def test_engines_that_run_are_accepted(engine) -> None:
    check_engine(engine)


@pytest.mark.parametrize("kwargs, says", [
    ({"target": "golden", "mode": "timed"}, "golden model has no chip"),
    ({"target": "golden", "cpu": "iss"}, "golden model has no cores"),
    ({"cpu": "iss", "mode": "timed"}, "add chip.engine simpy"),
    ({"clock_mhz": 150}, "add mode timed"),
    ({"target": "udp://127.0.0.1:9", "mode": "timed"}, "the board's chip, mode"),
    ({"target": "emulator", "key_file": "k"}, "needs none"),
    ({"config": {"train": {"batch_size": 4}}}, "the chip learns online"),
    ({"target": "tpu"}, "unknown target"),
    ({"mode": "timed", "config": {"chip": {"engine": "simpy", "threads": 2}}}, "engine simpy run on one thread"),
])
def test_a_session_refuses_what_cannot_run_when_made(kwargs, says) -> None:
    with pytest.raises(ConfigError, match=says):
        s2eprop.Session(**kwargs)


def test_non_finite_input_is_refused_naming_the_sample(authors, six) -> None:
    x = authors["x"].copy()
    x[4, 17, 33] = np.inf
    with pytest.raises(DataError, match=r"sample 4 holds inf at step 17, input 33"):
        s2eprop.Dataset(x, authors["y"], six.labels)
    with s2eprop.Session(target="emulator", init_weights=_w0(authors)) as s:
        with pytest.raises(DataError, match=r"sample 0 holds nan at step 3, input 2"):
            bad = authors["x"][0].copy()
            bad[3, 2] = np.nan
            s.train_sample(bad, 1)
        assert s.provenance["samples_lost"] == 0
        w = s.weights
    assert all(np.array_equal(w[k], authors[k + "_init"]) for k in MATRICES)  # nothing was learnt from it


def test_save_writes_the_run_folder_of_the_cli(tmp_path, authors, six) -> None:
    """Rule: a session's train + save gives the files and weights of `s2eprop train` on the same input."""
    from s2eprop.host.cli.main import main

    data, w = tmp_path / "six.npz", tmp_path / "w0.npz"
    np.savez(data, x=authors["x"], y=authors["y"], labels=np.array(six.labels))
    np.savez(w, **_w0(authors))
    assert main(["train", "--target", "golden", "--data", str(data), "--init-weights", str(w), "--out",
                 str(tmp_path / "cli"), "--quiet"]) == 0
    with s2eprop.Session(target="golden", init_weights=_w0(authors), labels=six.labels) as s:
        seen = []
        report = s.train(six, epochs=1, on_sample=seen.append)
        assert [int(i["index"]) for i in seen] == list(range(6)) and seen[-1]["samples_trained"] == 6
        s.save(tmp_path / "api")
        with pytest.raises(HostError, match="holds a run"):
            s.save(tmp_path / "api")
    cli = sorted(p.name for p in (tmp_path / "cli").iterdir())
    assert sorted(p.name for p in (tmp_path / "api").iterdir()) == cli
    for name in ("weights.npz", "checkpoint.npz"):
        with np.load(tmp_path / "cli" / name) as a, np.load(tmp_path / "api" / name) as b:
            for k in MATRICES:
                assert np.array_equal(a[k], b[k])
    saved = json.loads((tmp_path / "api" / "report.json").read_text())
    assert saved["samples_trained"] == report["samples_trained"] == 6
    assert saved["train_accuracy"] == json.loads((tmp_path / "cli" / "report.json").read_text())["train_accuracy"]


def test_a_session_resumes_its_checkpoint_to_the_same_bits(tmp_path, authors, six) -> None:
    with s2eprop.Session(init_weights=_w0(authors), labels=six.labels) as s:
        s.train(six, epochs=2, out=tmp_path / "full")
        full = s.weights
    with s2eprop.Session(init_weights=_w0(authors), labels=six.labels) as s:
        s.train(six, epochs=1, out=tmp_path / "half")
    with s2eprop.Session(resume=tmp_path / "half" / "checkpoint.npz") as s:
        report = s.train(six, epochs=2, out=tmp_path / "half")
        assert report["samples_trained"] == 12 and report["samples_trained_this_session"] == 6
        assert all(np.array_equal(s.weights[k], full[k]) for k in MATRICES)


def test_a_closed_session_keeps_its_weights_and_refuses_work(authors) -> None:
    s = s2eprop.Session(target="golden", init_weights=_w0(authors))
    s.train_sample(authors["x"][0], int(authors["y"][0]))
    s.close()
    assert not np.array_equal(s.weights["w_out"], authors["w_out_init"])
    with pytest.raises(HostError, match="closed"):
        s.train_sample(authors["x"][1], 1)


def test_load_dataset_names_an_h5_file_as_shd(tmp_path) -> None:
    from s2eprop.host.data.loader import dataset_config_from_arg

    f = tmp_path / "shd_train.h5"
    f.write_bytes(b"")
    assert dataset_config_from_arg(str(f), {"test_path": "t.h5"}).kind == "shd"


def test_a_session_takes_the_timed_chips_engine() -> None:
    """Rule: Session(engine=...) reaches the chip: the SimPy model behind a timed session; refused on a
    functional one, naming the fix."""
    from s2eprop.emulator.chip.timed import SimpyTimedChip

    with s2eprop.Session(mode="timed", engine="simpy") as s:
        assert s.cfg.chip.engine == "simpy" and isinstance(s._trainer.transport.chip, SimpyTimedChip)
    with pytest.raises(ConfigError, match="the functional chip has no time: add mode timed"):
        s2eprop.Session(engine="simpy")
