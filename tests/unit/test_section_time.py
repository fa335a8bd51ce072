"""Frame times from the sync channel and section times, against planted values."""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdmea.errors import ConfigError
from hdmea.io.cmcr import read_light_reference
from hdmea.steps.section_time import analog_section_times, frame_times_from_sync, playlist_section_times
from hdmea.stimulus import (
    StimulusConfig,
    TrialConfig,
    frames_to_samples,
    movie_display_frames,
    trial_frame_ranges,
)



def _pulse_train(starts, n, width=80, high=1000.0, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, noise, n)
    for s in starts:
        x[s:s + width] += high
    return x


def test_frame_times_are_pulse_onsets_with_leading_peaks_dropped():
    starts = np.arange(1000, 60000, 333)
    sync = _pulse_train(starts, 61000)
    np.testing.assert_array_equal(frame_times_from_sync(sync), starts[4:])
    np.testing.assert_array_equal(frame_times_from_sync(sync, drop_leading_peaks=0), starts)
    np.testing.assert_array_equal(frame_times_from_sync(sync, drop_leading_peaks=7), starts[7:])
    assert frame_times_from_sync(np.zeros(100)).size == 0
    with pytest.raises(ConfigError):
        frame_times_from_sync(sync, drop_leading_peaks=-1)


def test_frame_times_of_the_synthetic_sync_equal_truth(tiny_recording, tiny_truth):
    light, _fs = read_light_reference(tiny_recording.cmcr_path)
    ft = frame_times_from_sync(light["raw_ch2"], drop_leading_peaks=tiny_truth.lead_pulses)
    np.testing.assert_array_equal(ft, tiny_truth.frame_times)


def test_playlist_sections_cover_every_occurrence(tiny_recording, tiny_truth):
    sections = playlist_section_times(tiny_truth.frame_times, tiny_recording.stimulus)
    assert set(sections) == set(tiny_truth.section_times)
    for movie, arr in sections.items():
        np.testing.assert_array_equal(arr, tiny_truth.section_times[movie])
    assert sections["step_up_5s_5i_3x"].shape == (2, 2)  # shown twice, both counted


def test_playlist_longer_than_the_frames_is_refused(tiny_recording, tiny_truth):
    with pytest.raises(ConfigError, match="display frames"):
        playlist_section_times(tiny_truth.frame_times[:100], tiny_recording.stimulus)


def test_trial_layout_by_hand():
    cfg = StimulusConfig(playlist=["a", "b", "a"], movie_lengths={"a": 50, "b": 10},
                         trial_configs={"a": TrialConfig(5, 10, 4)}, pre_margin_frames=3, post_margin_frames=2)
    assert cfg.total_frames == 55 + 15 + 55
    frames = trial_frame_ranges(cfg, "a", np.array([0, 70]))
    assert frames[:, 0].tolist() == [8, 18, 28, 38, 78, 88, 98, 108]
    assert (frames[:, 1] - frames[:, 0]).tolist() == [10] * 8
    # round trip through JSON text
    assert StimulusConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()
    with pytest.raises(ConfigError):
        StimulusConfig(playlist=["a"], movie_lengths={"a": 10}, trial_configs={"a": TrialConfig(5, 10, 1)})
    with pytest.raises(ConfigError):
        StimulusConfig(playlist=["a", "c"], movie_lengths={"a": 10})


def test_frames_past_the_end_are_extrapolated():
    ft = np.array([100, 200, 300, 400])
    np.testing.assert_array_equal(frames_to_samples(ft, [0, 3, 4, 6]), [100, 400, 500, 700])


def test_analog_sections():
    x = np.zeros(1000)
    x[100:150] = 5
    x[120:130] = 0  # a dip inside the first section starts another (the original's rule) ...
    x[400:700] = 5
    x[999] = 5
    s = analog_section_times(x, 2.5, 200)
    assert s.tolist() == [[100, 300], [130, 330], [400, 600], [999, 999]]
    # ... unless sections must not overlap
    s = analog_section_times(x, 2.5, 200, non_overlapping=True)
    assert s.tolist() == [[100, 300], [400, 600], [999, 999]]
    with pytest.raises(ConfigError):
        analog_section_times(x, 2.5, 0)


def test_noise_schedule_matches_truth(tiny_recording, tiny_truth):
    stim = tiny_recording.stimulus
    movie = tiny_truth.noise_movie
    display = movie_display_frames(stim, movie)
    np.testing.assert_array_equal(display, tiny_truth.noise_display_frames)
    images = stim.noise_movies[movie].image_of_movie_frame(np.arange(display.shape[1]))
    np.testing.assert_array_equal(images, tiny_truth.noise_display_images[0])
    with pytest.raises(ConfigError):
        movie_display_frames(stim, "absent")


@settings(max_examples=40, deadline=None)
@given(
    gaps=st.lists(st.integers(40, 400), min_size=1, max_size=60),
    width=st.integers(2, 30),
    drop=st.integers(0, 5),
    seed=st.integers(0, 2**16),
)
def test_property_every_pulse_onset_is_found(gaps, width, drop, seed):
    starts = 50 + np.cumsum(gaps)
    starts = starts[np.concatenate([[True], np.diff(starts) > width + 1])]
    sync = _pulse_train(starts, int(starts[-1]) + 100, width=width, high=500.0, noise=0.5, seed=seed)
    np.testing.assert_array_equal(frame_times_from_sync(sync, drop_leading_peaks=drop), starts[drop:])
