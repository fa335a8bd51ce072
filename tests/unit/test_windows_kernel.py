"""The window kernel (``h5stream.kernels.windows.segment_windows``) against its naive twin
(``tests.reference.segment_windows_naive``, masks row by row and ``np.mean``) on seeded rows built to reach
its edge cases: values exactly on window edges (lo and hi), windows sharing edges, an event starting on a
count window's edge, windows of no length, reversed, of no number or unbounded, more edges than one pass
compares, empty rows, segments without rows, rows out of order, equal values, NaN and infinite values,
whole numbers past 2**52 and uint64 values past 2**63, rows whose start is no number, and scales that reverse
or lose the order."""

from __future__ import annotations

import numpy as np
import pytest

from h5stream.kernels.windows import segment_windows
from tests.reference import segment_windows_naive

DTYPES = (np.uint64, np.int64, np.float64)


def _rows(rng, dtype, n_rows):
    rows = []
    for r in range(n_rows):
        kind = r % 11
        n = int(rng.integers(0, 60)) if kind != 10 else int(rng.integers(300, 1200))
        row = np.sort(rng.integers(0, 20_000, n))
        if kind == 3:
            row = row[:0]  # an empty row
        elif kind == 5 and n > 2:
            row = row[::-1].copy()  # out of order
        elif kind == 7:
            row = np.full(n % 7 + 1, 4_000)  # equal values, on an edge below
        rows.append(row.astype(dtype))
    if dtype == np.float64:
        rows[1] = np.array([np.nan])  # one value of no number (a row of one value rises)
        rows[2] = np.array([10.0, np.nan, 30.0])
        rows[4] = np.array([-np.inf, 2_000.0, 9_000.0, np.inf])
    if dtype == np.uint64:
        rows[6] = np.array([2**63 - 1, 2**63, 2**63 + 4096, 2**64 - 1], dtype=np.uint64)
    if dtype == np.int64:
        rows[6] = np.array([-5_000, -1, 0, 3], dtype=np.int64)
    if dtype != np.float64:  # whole numbers past 2**52 (a double rounds some), in a row long enough to be read
        # four values a pass, and the longest rows made only of values below 2**52 to the last one
        rows[8] = np.array([3, 2**52 - 1, 2**52, 2**52 + 1, 2**53 + 1, 2**53 + 3, 2**62 + 1], dtype=dtype)
        rows[9] = np.array([2**52 - 9, 2**52 - 5, 2**52 - 4, 2**52 - 2, 2**52 - 1], dtype=dtype)
    return rows


def _windows(rng, n_segments, n_counts, n_events, on_values, starts, scale):
    """Each segment's windows: edges drawn, some put exactly on a value of the rows (as x), shared, reversed,
    empty, NaN or infinite."""
    count_windows = np.empty((n_segments, n_counts, 2))
    event_windows = np.empty((n_segments, n_events, 2))
    width = abs(scale) if np.isfinite(scale) and scale else 1.0
    for s in range(n_segments):
        edges = np.sort(rng.uniform(-1e4 * width, 2.2e4 * width, n_counts + 1))
        for j in range(0, n_counts + 1, 2):  # every other edge on an x of a value of the rows
            edges[j] = on_values[int(rng.integers(0, on_values.size))]
        edges.sort()
        count_windows[s, :, 0], count_windows[s, :, 1] = edges[:-1], edges[1:]  # neighbours share an edge
        event_windows[s, :, 0] = edges[rng.integers(0, n_counts + 1, n_events)]  # starts on count edges
        event_windows[s, :, 1] = event_windows[s, :, 0] + rng.uniform(0, 5e3 * width, n_events)
        if n_counts > 4:
            count_windows[s, 0] = count_windows[s, 0, ::-1]  # hi < lo: nothing
            count_windows[s, 1] = [count_windows[s, 1, 0]] * 2  # lo == hi: nothing
            count_windows[s, 2] = [np.nan, count_windows[s, 2, 1]]  # no number: nothing
            count_windows[s, 3] = [-np.inf, count_windows[s, 3, 1]]
            count_windows[s, 4] = [count_windows[s, 4, 0], np.inf]
        if n_events > 2:
            event_windows[s, 0, 0] = np.nan
            event_windows[s, 1, 1] = np.nan
            event_windows[s, 2, 0] = -np.inf
    return count_windows, event_windows


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", DTYPES)
def test_counts_and_mean_firsts_equal_the_naive_twin_bit_for_bit(seed, dtype):
    rng = np.random.default_rng([seed, DTYPES.index(dtype)])
    n_rows = 330
    rows = _rows(rng, dtype, n_rows)
    values = np.concatenate(rows).astype(dtype)
    row_offsets = np.concatenate([[0], np.cumsum([r.size for r in rows])]).astype(np.int64)
    starts = rng.integers(0, 3_000, n_rows).astype(np.float64)
    starts[[12, 40]] = [np.nan, np.inf]  # rows of no start: compared, not searched
    # one segment of no rows, one of most rows (more rows with a first than one pairwise block), short ones
    segment_rows = np.array([0, 0, 9, 30, 31, 300, n_rows], dtype=np.int64)
    n_segments = segment_rows.size - 1
    scale = (50.0, 1.0, -2.0, 0.0, np.inf, 50.0)[seed]
    with np.errstate(all="ignore"):
        on_values = ((values[np.isfinite(values.astype(np.float64))].astype(np.float64)
                      - starts[np.repeat(np.arange(n_rows), np.diff(row_offsets))][
                          np.isfinite(values.astype(np.float64))]) * scale)
    on_values = on_values[np.isfinite(on_values)]
    if not on_values.size:
        on_values = np.array([0.0])
    n_counts, n_events = (16, 8) if seed % 2 == 0 else (5, 4)
    count_windows, event_windows = _windows(rng, n_segments, n_counts, n_events, on_values, starts, scale)
    with np.errstate(all="ignore"):  # (x of infinite values and starts: inf - inf is NaN, as in the kernel)
        want_counts, want_means = segment_windows_naive(values, row_offsets, starts, scale, segment_rows,
                                                        count_windows, event_windows)
    for threads in (1, 3):
        got = segment_windows(values, row_offsets, starts, scale, segment_rows, count_windows, event_windows,
                              n_threads=threads)
        np.testing.assert_array_equal(got.counts, want_counts)
        assert [m.hex() for m in got.mean_first.ravel()] == [m.hex() for m in want_means.ravel()]
    # the rows read where they lie in a larger buffer, values of no row between them
    gaps = [rng.integers(0, 20_000, int(rng.integers(0, 5))).astype(dtype) for _ in rows]
    spread = np.concatenate([p for gap, row in zip(gaps, rows) for p in (gap, row)])
    firsts = np.cumsum([g.size + r.size for g, r in zip(gaps, rows)]) - [r.size for r in rows]
    got = segment_windows(spread, firsts, starts, scale, segment_rows, count_windows, event_windows,
                          row_ends=firsts + [r.size for r in rows])
    np.testing.assert_array_equal(got.counts, want_counts)
    assert [m.hex() for m in got.mean_first.ravel()] == [m.hex() for m in want_means.ravel()]
    if scale == 50.0:  # the case of a step's trials: something counted and found
        assert want_counts.sum() > 0 and np.isfinite(want_means).sum() >= 3


