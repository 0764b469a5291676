"""Spike data: the `.npz` event-list format (round trip, binning rule) and the encoders from the
audio features (delta on/off channels, Poisson rates), checked against hand-worked cases."""
from __future__ import annotations

import numpy as np
import pytest

from s2eprop.host.config import ConfigError, InputConfig, NetworkConfig
from s2eprop.host.mapping.resolve import config_from_dict
from s2eprop.host.data.encoders import delta_encode, encode_dataset, input_stats, poisson_encode
from s2eprop.host.data.dataset import Dataset
from s2eprop.host.data.spike_format import SpikeSet, load_spike_npz, save_spike_npz
from s2eprop.host.errors import DataError


def _events() -> SpikeSet:
    return SpikeSet.from_lists([(np.array([0.2, 0.9, 1.0, 3.5]), np.array([2, 2, 0, 1])),
                                (np.array([], np.float32), np.array([], np.int32)),
                                (np.array([4.0, 0.0]), np.array([3, 3]))], y=np.array([1, 0, 1]), n_units=4)


def test_spike_npz_round_trip(tmp_path) -> None:
    """Rule: a spike file written and read back gives the same events, offsets, labels, units and
    class names, for the train and the test split."""
    train, test = _events(), SpikeSet.from_lists([(np.array([0.5]), np.array([1]))], y=np.array([0]), n_units=4)
    path = save_spike_npz(tmp_path / "s.npz", train, ("a", "b"), test)
    got_train, got_test, labels = load_spike_npz(path)
    assert labels == ("a", "b") and got_test is not None
    for want, got in ((train, got_train), (test, got_test)):
        for k in ("times_ms", "units", "sample_offsets", "y"):
            np.testing.assert_array_equal(getattr(got, k), getattr(want, k))
        assert got.n_units == 4
    times, units = got_train.sample(0)
    np.testing.assert_array_equal(times, np.float32([0.2, 0.9, 1.0, 3.5]))
    assert units.tolist() == [2, 2, 0, 1] and len(got_train.sample(1)[0]) == 0


def test_binning_rule() -> None:
    """Rule: an event at t ms lies in step floor(t / dt); two events of a channel in one step are one
    spike; events at or after n_steps x dt are dropped and counted."""
    raster, dropped = _events().raster(n_steps=4, dt_ms=1.0)
    want = np.zeros((3, 4, 4), np.float32)
    want[0, 0, 2] = 1   # 0.2 and 0.9 ms: one spike
    want[0, 1, 0] = 1   # 1.0 ms: step 1
    want[0, 3, 1] = 1   # 3.5 ms
    want[2, 0, 3] = 1   # 0.0 ms; 4.0 ms is past 4 steps
    np.testing.assert_array_equal(raster, want)
    assert dropped == 1
    raster2, _ = _events().raster(n_steps=4, dt_ms=2.0)
    assert raster2[0, 0, 2] == 1 and raster2[0, 0, 0] == 1 and raster2[0, 1, 1] == 1 and raster2[2, 2, 3] == 1


def test_spike_set_refuses_bad_events() -> None:
    """Rule: units out of range and offsets that do not cover the events are refused, naming them."""
    with pytest.raises(DataError, match="units must lie in 0..3"):
        SpikeSet.from_lists([(np.array([1.0]), np.array([4]))], y=np.array([0]), n_units=4)
    with pytest.raises(DataError, match="sample_offsets"):
        SpikeSet(np.zeros(2, np.float32), np.zeros(2, np.int32), np.array([0, 1]), np.array([0]), 4)


def test_delta_encoder_hand_case() -> None:
    """Rule: a band 0, 0.6, 1.3, 1.2, 0.1 with threshold 0.5 fires its on channel at steps 1 and 2
    (level 0 -> 0.5 -> 1.0), nothing at step 3 (0.2 above the level), and its off channel at step 4
    (0.9 below: level 1.0 -> 0.5); a band that stays at 0 never fires; deltas are not read."""
    band = np.array([0.0, 0.6, 1.3, 1.2, 0.1])
    x = np.zeros((1, 5, 4))
    x[0, :, 0] = band
    x[0, :, 2:] = 99.0  # delta columns: ignored
    s = delta_encode(x, threshold=0.5)
    assert s[0, :, 0].tolist() == [0, 1, 1, 0, 0]    # on, band 0
    assert s[0, :, 2].tolist() == [0, 0, 0, 0, 1]    # off, band 0
    assert not s[0, :, 1].any() and not s[0, :, 3].any()


