"""The original pipeline's call styles of the loading and sectioning steps, on a synthetic recording.

The recording is laid out as the original's playlist (180 gray frames on each
side of every movie, one frame more after it), so the lab's playlist and
movie-length CSV files describe it.  Results are checked against the planted
truth (frame times of the generator) and the original's documented layout,
computed here by hand.
"""

from __future__ import annotations

import logging
import shutil

import h5py
import numpy as np
import pytest

from tests.lab_tables import PAD, write_lab_tables
from tests.lab_tables import expected_sections as _expected_sections


@pytest.fixture(scope="module")
def lab_recording(tmp_path_factory):
    """(recording, playlist csv, movie-length csv) in the original's layout."""
    from hdmea.synthetic import SyntheticConfig, generate_recording

    out = tmp_path_factory.mktemp("lab_recording")
    rec = generate_recording(out, "2025.04.10-11.12.57-Rec", config=SyntheticConfig.tiny(
        pre_margin_frames=PAD, post_margin_frames=PAD + 1), seed=3)
    playlist, lengths = write_lab_tables(out, rec.stimulus, "missing_movie.mov")
    return rec, playlist, lengths


def test_load_recording_output_dir_layout_and_metadata(lab_recording, tmp_path, monkeypatch):
    from hdmea.pipeline.runner import LoadResult, load_recording

    rec, _, _ = lab_recording
    monkeypatch.chdir(tmp_path)
    result = load_recording(cmcr_path=rec.cmcr_path, cmtr_path=rec.cmtr_path)
    assert isinstance(result, LoadResult)
    # the default output_dir is ./artifacts, the id the .cmtr's stem without the trailing hyphen
    assert result.dataset_id == "2025.04.10-11.12.57-Rec"
    assert result.hdf5_path == tmp_path / "artifacts" / "2025.04.10-11.12.57-Rec.h5" or \
        result.hdf5_path.resolve() == (tmp_path / "artifacts" / "2025.04.10-11.12.57-Rec.h5").resolve()
    assert result.num_units == rec.config.n_units and result.stage1_completed
    truth = rec.truth()
    with h5py.File(result.hdf5_path, "r") as f:
        assert f["metadata/acquisition_rate"][0] == truth.sampling_rate
        assert f["metadata/sample_interval"][0] == pytest.approx(1 / truth.sampling_rate)
        # corrected frame times: the first sample of every planted pulse (the original's were one earlier)
        np.testing.assert_array_equal(f["metadata/frame_timestamps"][()], truth.frame_times)
        np.testing.assert_allclose(f["metadata/frame_time"][()], truth.frame_times / truth.sampling_rate)


def test_load_recording_cache_config_and_overwrite(lab_recording, tmp_path):
    from hdmea.pipeline.runner import load_recording
    from hdmea.steps.load import CACHED_WARNING

    rec, _, _ = lab_recording
    first = load_recording(rec.cmcr_path, rec.cmtr_path, "rec", output_dir=tmp_path, config={"a": 1})
    again = load_recording(rec.cmcr_path, rec.cmtr_path, "rec", output_dir=tmp_path, config={"a": 1})
    assert again.warnings == [CACHED_WARNING] and again.num_units == first.num_units
    with pytest.raises(FileExistsError, match="another configuration"):
        load_recording(rec.cmcr_path, rec.cmtr_path, "rec", output_dir=tmp_path, config={"a": 2})
    redone = load_recording(rec.cmcr_path, rec.cmtr_path, "rec", output_dir=tmp_path, config={"a": 2},
                            allow_overwrite=True)
    assert redone.warnings == []
    from hdmea.io.hdf5_store import stage1_params_hash as params_hash

    with h5py.File(redone.hdf5_path, "r") as f:
        assert f.attrs["stage1_params_hash"] == params_hash({"a": 2})


def test_load_recording_bad_input_types(tmp_path):
    from hdmea.pipeline.runner import load_recording
    from hdmea.utils.exceptions import ConfigurationError, HDMEAError

    with pytest.raises(ConfigurationError):
        load_recording(output_dir=tmp_path)
    with pytest.raises(HDMEAError):
        load_recording(cmtr_path=tmp_path / "x.cmtr", dataset_id="bad:id", output_dir=tmp_path)


