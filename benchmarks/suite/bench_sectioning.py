"""Spike sectioning: the compiled kernel against the naive per-trial boolean mask.

Full size: 400 units x 20,000 sorted spikes each (uniform over a 20 min recording
at 20 kHz) cut into 30 movies x 20 trials = 600 trials of 10 s with pads.  Ours
is ``rows_to_csr`` + ``section_sorted`` (per unit a galloping merge walk over the
trials sorted by start and by end, then one gather; default threads); the peer is ``tests/reference.section_trials_naive`` (one
``(t >= start) & (t < end)`` mask per unit and trial).  Both results are compared
trial by trial before timing counts.

Run at full size: ``python -c "from benchmarks.suite.bench_sectioning import main; main('full')"``.
"""

from __future__ import annotations


import numpy as np

from benchmarks.harness import Row, interleave, timed_row
from h5stream.kernels.sectioning import rows_to_csr, section_sorted

from tests.reference import section_trials_naive

SIZES = {
    # units, spikes per unit, movies, trials per movie, rounds (ours), rounds (naive)
    "small": (20, 2_000, 3, 4, 3, 1),
    "full": (400, 20_000, 30, 20, 5, 2),
}
RECORDING_SAMPLES = 20 * 60 * 20_000


def make_inputs(n_units: int, n_spikes: int, n_movies: int, n_trials: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = [np.sort(rng.integers(0, RECORDING_SAMPLES, size=n_spikes)).astype(np.uint64) for _ in range(n_units)]
    trial = RECORDING_SAMPLES // (n_movies * n_trials)
    starts = np.arange(n_movies * n_trials, dtype=np.int64) * trial
    pad = trial // 10
    bounds = np.stack([np.maximum(starts - pad, 0), starts + trial + pad], axis=1)
    return rows, bounds


def _ours(rows, bounds, n_threads=None):
    values, offsets = rows_to_csr(rows)
    return section_sorted(values, offsets, bounds, n_threads=n_threads)


def _check(cut, naive) -> None:
    for r, per_trial in enumerate(naive):
        for t, expected in enumerate(per_trial):
            if not np.array_equal(cut.interval(r, t), expected):
                raise AssertionError(f"unit {r} trial {t}: kernel and naive reference differ")


def run(size: str = "small") -> list[Row]:
    n_units, n_spikes, n_movies, n_trials, rounds, naive_rounds = SIZES[size]
    rows, bounds = make_inputs(n_units, n_spikes, n_movies, n_trials)
    _check(_ours(rows, bounds), section_trials_naive(rows, bounds))
    # ours (warm: checked above) against the naive peer in interleaved rounds; the one-thread
    # figure is context only
    t = interleave({"ours": lambda: _ours(rows, bounds), "naive": lambda: section_trials_naive(rows, bounds)},
                   naive_rounds)
    ours, naive = t["ours"], t["naive"]
    serial = interleave({"serial": lambda: _ours(rows, bounds, n_threads=1)}, rounds)["serial"]
    from h5stream._ext._runtime import openmp_max_threads

    return [timed_row(
        f"spike sectioning {n_units} units x {n_spikes} spikes into {n_movies} x {n_trials} trials",
        "naive per-trial boolean mask", naive, ours, 30.0,
        f"ours: CSR build + kernel, default threads (up to {openmp_max_threads()}); ours with one thread "
        f"{serial}; results compared trial by trial",
    )]


def test_bench_sectioning_small():
    rows = run("small")
    assert len(rows) == 1 and rows[0].ours > 0 and rows[0].peer_value > 0


def test_bench_sectioning_results_match_reference():
    rows, bounds = make_inputs(5, 500, 2, 3, seed=4)
    _check(_ours(rows, bounds), section_trials_naive(rows, bounds))


if __name__ == "__main__":  # python -m benchmarks.suite.bench_sectioning [small|full]
    from benchmarks.harness import main

    main(run)
