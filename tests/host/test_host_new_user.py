"""What a new user met (issue: tracebacks, options silently ignored, lost epochs): each case is one line on
stderr, exit 2, before any long work, and nothing is lost."""
from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest

from s2eprop.host.cli.main import main
from s2eprop.host.session import runtime, train


def _one_line_exit_2(argv: list[str], capsys, says: str) -> None:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own refusals
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and says in err, err


@pytest.mark.parametrize("argv, says", [
    (["serve", "--port", "-1"], "a UDP port is 0..65535"),
    (["serve", "--port", "70000"], "a UDP port is 0..65535"),
    (["serve", "--cores", "0"], "must be 1 or more"),
    (["board", "status", "udp://127.0.0.1:9", "--retries", "0"], "must be 1 or more"),
    (["board", "status", "udp://127.0.0.1:9", "--retries", "-1"], "must be 1 or more"),
    (["train", "--out", "", "--data", "synth"], "an empty path"),
    (["study", "memory", "--out", "/proc/s2eprop-study"], "cannot write into --out /proc/s2eprop-study"),
    (["calibrate", "--quick", "--out", "/proc/s2eprop-cal"], "cannot write into --out /proc/s2eprop-cal"),
    (["study", "time", "--grid", "seed=0,1", "--out", "x"], "study time does not take --grid"),
])
def test_bad_arguments_are_one_line(argv, says, capsys) -> None:
    _one_line_exit_2(argv, capsys, says)


@pytest.mark.parametrize("args, says", [
    (["--clock-mhz", "150"], "add mode timed"),
    (["--target", "golden", "--cpu", "iss"], "golden model has no cores"),
    (["--target", "golden", "--key-file", "k"], "the golden model needs none"),
])
def test_an_option_the_engine_would_ignore_is_refused(features_npz, tmp_path, capsys, args, says) -> None:
    _one_line_exit_2(["train", "--data", str(features_npz), "--out", str(tmp_path / "r"), "--quiet", *args], capsys, says)
    assert not (tmp_path / "r" / "report.json").exists()


def test_absurd_features_are_refused_naming_the_sample(tmp_path, capsys) -> None:
    x = np.zeros((3, 100, 80), np.float32)
    x[2, 50, 7] = 1e30
    np.savez(tmp_path / "f.npz", x=x, y=np.zeros(3, np.int64))
    _one_line_exit_2(["train", "--target", "golden", "--data", str(tmp_path / "f.npz"), "--out", str(tmp_path / "r"),
                      "--quiet"], capsys, "sample 2 holds 1e+30 at step 50, input 7")


def test_a_learning_rate_that_explodes_the_loss_stops_the_run(features_npz, tmp_path, capsys) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train: {lr: 1.0e+9}\n")
    _one_line_exit_2(["train", "--target", "golden", "--config", str(cfg), "--data", str(features_npz), "--out",
                      str(tmp_path / "r"), "--quiet", "--epochs", "3"], capsys, "lower train.lr (now 1000000000.0)")


@pytest.mark.parametrize("name", ["timing.npz", "recordings.npz"])
def test_plot_of_a_truncated_file_is_one_line(tmp_path, capsys, name) -> None:
    run = tmp_path / "run"
    run.mkdir()
    np.savez(run / name, a=np.arange(100000))
    data = (run / name).read_bytes()
    (run / name).write_bytes(data[: len(data) // 2])
    _one_line_exit_2(["plot", "timing" if name == "timing.npz" else "raster", str(run)], capsys, "is damaged")


def test_plot_raster_out_in_an_unwritable_folder_is_one_line(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "recordings.npz").write_bytes(b"")
    _one_line_exit_2(["plot", "raster", str(run), "--out", "/proc/x.png"], capsys, "cannot write --out /proc/x.png")


@pytest.fixture
def with_test_split(tmp_path) -> Path:
    rng = np.random.default_rng(5)
    path = tmp_path / "split.npz"
    np.savez(path, x=(3 * rng.standard_normal((4, 100, 80))).astype(np.float32), y=np.array([3, 11, 0, 7]),
             x_test=(3 * rng.standard_normal((3, 100, 80))).astype(np.float32), y_test=np.array([1, 2, 3]))
    return path


def test_ctrl_c_during_the_evaluation_keeps_the_epoch_and_resumes_to_the_same_bits(with_test_split, tmp_path, capsys,
                                                                                    monkeypatch) -> None:
    """Rule: a Ctrl-C during an epoch's test evaluation is acknowledged, ends the run with exit 130 after the
    evaluation (never 0), keeps the finished epoch's checkpoint, and --resume ends with the bits of a run
    that was never interrupted."""
    base = ["train", "--target", "golden", "--data", str(with_test_split), "--epochs", "2", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "full")]) == 0
    real = train.evaluate
    calls = {"n": 0}

    def evaluate_with_ctrl_c(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            signal.raise_signal(signal.SIGINT)  # the first Ctrl-C, inside the first epoch's evaluation
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "evaluate", evaluate_with_ctrl_c)
    assert main([*base, "--out", str(tmp_path / "cut")]) == 130
    err = capsys.readouterr().err
    assert "stopping after this sample" in err and "after epoch 1" in err and "--resume" in err
    monkeypatch.setattr(train, "evaluate", real)
    with np.load(tmp_path / "cut" / "checkpoint.npz") as ck:
        assert int(ck["epoch"]) == 1 and int(ck["next_index"]) == 0
    assert main([*base, "--out", str(tmp_path / "cut"), "--resume", str(tmp_path / "cut" / "checkpoint.npz")]) == 0
    for name in ("w_in", "w_rec", "w_out"):
        with np.load(tmp_path / "full" / "weights.npz") as a, np.load(tmp_path / "cut" / "weights.npz") as b:
            assert np.array_equal(a[name], b[name])
    report = json.loads((tmp_path / "cut" / "report.json").read_text())
    assert [e["test_accuracy"] is not None for e in report["epochs"]] == [True, True]