def test_add_section_time_from_lab_csv_files(lab_recording, tmp_path):
    from hdmea.io.section_time import add_section_time
    from hdmea.pipeline.runner import load_recording

    rec, playlist, lengths = lab_recording
    loaded = load_recording(rec.cmcr_path, rec.cmtr_path, output_dir=tmp_path)
    assert add_section_time(loaded.hdf5_path, "set_t", playlist_file_path=playlist,
                            movie_length_file_path=lengths) is True
    expected = _expected_sections(rec.stimulus, rec.truth().frame_times)
    light = None
    with h5py.File(loaded.hdf5_path, "r") as f:
        assert sorted(f["stimulus/section_time"]) == sorted(expected)
        for movie, pairs in expected.items():
            # every occurrence of a repeated movie is kept (the step movie is shown twice)
            np.testing.assert_array_equal(f[f"stimulus/section_time/{movie}"][()].astype(np.int64), pairs)
        assert f.attrs["section_time_playlist"] == "set_t" and f.attrs["section_time_repeats"] == 1
        light = f["stimulus/light_reference/raw_ch1"][()]
        template = f["stimulus/light_template/step_up_5s_5i_3x"][()]
    pairs = expected["step_up_5s_5i_3x"]
    n = max(int(b - a) for a, b in pairs)
    naive = np.zeros(n)
    count = np.zeros(n)
    for a, b in pairs:  # sections of unequal length: each sample averages the sections that reach it
        naive[:b - a] += light[a:b]
        count[:b - a] += 1
    np.testing.assert_allclose(template, (naive / count).astype(np.float32), rtol=1e-6)
    # stored section times are refused again without force, replaced with it
    with pytest.raises(FileExistsError):
        add_section_time(loaded.hdf5_path, "set_t", playlist_file_path=playlist, movie_length_file_path=lengths)
    assert add_section_time(loaded.hdf5_path, "set_t", playlist_file_path=playlist, movie_length_file_path=lengths,
                            force=True) is True


def test_add_section_time_bad_tables_return_false(lab_recording, tmp_path, caplog):
    from hdmea.io.section_time import add_section_time
    from hdmea.pipeline.runner import load_recording

    rec, playlist, lengths = lab_recording
    loaded = load_recording(rec.cmcr_path, rec.cmtr_path, output_dir=tmp_path)
    with caplog.at_level(logging.ERROR):
        assert add_section_time(loaded.hdf5_path, "nope", playlist_file_path=playlist,
                                movie_length_file_path=lengths) is False
        assert add_section_time(loaded.hdf5_path, "set_t", playlist_file_path=tmp_path / "none.csv",
                                movie_length_file_path=lengths) is False
        assert add_section_time(loaded.hdf5_path, "other", playlist_file_path=playlist,
                                movie_length_file_path=lengths) is False
    text = caplog.text
    assert "no playlist 'nope'" in text and "none.csv" in text and "no movie with a known length" in text
    with h5py.File(loaded.hdf5_path, "r") as f:
        assert "section_time" not in f["stimulus"]


def test_add_section_time_session_equals_immediate(lab_recording, tmp_path):
    from hdmea.io.section_time import add_section_time
    from hdmea.pipeline import create_session
    from hdmea.pipeline.runner import load_recording

    rec, playlist, lengths = lab_recording
    immediate = load_recording(rec.cmcr_path, rec.cmtr_path, "rec", output_dir=tmp_path / "a").hdf5_path
    add_section_time(immediate, "set_t", playlist_file_path=playlist, movie_length_file_path=lengths)
    session = create_session("rec")
    session = load_recording(rec.cmcr_path, rec.cmtr_path, session=session)
    session = add_section_time(playlist_name="set_t", playlist_file_path=playlist, movie_length_file_path=lengths,
                               session=session)
    saved = session.save(tmp_path / "b.h5")
    with h5py.File(immediate, "r") as a, h5py.File(saved if saved else tmp_path / "b.h5", "r") as b:
        for movie in a["stimulus/section_time"]:
            np.testing.assert_array_equal(a[f"stimulus/section_time/{movie}"][()],
                                          b[f"stimulus/section_time/{movie}"][()])
            np.testing.assert_array_equal(a[f"stimulus/light_template/{movie}"][()],
                                          b[f"stimulus/light_template/{movie}"][()])


