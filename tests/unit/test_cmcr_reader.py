"""The .cmcr reader: rates, light reference, raw sensor blocks, scaling, errors."""

from __future__ import annotations


import h5py
import numpy as np
import pytest

from hdmea.errors import ConfigError, RecordingFormatError
from hdmea.io.cmcr import CmcrFile, read_light_reference
from hdmea.synthetic import generate_recording



def test_sampling_rate_and_metadata(tiny_recording, tiny_truth):
    with CmcrFile(tiny_recording.cmcr_path) as f:
        assert f.sampling_rate == 20000.0
        meta = f.metadata()
    assert meta["analog"]["n_samples"] == tiny_truth.n_samples
    assert meta["sensor"]["dtype"] == "uint16" and meta["sensor"]["ad_zero"] == 32768.0
    assert meta["ProgramName"] == "CMOS-MEA-Control"


def test_sampling_rate_without_tick_uses_the_duration(recording_copy, tiny_truth):
    cmcr, _ = recording_copy
    with h5py.File(cmcr, "a") as f:
        del f["Acquisition/Analog Data/ChannelMeta"]
        del f["Acquisition/Sensor Data/SensorMeta"]
    with CmcrFile(cmcr) as f:
        assert f.sampling_rate == pytest.approx(20000.0, rel=1e-6)


def test_light_reference_is_the_stored_rows(tiny_recording, tiny_truth):
    light, fs = read_light_reference(tiny_recording.cmcr_path)
    with h5py.File(tiny_recording.cmcr_path, "r") as f:
        raw = f["Acquisition/Analog Data/ChannelData 1"][()]
    assert fs == 20000.0
    np.testing.assert_array_equal(light["raw_ch1"], raw[0].astype(np.float32))
    np.testing.assert_array_equal(light["raw_ch2"], raw[1].astype(np.float32))
    # the sync rises exactly at every planted pulse
    sync = light["raw_ch2"]
    pulses = tiny_truth.sync_pulse_samples.astype(np.int64)
    assert np.all(sync[pulses] > 20000) and np.all(sync[pulses - 1] < 5000)


def test_blocks_cover_the_data_exactly(tiny_recording):
    with CmcrFile(tiny_recording.cmcr_path) as f:
        info = f.sensor_datasets()[0]
        whole = f.read_sensor_frames(0, info.n_frames, scaled=False)
        blocks = list(f.iter_sensor_blocks(block_frames=300, scaled=False))
        np.testing.assert_array_equal(np.concatenate([b for _s, b in blocks]), whole)
        assert [s for s, _b in blocks] == list(range(0, info.n_frames, 300))
        overlapped = list(f.iter_sensor_blocks(block_frames=300, overlap=40, start=100, stop=1000))
    starts = [s for s, _b in overlapped]
    assert starts[0] == 100 and starts[1:] == [400 - 40, 700 - 40]
    for s, b in overlapped:
        np.testing.assert_array_equal(b, whole[s:s + b.shape[0]].astype(np.float32) - 32768.0)
    assert overlapped[-1][0] + overlapped[-1][1].shape[0] == 1000


@pytest.mark.parametrize("dtype", ["int16", "uint16"])
def test_scaling_does_not_wrap_and_shows_footprints(tmp_path, dtype):
    rec = generate_recording(tmp_path, "r", seed=3, raw_seconds=0.1, raw_dtype=dtype, n_units=3,
                             n_silent_units=0, base_rate_hz=(60.0, 80.0))
    truth = rec.truth()
    with CmcrFile(rec.cmcr_path) as f:
        info = f.sensor_datasets()[0]
        assert str(info.dtype) == dtype
        data = f.read_sensor_frames(0, info.n_frames)
    assert data.dtype == np.float32
    assert abs(float(np.median(data))) < 2.0  # zero removed whatever the stored dtype
    pre = rec.config.cutout_pre_samples
    for u in truth.units.values():
        spikes = u.spike_times.astype(np.int64)
        spikes = spikes[(spikes >= pre) & (spikes + 40 < info.n_frames)]
        assert spikes.size >= 3
        trace = data[:, u.row - 1, u.col - 1]
        mean = np.mean([trace[s - pre:s - pre + 40] for s in spikes], axis=0)
        planted = u.footprint[u.row - 1, u.col - 1] * u.waveform
        assert np.corrcoef(mean, planted)[0, 1] > 0.9
        assert mean.min() < -0.5 * u.footprint[u.row - 1, u.col - 1]


def test_bad_block_arguments(tiny_recording):
    with CmcrFile(tiny_recording.cmcr_path) as f:
        with pytest.raises(ConfigError):
            list(f.iter_sensor_blocks(block_frames=0))
        with pytest.raises(RecordingFormatError) as err:
            list(f.iter_sensor_blocks("SensorData 9 9"))
    assert "SensorData 9 9" in str(err.value)


def test_missing_analog_data_names_it(recording_copy):
    cmcr, _ = recording_copy
    with h5py.File(cmcr, "a") as f:
        del f["Acquisition/Analog Data/ChannelData 1"]
    with CmcrFile(cmcr) as f, pytest.raises(RecordingFormatError) as err:
        f.light_reference()
    assert "/Acquisition/Analog Data/ChannelData 1" in str(err.value) and str(cmcr) in str(err.value)


