"""A sample the chip lost (train.on_loss: count) is reported as lost, never as trained: in the summary line,
in report.json, and in the exit status of `s2eprop train`."""
from __future__ import annotations

import json

import numpy as np

from s2eprop.firmware.abi import abi
from s2eprop.host.cli.main import EXIT_SAMPLES_LOST, main
from s2eprop.host.transport.inproc import EmulatorTransport


def _drop_sample(monkeypatch, sample_id: int) -> None:
    """The SAMPLE messages of one sample never reach the cores (as if their datagrams were lost): no core runs
    it, so no RESULT and no SAMPLE_DONE come back."""
    send_many = EmulatorTransport.send_many

    def lossy(self, messages, timeout_s=None, hold=False):
        kept = [(core, words) for core, words in messages
                if not (int(words[0]) == int(abi().FW_MSG_SAMPLE) and int(words[1]) == sample_id)]
        return send_many(self, kept, timeout_s, hold)

    monkeypatch.setattr(EmulatorTransport, "send_many", lossy)


def test_a_lost_sample_is_reported_as_lost_with_its_own_exit_status(tmp_path, features_npz, weights_npz, monkeypatch,
                                                                    capsys) -> None:
    cfg = tmp_path / "count.yaml"
    cfg.write_text("train: {on_loss: count}\n")
    _drop_sample(monkeypatch, 1)  # the second of 4 training samples
    out = tmp_path / "run"
    rc = main(["train", "--target", "emulator", "--config", str(cfg), "--data", str(features_npz), "--init-weights",
               str(weights_npz), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert rc == EXIT_SAMPLES_LOST == 3
    assert "trained 3 samples (1 more lost" in captured.out
    assert "1 training and 0 test sample(s) were lost" in captured.err and "exit status 3" in captured.err
    report = json.loads((out / "report.json").read_text())
    assert report["samples_trained"] == report["samples_trained_this_session"] == 3
    assert report["samples_lost"] == report["samples_lost_this_session"] == 1
    assert report["provenance"]["samples_lost"] == 1  # what the chip's host side counted, independently


def test_a_run_that_lost_nothing_exits_0(tmp_path, features_npz, weights_npz, capsys) -> None:
    cfg = tmp_path / "count.yaml"
    cfg.write_text("train: {on_loss: count}\n")
    rc = main(["train", "--target", "emulator", "--config", str(cfg), "--data", str(features_npz), "--init-weights",
               str(weights_npz), "--out", str(tmp_path / "run"), "--quiet"])
    assert rc == 0
    assert "trained 4 samples on emulator" in capsys.readouterr().out