def test_add_section_time_analog_derivative_onsets(lab_recording, tmp_path):
    from hdmea.io.section_time import add_section_time_analog
    from hdmea.pipeline.runner import load_recording

    rec, _, _ = lab_recording
    h5 = load_recording(rec.cmcr_path, rec.cmtr_path, output_dir=tmp_path).hdf5_path
    with h5py.File(h5, "r") as f:
        light = f["stimulus/light_reference/raw_ch1"][()].astype(np.float64)
    rise = np.diff(light)
    threshold = 0.5 * rise.max()
    # naive onsets: local maxima of the rise above the threshold, timed after the rise
    naive = [i + 1 for i in range(1, rise.size - 1)
             if rise[i] > threshold and rise[i] > rise[i - 1] and rise[i] >= rise[i + 1]]
    assert naive, "the synthetic photodiode has steps"
    assert add_section_time_analog(h5, threshold, movie_name="flash", plot_duration=0.05, repeat=2) is True
    duration = int(round(0.05 * rec.truth().sampling_rate))
    with h5py.File(h5, "r") as f:
        got = f["stimulus/section_time/flash"][()].astype(np.int64)
        assert f["stimulus/light_template/flash"].shape == (duration,)
    # the original's rule: every peak starts a section, overlapping or not; the template averages every
    # section found, the first `repeat` are stored
    with h5py.File(h5, "r") as f:
        template = f["stimulus/light_template/flash"][()]
    traces = [light[t:min(t + duration, light.size)] for t in naive]
    assert len(traces) > 2 and all(t.size == duration for t in traces)
    np.testing.assert_allclose(template, np.mean(traces, axis=0).astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(got[:, 0], naive[:2])
    np.testing.assert_array_equal(got[:, 1], np.minimum(np.asarray(naive[:2]) + duration, light.size - 1))
    with pytest.raises(FileExistsError):
        add_section_time_analog(h5, threshold, movie_name="flash", plot_duration=0.05)
    # our rule on request: an onset inside the previous section starts none
    long = 1.5  # the flashes come 1 s apart
    assert add_section_time_analog(h5, threshold, movie_name="flash", plot_duration=long, force=True,
                                   non_overlapping=True) is True
    samples = int(round(long * rec.truth().sampling_rate))
    keep = [naive[0]]
    for t in naive[1:]:
        if t >= keep[-1] + samples:
            keep.append(t)
    assert len(keep) < len(naive)
    with h5py.File(h5, "r") as f:
        np.testing.assert_array_equal(f["stimulus/section_time/flash"][()][:, 0].astype(np.int64), keep)
    # nothing found: False, and nothing is stored (the earlier sections stay, a new movie gets none)
    assert add_section_time_analog(h5, rise.max() * 2, movie_name="flash", plot_duration=0.05, force=True) is False
    assert add_section_time_analog(h5, rise.max() * 2, movie_name="none_found", plot_duration=0.05) is False
    with h5py.File(h5, "r") as f:
        assert "none_found" not in f["stimulus/section_time"] and "none_found" not in f["stimulus"].get(
            "light_template", {})
        np.testing.assert_array_equal(f["stimulus/section_time/flash"][()][:, 0].astype(np.int64), keep)


def test_frame_and_sample_conversions_against_naive():
    from hdmea.io.section_time import convert_frame_to_sample_index, convert_sample_index_to_frame

    ts = np.array([100, 433, 767, 1100, 1433], dtype=np.uint64)
    frames = np.array([-3, 0, 2, 4, 9])
    np.testing.assert_array_equal(convert_frame_to_sample_index(frames, ts), [100, 100, 767, 1433, 1433])
    samples = np.array([0, 100, 432, 433, 1000, 5000])
    naive = [max(0, max((k for k, t in enumerate(ts) if t <= s), default=0)) for s in samples]
    np.testing.assert_array_equal(convert_sample_index_to_frame(samples, ts), naive)
    # the two are inverse on frame starts
    np.testing.assert_array_equal(convert_sample_index_to_frame(convert_frame_to_sample_index(np.arange(5), ts), ts),
                                  np.arange(5))


def test_runner_helpers(caplog):
    from hdmea.pipeline import runner

    assert runner.DEFAULT_ACQUISITION_RATE == 20000.0
    assert (runner.MIN_TYPICAL_ACQUISITION_RATE, runner.MAX_TYPICAL_ACQUISITION_RATE) == (1000.0, 100000.0)
    assert runner.validate_acquisition_rate(20000.0) is True
    assert [runner.validate_acquisition_rate(v) for v in (None, 0.0, -5.0, float("nan"))] == [False] * 4
    with caplog.at_level(logging.WARNING):
        assert runner.validate_acquisition_rate(500.0) is True
    assert "Unusual acquisition_rate" in caplog.text
    assert runner.compute_frame_time(20000.0) == pytest.approx(5e-5)
    with pytest.raises(ValueError):
        runner.compute_frame_time(0)


def test_get_frame_timestamps_against_planted_pulses():
    from hdmea.pipeline.runner import get_frame_timestamps

    rng = np.random.default_rng(0)
    starts = np.cumsum(rng.integers(320, 345, size=30)) + 50
    sync = np.zeros(starts[-1] + 400)
    for s in starts:
        sync[s:s + 80] = 3000.0
    sync += rng.normal(0, 5, sync.size)
    np.testing.assert_array_equal(get_frame_timestamps(sync), starts[4:])
    np.testing.assert_array_equal(get_frame_timestamps(sync, exclude_initial_frames=0), starts)
    # stacked channels: row frame_channel; by name: raw_ch{frame_channel + 1}
    stacked = np.stack([np.zeros_like(sync), sync])
    np.testing.assert_array_equal(get_frame_timestamps(stacked, frame_channel=1), starts[4:])
    np.testing.assert_array_equal(get_frame_timestamps({"raw_ch2": sync}), starts[4:])


def test_compute_sta_original_call_against_naive_average(lab_recording, tmp_path):
    from hdmea.features.sta import STAResult, compute_sta
    from hdmea.io.section_time import add_section_time
    from hdmea.pipeline.runner import load_recording

    rec, playlist, lengths = lab_recording
    h5 = load_recording(rec.cmcr_path, rec.cmtr_path, output_dir=tmp_path).hdf5_path
    assert add_section_time(h5, "set_t", playlist_file_path=playlist, movie_length_file_path=lengths)
    movie = rec.config.noise_movie
    images = np.load(rec.noise_movie_path)
    display = np.repeat(images, rec.config.noise_frames_per_image, axis=0)  # one image per display frame
    stimuli = tmp_path / "stimuli"
    stimuli.mkdir()
    np.save(stimuli / f"{movie}.npy", display)
    result = compute_sta(h5, cover_range=(-12, 0), use_multiprocessing=False, stimuli_dir=stimuli)
    assert isinstance(result, STAResult)
    assert (result.movie_name, result.cover_range, result.units_failed, result.failed_units) == (movie, (-12, 0), 0, [])
    assert result.units_processed == rec.config.n_units and result.elapsed_seconds >= 0
    # the naive average: every spike's 12 frames before its frame, in the movie's one occurrence
    truth = rec.truth()
    ft = truth.frame_times.astype(np.int64)
    cursor = 0
    for m in rec.stimulus.playlist:
        if m == movie:
            break
        cursor += 2 * PAD + rec.stimulus.movie_lengths[m] + 1
    first = cursor + PAD
    with h5py.File(h5, "r") as f:
        for unit in f["units"]:
            windows = []
            for s in f[f"units/{unit}/spike_times"][()].astype(np.int64):
                rel = int(np.searchsorted(ft, s, side="right")) - 1 - first
                if 0 <= rel < display.shape[0] and rel >= 12:
                    windows.append(display[rel - 12:rel].astype(np.float64))
            got = f[f"units/{unit}/features/sta_{movie}/data"][()]
            if windows:
                np.testing.assert_allclose(got, np.mean(windows, axis=0), rtol=1e-5, atol=1e-5)
            assert f[f"units/{unit}/features/sta_{movie}"].attrs["n_spikes_used"] == len(windows)
    # (-11, 1): the same length with the spike's own frame
    again = compute_sta(h5, cover_range=(-11, 1), stimuli_dir=stimuli, force=True)
    assert again.cover_range == (-11, 1) and again.n_lags == 12 and not again.exclude_current_frame


def test_compute_sta_refuses_bad_windows_and_missing_movie(lab_recording, tmp_path):
    from hdmea.features.sta import compute_sta
    from hdmea.steps.sta import cover_range_to_lags
    from hdmea.io.section_time import add_section_time
    from hdmea.pipeline.runner import load_recording
    from hdmea.utils.exceptions import ConfigurationError

    assert cover_range_to_lags((-60, 0)) == (60, True)
    assert cover_range_to_lags((-59, 1)) == (60, False)
    for bad in ((0, 0), (-5, 5), (3, 1), "x"):
        with pytest.raises(ConfigurationError):
            cover_range_to_lags(bad)
    rec, playlist, lengths = lab_recording
    h5 = load_recording(rec.cmcr_path, rec.cmtr_path, output_dir=tmp_path).hdf5_path
    add_section_time(h5, "set_t", playlist_file_path=playlist, movie_length_file_path=lengths)
    with pytest.raises(FileNotFoundError, match="dense_noise_15x15.npy"):
        compute_sta(h5, stimuli_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="given twice"):
        compute_sta(h5, cover_range=(-10, 0), n_lags=10, stimuli_dir=tmp_path)


def test_section_spike_times_with_stimulus_files(lab_recording, tmp_path):
    import json

    from hdmea.io.section_time import add_section_time
    from hdmea.io.spike_sectioning import SectionResult, section_spike_times
    from hdmea.pipeline.runner import load_recording

    rec, playlist, lengths = lab_recording
    h5 = load_recording(rec.cmcr_path, rec.cmtr_path, output_dir=tmp_path).hdf5_path
    add_section_time(h5, "set_t", playlist_file_path=playlist, movie_length_file_path=lengths)
    step = rec.config.step_movie
    trial = rec.config.step_trial
    (tmp_path / "config" / "stimuli").mkdir(parents=True)
    (tmp_path / "config" / "stimuli" / f"{step}.json").write_text(json.dumps({"name": step, "section_kwargs": {
        "start_frame": trial.start_frame, "trial_length_frame": trial.trial_length_frame, "repeat": trial.repeat}}))
    result = section_spike_times(h5, movie_names=[step], pad_margin=(0.05, 0.0), trial_repeats=3,
                                 config_dir=tmp_path / "config" / "stimuli")
    assert isinstance(result, SectionResult) and result.success
    fs = rec.truth().sampling_rate
    assert (result.pre_samples, result.post_samples) == (int(0.05 * fs), 0)
    # two occurrences x 3 trials, laid out by hand from the planted frame times
    ft = rec.truth().frame_times.astype(np.int64)
    starts, cursor = [], 0
    for m in rec.stimulus.playlist:
        if m == step:
            for n in range(trial.repeat):
                first = cursor + PAD + trial.start_frame + n * trial.trial_length_frame
                starts.append((ft[first] - int(0.05 * fs), ft[first + trial.trial_length_frame]))
        cursor += 2 * PAD + rec.stimulus.movie_lengths[m] + 1
    assert result.trial_repeats == len(starts) == 6
    with h5py.File(h5, "r") as f:
        for unit in f["units"]:
            spikes = f[f"units/{unit}/spike_times"][()].astype(np.int64)
            g = f[f"units/{unit}/spike_times_sectioned/{step}"]
            np.testing.assert_array_equal(g["trial_bounds"][()].astype(np.int64), starts)
            off = g["trial_offsets"][()]
            for k, (a, b) in enumerate(starts):
                np.testing.assert_array_equal(g["spike_times"][off[k]:off[k + 1]].astype(np.int64),
                                              spikes[(spikes >= a) & (spikes < b)])


def test_load_recording_with_eimage_sta_original_call(tmp_path):
    from hdmea.pipeline import compute_eimage_sta, load_recording
    from hdmea.pipeline.runner import LoadWithEImageSTAResult, load_recording_with_eimage_sta
    from hdmea.synthetic import SyntheticConfig, generate_recording
    from hdmea.utils.exceptions import ConfigurationError

    rec = generate_recording(tmp_path / "src", "rec", config=SyntheticConfig.tiny(raw_seconds=1.0), seed=11)
    result = load_recording_with_eimage_sta(rec.cmcr_path, rec.cmtr_path, "rec", output_dir=tmp_path / "a",
                                            spike_limit=40, window_range=(-5, 15), cutoff_hz=200.0)
    assert isinstance(result, LoadWithEImageSTAResult)
    assert result.hdf5_path == tmp_path / "a" / "rec.h5" and result.stage1_completed
    assert result.num_units == rec.config.n_units and result.elapsed_seconds > 0
    # our style, same step: equal images
    ours = load_recording(rec.cmcr_path, rec.cmtr_path, output_path=tmp_path / "b.h5")
    compute_eimage_sta(ours.hdf5_path, rec.cmcr_path, window=(-5, 15), highpass_hz=200.0, max_spikes_per_unit=40,
                       duration_s=120.0)
    spiking = 0
    with h5py.File(result.hdf5_path, "r") as a, h5py.File(ours.hdf5_path, "r") as b:
        for unit in a["units"]:
            if "eimage_sta" in a[f"units/{unit}/features"]:
                spiking += 1
                got = a[f"units/{unit}/features/eimage_sta/data"][()]
                assert got.shape[0] == 20
                np.testing.assert_array_equal(got, b[f"units/{unit}/features/eimage_sta/data"][()])
    assert result.units_with_sta == spiking > 0
    with pytest.raises(ConfigurationError):
        load_recording_with_eimage_sta(rec.cmcr_path, rec.cmtr_path, output_dir=tmp_path / "c", skip_highpass=True)
    # as the original: unit and system metadata copied unless asked not to
    with h5py.File(result.hdf5_path, "r") as a:
        assert "metadata/cmcr_meta/LB.RecordingDuration" in a and "metadata/cmtr_meta/ID.InstanceID" in a
        assert all(f"units/{u}/unit_meta/row" in a for u in a["units"])
    bare = load_recording_with_eimage_sta(rec.cmcr_path, rec.cmtr_path, output_dir=tmp_path / "c", duration_s=0.05,
                                          load_sys_meta=False, load_unit_meta=False)
    with h5py.File(bare.hdf5_path, "r") as a:
        assert "metadata/cmcr_meta" not in a and not any("unit_meta" in a[f"units/{u}"] for u in a["units"])
    # unit_ids as the original takes them (UnitIDs as text) or as unit names: images only for those units,
    # equal to the full run's images of the same units; every unit is loaded
    with h5py.File(result.hdf5_path, "r") as a:
        with_image = [u for u in a["units"] if "eimage_sta" in a[f"units/{u}/features"]]
        numbers = {u: int(a[f"units/{u}"].attrs["unit_num"]) for u in a["units"]}
    chosen = with_image[:2]
    picked = load_recording_with_eimage_sta(rec.cmcr_path, rec.cmtr_path, "rec", output_dir=tmp_path / "d",
                                            spike_limit=40, window_range=(-5, 15), cutoff_hz=200.0,
                                            unit_ids=[str(numbers[chosen[0]]), chosen[1]])
    with h5py.File(picked.hdf5_path, "r") as p, h5py.File(result.hdf5_path, "r") as a:
        assert sorted(p["units"]) == sorted(a["units"])
        assert [u for u in p["units"] if "eimage_sta" in p[f"units/{u}/features"]] == sorted(chosen)
        for unit in chosen:
            assert unit == f"unit_{numbers[unit]:03d}"
            np.testing.assert_array_equal(p[f"units/{unit}/features/eimage_sta/data"][()],
                                          a[f"units/{unit}/features/eimage_sta/data"][()])


def test_sta_result_and_helpers_the_original_way(tmp_path):
    from hdmea.features.sta import STAResult
    from hdmea.steps.sta import _compute_sta_for_unit, _find_noise_movie, _load_stimulus_movie
    from hdmea.utils.exceptions import ConfigurationError

    result = STAResult(hdf5_path=tmp_path / "r.h5", movie_name="noise", units_processed=5, units_failed=2,
                       cover_range=(-30, 0), elapsed_seconds=1.5, failed_units=["unit_001", "unit_003"])
    assert (result.movie, result.n_lags, result.exclude_current_frame, result.elapsed_s) == ("noise", 30, True, 1.5)
    assert (result.units_failed, result.cover_range, result.warnings) == (2, (-30, 0), [])
    rng = np.random.default_rng(2)
    movie = rng.integers(0, 2, size=(100, 4, 5)).astype(np.uint8)
    spikes = np.array([3, 9, 10, 50, 50, 99, 100, 140])
    sta, used, excluded = _compute_sta_for_unit(spikes, movie, cover_range=(-10, 0))
    valid = [f for f in spikes if 10 <= f < 100]  # a full window inside the movie; a repeated frame counts twice
    naive = np.mean([movie[f - 10:f].astype(np.float64) for f in valid], axis=0)
    assert (used, excluded) == (len(valid), spikes.size - len(valid)) and sta.dtype == np.float32
    np.testing.assert_allclose(sta, naive, rtol=1e-6)
    nan_sta, used0, excluded0 = _compute_sta_for_unit(np.array([0, 5]), movie, cover_range=(-60, 0))
    assert (used0, excluded0) == (0, 2) and np.isnan(nan_sta).all() and nan_sta.shape == (60, 4, 5)
    np.save(tmp_path / "m.npy", movie)
    np.testing.assert_array_equal(_load_stimulus_movie("m", tmp_path), movie)
    with pytest.raises(FileNotFoundError, match="Stimulus file not found"):
        _load_stimulus_movie("absent", tmp_path)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_group("units/unit_000/spike_times_sectioned/step_up")
        f.create_group("units/unit_000/spike_times_sectioned/Dense_NOISE_15hz")
        f.create_group("units/unit_001/spike_times_sectioned/noise_a")
        f.create_group("units/unit_001/spike_times_sectioned/noise_b")
        assert _find_noise_movie(f, "unit_000") == "Dense_NOISE_15hz"
        with pytest.raises(ConfigurationError, match="Multiple noise movie"):
            _find_noise_movie(f, "unit_001")


def test_section_spike_times_retries_a_refused_open(lab_recording, tmp_path, monkeypatch):
    from hdmea.steps import spike_sectioning  # the step's own module: its open is replaced below
    from hdmea.io.section_time import add_section_time
    from hdmea.pipeline.runner import load_recording

    rec, playlist, lengths = lab_recording
    h5 = load_recording(rec.cmcr_path, rec.cmtr_path, output_dir=tmp_path).hdf5_path
    add_section_time(h5, "set_t", playlist_file_path=playlist, movie_length_file_path=lengths)
    assert (spike_sectioning.MAX_RETRIES, spike_sectioning.RETRY_DELAY) == (3, 0.1)  # the original's values
    real_open, refusals, sleeps = spike_sectioning.open_target, [], []

    def refusing_open(*args, **kwargs):
        if len(refusals) < refuse:
            refusals.append(args[0])
            raise PermissionError(13, "Permission denied", str(args[0]))
        return real_open(*args, **kwargs)

    monkeypatch.setattr(spike_sectioning, "open_target", refusing_open)
    monkeypatch.setattr(spike_sectioning.time, "sleep", sleeps.append)
    refuse = spike_sectioning.MAX_RETRIES  # every attempt refused: the last error reaches the caller
    with pytest.raises(PermissionError):
        spike_sectioning.section_spike_times(h5)
    assert len(refusals) == 3 and sleeps == [0.1, 0.2]
    with h5py.File(h5, "r") as f:
        assert not any("spike_times_sectioned" in f[f"units/{u}"] for u in f["units"])
    refusals.clear(), sleeps.clear()
    refuse = 2  # refused twice, then the file opens: the step runs as without refusals
    result = spike_sectioning.section_spike_times(h5)
    assert result.success and len(refusals) == 2 and sleeps == [0.1, 0.2]
    with h5py.File(h5, "r") as f:
        assert all("spike_times_sectioned" in f[f"units/{u}"] for u in f["units"])
