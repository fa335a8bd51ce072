"""Module-level defaults set at the original's paths are read by the steps when they are called.

The lab points the library at its shared folders by setting ``hdmea.features.sta.DEFAULT_STIMULI_DIR``,
``hdmea.io.section_time.DEFAULT_PLAYLIST_PATH`` (and ``DEFAULT_MOVIE_LENGTH_PATH``) or
``hdmea.io.spike_sectioning.DEFAULT_CONFIG_DIR``; the original's functions read them when called.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

PAD = 180


def test_settings_at_the_original_paths_reach_the_steps(monkeypatch, tmp_path):
    import hdmea.features.sta as original_sta
    import hdmea.io.section_time as original_section_time
    import hdmea.io.spike_sectioning as original_sectioning
    from hdmea.steps import section_time, spike_sectioning, sta

    monkeypatch.setattr(original_sta, "DEFAULT_STIMULI_DIR", tmp_path / "Stimulations")
    monkeypatch.setattr(original_section_time, "DEFAULT_PLAYLIST_PATH", str(tmp_path / "playlist.csv"))
    monkeypatch.setattr(original_sectioning, "MAX_RETRIES", 7)
    assert sta.DEFAULT_STIMULI_DIR == tmp_path / "Stimulations" == original_sta.DEFAULT_STIMULI_DIR
    assert section_time.DEFAULT_PLAYLIST_PATH == str(tmp_path / "playlist.csv")
    assert spike_sectioning.MAX_RETRIES == 7
    # functions rebound at a path stay there: the step itself is not replaced
    native = sta.compute_sta
    monkeypatch.setattr(original_sta, "compute_sta", lambda *a, **k: None)
    assert sta.compute_sta is native


@pytest.fixture(scope="module")
def lab_recording(tmp_path_factory):
    from hdmea.synthetic import SyntheticConfig, generate_recording

    out = tmp_path_factory.mktemp("call_time")
    rec = generate_recording(out, "rec", config=SyntheticConfig.tiny(pre_margin_frames=PAD,
                                                                    post_margin_frames=PAD + 1), seed=4)
    movies = ", ".join(f"'{m}.mov'" for m in rec.stimulus.playlist)
    (out / "playlist.csv").write_text(f'playlist_name,movie_names\nset_t,"[{movies}]"\n')
    (out / "movie_length.csv").write_text("movie_name,movie_length\n" + "".join(
        f"{k},{v}\n" for k, v in rec.stimulus.movie_lengths.items()))
    (out / "Stimulations").mkdir()
    np.save(out / "Stimulations" / f"{rec.config.noise_movie}.npy",
            np.repeat(np.load(rec.noise_movie_path), rec.config.noise_frames_per_image, axis=0))
    return rec, out


@pytest.mark.slow
def test_the_original_calls_read_the_defaults_set_before_them(lab_recording, tmp_path, monkeypatch):
    import hdmea.features.sta as original_sta
    import hdmea.io.section_time as original_section_time
    import hdmea.io.spike_sectioning as original_sectioning
    from hdmea.features.sta import compute_sta
    from hdmea.io.section_time import add_section_time
    from hdmea.io.spike_sectioning import section_spike_times
    from hdmea.pipeline import load_recording

    rec, out = lab_recording
    h5 = load_recording(rec.cmcr_path, rec.cmtr_path, output_dir=tmp_path).hdf5_path
    monkeypatch.setattr(original_section_time, "DEFAULT_PLAYLIST_PATH", str(out / "playlist.csv"))
    monkeypatch.setattr(original_section_time, "DEFAULT_MOVIE_LENGTH_PATH", str(out / "movie_length.csv"))
    assert add_section_time(h5, "set_t") is True  # no table paths: the defaults just set
    # trial layouts from a folder set as the default: the step movie cut into 2 trials of 30 frames
    stimuli = tmp_path / "config" / "stimuli"
    stimuli.mkdir(parents=True)
    movie = rec.config.step_movie
    (stimuli / f"{movie}.json").write_text(json.dumps(
        {"name": movie, "section_kwargs": {"start_frame": 0, "trial_length_frame": 30, "repeat": 2}}))
    monkeypatch.setattr(original_sectioning, "DEFAULT_CONFIG_DIR", stimuli)
    section_spike_times(h5, pad_margin=(0.0, 0.0))
    monkeypatch.setattr(original_sta, "DEFAULT_STIMULI_DIR", out / "Stimulations")
    result = compute_sta(h5, cover_range=(-30, 0))  # no stimuli_dir: the default folder just set
    assert result.units_processed == len(rec.truth().units)
    occurrences = rec.stimulus.playlist.count(movie)
    with h5py.File(h5, "r") as f:
        for unit in f["units"]:
            bounds = f[f"units/{unit}/spike_times_sectioned/{movie}/trial_bounds"][()].astype(np.int64)
            assert bounds.shape[0] == 2 * occurrences
            assert np.all(np.abs((bounds[:, 1] - bounds[:, 0]) - 30 * rec.config.frame_period_samples) <= 1)
            assert f[f"units/{unit}/features/sta_{rec.config.noise_movie}/data"].shape[0] == 30
    # with the default folder emptied, the movie is not found and the step says where it looked
    monkeypatch.setattr(original_sta, "DEFAULT_STIMULI_DIR", tmp_path / "nowhere")
    with pytest.raises(Exception, match="nowhere"):
        compute_sta(h5, cover_range=(-30, 0), force=True)


def test_the_sta_helpers_the_lab_imports_from_the_original_path(tmp_path):
    # the lab's RF-geometry step (Projects/rf_sta_measure/rf_session.py) imports these three names
    from hdmea.features.sta import DEFAULT_STIMULI_DIR, _find_noise_movie_from_session, _load_stimulus_movie

    movie = (np.arange(2 * 3 * 4) % 2).astype(np.uint8).reshape(2, 3, 4)
    np.save(tmp_path / "perfect_dense_noise_15x15.npy", movie)
    np.testing.assert_array_equal(_load_stimulus_movie("perfect_dense_noise_15x15", tmp_path), movie)
    sections = {"step_up_5s_5i_3x": np.zeros((1, 2)), "perfect_dense_noise_15x15": np.zeros((1, 2))}
    assert _find_noise_movie_from_session(sections) == "perfect_dense_noise_15x15"
    assert _find_noise_movie_from_session({"step_up_5s_5i_3x": np.zeros((1, 2))}) is None
    assert DEFAULT_STIMULI_DIR is not None