def test_values_on_the_edges_count_in_the_window_they_open_and_not_the_one_they_close():
    # one row per case, x = value (start 0, scale 1): windows [10, 20), [20, 30); the event [20, 25)
    rows = [np.array([10, 20, 20, 30], np.uint64), np.array([], np.uint64), np.array([19, 20], np.uint64),
            np.array([25, 29, 30], np.uint64)]
    values = np.concatenate(rows)
    row_offsets = np.array([0, 4, 4, 6, 9], np.int64)
    got = segment_windows(values, row_offsets, np.zeros(4), 1.0, np.array([0, 4], np.int64),
                          np.array([[[10.0, 20.0], [20.0, 30.0]]]), np.array([[[20.0, 25.0]]]))
    assert got.counts.tolist() == [[2, 5]]  # 10 and 19; 20, 20, 20 and 25, 29
    # firsts at or past 20 and below 25: 20 (row 0), 20 (row 2); row 3's first (25) is outside
    assert got.mean_first.tolist() == [[0.0]]


def test_the_compiled_kernel_rejects_an_array_of_another_type_naming_it():
    # the compiled function takes its arrays through the buffer protocol: one of another element type, shape or
    # byte order is refused before anything is read or written
    from h5stream.native import compiled

    kernel = compiled("_windows")._segment_windows
    values = np.arange(6, dtype=np.uint64)
    good = dict(values=values, row_offsets=np.array([0, 3], np.int64), row_ends=np.array([3, 6], np.int64),
                row_starts=np.zeros(2), scale=1.0, seg_rows=np.array([0, 2], np.int64),
                count_windows=np.array([[[0.0, 4.0]]]), event_windows=np.array([[[1.0, 5.0]]]),
                counts=np.zeros((1, 1), np.int64), means=np.zeros((1, 1)), scratch=np.zeros((1, 2)), n_threads=1)
    kernel(**good)
    # x below 4: 0, 1, 2 and 3; the firsts at or past 1: 1 (row 0) and 3 (row 1), (0 + 2) / 1000 / 2
    assert good["counts"].tolist() == [[4]] and good["means"].tolist() == [[0.001]]
    for name, bad in (("row_offsets", np.array([0, 3], np.int32)), ("values", values.astype(np.int32)),
                      ("values", values.astype(">u8")), ("row_starts", np.zeros((2, 1))),
                      ("count_windows", np.array([[0.0, 4.0]]))):
        counts = np.full((1, 1), -1, np.int64)
        with pytest.raises(ValueError, match=f"_segment_windows: argument [0-9] \\({name}\\)"):
            kernel(**{**good, name: bad, "counts": counts})
        assert counts.tolist() == [[-1]]
    readonly = np.zeros((1, 1), np.int64)
    readonly.flags.writeable = False
    for name, bad in (("counts", readonly), ("scratch", np.zeros((1, 4))[:, ::2]), ("values", [1, 2])):
        with pytest.raises(ValueError, match=f"_segment_windows: argument [0-9] \\({name}\\)"):
            kernel(**{**good, name: bad})
