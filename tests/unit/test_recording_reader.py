"""hdmea.io.recording, the one reader of recording files, on files written here with plain h5py.

The figures the consumers used to work out three ways (the sampling rate) or two (the
stimulus repeats) have one answer here; each is checked against what was planted.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from hdmea.errors import RecordingFormatError, UnknownUnitError
from hdmea.io.recording import DEFAULT_SAMPLING_RATE, NO_POSITION, open_recording


def _recording(path, **metadata):
    """A minimal recording as an old or foreign writer leaves it: a dataset_id and plain datasets."""
    with h5py.File(path, "w") as f:
        f.attrs["dataset_id"] = "hand"
        meta = f.create_group("metadata")
        for key, value in metadata.items():
            meta[key] = value
    return path


def test_sampling_rate_read_from_metadata(tmp_path):
    path = _recording(tmp_path / "r.h5", sampling_rate=np.array([25000.0]))
    with open_recording(path) as rec:
        assert rec.sampling_rate == 25000.0 and rec.sampling_rate_stated
        assert rec.require_sampling_rate() == 25000.0
        assert rec.warnings == []


def test_sampling_rate_original_name_and_vendor_metadata(tmp_path):
    path = _recording(tmp_path / "a.h5", acquisition_rate=np.int32(10000))
    with open_recording(path) as rec:
        assert rec.sampling_rate == 10000.0
    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        f.attrs["dataset_id"] = "v"
        f["metadata/acquisition/sampling_rate"] = 30000.0
    with open_recording(path) as rec:
        assert rec.sampling_rate == 30000.0


def test_sampling_rate_first_stated_wins_even_when_others_differ(tmp_path):
    path = _recording(tmp_path / "r.h5", sampling_rate=20000.0, acquisition_rate=10000.0)
    with open_recording(path) as rec:
        assert rec.sampling_rate == 20000.0


def test_missing_sampling_rate_is_assumed_and_said(tmp_path):
    path = _recording(tmp_path / "r.h5")
    with open_recording(path) as rec:
        assert rec.sampling_rate == DEFAULT_SAMPLING_RATE and not rec.sampling_rate_stated
        assert any("no sampling rate" in w for w in rec.warnings)
        with pytest.raises(RecordingFormatError, match="no sampling rate") as info:
            rec.require_sampling_rate()
        assert str(path) in str(info.value)


@pytest.mark.parametrize("value", [np.array([-1.0]), np.array([1.0, 2.0]), np.array([np.nan]), np.bytes_(b"fast")])
def test_a_rate_that_is_no_rate_is_a_typed_error(tmp_path, value):
    path = _recording(tmp_path / "r.h5", sampling_rate=value)
    with open_recording(path) as rec, pytest.raises(RecordingFormatError) as info:
        _ = rec.sampling_rate
    assert info.value.obj == "/metadata/sampling_rate" and str(path) in str(info.value)


def _with_stimulus_config(path, text):
    with h5py.File(path, "a") as f:
        f.create_group("stimulus/config").attrs["config_json"] = text
    return path


def test_stimulus_repeats(tmp_path):
    path = _with_stimulus_config(_recording(tmp_path / "r.h5"), json.dumps(
        {"trial_configs": {"step": {"repeat": 3}, "chirp": {}}}))
    with open_recording(path) as rec:
        assert rec.stimulus_repeats() == {"step": 3, "chirp": 1}
    with open_recording(_recording(tmp_path / "none.h5")) as rec:
        assert rec.stimulus_repeats() == {}


@pytest.mark.parametrize("text", ["{not json", json.dumps({"trial_configs": {"step": {"repeat": "3"}}}),
                                  json.dumps({"trial_configs": {"step": {"repeat": 0}}}),
                                  json.dumps({"trial_configs": ["step"]})])
def test_damaged_stimulus_configuration_raises_never_empty(tmp_path, text):
    path = _with_stimulus_config(_recording(tmp_path / "r.h5"), text)
    with open_recording(path) as rec, pytest.raises(RecordingFormatError) as info:
        rec.stimulus_repeats()
    assert info.value.obj == "/stimulus/config/@config_json"


def test_units_positions_spikes_and_trials(tmp_path):
    fs = 10000.0
    rng = np.random.default_rng(3)
    spikes = np.sort(rng.integers(0, 50000, 200)).astype(np.uint64)
    bounds = np.array([[1000, 11000], [21000, 31000], [40000, 50000]], dtype=np.uint64)
    inside = [spikes[(spikes >= lo) & (spikes < hi)] for lo, hi in bounds]
    offsets = np.concatenate([[0], np.cumsum([t.size for t in inside])]).astype(np.int64)
    path = _recording(tmp_path / "r.h5", sampling_rate=fs)
    with h5py.File(path, "a") as f:
        u = f.create_group("units/u1")
        u.attrs["row"], u.attrs["col"] = np.int64(7), np.int64(42)
        u["spike_times"] = spikes
        g = u.create_group("spike_times_sectioned/step")
        g["spike_times"], g["trial_offsets"], g["trial_bounds"] = np.concatenate(inside), offsets, bounds
        feature = u.create_group("features/on_off")
        feature.attrs["on_index"] = 0.25
        feature.attrs["version"] = "1"
        feature["trace"] = np.arange(4.0)
        f.create_group("units/u2")
        f["stimulus/frame_time/default"] = np.arange(0, 5000, 500, dtype=np.uint64)
    with open_recording(path) as rec:
        assert rec.unit_ids == ["u1", "u2"] and rec.dataset_id == "hand"
        u1, u2 = rec.unit("u1"), rec.unit("u2")
        assert u1.position() == (7, 42) and u2.position() == (NO_POSITION, NO_POSITION)
        assert u1.spike_count == 200 and u2.spike_count == 0
        np.testing.assert_array_equal(u1.spike_times(), spikes.astype(np.int64))
        np.testing.assert_allclose(u1.spike_times_s(), spikes / fs)
        sec = u1.sectioned("step")
        assert sec.n_trials == 3 and sec.trial_duration_s == pytest.approx(1.0)
        for got, planted, (lo, _hi) in zip(sec.trials_s(), inside, bounds):
            np.testing.assert_allclose(got, (planted.astype(np.float64) - lo) / fs)
        assert u1.feature("on_off").scalars() == {"on_index": 0.25}
        np.testing.assert_array_equal(u1.feature("on_off").array("trace"), np.arange(4.0))
        assert rec.frame_period_ms == pytest.approx(50.0)
        assert rec.duration_s() == pytest.approx(int(spikes[-1]) / fs)
        with pytest.raises(UnknownUnitError):
            rec.unit("u3")


@pytest.mark.parametrize("row", [np.int64(0), np.int64(66), 3.5, "7"])
def test_position_off_the_chip_is_a_typed_error(tmp_path, row):
    path = _recording(tmp_path / "r.h5")
    with h5py.File(path, "a") as f:
        f.create_group("units/u1").attrs["row"] = row
    with open_recording(path) as rec, pytest.raises(RecordingFormatError) as info:
        rec.unit("u1").position()
    assert info.value.obj == "/units/u1/@row"


def test_trial_offsets_that_do_not_cut_the_spikes_are_a_typed_error(tmp_path):
    path = _recording(tmp_path / "r.h5")
    with h5py.File(path, "a") as f:
        g = f.create_group("units/u1/spike_times_sectioned/m")
        g["spike_times"] = np.arange(10)
        g["trial_offsets"] = np.array([0, 4, 12])
        g["trial_bounds"] = np.array([[0, 5], [5, 10]])
    with open_recording(path) as rec, pytest.raises(RecordingFormatError, match="trial offsets"):
        rec.unit("u1").sectioned("m")
