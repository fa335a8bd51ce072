"""The light step's ON/OFF features counted over all trials at once, against the trial-by-trial naive twin,
and the ragged trials ``movie_trials`` reads, against cutting them trial by trial."""

from __future__ import annotations

import numpy as np
import pytest

from hdmea.features.on_off.step_up import step_up_responses
from hdmea.features.base import StoredGroup
from hdmea.features.trials import movie_trials
from hdmea.pipeline import create_session

from tests.reference import step_up_responses_naive

WINDOWS = dict(onset=100_000.0, offset=600_000.0, transient=50_000.0, sustained=300_000.0, baseline=80_000.0)


def _same(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert type(got[key]) is type(value), key
        assert got[key] == value or (np.isnan(value) and np.isnan(got[key])), (key, got[key], value)


def _trials(rng, n_trials, dtype=np.float64, empty_every=0):
    out = []
    for k in range(n_trials):
        n = 0 if empty_every and k % empty_every == 0 else int(rng.integers(0, 60))
        out.append(np.sort(rng.uniform(0, 1_000_000, n)).astype(dtype))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_step_up_responses_equal_the_naive_twin_on_seeded_trials(seed):
    rng = np.random.default_rng(seed)
    trials = _trials(rng, int(rng.integers(1, 80)), empty_every=int(rng.integers(0, 4)))
    for trial_end in (None, 1_000_000.0, 620_000.0, 90_000.0):
        _same(step_up_responses(trials, trial_end=trial_end, **WINDOWS),
              step_up_responses_naive(trials, trial_end=trial_end, **WINDOWS))


def test_step_up_responses_edges_equal_the_naive_twin():
    on, off, t = WINDOWS["onset"], WINDOWS["offset"], WINDOWS["transient"]
    boundary = [np.array([on, on + t, off, off + t, on - 1e-9]), np.array([off + t - 1e-6, on + t - 1e-6])]
    unsorted = [np.array([off + 10.0, on + 30.0, on + 10.0, off + 5.0]), np.array([on + 7.0])]
    cases = {
        "no trials": [],
        "every trial empty": [np.empty(0), np.empty(0)],
        "one trial": [np.array([on + 1.0, off + 2.0, off + 3.0])],
        "spikes exactly on the window edges": boundary,
        "unsorted trials": unsorted,
        "empty trials first and last": [np.empty(0), np.array([on + 5.0]), np.empty(0)],
        "integer spike times": [np.array([100_010, 600_020, 50_000]), np.array([100_001], dtype=np.int64)],
        "float32 spike times": [t.astype(np.float32) for t in _trials(np.random.default_rng(9), 30)],
    }
    for name, trials in cases.items():
        for trial_end in (None, 620_000.0):
            got = step_up_responses(trials, trial_end=trial_end, **WINDOWS)
            _same(got, step_up_responses_naive(trials, trial_end=trial_end, **WINDOWS))
    assert np.isnan(step_up_responses([np.empty(0)], **WINDOWS)["on_latency_ms"])


def _sectioned_session(spikes, offsets, bounds, pad=(0.0, 0.0)):
    session = create_session("trials")
    session.put("metadata/sampling_rate", np.array([20_000.0]))
    session.put("stimulus/frame_time/default", np.arange(0, 200_000, 333, dtype=np.int64))
    group = "units/unit_000/spike_times_sectioned/movie"
    session.put(f"{group}/spike_times", np.asarray(spikes, dtype=np.int64))
    session.put(f"{group}/trial_offsets", np.asarray(offsets, dtype=np.int64))
    session.put(f"{group}/trial_bounds", np.asarray(bounds, dtype=np.int64))
    session.set_attrs(group, {"pad_margin_before_s": pad[0], "pad_margin_after_s": pad[1]})
    return session


def _trials_one_by_one(spikes, offsets, bounds, before, after, rate=20_000.0):
    spikes, bounds = np.asarray(spikes, dtype=np.float64), np.asarray(bounds, dtype=np.float64).reshape(-1, 2)
    starts, scale = bounds[:, 0] + before, 1e6 / rate
    return [(spikes[offsets[k]:offsets[k + 1]] - starts[k]) * scale for k in range(bounds.shape[0])], \
        (bounds[:, 1] - after - starts) * scale


@pytest.mark.parametrize("pad", [(0.0, 0.0), (0.01, 0.02)])
def test_movie_trials_equal_the_trials_cut_one_by_one(pad):
    rng = np.random.default_rng(4)
    bounds = np.array([[k * 10_000, k * 10_000 + 8_000] for k in range(12)])
    counts = rng.integers(0, 30, 12)
    counts[[0, 5, 11]] = 0  # empty trials, the first and last among them
    spikes = np.concatenate([np.sort(rng.integers(b0, b1, c)) for (b0, b1), c in zip(bounds, counts)])
    offsets = np.concatenate([[0], np.cumsum(counts)])
    session = _sectioned_session(spikes, offsets, bounds, pad)
    trials = movie_trials(StoredGroup(session, "units/unit_000"), StoredGroup(session, "stimulus"),
                          StoredGroup(session, "metadata"), "movie")
    expected, lengths = _trials_one_by_one(spikes, offsets, bounds, round(pad[0] * 20_000), round(pad[1] * 20_000))
    assert trials.n_trials == 12 and len(trials.spikes) == 12
    for got, want in zip(trials.spikes, expected):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert np.array_equal(trials.lengths_us, lengths) and trials.frame_period_us == 333 * 50.0


def test_movie_trials_refuse_offsets_that_do_not_cut_the_spikes():
    session = _sectioned_session([5, 6, 7], [0, 3, 2], [[0, 10], [10, 20]])
    with pytest.raises(ValueError, match="trial_offsets .* do not cut its 3 spike_times into 2 trials"):
        movie_trials(StoredGroup(session, "units/unit_000"), StoredGroup(session, "stimulus"), None, "movie")
    empty = _sectioned_session([], [0], np.empty((0, 2)))
    trials = movie_trials(StoredGroup(empty, "units/unit_000"), StoredGroup(empty, "stimulus"), None, "movie")
    assert trials.n_trials == 0 and trials.spikes == []


@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_step_up_counts_spikes_on_window_edges_as_the_naive_twin(dtype):
    # every window edge, and one unit either side of it, in every trial: the windows' counts come from one
    # search among the sorted edges, whose "[lo, hi)" must hold exactly at each edge
    edges = [20_000.0, 100_000.0, 150_000.0, 600_000.0, 650_000.0, 950_000.0]
    spikes = np.sort(np.array([e + d for e in edges for d in (-1.0, 0.0, 1.0)] * 2)).astype(dtype)
    trials = [spikes, spikes[:5], spikes[7:]]
    for trial_end in (None, 620_000.0, 650_000.0, 100_000.0):
        _same(step_up_responses(trials, trial_end=trial_end, **WINDOWS),
              step_up_responses_naive(trials, trial_end=trial_end, **WINDOWS))
    # windows that meet or vanish (offset at the onset, no baseline) and a window of no number
    for windows in (dict(WINDOWS, offset=100_000.0), dict(WINDOWS, baseline=0.0), dict(WINDOWS, onset=float("nan"))):
        _same(step_up_responses(trials, **windows), step_up_responses_naive(trials, **windows))
