"""Checkpoints and resume (DESIGN section 5): checkpoint.npz holds weights, Adam state and the position
in the run; training resumed from it ends with the bits of an uninterrupted run of the same length."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import s2eprop.host.session.runtime
from s2eprop.host.cli.main import main
from s2eprop.host.reference.golden import GoldenModel

MATRICES = ("w_in", "w_rec", "w_out")
CKPT_KEYS = (*MATRICES, *(f"adam_{m}_{k}" for m in "mv" for k in MATRICES),
             "adam_t", "adam_lr", "adam_b1_pow", "adam_b2_pow", "epoch", "next_index", "samples_trained")
N = 4          # samples in the features file
EPOCHS = 3     # epoch 2 decays the learning rate: the schedule crosses the resume


def _train(out: Path, features: Path, target: str, *extra: str) -> int:
    return main(["train", "--target", target, "--data", str(features), "--out", str(out), "--quiet", *extra])


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _assert_same_bits(a: dict, b: dict, keys, what: str) -> None:
    for k in keys:
        assert np.array_equal(np.asarray(a[k]).view(np.uint32), np.asarray(b[k]).view(np.uint32)), f"{what}: {k}"


@pytest.fixture(scope="module", params=["golden", "emulator"])
def full_run(request, tmp_path_factory, features_npz, weights_npz):
    """An uninterrupted run: 3 epochs over 4 samples, checkpoint every 2 samples."""
    target = request.param
    out = tmp_path_factory.mktemp(f"full_{target}")
    assert _train(out, features_npz, target, "--init-weights", str(weights_npz), "--epochs", str(EPOCHS),
                  "--checkpoint-every", "2") == 0
    return target, out


def test_checkpoint_holds_weights_adam_and_position(full_run, features_npz, weights_npz) -> None:
    """Rule: at the end of a run, checkpoint.npz holds the final weights (same bits as weights.npz), the
    Adam moments, step count (one per sample), decayed learning rate (lr * 0.3 after epoch 2) and beta
    powers (float32 products), and the position (epoch 3, index 0, 12 samples); for the golden target the Adam state is
    that of a GoldenModel trained on the same samples."""
    target, out = full_run
    ck = _load(out / "checkpoint.npz")
    for key in CKPT_KEYS:
        assert key in ck, f"checkpoint lacks {key}"
    _assert_same_bits(ck, _load(out / "weights.npz"), MATRICES, "checkpoint vs weights.npz")
    assert int(ck["adam_t"]) == N * EPOCHS and int(ck["samples_trained"]) == N * EPOCHS
    assert (int(ck["epoch"]), int(ck["next_index"])) == (EPOCHS, 0)
    assert np.float32(ck["adam_lr"]) == np.float32(np.float32(0.01) * np.float32(0.3))
    b1_pow, b2_pow = np.float32(0.9), np.float32(0.999)  # beta^(t+1), a float32 product over the steps
    for _ in range(N * EPOCHS):
        b1_pow, b2_pow = np.float32(b1_pow * np.float32(0.9)), np.float32(b2_pow * np.float32(0.999))
    assert (np.float32(ck["adam_b1_pow"]), np.float32(ck["adam_b2_pow"])) == (b1_pow, b2_pow)
    report = json.loads((out / "report.json").read_text())
    assert report["samples_trained"] == N * EPOCHS and report["target"] == target
    if target == "golden":
        from s2eprop.host.config import ExperimentConfig
        from s2eprop.host.weights import load_weights

        cfg = ExperimentConfig().validate()
        data = _load(features_npz)
        model = GoldenModel(cfg.network, cfg.train, load_weights(weights_npz, cfg.network))
        for epoch in range(EPOCHS):
            model.start_epoch(epoch)
            for i in range(N):
                model.train_batch(data["x"][i:i + 1], data["y"][i:i + 1])
        _assert_same_bits(ck, model.weights.as_dict(), MATRICES, "CLI vs GoldenModel")
        _assert_same_bits(ck, {f"adam_{m}_{k}": getattr(model.adam, m)[k] for m in "mv" for k in MATRICES},
                          [f"adam_{m}_{k}" for m in "mv" for k in MATRICES], "Adam moments")


def test_resume_after_an_epoch_reproduces_the_run(full_run, tmp_path, features_npz, weights_npz) -> None:
    """Rule: a run stopped after epoch 1 and resumed with --resume checkpoint.npz --epochs 3 ends with
    the same weight bits as the uninterrupted 3-epoch run and counts 12 samples in all."""
    target, full = full_run
    part = tmp_path / "part"
    assert _train(part, features_npz, target, "--init-weights", str(weights_npz), "--epochs", "1") == 0
    ck = _load(part / "checkpoint.npz")
    assert (int(ck["epoch"]), int(ck["next_index"]), int(ck["adam_t"])) == (1, 0, N)
    resumed = tmp_path / "resumed"
    assert _train(resumed, features_npz, target, "--resume", str(part / "checkpoint.npz"), "--epochs", str(EPOCHS)) == 0
    _assert_same_bits(_load(resumed / "weights.npz"), _load(full / "weights.npz"), MATRICES, "resumed vs full")
    assert json.loads((resumed / "report.json").read_text())["samples_trained"] == N * EPOCHS


def test_resume_mid_epoch_reproduces_the_run(full_run, tmp_path, features_npz, weights_npz,
                                             interrupt_training) -> None:
    """Rule: a run interrupted (Ctrl-C, exit 130) during sample 7 keeps the --checkpoint-every 2 checkpoint
    taken after sample 6 (epoch 1, index 2); resuming from it ends with the bits of the uninterrupted run."""
    target, full = full_run
    cls = GoldenModel if target == "golden" else s2eprop.host.session.runtime.BoardTrainer
    restore = interrupt_training(cls, 7)
    part = tmp_path / "part"
    assert _train(part, features_npz, target, "--init-weights", str(weights_npz), "--epochs", str(EPOCHS),
                  "--checkpoint-every", "2") == 130
    restore()
    ck = _load(part / "checkpoint.npz")
    assert (int(ck["epoch"]), int(ck["next_index"]), int(ck["samples_trained"]), int(ck["adam_t"])) == (1, 2, 6, 6)
    assert not (part / "weights.npz").exists()
    resumed = tmp_path / "resumed"
    assert _train(resumed, features_npz, target, "--resume", str(part / "checkpoint.npz"), "--epochs", str(EPOCHS),
                  "--checkpoint-every", "2") == 0
    _assert_same_bits(_load(resumed / "weights.npz"), _load(full / "weights.npz"), MATRICES, "resumed vs full")
    _assert_same_bits(_load(resumed / "checkpoint.npz"), _load(full / "checkpoint.npz"),
                      [k for k in CKPT_KEYS if k.startswith("adam_") and k != "adam_t"], "Adam state")


def test_resumed_report_keeps_the_whole_history(full_run, tmp_path, features_npz, weights_npz) -> None:
    """Rule: the report of a resumed run lists every epoch of the run (not only this session's), the same
    online accuracies and losses as the uninterrupted run, and the emulator's chip time of all sessions."""
    target, full = full_run
    part = tmp_path / "part"
    assert _train(part, features_npz, target, "--init-weights", str(weights_npz), "--epochs", "1") == 0
    resumed = tmp_path / "resumed"
    assert _train(resumed, features_npz, target, "--resume", str(part / "checkpoint.npz"), "--epochs", str(EPOCHS)) == 0
    got = json.loads((resumed / "report.json").read_text())
    want = json.loads((full / "report.json").read_text())
    assert [e["epoch"] for e in got["epochs"]] == [0, 1, 2]
    for g, w in zip(got["epochs"], want["epochs"]):
        assert (g["samples"], g["train_accuracy"]) == (w["samples"], w["train_accuracy"])
        assert g["loss"] == pytest.approx(w["loss"], rel=1e-6)
    assert got["samples_trained_this_session"] == N * (EPOCHS - 1)
    if target == "emulator":
        assert got["emulated_ms"] == want["emulated_ms"] == N * EPOCHS * 101  # 100 steps + the update tick


def test_resume_with_another_config_is_refused(full_run, tmp_path, features_npz, capsys) -> None:
    """Rule: resuming with settings that change what is learnt (here the seed of the random feedback /
    initialisation, 0 -> 5, and the learning rate, 0.01 -> 0.02) stops with one line naming each changed
    key with its old and new value; --epochs may change and is not named as a change."""
    target, full = full_run
    cfg = tmp_path / "other.yaml"
    cfg.write_text("train:\n  lr: 0.02\n  seed: 5\n")
    assert _train(tmp_path / "r", features_npz, target, "--resume", str(full / "checkpoint.npz"),
                  "--config", str(cfg), "--epochs", "5") == 2
    err = capsys.readouterr().err
    assert "train.lr: 0.01 -> 0.02" in err and "train.seed: 0 -> 5" in err, err
    assert "train.epochs:" not in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r" / "report.json").exists()


def test_resuming_a_finished_run_trains_nothing(full_run, tmp_path, features_npz) -> None:
    """Rule: resuming a run that already has all its epochs trains no sample, exits 0 and reports the
    run's accuracy and weights unchanged."""
    target, full = full_run
    out = tmp_path / "again"
    assert _train(out, features_npz, target, "--resume", str(full / "checkpoint.npz"), "--epochs", str(EPOCHS)) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["samples_trained_this_session"] == 0 and report["samples_trained"] == N * EPOCHS
    _assert_same_bits(_load(out / "weights.npz"), _load(full / "weights.npz"), MATRICES, "unchanged weights")


FB_KEYS = ("fb", "adam_m_fb", "adam_v_fb")


@pytest.mark.parametrize("target", ["golden", "emulator"])
def test_adaptive_feedback_resumes_to_the_same_bits(target, tmp_path, features_npz, weights_npz) -> None:
    """Rule: with train.feedback adaptive, a checkpoint holds the learned B and its optimizer moments, and a
    run of 2 epochs over 4 samples (8 samples straight) ends with the same bits of weights, B and moments as
    a run of 1 epoch (4 samples), checkpointed, then resumed for the second; B really learned (moved from
    its seeded start), so a resume that restarted it from the seed would differ."""
    from s2eprop.host.config import ExperimentConfig
    from s2eprop.host.reference.golden import random_feedback

    cfg = tmp_path / "adaptive.yaml"
    cfg.write_text("train:\n  feedback: adaptive\n")
    opts = ("--config", str(cfg))
    full, part, resumed = tmp_path / "full", tmp_path / "part", tmp_path / "resumed"
    assert _train(full, features_npz, target, *opts, "--init-weights", str(weights_npz), "--epochs", "2") == 0
    assert _train(part, features_npz, target, *opts, "--init-weights", str(weights_npz), "--epochs", "1") == 0
    assert _train(resumed, features_npz, target, *opts, "--resume", str(part / "checkpoint.npz"), "--epochs", "2") == 0
    want, got = _load(full / "checkpoint.npz"), _load(resumed / "checkpoint.npz")
    assert int(got["adam_t"]) == int(want["adam_t"]) == 2 * N
    _assert_same_bits(got, want, (*MATRICES, *FB_KEYS, *(f"adam_{m}_{k}" for m in "mv" for k in MATRICES)),
                      "resumed vs straight")
    b0 = random_feedback(ExperimentConfig().network, seed=0)
    assert not np.array_equal(_load(part / "checkpoint.npz")["fb"], b0), "B did not learn in the first epoch"
    assert np.any(want["adam_v_fb"] > 0)


def test_old_adaptive_checkpoint_is_refused(tmp_path, features_npz, weights_npz, capsys) -> None:
    """Rule: a checkpoint of an adaptive run without B (made before checkpoints held it) is refused with one
    line naming the file, what it lacks and the fix (--init-weights), rather than resuming with B restarted."""
    cfg = tmp_path / "adaptive.yaml"
    cfg.write_text("train:\n  feedback: adaptive\n")
    part = tmp_path / "part"
    assert _train(part, features_npz, "golden", "--config", str(cfg), "--init-weights", str(weights_npz),
                  "--epochs", "1") == 0
    ck = _load(part / "checkpoint.npz")
    old = tmp_path / "old.npz"
    np.savez(old, **{k: a for k, a in ck.items() if k not in FB_KEYS})
    assert _train(tmp_path / "r", features_npz, "golden", "--config", str(cfg), "--resume", str(old),
                  "--epochs", "2") == 2
    err = capsys.readouterr().err
    assert f"checkpoint {old} lacks fb, adam_m_fb, adam_v_fb" in err and f"--init-weights {old}" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_symmetric_checkpoint_holds_no_feedback(full_run) -> None:
    """Rule: only adaptive feedback's checkpoints hold B (the default's checkpoint keeps its keys)."""
    _, full = full_run
    assert not set(FB_KEYS) & set(_load(full / "checkpoint.npz"))