def test_poisson_encoder_rates_and_seed() -> None:
    """Rule: a feature at clip or above spikes at max_rate (100 Hz: 10 % of 1 ms steps, within 3 sigma
    over 40,000 draws), half of clip at half that, a negative one never; the same seed gives the same spikes."""
    x = np.zeros((1, 10000, 4))
    x[:, :, 0], x[:, :, 1], x[:, :, 2], x[:, :, 3] = 3.0, 9.0, 1.5, -2.0
    s = poisson_encode(x, 100.0, 3.0, 1.0, np.random.default_rng(1))
    rates = s[0].mean(axis=0)
    assert abs(rates[0] - 0.1) < 0.01 and abs(rates[1] - 0.1) < 0.01 and abs(rates[2] - 0.05) < 0.007
    assert rates[3] == 0
    np.testing.assert_array_equal(s, poisson_encode(x, 100.0, 3.0, 1.0, np.random.default_rng(1)))


def test_input_section_and_rate_report() -> None:
    """Rule: `input: {kind: spikes, encoder: delta, threshold: ...}` configures the encoder; an unknown
    encoder names the key; the report's mean rate is spikes / (inputs x steps x dt)."""
    cfg = config_from_dict({"input": {"kind": "spikes", "encoder": "delta", "threshold": 0.25}})
    assert cfg.input == InputConfig(kind="spikes", encoder="delta", threshold=0.25)
    with pytest.raises(ConfigError, match="input.encoder"):
        config_from_dict({"input": {"kind": "spikes", "encoder": "sigma-delta"}})
    net = NetworkConfig(n_in=4, n_rec=3, n_out=2, n_steps=5)
    x = np.zeros((2, 5, 4), np.float32)
    x[0, :, 0] = [0, 0.6, 1.3, 1.2, 0.1]   # 3 spikes (see the hand case), sample 1 none
    data = encode_dataset(Dataset(x, np.array([0, 1]), ("a", "b")), cfg.input, net)
    stats = input_stats(data, cfg.input, net)
    assert stats["input_spikes_per_sample"] == 1.5
    assert stats["mean_rate_hz"] == pytest.approx(1.5 / (5 * 4) * 1000)
    assert stats["input_synaptic_ops_per_sample"] == 1.5 * 3 and stats["analog_input_synaptic_ops_per_sample"] == 60


def test_spike_file_loads_as_a_binned_dataset(tmp_path) -> None:
    """Rule: `dataset: {kind: npz, path: SPIKES.npz, n_steps: 4}` gives the binned 0/1 rasters of both
    splits, their labels and class names; a features-file option is refused naming it."""
    from s2eprop.host.config import DatasetConfig
    from s2eprop.host.data.loader import load_dataset

    test = SpikeSet.from_lists([(np.array([2.5]), np.array([1]))], y=np.array([1]), n_units=4)
    path = save_spike_npz(tmp_path / "s.npz", _events(), ("a", "b"), test)
    data = load_dataset(DatasetConfig(kind="npz", path=str(path), options={"n_steps": 4}))
    want, _ = _events().raster(4, 1.0)
    np.testing.assert_array_equal(data.x_train, want)
    assert data.y_train.tolist() == [1, 0, 1] and data.labels == ("a", "b")
    assert data.x_test is not None and data.x_test[0, 2, 1] == 1 and data.x_test.sum() == 1
    with pytest.raises(DataError, match="unknown option.*seed"):
        load_dataset(DatasetConfig(kind="npz", path=str(path), options={"seed": 1}))


