"""SpikeInterface extractors over .cmcr, .cmtr and recording files, exercised by SpikeInterface's own functions."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

si = pytest.importorskip("spikeinterface.core")

from hdmea.interop.spikeinterface import PITCH_UM, read_cmcr, read_cmtr, read_recording_file  # noqa: E402
from hdmea.io.cmcr import CmcrFile  # noqa: E402


def _h5open(path):
    """A plain h5py read handle; HDF5 wants the locking flag of a handle this process already holds."""
    try:
        return h5py.File(path, "r", locking=False)
    except OSError:
        return h5py.File(path, "r")


def _stored_raw(path, start, stop):
    """Frames [start, stop) of SensorData 1 1 read with plain h5py: stored [frame, col, row] (vendor layout)."""
    with _h5open(path) as f:
        return f["Acquisition/Sensor Data/SensorData 1 1"][start:stop]


def test_cmcr_recording_channels_locations_and_raw_traces(tiny_recording):
    rec = read_cmcr(tiny_recording.cmcr_path)
    ids = rec.get_channel_ids()
    assert list(ids) == list(range(1, 65 * 65 + 1))
    rows, cols = (ids - 1) % 65, (ids - 1) // 65
    np.testing.assert_array_equal(rec.get_property("chip_row"), rows)
    np.testing.assert_array_equal(rec.get_channel_locations(), np.column_stack([cols, rows]) * PITCH_UM)
    stored = _stored_raw(tiny_recording.cmcr_path, 100, 400)
    assert stored.dtype == np.uint16  # shown as int16 counts - 32768 (SpikeInterface refuses unsigned data)
    traces = rec.get_traces(start_frame=100, end_frame=400)
    assert traces.dtype == np.int16 and traces.shape == (300, 65 * 65)
    np.testing.assert_array_equal(traces, stored[:, cols, rows].astype(np.int32) - 32768)
    picked = rec.get_traces(start_frame=100, end_frame=400, channel_ids=[1, 66, 4225])
    np.testing.assert_array_equal(picked, stored[:, [0, 1, 64], [0, 0, 64]].astype(np.int32) - 32768)


def test_cmcr_scaled_traces_are_our_microvolts(tiny_recording):
    rec = read_cmcr(tiny_recording.cmcr_path)
    with CmcrFile(tiny_recording.cmcr_path) as f:
        ours = f.read_sensor_frames(0, 500, scaled=True)  # (frames, row, col) uV
        assert f.sensor_datasets()[0].value_unit == "uV"
    uv = rec.get_traces(start_frame=0, end_frame=500, return_in_uV=True)
    ids = rec.get_channel_ids()
    np.testing.assert_allclose(uv, ours[:, (ids - 1) % 65, (ids - 1) // 65], rtol=1e-5, atol=1e-3)


def test_bandpass_filter_matches_scipy_on_our_reader(tiny_recording):
    import scipy.signal
    import spikeinterface.preprocessing as spre

    rec = read_cmcr(tiny_recording.cmcr_path)
    fs = rec.get_sampling_frequency()
    filtered = spre.bandpass_filter(rec, freq_min=300.0, freq_max=3000.0, margin_ms=20.0, dtype="float32")
    channels = rec.get_channel_ids()[::97]
    start, stop, margin = 600, 1400, int(20.0 * fs / 1000)
    got = filtered.get_traces(start_frame=start, end_frame=stop, channel_ids=channels)
    with CmcrFile(tiny_recording.cmcr_path) as f:
        raw = f.read_sensor_frames(start - margin, stop + margin, scaled=False).astype(np.float64)
    raw = raw[:, (channels - 1) % 65, (channels - 1) // 65]
    sos = scipy.signal.butter(5, [300.0, 3000.0], btype="bandpass", fs=fs, output="sos")
    expected = scipy.signal.sosfiltfilt(sos, raw, axis=0)[margin:-margin]
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * scale)


def test_recording_reloads_from_its_description_without_copying(tiny_recording):
    rec = read_cmcr(tiny_recording.cmcr_path)
    again = si.load(rec.to_dict())
    np.testing.assert_array_equal(again.get_traces(start_frame=0, end_frame=50), rec.get_traces(start_frame=0,
                                                                                                 end_frame=50))


def test_cmtr_sorting_spike_trains_and_positions(tiny_recording, tiny_truth):
    sorting = read_cmtr(tiny_recording.cmtr_path)  # the rate from the .cmcr beside it
    fs = sorting.get_sampling_frequency()
    with _h5open(tiny_recording.cmtr_path) as f:
        sorter = f["Spike Sorter"]
        for unit_id in sorting.get_unit_ids():
            group = sorter[f"Unit {unit_id}"]
            peaks = group["Peaks"][()]
            keep = peaks["IncludePeak"] == 1
            expected = np.rint(peaks["Timestamp"][keep].astype(np.float64) * fs / 1e6).astype(np.int64)
            np.testing.assert_array_equal(sorting.get_unit_spike_train(unit_id), np.sort(expected))
            k = list(sorting.get_unit_ids()).index(unit_id)
            assert sorting.get_property("row")[k] == int(np.asarray(group.attrs["Row"]).reshape(-1)[0])
            assert sorting.get_property("col")[k] == int(np.asarray(group.attrs["Column"]).reshape(-1)[0])
    assert len(sorting.get_unit_ids()) == len(tiny_truth.units)


def test_cmtr_without_a_rate_is_a_typed_error(tiny_recording, tmp_path):
    import shutil

    from hdmea.errors import ConfigError

    lone = tmp_path / "lone.cmtr"
    shutil.copy(tiny_recording.cmtr_path, lone)
    with pytest.raises(ConfigError, match="sampling_frequency"):
        read_cmtr(lone)
    assert read_cmtr(lone, sampling_frequency=20_000.0).get_num_units() > 0


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    from hdmea.demo import run_demo

    return run_demo(tmp_path_factory.mktemp("si_demo") / "demo", n_units=6, seed=5).output


@pytest.mark.slow  # runs the whole pipeline for the module's recording (~6 s)
def test_recording_file_sorting_and_firing_rate_metric(analysed):
    from spikeinterface.core import create_sorting_analyzer, generate_recording

    sorting = read_recording_file(analysed)
    with _h5open(analysed) as f:
        fs = float(f["metadata/sampling_rate"][()])
        duration = float(f["metadata/acquisition/recording_duration_us"][()]) / 1e6
        ids = sorted(f["units"])
        assert list(sorting.get_unit_ids()) == ids
        for k, uid in enumerate(ids):
            g = f["units"][uid]
            np.testing.assert_array_equal(sorting.get_unit_spike_train(uid), g["spike_times"][()].astype(np.int64))
            assert sorting.get_property("row")[k] == g.attrs["row"]
            assert sorting.get_property("unit_num")[k] == g.attrs["unit_num"] == int(uid.split("_")[-1])
            assert sorting.get_property("chip_col")[k] == g.attrs["col"] - 1
            np.testing.assert_array_equal(sorting.get_property("rf_dense_noise_15x15__centre_row")[k],
                                          g["features/rf_dense_noise_15x15"].attrs["centre_row"])
        counts = {uid: int(f["units"][uid].attrs["spike_count"]) for uid in ids}
    n_samples = int(round(duration * fs))
    recording = generate_recording(num_channels=1, sampling_frequency=fs, durations=[n_samples / fs], seed=0)
    analyzer = create_sorting_analyzer(sorting, recording, sparse=False, format="memory")
    metrics = analyzer.compute("quality_metrics", metric_names=["firing_rate"]).get_data()
    assert any(c == 0 for c in counts.values())
    for uid in ids:
        if counts[uid] == 0:  # SpikeInterface reports no rate for a unit without spikes
            assert np.isnan(metrics.loc[uid, "firing_rate"])
        else:
            assert metrics.loc[uid, "firing_rate"] == pytest.approx(counts[uid] / (n_samples / fs), rel=1e-9)
