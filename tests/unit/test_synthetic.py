"""The synthetic recording generator: layout, determinism, planted structure."""

from __future__ import annotations


import h5py
import numpy as np
import pytest

from hdmea.errors import ConfigError
from hdmea.io.mcs import ROOT_TYPE_ID, TYPE_IDS
from hdmea.stimulus import StimulusConfig
from hdmea.synthetic import SyntheticConfig, generate_recording



@pytest.mark.parametrize("seed", [0, 2])
def test_the_default_recording_carries_enough_raw_data_for_the_frame_order_to_be_decided(tmp_path, seed):
    # generate_recording() with no config: sensor_axis_order="auto" decides by the units' footprints
    from hdmea.pipeline import create_session, load_recording
    from hdmea.steps.eimage import compute_eimage_sta

    rec = generate_recording(tmp_path, "default", seed=seed)
    session = create_session("default", memory_limit="1GB")
    load_recording(rec.cmcr_path, rec.cmtr_path, session=session)
    result = compute_eimage_sta(cmcr_path=rec.cmcr_path, session=session)
    decision = result.get("metadata/frame_order")
    assert decision["decided_by"] == "footprints", decision["reason"]
    assert decision["sensor_axis_order"] == "col_row"  # the generator writes the vendor's layout
    assert decision["n_units"] >= 4 and decision["fraction_col_row"] - decision["fraction_row_col"] >= 0.5


def test_vendor_layout(tiny_recording):
    with h5py.File(tiny_recording.cmtr_path, "r") as f:
        assert f.attrs["ID.TypeID"] == ROOT_TYPE_ID.encode()
        assert f.attrs["ProgramName"] == b"CMOS-MEA-Tools"
        link = f.get("Acquisition", getlink=True)
        assert isinstance(link, h5py.ExternalLink) and link.path == "/Acquisition"
        sorter = f["Spike Sorter"]
        assert sorter.attrs["ID.TypeID"] == TYPE_IDS["SpikeSorter"].encode()
        assert sorter["Units"].dtype.names[:2] == ("UnitID", "SensorID")
        for name in sorter:
            for key in ("ID.Type", "ID.TypeID", "ID.Instance", "ID.InstanceID"):
                assert isinstance(sorter[name].attrs[key], bytes)
    with h5py.File(tiny_recording.cmcr_path, "r") as f:
        assert f["Acquisition/Sensor Data/SensorData 1 1"].shape[1:] == (65, 65)
        assert f["Acquisition/Analog Data/ChannelData 1"].shape[0] == 2


def test_same_seed_same_recording(tmp_path):
    a = generate_recording(tmp_path / "a", "r", seed=11).truth()
    b = generate_recording(tmp_path / "b", "r", seed=11).truth()
    c = generate_recording(tmp_path / "c", "r", seed=12).truth()
    for key in a.units:
        np.testing.assert_array_equal(a.units[key].spike_times, b.units[key].spike_times)
    assert any(not np.array_equal(a.units[k].spike_times, c.units[k].spike_times) for k in a.units if k in c.units)


def test_truth_is_consistent(tiny_recording, tiny_truth):
    t = tiny_truth
    period = np.diff(t.frame_times.astype(np.int64))
    assert np.all(np.abs(period - 20000 / 60) <= 1)
    assert t.sync_pulse_samples.size == t.frame_times.size + t.lead_pulses
    stim = StimulusConfig.load_json(tiny_recording.stimulus_path)
    assert stim.total_frames == t.frame_times.size
    assert stim.playlist.count("step_up_5s_5i_3x") == 2
    frames = stim.noise_movies["dense_noise_15x15"].load_frames()
    np.testing.assert_array_equal(frames, t.noise_frames)
    assert set(np.unique(frames)) == {0, 255}
    # the noise images advance every frames_per_image display frames
    assert t.noise_display_images.shape == t.noise_display_frames.shape
    assert np.all(np.diff(t.noise_display_images[0]) >= 0)
    assert np.bincount(t.noise_display_images[0]).tolist() == [4] * t.noise_frames.shape[0]
    kinds = [u.kind for u in t.units.values()]
    assert "silent" in kinds and "on" in kinds and "off" in kinds
    for u in t.units.values():
        assert u.sta_filter.shape == (tiny_recording.config.filter_lags, 15, 15)
        assert np.all(np.diff(u.spike_times.astype(np.int64)) > 0)
        if u.kind == "silent":
            assert u.spike_times.size == 0


