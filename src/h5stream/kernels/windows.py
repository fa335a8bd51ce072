"""Window counts and first values of ragged rows taken in segments (the kernel ``_windows``: each row read once
per four window edges, compared with them without a branch on the values)."""

from __future__ import annotations

import dataclasses

import numpy as np

from h5stream.native import compiled

__all__ = ["SegmentWindows", "segment_windows"]

#: the most count windows and event windows a call takes
MAX_COUNT_WINDOWS, MAX_EVENT_WINDOWS = 16, 8


@dataclasses.dataclass
class SegmentWindows:
    """What :func:`segment_windows` found: ``counts`` (n_segments, n_count_windows) int64 and
    ``mean_first`` (n_segments, n_event_windows) float64 (NaN where no row of the segment has a value
    inside the window)."""

    counts: np.ndarray
    mean_first: np.ndarray


def segment_windows(values: np.ndarray, row_offsets: np.ndarray, row_starts: np.ndarray, scale: float,
                    segment_rows: np.ndarray, count_windows: np.ndarray, event_windows: np.ndarray, *,
                    n_threads: int = 1, row_ends: np.ndarray | None = None) -> SegmentWindows:
    """Row ``r`` is ``values[row_offsets[r]:row_offsets[r + 1]]``, each value taken as
    ``x = (float64(v) - row_starts[r]) * scale`` (numpy's arithmetic, value by value); segment ``s`` holds
    rows ``segment_rows[s]`` to ``segment_rows[s + 1]``.

    ``counts[s, w]``: the x of segment ``s``'s rows with ``lo <= x < hi``, ``(lo, hi) = count_windows[s, w]``.
    ``mean_first[s, f]``: with ``(lo, hi) = event_windows[s, f]``, the mean over the segment's rows that have an
    x in ``[lo, hi)`` of ``(smallest such x - lo) / 1000``, summed as ``np.add.reduce`` sums (bit for bit
    numpy's ``np.add.reduce(d) / d.size`` of those values in row order).

    ``values`` int64, uint64 or float64 (others are converted to float64); ``row_offsets`` int64, n_rows + 1,
    non-decreasing within ``values``; ``segment_rows`` int64 from 0 to n_rows, non-decreasing;
    ``count_windows`` (n_segments, at most 16, 2) and ``event_windows`` (n_segments, at most 8, 2) float64.
    ``n_threads`` threads take the segments (one by default: a step's few million values take a few ms, less
    than a team of threads costs to start on shared cores, :mod:`h5stream.kernels.sectioning`).

    ``row_ends``: rows anywhere in ``values`` (the arrays of many units, each a part of one buffer, read where
    they lie): ``row_offsets`` then holds each row's first index (n_rows) and ``row_ends`` the index after its
    last, ``0 <= row_offsets[r] <= row_ends[r] <= values.size``; the values between rows are not read.
    """
    values = np.asarray(values)
    if values.dtype not in (np.int64, np.uint64, np.float64):
        values = values.astype(np.float64)
    values = np.ascontiguousarray(values)
    row_offsets = np.ascontiguousarray(row_offsets, dtype=np.int64)
    row_starts = np.ascontiguousarray(row_starts, dtype=np.float64)
    segment_rows = np.ascontiguousarray(segment_rows, dtype=np.int64)
    if row_ends is not None:
        row_ends = np.ascontiguousarray(row_ends, dtype=np.int64)
        n_rows = row_offsets.size
        if row_offsets.ndim != 1 or row_ends.shape != (n_rows,) or (n_rows and (
                row_offsets.min() < 0 or row_ends.max() > values.size or np.any(row_ends < row_offsets))):
            raise ValueError(f"row_offsets and row_ends: expected {n_rows} of each, 0 <= row_offsets[r] <= row_ends[r] "
                             f"<= {values.size} (found {row_ends.shape} ends)")
    n_rows, n_segments = (row_offsets.size if row_ends is not None else row_offsets.size - 1), segment_rows.size - 1
    count_windows = np.ascontiguousarray(count_windows, dtype=np.float64).reshape(n_segments, -1, 2)
    event_windows = np.ascontiguousarray(event_windows, dtype=np.float64).reshape(n_segments, -1, 2)
    if values.ndim != 1:
        raise ValueError(f"values: expected a 1-D array, found shape {values.shape}")
    if row_ends is None and (n_rows < 0 or (n_rows and (row_offsets[0] < 0 or row_offsets[-1] > values.size
                                                        or np.any(row_offsets[1:] < row_offsets[:-1])))):
        raise ValueError(f"row_offsets: expected n_rows + 1 non-decreasing offsets within {values.size} values")
    if row_starts.shape != (n_rows,):
        raise ValueError(f"row_starts: expected {n_rows} starts, found shape {row_starts.shape}")
    if n_segments < 0 or segment_rows[0] != 0 or segment_rows[-1] != n_rows \
            or np.any(segment_rows[1:] < segment_rows[:-1]):
        raise ValueError(f"segment_rows: expected non-decreasing rows from 0 to {n_rows}")
    if count_windows.shape[1] > MAX_COUNT_WINDOWS or event_windows.shape[1] > MAX_EVENT_WINDOWS:
        raise ValueError(f"at most {MAX_COUNT_WINDOWS} count windows and {MAX_EVENT_WINDOWS} event windows a call "
                         f"(found {count_windows.shape[1]}, {event_windows.shape[1]})")
    counts = np.zeros((n_segments, count_windows.shape[1]), dtype=np.int64)
    means = np.full((n_segments, event_windows.shape[1]), np.nan)
    scratch = np.empty((event_windows.shape[1], max(n_rows, 1)))  # each row's first, where the row has one
    if row_ends is None:
        row_ends = row_offsets[1:]
    compiled("_windows")._segment_windows(values, row_offsets, row_ends, row_starts, float(scale), segment_rows,
                                          count_windows, event_windows, counts, means, scratch,
                                          max(1, int(n_threads)))
    return SegmentWindows(counts, means)