def test_a_second_ctrl_c_during_the_evaluation_loses_no_epoch(with_test_split, tmp_path, capsys, monkeypatch) -> None:
    def evaluate_interrupted(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)  # the second one stops at once
        raise AssertionError("not reached")

    monkeypatch.setattr(train, "evaluate", evaluate_interrupted)
    out = tmp_path / "cut"
    assert main(["train", "--target", "golden", "--data", str(with_test_split), "--epochs", "2", "--quiet", "--out",
                 str(out)]) == 130
    assert "interrupted during the test evaluation of epoch 1" in capsys.readouterr().err
    with np.load(out / "checkpoint.npz") as ck:
        assert int(ck["epoch"]) == 1 and int(ck["samples_trained"]) > 0


assert runtime  # the chip's trainer is imported with the loop it runs under


def test_spike_events_without_the_spikes_config_are_refused(tmp_path, capsys) -> None:
    """Rule: a spike file trained as analog input (the default config) is refused naming the fix, not
    trained as if its 0/1 bins were features."""
    from s2eprop.host.data.spike_format import SpikeSet, save_spike_npz

    labels = tuple(f"c{k}" for k in range(12))
    events = SpikeSet.from_lists([(np.array([1.0, 5.0]), np.array([3, 70]))] * 2, y=np.array([0, 1]), n_units=80)
    path = save_spike_npz(tmp_path / "s.npz", events, labels)
    _one_line_exit_2(["train", "--target", "golden", "--data", str(path), "--out", str(tmp_path / "r"), "--quiet"],
                     capsys, "holds spike events, the config feeds analog input: set input: {kind: spikes")


def test_a_chip_file_copied_elsewhere_keeps_the_packaged_cycle_costs(tmp_path) -> None:
    from s2eprop.emulator.chip.description import DEFAULT_CHIP, load_chip

    copy = tmp_path / "my_chip.yaml"
    copy.write_text(DEFAULT_CHIP.read_text().replace("clock_hz: 300000000", "clock_hz: 150000000"))
    chip = load_chip(copy)
    assert chip.clock_hz == 150_000_000
    assert chip.costs.path == str(DEFAULT_CHIP.parent / "cycle_costs.yaml")


def test_progress_in_a_log_file_is_one_record_a_line() -> None:
    """Rule: with stderr a file, tqdm's in-place updates become lines, so an error never sticks to a bar."""
    import io

    from s2eprop.host.progress import LineLog

    log = io.StringIO()
    out = LineLog(log)
    for text in ("\repoch 1:  50%", "\repoch 1: 100%", "\n", "\r", "error: stopped\n"):
        out.write(text)
    assert log.getvalue() == "epoch 1:  50%\nepoch 1: 100%\nerror: stopped\n"


def test_an_interrupted_whatif_keeps_its_finished_cases(tmp_path, monkeypatch, capsys) -> None:
    from s2eprop.host.studies import whatif

    calls = {"n": 0}

    def case(cfg, c, *args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return {"case": c.name}

    monkeypatch.setattr(whatif, "run_case", case)
    assert main(["study", "whatif", "--samples", "1", "--accuracy-samples", "0", "--out", str(tmp_path)]) == 130
    err = capsys.readouterr()
    assert "interrupted in case 3" in err.err and "whatif: case 2/" in err.out
    kept = json.loads((tmp_path / "result.partial.json").read_text())
    assert kept["cases_done"] == 2 and len(kept["table"]) == 2


def test_study_memory_warns_about_cores_that_do_not_fit(tmp_path, capsys) -> None:
    cfg = tmp_path / "big.yaml"
    cfg.write_text("partition: {neurons_per_core: 40}\n")
    assert main(["study", "memory", "--config", str(cfg), "--out", str(tmp_path / "m")]) == 0
    assert "warning: cores [0, 1, 2] do not fit their SRAM" in capsys.readouterr().out


def test_ctrl_c_twice_during_a_checkpoint_write_keeps_the_last_one_whole(features_npz, tmp_path, monkeypatch,
                                                                          capsys) -> None:
    """Rule: two Ctrl-C inside a checkpoint's write stop at once, leave the checkpoint before it whole (no
    half-written file), and --resume from it ends with the bits of an uninterrupted run."""
    base = ["train", "--target", "golden", "--data", str(features_npz), "--epochs", "2", "--quiet",
            "--checkpoint-every", "2"]
    assert main([*base, "--out", str(tmp_path / "full")]) == 0
    real = train.atomic_write
    calls = {"n": 0}

    def write_interrupted(path, write):
        if path.name != "checkpoint.npz":
            return real(path, write)
        calls["n"] += 1
        if calls["n"] < 3:
            return real(path, write)

        def half(f):
            f.write(b"PK\x03\x04 half a checkpoint")
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # the second stops at once, inside the write

        return real(path, half)

    monkeypatch.setattr(train, "atomic_write", write_interrupted)
    cut = tmp_path / "cut"
    assert main([*base, "--out", str(cut)]) == 130
    monkeypatch.setattr(train, "atomic_write", real)
    assert not list(cut.glob(".*.tmp"))
    with np.load(cut / "checkpoint.npz") as ck:  # the one before the interrupted write, whole
        assert int(ck["samples_trained"]) > 0
    assert main([*base, "--out", str(cut), "--resume", str(cut / "checkpoint.npz")]) == 0
    for name in ("w_in", "w_rec", "w_out"):
        with np.load(tmp_path / "full" / "weights.npz") as a, np.load(cut / "weights.npz") as b:
            assert np.array_equal(a[name], b[name])