def _write_shd(path, times_s, units, labels, keys=None) -> None:
    h5py = pytest.importorskip("h5py", reason="the SHD loader needs h5py (pip install -e '.[shd]')")
    with h5py.File(path, "w") as f:
        vf, vu = h5py.vlen_dtype(np.float32), h5py.vlen_dtype(np.uint16)
        t = f.create_dataset("spikes/times", (len(times_s),), dtype=vf)
        u = f.create_dataset("spikes/units", (len(units),), dtype=vu)
        for i, (ts, us) in enumerate(zip(times_s, units)):
            t[i], u[i] = np.asarray(ts, np.float32), np.asarray(us, np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, np.uint16))
        if keys is not None:
            f.create_dataset("extra/keys", data=np.array([k.encode() for k in keys]))


def test_shd_layout_loader(tmp_path) -> None:
    """Rule: an SHD-layout HDF5 file (times in s, 700 channels, variable length) becomes (N, n_steps, 700)
    0/1 rasters by the documented rule: the first window_ms in n_steps bins, an event at t in bin
    floor(t / (window_ms / n_steps)), events of a channel in one bin one spike, later events dropped;
    labels and class names come through, and the test file is the test split."""
    from s2eprop.host.config import DatasetConfig
    from s2eprop.host.data.loader import load_dataset

    keys = [f"digit-{k}" for k in range(20)]
    _write_shd(tmp_path / "train.h5", [[0.0, 0.004, 0.0125, 0.999, 1.2], [0.5]], [[699, 699, 3, 10, 11], [0]],
               [19, 2], keys)
    _write_shd(tmp_path / "test.h5", [[0.0205]], [[5]], [7], keys)
    data = load_dataset(DatasetConfig(kind="shd", path=str(tmp_path / "train.h5"),
                                      options={"test_path": str(tmp_path / "test.h5"), "n_steps": 100}))
    assert data.x_train.shape == (2, 100, 700) and data.labels == tuple(keys)
    assert data.y_train.tolist() == [19, 2] and data.y_test.tolist() == [7]
    want = np.zeros((2, 100, 700), np.float32)
    want[0, 0, 699] = 1   # 0 and 4 ms: one spike in the first 10 ms bin
    want[0, 1, 3] = 1     # 12.5 ms
    want[0, 99, 10] = 1   # 999 ms; 1.2 s is past the 1 s window
    want[1, 50, 0] = 1
    np.testing.assert_array_equal(data.x_train, want)
    assert data.x_test[0, 2, 5] == 1 and data.x_test.sum() == 1
    with pytest.raises(DataError, match="lacks labels"):
        import h5py

        with h5py.File(tmp_path / "bad.h5", "w") as f:
            f.create_dataset("spikes/times", data=np.zeros(1))
            f.create_dataset("spikes/units", data=np.zeros(1))
        load_dataset(DatasetConfig(kind="shd", path=str(tmp_path / "bad.h5")))


def test_shd_config_fits_the_chip() -> None:
    """Rule: experiments/configs/shd.yaml (700 inputs, 120 neurons, 20 outputs) takes `auto` neurons per core:
    every core's arena fits the host's arena budget; with the ARM build's arena room (114,688 B today) that is
    24 cores of 5 neurons, 112,200 B the largest arena (header 736 B, ABI 7) (before `make arm` the 96 KiB default takes fewer)."""
    from pathlib import Path

    from s2eprop.firmware.arm_size import arena_budget
    from s2eprop.host.mapping.resolve import load_config
    from s2eprop.host.mapping.memory import memory_map

    cfg = load_config(Path(__file__).resolve().parents[2] / "experiments" / "configs" / "shd.yaml")
    m = memory_map(cfg, stack=False)
    npc = cfg.partition.neurons_per_core
    assert m["neurons_per_core"] == m["neurons_per_core_most"] == npc
    assert len(m["per_core"]) == m["cores"] == -(-120 // npc) and all(p["fits"] for p in m["per_core"])
    if arena_budget(cfg.partition.arena_limit_bytes)[1] == "ARM build":
        assert npc == 5 and m["cores"] == 24
        assert max(p["arena_bytes"] for p in m["per_core"]) == 112_200
    assert cfg.dataset.kind == "shd" and cfg.input.kind == "spikes"