def test_wrong_program_and_foreign_files(tmp_path, recording_copy):
    _, cmtr = recording_copy
    with pytest.raises(RecordingFormatError) as err:
        CmcrFile(cmtr)  # the sorter's file (its external link is refused before anything else)
    assert str(cmtr) in str(err.value)
    other = tmp_path / "x.cmcr"
    with h5py.File(other, "w") as f:
        f.attrs["ID.TypeID"] = np.bytes_(b"00000000-0000-0000-0000-000000000000")
    with pytest.raises(RecordingFormatError) as err:
        CmcrFile(other)
    assert "/@ID.TypeID" in str(err.value)


def test_any_sensor_dataset_streams(recording_copy):
    """A second region of interest (int16, stored 10 columns x 12 rows) is listed and streamed on its own."""
    cmcr, _ = recording_copy
    roi = np.arange(300 * 10 * 12, dtype=np.int64).reshape(300, 10, 12) % 2000 - 1000
    with h5py.File(cmcr, "a") as f:
        ds = f["Acquisition/Sensor Data"].create_dataset("SensorData 2 1", data=roi.astype(np.int16))
        for key in ("ID.Type", "ID.TypeID", "ID.Instance", "ID.InstanceID"):
            ds.attrs[key] = f["Acquisition/Sensor Data/SensorData 1 1"].attrs[key]
    with CmcrFile(cmcr) as f:
        infos = f.sensor_datasets()
        assert [(i.roi, i.chunk) for i in infos] == [(1, 1), (2, 1)]
        assert infos[1].shape == (300, 10, 12) and str(infos[1].dtype) == "int16"
        assert (infos[1].n_rows, infos[1].n_cols) == (12, 10) and infos[1].scaling == "unscaled"
        blocks = list(f.iter_sensor_blocks("SensorData 2 1", block_frames=128, overlap=16, scaled=False))
    assert [s for s, _b in blocks] == [0, 128 - 16, 256 - 16]
    for s, b in blocks:
        np.testing.assert_array_equal(b, roi[s:s + b.shape[0]].transpose(0, 2, 1))  # chip (row, col)


def test_oversized_analog_read_is_refused(tiny_recording, monkeypatch):
    import hdmea.io.cmcr as cmcr_module

    monkeypatch.setattr(cmcr_module, "MAX_READ_BYTES", 1200)
    with CmcrFile(tiny_recording.cmcr_path) as f:
        with pytest.raises(RecordingFormatError, match="too large"):
            f.light_reference()
        part = f.analog_row(1, 0, 100)
    assert part.shape == (100,)


def _region(**kw):
    from hdmea.io.cmcr import SensorDataInfo

    base = dict(name="/Acquisition/Sensor Data/SensorData 1 1", roi=1, chunk=0, shape=(10, 65, 65),
                dtype=np.dtype("uint16"), ad_zero=32768.0, conversion_factor=1.0, exponent=-9, unit="V")
    return SensorDataInfo(**{**base, **kw})


@pytest.mark.parametrize("order", ["col_row", "row_col"])
@pytest.mark.parametrize("gains", ["none", "uniform", "per_sensor"])
def test_a_whole_chip_turned_in_place_equals_the_copy_onto_the_chip(order, gains):
    rng = np.random.default_rng(3)
    g = {"none": None, "uniform": np.full((65, 65), 0.5), "per_sensor": rng.uniform(0.5, 1.5, (65, 65))}[gains]
    info = _region(axis_order=order, gains=g)
    # the kernel's images: a view whose units lie further apart than their frames (padded rows)
    backing = rng.standard_normal((3, 7 * 65 * 65 + 31)).astype(np.float32)
    stored = backing[:, : 7 * 65 * 65].reshape(3, 7, 65, 65)
    padding = backing[:, 7 * 65 * 65:].copy()
    expected = np.full((3, 7, 65, 65), np.nan, dtype=np.float32)
    for u in range(3):
        info.place_on_chip(stored[u], expected[u], scale=True)
    # the reference by hand: numpy's swap of the stored axes and the gains
    by_hand = np.swapaxes(stored, -1, -2) if order == "col_row" else stored.copy()
    if g is not None:  # scale=True multiplies by any gain but 1
        by_hand = by_hand * g.astype(np.float32)
    np.testing.assert_array_equal(expected, by_hand)
    turned = info.to_chip_in_place(stored, scale=True)
    assert np.shares_memory(turned, backing)
    np.testing.assert_array_equal(turned, expected)
    np.testing.assert_array_equal(backing[:, 7 * 65 * 65:], padding)


def test_only_a_whole_chip_region_is_turned_in_place():
    info = _region(row_offset=2, n_rows=60, shape=(10, 65, 60))
    assert not info.covers_chip and _region().covers_chip
    with pytest.raises(ValueError, match="whole-chip region"):
        info.to_chip_in_place(np.zeros((2, 60, 65), dtype=np.float32))
