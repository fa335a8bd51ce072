"""The compiled sectioning kernel against its naive twin (tests/reference.py)."""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from h5stream.kernels.sectioning import rows_to_csr, section_sorted

from tests.reference import section_trials_naive


def assert_matches_naive(rows, intervals, **kw):
    values, offsets = rows_to_csr(rows)
    cut = section_sorted(values, offsets, intervals, **kw)
    ref = section_trials_naive(rows, intervals)
    n_int = np.asarray(intervals).reshape(-1, 2).shape[0]
    assert cut.n_rows == len(rows) and cut.n_intervals == n_int
    for r in range(len(rows)):
        row_values, row_offsets = cut.row(r)
        assert row_offsets.size == n_int + 1
        for t in range(n_int):
            got = cut.interval(r, t)
            assert got.dtype == np.uint64
            np.testing.assert_array_equal(got, ref[r][t])
            np.testing.assert_array_equal(row_values[row_offsets[t]:row_offsets[t + 1]], ref[r][t])
    return cut


def test_seeded_random():
    rng = np.random.default_rng(1)
    rows = [np.sort(rng.integers(0, 10**7, size=rng.integers(0, 3000))) for _ in range(40)]
    starts = rng.integers(0, 10**7, size=120)
    intervals = np.stack([starts, starts + rng.integers(0, 10**5, size=120)], axis=1)
    assert_matches_naive(rows, intervals)


def test_edges_bounds_empty_trials_and_silent_units():
    rows = [
        np.array([10, 20, 20, 30, 40], dtype=np.uint64),  # duplicates allowed
        np.zeros(0, dtype=np.uint64),  # a unit with no spikes
        np.array([0, 5, 100], dtype=np.uint64),
    ]
    intervals = np.array([
        [10, 30],  # start included, end excluded
        [30, 31],
        [20, 20],  # empty interval
        [41, 99],  # empty trial between spikes
        [0, 1],
        [5, 101],
        [10, 30],  # the same trial again (a repeated movie)
    ])
    cut = assert_matches_naive(rows, intervals)
    np.testing.assert_array_equal(cut.interval(0, 0), [10, 20, 20])
    np.testing.assert_array_equal(cut.interval(0, 1), [30])
    assert cut.interval(1, 5).size == 0 and cut.interval(0, 2).size == 0


def test_overlapping_and_unordered_trials():
    rng = np.random.default_rng(2)
    rows = [np.sort(rng.integers(0, 1000, size=200)) for _ in range(5)]
    intervals = np.array([[500, 900], [0, 600], [100, 200], [150, 160], [999, 1000]])
    assert_matches_naive(rows, intervals)


def test_serial_equals_parallel():
    rng = np.random.default_rng(3)
    rows = [np.sort(rng.integers(0, 10**6, size=2000)) for _ in range(64)]
    starts = np.sort(rng.integers(0, 10**6, size=50))
    intervals = np.stack([starts, starts + 20000], axis=1)
    values, offsets = rows_to_csr(rows)
    a = section_sorted(values, offsets, intervals, n_threads=1)
    b = section_sorted(values, offsets, intervals, n_threads=4)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.offsets, b.offsets)


def test_empty_inputs():
    cut = section_sorted(np.zeros(0, np.uint64), np.zeros(1, np.int64), np.zeros((0, 2)))
    assert cut.values.size == 0 and cut.offsets.tolist() == [0]
    cut = assert_matches_naive([np.zeros(0, np.uint64)], np.array([[0, 10]]))
    assert cut.offsets.tolist() == [0, 0]
    cut = assert_matches_naive([np.array([1, 2, 3])], np.zeros((0, 2), dtype=np.int64))
    assert cut.offsets.tolist() == [0]


def test_rejects_bad_input():
    values, offsets = rows_to_csr([np.array([3, 2, 1])])
    with pytest.raises(ValueError, match="row 0 is not sorted"):
        section_sorted(values, offsets, [[0, 5]])
    # a fall between rows is allowed
    values, offsets = rows_to_csr([np.array([5, 6]), np.array([1, 2])])
    section_sorted(values, offsets, [[0, 5]])
    with pytest.raises(ValueError, match="ends before it starts"):
        section_sorted(values, offsets, [[5, 4]])
    with pytest.raises(ValueError, match="row_offsets"):
        section_sorted(values, np.array([0, 1]), [[0, 5]])
    with pytest.raises(ValueError, match="non-negative"):
        section_sorted(np.array([-1, 2]), np.array([0, 2]), [[0, 5]])
    with pytest.raises(ValueError, match="shape"):
        section_sorted(values, offsets, [[0, 5, 6]])


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(0, 200), max_size=30).map(sorted), min_size=1, max_size=6),
    intervals=st.lists(st.tuples(st.integers(0, 210), st.integers(0, 30)), max_size=12),
)
def test_property_matches_naive(rows, intervals):
    rows = [np.asarray(r, dtype=np.uint64) for r in rows]
    iv = np.asarray([(s, s + w) for s, w in intervals], dtype=np.int64).reshape(-1, 2)
    assert_matches_naive(rows, iv, n_threads=2)
