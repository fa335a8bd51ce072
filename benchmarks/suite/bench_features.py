"""Feature extraction: frame-aligned firing rates against the textbook per-trial histogram.

The firing-rate and step-response features count each unit's spikes per display
frame of every trial of a movie.  Full size is a lab's recording: 310 units, 30
minutes of display frames at 60 Hz (108,000 frames), a 15-minute dense-noise
movie (one trial of 54,000 frames) and a step movie of 88 trials of 600 frames,
about 23,000 spikes per unit and movie.  Ours is ``firing_rate`` as the
extraction runs it (one :class:`~hdmea.features.extractors.RecordingInputs` for
the whole recording: the frame period and each movie's frame edges built once,
every trial of a unit counted in one search); the peer is
``tests/reference.frame_rates_naive`` (each trial's edges built one by one, the
median frame interval taken per call, ``np.histogram`` per trial).  Both give the
same float64 values, checked before timing.  Goal: 2x.

Run: ``python -m benchmarks --size full --only features``.
"""

from __future__ import annotations

import numpy as np

from benchmarks.harness import Row, interleave, timed_row
from hdmea.features.extractors import RecordingInputs, UnitInputs, firing_rate

from tests.reference import frame_rates_naive

FS = 20_000.0
SIZES = {
    # units, minutes of frames, noise frames, step trials, frames per step trial, spikes per unit and movie, rounds
    "small": (8, 3, 3_000, 6, 600, 2_000, 1),
    "full": (310, 30, 54_000, 88, 600, 23_000, 3),
}
GOAL = 2.0


class _Stored:
    """A recording's stored arrays by path, as the extractors read them from a file or a session."""

    def __init__(self, values: dict):
        self.values = values

    def get(self, path: str):
        return self.values[path]


def make_recording(n_units: int, minutes: int, noise_frames: int, step_trials: int, trial_frames: int,
                   spikes: int, seed: int = 0) -> tuple[dict, list[str]]:
    """Display frames at ~60 Hz (jittered by a sample), two movies, sorted spike trains per trial."""
    rng = np.random.default_rng(seed)
    n_frames = minutes * 60 * 60
    frame_times = np.cumsum(rng.integers(333, 335, n_frames)).astype(np.int64)
    values = {"stimulus/frame_time/default": frame_times, "metadata/sampling_rate": np.array([FS])}
    step_start = noise_frames + 600
    movies = {
        "dense_noise": np.array([[frame_times[0], frame_times[noise_frames]]]),
        "step": np.array([[frame_times[step_start + k * trial_frames], frame_times[step_start + (k + 1) * trial_frames]]
                          for k in range(step_trials)]),
    }
    for u in range(n_units):
        for movie, bounds in movies.items():
            per_trial = rng.multinomial(spikes, np.diff(bounds, axis=1)[:, 0] / np.diff(bounds, axis=1).sum())
            trains = [np.sort(rng.integers(b0, b1, n)) for (b0, b1), n in zip(bounds, per_trial)]
            values[f"units/u{u:03d}/spike_times_sectioned/{movie}"] = {
                "spike_times": np.concatenate(trains).astype(np.int64),
                "trial_offsets": np.concatenate([[0], np.cumsum(per_trial)]).astype(np.int64),
                "trial_bounds": bounds.astype(np.int64),
            }
    return values, list(movies)


def _ours(values: dict, n_units: int, movies: list[str]) -> list[np.ndarray]:
    recording = RecordingInputs(_Stored(values))
    return [firing_rate(UnitInputs(f"u{u:03d}", recording), movie=movie, frame_time="default")["rate_hz"]
            for u in range(n_units) for movie in movies]


def _naive(values: dict, n_units: int, movies: list[str]) -> list[np.ndarray]:
    frame_times = values["stimulus/frame_time/default"]
    out = []
    for u in range(n_units):
        for movie in movies:
            sec = values[f"units/u{u:03d}/spike_times_sectioned/{movie}"]
            rates = frame_rates_naive(sec["spike_times"], sec["trial_offsets"], sec["trial_bounds"], frame_times, FS)
            out.append(rates.astype(np.float32))
    return out


def run(size: str = "small") -> list[Row]:
    n_units, minutes, noise_frames, step_trials, trial_frames, spikes, rounds = SIZES[size]
    values, movies = make_recording(n_units, minutes, noise_frames, step_trials, trial_frames, spikes)
    ours_rates, naive_rates = _ours(values, n_units, movies), _naive(values, n_units, movies)
    if not all(np.array_equal(a, b) for a, b in zip(ours_rates, naive_rates)):
        raise AssertionError("frame-aligned rates: ours and the naive reference differ")
    t = interleave({"ours": lambda: _ours(values, n_units, movies), "naive": lambda: _naive(values, n_units, movies)},
                   rounds)
    return [timed_row(
        f"frame-aligned rates, {n_units} units x {len(movies)} movies ({minutes} min of frames, "
        f"{step_trials} step trials)", "per-trial np.histogram (tests/reference)", t["naive"], t["ours"], GOAL,
        f"{spikes} spikes per unit and movie; the firing-rate feature as the extraction runs it (frame period and "
        f"edges once per recording and movie); values equal to the reference's, checked before timing",
    )]


def test_bench_features_small():
    (row,) = run("small")
    assert row.goal == GOAL and row.ours > 0 and row.peer_value > 0 and row.ratio == row.peer_value / row.ours


if __name__ == "__main__":  # python -m benchmarks.suite.bench_features [small|full]
    from benchmarks.harness import main

    main(run)