def test_on_units_fire_more_when_the_light_is_on(tiny_recording, tiny_truth):
    """Step responses: ON units fire more in the bright half of the trial, OFF units in the dark."""
    cfg = tiny_recording.config
    tc = cfg.step_trial
    ft = tiny_truth.frame_times.astype(np.int64)
    on_rate, off_rate = {}, {}
    for first, _ in tiny_truth.section_frames[cfg.step_movie]:
        for n in range(tc.repeat):
            t0 = first + cfg.pre_margin_frames + tc.start_frame + n * tc.trial_length_frame
            on = (ft[t0 + tc.trial_length_frame // 10], ft[t0 + tc.trial_length_frame // 10 + tc.trial_length_frame // 2])
            off = (on[1], ft[t0 + tc.trial_length_frame])
            for key, u in tiny_truth.units.items():
                s = u.spike_times.astype(np.int64)
                on_rate[key] = on_rate.get(key, 0) + np.count_nonzero((s >= on[0]) & (s < on[1])) / (on[1] - on[0])
                off_rate[key] = off_rate.get(key, 0) + np.count_nonzero((s >= off[0]) & (s < off[1])) / (off[1] - off[0])
    for key, u in tiny_truth.units.items():
        if u.kind == "on":
            assert on_rate[key] > off_rate[key]
        elif u.kind == "off":
            assert off_rate[key] > on_rate[key]


def test_noise_sta_recovers_planted_filter(tmp_path):
    """A count-weighted STA over the noise movie correlates with the planted filter."""
    rec = generate_recording(tmp_path, "sta", seed=5, noise_images=1200, n_units=2, n_silent_units=0,
                             base_rate_hz=(20.0, 20.0), raw_seconds=0.0, write_source=False)
    t = rec.truth()
    ft = t.frame_times.astype(np.int64)
    contrast = t.noise_frames.astype(np.float64) / 127.5 - 1
    display = t.noise_display_frames[0]
    images = t.noise_display_images[0]
    lags = rec.config.filter_lags
    for u in t.units.values():
        frame_of_spike = np.searchsorted(ft, u.spike_times.astype(np.int64), side="right") - 1
        frame_of_spike = frame_of_spike[frame_of_spike >= 0]
        counts = np.bincount(frame_of_spike, minlength=ft.size)
        sta = np.zeros((lags, 15, 15))
        for j in range(lags):
            shown = display[lags:]
            c = counts[shown]
            sta[j] = np.tensordot(c, contrast[images[lags - 1 - j:images.size - 1 - j]], axes=1) / c.sum()
        # Judge where the planted filter lives: its spatial support over the first lags.
        support = u.spatial_rf > 0.3 * u.spatial_rf.max()
        expected = u.expected_sta[:15][:, support]
        got = sta[:15][:, support]
        assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.8
        assert np.corrcoef(got.ravel(), u.sta_filter[:15][:, support].ravel())[0, 1] > 0.6


def test_bad_parameters(tmp_path):
    with pytest.raises(ConfigError):
        generate_recording(tmp_path, "x", no_such_parameter=1)
    with pytest.raises(ConfigError):
        SyntheticConfig(raw_dtype="float32")
    generate_recording(tmp_path, "y", seed=1)
    with pytest.raises(FileExistsError):
        generate_recording(tmp_path, "y", seed=1)


def test_duration_fits_the_noise_movie(tmp_path):
    rec = generate_recording(tmp_path, "d", seed=2, duration_s=60.0, raw_seconds=0.0, n_units=2)
    t = rec.truth()
    shown = (t.frame_times[-1] - t.frame_times[0]) / t.sampling_rate
    assert abs(shown - 60.0) < 0.5
    with pytest.raises(ConfigError, match="shorter"):
        generate_recording(tmp_path, "e", duration_s=2.0)


def test_raw_data_in_the_vendor_layout_with_gains_and_regions(tmp_path):
    """Frames stored [col - Left, row - Top], one integer factor per sensor in sensor-id order, read
    here with plain h5py: a unit's spikes show at its own (row, col), not at (col, row)."""
    regions = ((3, 5, 60, 62), (7, 2, 7, 2))
    rec = generate_recording(tmp_path, "layout", seed=4, raw_seconds=0.5, n_units=3, n_silent_units=0,
                             base_rate_hz=(60.0, 80.0), sensor_gain_spread=0.25, sensor_regions=regions)
    truth = rec.truth()
    with h5py.File(rec.cmcr_path, "r") as f:
        meta = f["Acquisition/Sensor Data/SensorMeta"][()]
        data = f["Acquisition/Sensor Data/SensorData 1 1"][()].astype(np.float64)
        one = f["Acquisition/Sensor Data/SensorData 2 1"]
        assert one.shape[1:] == (1, 1)
    top, left, bottom, right = regions[0]
    assert data.shape[1:] == (right - left + 1, bottom - top + 1)
    assert (meta["Region.Left"][0], meta["Region.Top"][0], meta["Region.Right"][0], meta["Region.Bottom"][0]) == (
        left, top, right, bottom)
    assert meta["Exponent"][0] == -9 and meta["ADZero"][0] == 32768 and meta["Tick"][0] == 50
    text = meta["Conversion Factors"][0]
    text = text.decode() if isinstance(text, bytes) else text
    assert text.endswith(" ")
    factors = np.array(text.split(), dtype=np.int64).reshape(right - left + 1, bottom - top + 1)  # [col, row]
    assert len(np.unique(factors)) > 100 and 750 <= factors.min() and factors.max() <= 1250
    uv = (data - 32768) * factors[None] * 1e-3
    for u in truth.units.values():
        spikes = u.spike_times.astype(np.int64)
        spikes = spikes[spikes < data.shape[0]]
        own = uv[spikes, u.col - left, u.row - top].mean()
        swapped = uv[spikes, u.row - left, u.col - top].mean() if (
            u.row - left < data.shape[1] and u.col - top < data.shape[2]) else 0.0
        assert own < -0.5 * u.footprint[u.row - 1, u.col - 1] and abs(swapped) < 0.5 * abs(own), (own, swapped)


def test_the_noise_bank_is_the_rounded_normal():
    """Level frequencies of the table-drawn noise against P(rint(sigma * Z) = k) from the error function."""
    import math

    from hdmea.synthetic.mcs_writer import noise_bank

    sigma = 8.0
    bank = noise_bank(np.random.default_rng(11), 600, sigma)
    assert bank.shape == (600, 65, 65) and bank.dtype == np.int16
    values = bank.ravel().astype(np.int64)
    n = values.size
    levels = np.arange(-24, 25)
    counts = np.array([(values == k).sum() for k in levels])
    phi = lambda x: 0.5 * (1.0 + math.erf(x / (sigma * math.sqrt(2.0))))  # noqa: E731
    expected = n * np.array([phi(k + 0.5) - phi(k - 0.5) for k in levels])
    # Each level within 5 binomial standard deviations plus the table's resolution (1/65536 per code).
    assert np.all(np.abs(counts - expected) <= 5 * np.sqrt(expected) + n / 65536), (counts - expected)
    assert abs(values.std() - sigma) < 0.02 and abs(values.mean()) < 0.02
    assert np.array_equal(noise_bank(np.random.default_rng(11), 600, sigma), bank)  # same seed, same noise
    assert not noise_bank(np.random.default_rng(11), 3, 0.0).any()


def test_raw_data_without_noise_is_the_planted_footprints(tmp_path):
    """With noise far below a count, every stored frame is ADZero plus each unit's rounded waveform x footprint, built
    here naively spike by spike from the ground truth and read back with plain h5py."""
    rec = generate_recording(tmp_path, "clean", seed=5, raw_seconds=0.2, n_units=3, n_silent_units=0,
                             base_rate_hz=(60.0, 80.0), noise_uv=1e-3, raw_block_frames=700, noise_bank_frames=500)
    truth = rec.truth()
    cfg = rec.config
    with h5py.File(rec.cmcr_path, "r") as f:
        stored = f["Acquisition/Sensor Data/SensorData 1 1"][()].astype(np.int64)  # [frame, col, row]
    frames = stored.shape[0]
    expected = np.full((frames, 65, 65), 32768, np.int64)  # [frame, row, col]
    spiking = 0
    for u in truth.units.values():
        trace = np.zeros(frames + 2 * cfg.cutout_samples)
        for s in u.spike_times.astype(np.int64):
            for k, w in enumerate(u.waveform):
                t = s - cfg.cutout_pre_samples + k
                if 0 <= t < frames:
                    trace[t] += w
                    spiking += 1
        footprint = np.where(np.abs(u.footprint) >= 0.01, u.footprint, 0.0)
        expected += np.rint(trace[:frames, None, None].astype(np.float32)
                            * footprint[None].astype(np.float32)).astype(np.int64)
    assert spiking > 0
    np.testing.assert_array_equal(stored, expected.transpose(0, 2, 1))
