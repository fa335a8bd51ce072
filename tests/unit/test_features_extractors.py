"""Feature registry and built-in measures on hand-made inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from hdmea.errors import ConfigError
from hdmea.features import get_extractor, params_hash, register_extractor
from hdmea.features import extractors
from hdmea.features.extractors import (
    STEP_WINDOWS,
    RecordingInputs,
    UnitInputs,
    frame_aligned_rates,
    receptive_field_measures,
    step_measures,
)
from hdmea.steps.sta import movie_stimulus, spikes_to_movie_frames
from hdmea.stimulus import NoiseMovie, StimulusConfig

from tests.reference import frame_rates_naive, movie_frames_naive


def test_params_hash_is_stable_order_free_and_sensitive():
    a = params_hash("x", "1", {"movie": "m", "threshold": 0.5, "w": [1, 2]})
    b = params_hash("x", "1", {"w": [1, 2], "threshold": 0.5, "movie": "m"})
    assert a == b and len(a) == 16
    assert a != params_hash("x", "2", {"movie": "m", "threshold": 0.5, "w": [1, 2]})
    assert a != params_hash("x", "1", {"movie": "m", "threshold": 0.51, "w": [1, 2]})
    assert params_hash("x", "1", {"v": np.int64(3)}) == params_hash("x", "1", {"v": 3})


def test_register_custom_extractor_and_duplicate_names():
    @register_extractor("test_spike_count", version="3", requires=("units/{unit}/spike_times",),
                        defaults={"scale": 1.0}, replace=True)
    def spike_count(inputs, *, scale):
        return {"count": float(inputs.get("spike_times").size * scale)}

    ext = get_extractor("test_spike_count")
    assert ext.version == "3" and ext.required_paths("unit_001", {"scale": 1.0}) == ["units/unit_001/spike_times"]
    assert ext.resolve({"scale": 2.0}) == {"scale": 2.0}
    with pytest.raises(ConfigError, match="no parameter"):
        ext.resolve({"bogus": 1})
    with pytest.raises(ConfigError, match="registered already"):
        register_extractor("test_spike_count", version="1")(spike_count)
    with pytest.raises(ConfigError, match="needs a value"):
        get_extractor("firing_rate").resolve({})


def test_frame_aligned_rates_equal_a_naive_count():
    rng = np.random.default_rng(0)
    fs = 20_000.0
    frame_times = np.cumsum(rng.integers(332, 335, 400))
    bounds = np.array([[frame_times[10], frame_times[110]], [frame_times[200] + 5, frame_times[300] + 5]])
    spikes = [np.sort(rng.integers(b0, b1, 300)) for b0, b1 in bounds]
    values = np.concatenate(spikes)
    offsets = np.array([0, spikes[0].size, values.size])
    rates = frame_aligned_rates(values, offsets, bounds, frame_times, fs)
    assert rates.shape == (2, 100)  # frames starting inside each trial
    for k, (b0, b1) in enumerate(bounds):
        first = np.searchsorted(frame_times, b0)
        for j in range(rates.shape[1]):
            lo, hi = frame_times[first + j], frame_times[first + j + 1]
            count = np.count_nonzero((spikes[k] >= lo) & (spikes[k] < hi))
            assert rates[k, j] == pytest.approx(count * fs / (hi - lo))


@pytest.mark.parametrize("unsorted", [False, True])
@pytest.mark.parametrize("seed", range(12))
def test_frame_aligned_rates_equal_np_histogram_bit_for_bit(seed, unsorted):
    """Trials inside, straddling and past the last frame, spikes on the edges (the last bin is closed, as
    np.histogram's), empty trials, sorted trains (all trials counted at once) and a trial whose train is
    not sorted (counted trial by trial): the same float64 values as counting with np.histogram."""
    rng = np.random.default_rng(seed)
    fs = 20_000.0
    frame_times = np.cumsum(rng.integers(330, 337, int(rng.integers(2, 300)))).astype(np.int64)
    period = int(round(np.median(np.diff(frame_times))))
    n_trials = int(rng.integers(1, 8))
    starts = rng.integers(frame_times[0] - 500, frame_times[-1] + 2_000, n_trials)
    bounds = np.stack([starts, starts + rng.integers(0, 40_000, n_trials)], axis=1)
    trains = []
    for k, (b0, b1) in enumerate(bounds):
        inside = frame_times[(frame_times >= b0) & (frame_times <= b1 + period)]
        train = np.concatenate([rng.integers(b0 - 100, b1 + 400, int(rng.integers(0, 300))), inside,
                                inside + period])  # spikes exactly on frame edges
        trains.append(train if unsorted and k == n_trials - 1 else np.sort(train))
    values = np.concatenate(trains).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum([t.size for t in trains])])
    expected = frame_rates_naive(values, offsets, bounds, frame_times, fs)
    rates = frame_aligned_rates(values, offsets, bounds, frame_times, fs)
    assert rates.shape == expected.shape and rates.dtype == expected.dtype
    np.testing.assert_array_equal(rates, expected)


class _DictTarget:
    """A stored recording as the extractors see it: paths to arrays."""

    def __init__(self, values: dict):
        self.values = values

    def get(self, path: str):
        return self.values[path]


def test_the_frame_period_is_computed_once_per_recording_not_per_unit(monkeypatch):
    """The median frame interval is a property of the recording: one median over every frame for a whole
    extraction run, whatever the number of units and movies, and the rates equal those computed afresh."""
    rng = np.random.default_rng(1)
    fs = 20_000.0
    frame_times = np.cumsum(rng.integers(332, 335, 2_000))
    values = {"stimulus/frame_time/default": frame_times, "metadata/sampling_rate": np.array([fs])}
    movies = {"step": (10, 110), "chirp": (500, 900)}
    for u in range(6):
        for movie, (a, b) in movies.items():
            bounds = np.array([[frame_times[a], frame_times[b]]])
            spikes = np.sort(rng.integers(bounds[0, 0], bounds[0, 1], 200))
            values[f"units/u{u}/spike_times_sectioned/{movie}"] = {
                "spike_times": spikes, "trial_offsets": np.array([0, spikes.size]), "trial_bounds": bounds}
    fresh = {}
    for u in range(6):
        for movie in movies:
            sec = values[f"units/u{u}/spike_times_sectioned/{movie}"]
            fresh[u, movie] = frame_aligned_rates(sec["spike_times"], sec["trial_offsets"], sec["trial_bounds"],
                                                  frame_times, fs)
    from hdmea.features import inputs  # RecordingInputs computes it there

    calls = []
    real = inputs.frame_period
    monkeypatch.setattr(inputs, "frame_period", lambda times: calls.append(len(times)) or real(times))
    recording = RecordingInputs(_DictTarget(values))
    for u in range(6):
        for movie in movies:
            out = extractors.firing_rate(UnitInputs(f"u{u}", recording), movie=movie, frame_time="default")
            np.testing.assert_array_equal(out["rate_hz"], fresh[u, movie].astype(np.float32))
            assert out["display_rate_hz"] == fs / np.median(np.diff(frame_times))
    assert calls == [frame_times.size]


def _step_curve(kind: str) -> np.ndarray:
    rate = np.full(600, 5.0)
    light_on = np.zeros(600, bool)
    light_on[60:360] = True
    if kind == "on":
        rate[60:120] = 40.0
        rate[120:360] = 15.0
    else:
        rate[:60] = 12.0
        rate[60:360] = 1.0
        rate[360:420] = 45.0
        rate[420:] = 12.0
    return rate


def test_step_measures_sign_on_and_off_units_and_scale_short_trials():
    on = step_measures(_step_curve("on"))
    off = step_measures(_step_curve("off"))
    assert on["on_off_index"] > 0.5 and on["polarity"] == "on"
    assert off["on_off_index"] < -0.5 and off["polarity"] == "off"
    assert on["on_transient_hz"] == pytest.approx(40.0) and on["baseline_hz"] == pytest.approx(5.0)
    assert off["off_transient_hz"] == pytest.approx(45.0)
    np.testing.assert_array_equal(on["windows_frames"], np.array(list(STEP_WINDOWS.values())))
    # a 60-frame trial: windows scaled by 1/10
    short = step_measures(_step_curve("on")[::10])
    assert short["polarity"] == "on"
    assert short["windows_frames"][1].tolist() == [6, 12]
    with pytest.raises(ValueError):
        step_measures(np.zeros(0))


def test_receptive_field_measures_find_centre_size_polarity_and_lag():
    rng = np.random.default_rng(1)
    rows, cols = np.indices((15, 15))
    blob = np.exp(-((rows - 4.0) ** 2 + (cols - 9.0) ** 2) / (2 * 1.5**2))
    temporal = np.zeros(20)
    temporal[-5] = 1.0  # index 15 of 20 with first_lag 1 -> lag 1 + (19 - 15) = 5 frames
    for sign, label in ((1, "on"), (-1, "off")):
        sta = 127.5 + sign * 40 * temporal[:, None, None] * blob[None] + rng.normal(0, 0.5, (20, 15, 15))
        rf = receptive_field_measures(sta, first_lag=1)
        assert rf["polarity"] == sign and rf["polarity_label"] == label
        assert rf["centre_row"] == pytest.approx(4.0, abs=0.3) and rf["centre_col"] == pytest.approx(9.0, abs=0.3)
        assert rf["peak_lag_frames"] == 5
        assert 0.5 < rf["sigma_checks"] < 2.0 and rf["radius_checks"] > 1.0
    empty = receptive_field_measures(np.zeros((5, 3, 3)))
    assert empty["polarity"] == 0 and np.isnan(empty["centre_row"])


def test_spikes_map_to_movie_frames_of_every_occurrence():
    frame_times = np.arange(0, 1000 * 100, 100)  # 1000 display frames of 100 samples
    firsts = np.array([100, 500])  # two occurrences of a 50-frame movie
    spikes = np.array([100 * 100 - 1, 100 * 100, 100 * 100 + 99, 149 * 100 + 50, 150 * 100, 520 * 100 + 1])
    frames = spikes_to_movie_frames(spikes, frame_times, firsts, 50)
    # the first spike is before the movie, the fifth after its end
    assert sorted(frames.tolist()) == [0, 0, 20, 49]


@pytest.mark.parametrize("seed", range(4))
def test_movie_frames_equal_the_naive_twin(seed):
    """Occurrences inside the display's frames, running past its last frame, starting before its first or
    after its last; frame starts repeated; spikes on frame starts, before and after every frame, unsorted."""
    rng = np.random.default_rng(seed)
    frame_times = np.cumsum(rng.integers(0, 4, 60)) * 10  # rising, some starts repeated
    n_movie = int(rng.integers(1, 25))
    firsts = np.array([0, 7, 60 - n_movie, 55, 59, 60, 75, -3, -30])
    spikes = np.concatenate([rng.integers(-20, frame_times[-1] + 30, 150), rng.choice(frame_times, 40)])
    got = spikes_to_movie_frames(spikes, frame_times, firsts, n_movie)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, movie_frames_naive(spikes, frame_times, firsts, n_movie))
    assert got.size > 0
    np.testing.assert_array_equal(spikes_to_movie_frames(spikes, frame_times, [], n_movie), np.zeros(0, np.int64))


def test_movie_stimulus_expands_held_images_and_checks_lengths(tmp_path):
    images = np.random.default_rng(2).integers(0, 2, (10, 3, 3)).astype(np.uint8) * 255
    path = tmp_path / "noise.npy"
    np.save(path, images)
    config = StimulusConfig(playlist=["noise"], movie_lengths={"noise": 40},
                            noise_movies={"noise": NoiseMovie(str(path), 4, (3, 3), 10)})
    shown = movie_stimulus(None, config, "noise")
    assert shown.shape == (40, 3, 3)
    np.testing.assert_array_equal(shown[::4], images)
    np.testing.assert_array_equal(movie_stimulus(str(path), config, "noise"), shown)
    np.testing.assert_array_equal(movie_stimulus(shown, config, "noise"), shown)
    with pytest.raises(ConfigError, match="frames"):
        movie_stimulus(images[:7], config, "noise")
    with pytest.raises(ConfigError, match="no stimulus"):
        movie_stimulus(None, None, "noise")


@pytest.mark.parametrize("seed", range(6))
def test_ragged_histograms_equal_np_histogram_row_by_row(seed):
    """The kernel alone: rows sorted, unsorted, empty and outside their edges, repeated edges and values on
    them, against np.histogram of each row."""
    from h5stream.kernels.bins import ragged_histograms

    rng = np.random.default_rng(100 + seed)
    n_rows, n_edges = int(rng.integers(1, 9)), int(rng.integers(2, 40))
    edges = np.sort(rng.integers(0, 500, (n_rows, n_edges)), axis=1)  # repeated edges included
    rows = []
    for k in range(n_rows):
        row = np.concatenate([rng.integers(-50, 560, int(rng.integers(0, 200))), edges[k, rng.integers(0, n_edges, 5)]])
        rows.append(row if k % 3 == 2 else np.sort(row))
    values = np.concatenate(rows).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum([r.size for r in rows])])
    want = np.stack([np.histogram(r, bins=edges[k])[0] for k, r in enumerate(rows)])
    np.testing.assert_array_equal(ragged_histograms(values, offsets, edges), want)
    with pytest.raises(ValueError, match="offsets"):
        ragged_histograms(values, offsets[::-1], edges)
