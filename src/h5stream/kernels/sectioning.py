"""Interval sectioning of ragged sorted arrays: which values of each row fall in each interval.

The typical use is spike times (one sorted row per unit) cut into trials (one
half-open interval ``[start, end)`` per trial).  The result is ragged: one
values array plus offsets, never one small array per (row, interval).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from h5stream.cores import free_cores

__all__ = ["SectionedRows", "section_sorted", "rows_to_csr", "sorted_unique", "sorted_unique_runs"]


@dataclasses.dataclass
class SectionedRows:
    """Values of row ``r`` in interval ``t``: ``values[offsets[r * n_intervals + t]:offsets[r * n_intervals + t + 1]]``."""

    values: np.ndarray  # uint64
    offsets: np.ndarray  # int64, n_rows * n_intervals + 1
    n_rows: int
    n_intervals: int

    def row(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        """(values, interval offsets relative to them) of row ``r``; offsets have n_intervals + 1 entries."""
        k = self.n_intervals
        off = self.offsets[r * k:(r + 1) * k + 1]
        return self.values[off[0]:off[-1]], off - off[0]

    def interval(self, r: int, t: int) -> np.ndarray:
        i = r * self.n_intervals + t
        return self.values[self.offsets[i]:self.offsets[i + 1]]


def rows_to_csr(rows) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate 1-D arrays into (uint64 values, int64 row offsets)."""
    rows = [np.asarray(r) for r in rows]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([r.size for r in rows], out=offsets[1:])
    values = np.concatenate(rows).astype(np.uint64, copy=False) if rows else np.zeros(0, np.uint64)
    return np.ascontiguousarray(values, dtype=np.uint64), offsets


def sorted_unique(values, dtype=np.int64) -> np.ndarray:
    """The sorted distinct values of ``values`` as a new ``dtype`` array (``np.unique``'s result).

    Values that are sorted already, as the concatenated trials of one sorted spike train are when the
    trials do not overlap, take one linear pass and a copy; sorted values with repeats, one pass more;
    only unsorted values (overlapping trials) are sorted.
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D, found shape {values.shape}")
    if values.size < 2:
        return values.astype(dtype)
    head, tail = values[:-1], values[1:]
    rising = tail > head
    if rising.all():
        return values.astype(dtype)
    if (tail >= head).all():
        keep = np.empty(values.size, dtype=bool)
        keep[0] = True
        keep[1:] = rising
        return values[keep].astype(dtype)
    return np.unique(values).astype(dtype)


def sorted_unique_runs(values, starts, ends, dtype=np.int64) -> list[np.ndarray]:
    """:func:`sorted_unique` of each run ``values[starts[i]:ends[i]]``, with one allocation for all of them.

    ``values`` is copied once, as ``dtype``; a run whose values rise strictly (the concatenated trials of
    one sorted spike train, when the trials do not overlap) is a view of that copy, found by one
    comparison pass over all runs; any other run is :func:`sorted_unique` of its own.  The results share
    no memory with ``values`` nor, the runs being disjoint, with each other.
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D, found shape {values.shape}")
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    ends = np.asarray(ends, dtype=np.int64).reshape(-1)
    if starts.shape != ends.shape or (starts.size and (starts.min() < 0 or ends.max() > values.size
                                                         or np.any(ends < starts))):
        raise ValueError(f"runs must be [start, end) pairs within the {values.size} values, found "
                         f"{starts.size} starts and {ends.size} ends")
    if starts.size > 1 and np.any(starts[1:] < ends[:-1]):
        raise ValueError("runs must not overlap and must come in order")
    copied = values.astype(dtype)
    # falls: every p with values[p + 1] <= values[p]; run [s, e) rises iff no fall lies in [s, e - 1)
    falls = np.flatnonzero(values[1:] <= values[:-1]) if values.size > 1 else np.zeros(0, np.int64)
    last = np.maximum(ends - 1, starts)
    rising = np.searchsorted(falls, starts) == np.searchsorted(falls, last)
    return [copied[s:e] if ok else sorted_unique(values[s:e], dtype)
            for s, e, ok in zip(starts.tolist(), ends.tolist(), rising.tolist())]


# Below this much work (binary-search steps plus copied values) one thread is
# faster than waking a team: an OpenMP region costs tens of microseconds, and
# far more when the cores are shared; and asking which cores are free
# (:func:`~h5stream.cores.free_cores`, a few readings of the run queue) costs
# about 5 ms of wall time.  One thread does about 850,000 of this work a
# millisecond (120 units of 9,800 spikes into 401 trials: 3.1 million, 3.6-4.2 ms;
# 240 units of 16,800 spikes into 801 trials: 12.1 million, 17-19 ms), and two
# threads on two shared cores took as much CPU time (18-21 ms) for no shorter
# wall time, so below about 20 ms of one thread's work the team never pays for
# its start and the question.
_PARALLEL_MIN_WORK = 20_000_000


def _default_threads(n_rows: int, n_intervals: int, n_values: int) -> int:
    work = n_rows * n_intervals * 2 * max(1, int(np.log2(max(n_values, 2)))) + n_values
    if work < _PARALLEL_MIN_WORK:
        return 1
    # the cores free now: an OpenMP team meets at barriers, so a core another process holds stalls it
    return max(1, min(free_cores(), 8, n_rows))


def section_sorted(values, row_offsets, intervals, *, n_threads: int | None = None,
                   check_sorted: bool = True) -> SectionedRows:
    """Cut every sorted row of a CSR array into every half-open interval.

    Parameters
    ----------
    values
        Non-negative integer values (uint64 after conversion), sorted within each row.
    row_offsets
        int64, ``n_rows + 1`` non-decreasing offsets into ``values``.
    intervals
        ``(n_intervals, 2)`` integer ``[start, end)`` pairs; ``start <= end``.
        Intervals may overlap and need not be ordered.
    n_threads
        Threads of the parallel loop over rows (default: one for small inputs, else the
        cores, at most 8).
    check_sorted
        Verify that each row is sorted (one linear pass).

    Returns
    -------
    SectionedRows
    """
    from h5stream.native import compiled

    kernel = compiled("_section")
    _first_unsorted, _section_counts, _section_gather = (kernel._first_unsorted, kernel._section_counts,
                                                         kernel._section_gather)

    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D, found shape {values.shape}")
    if values.size and values.dtype.kind == "i" and values.min() < 0:
        raise ValueError("values must be non-negative")
    if values.dtype.kind not in "iu" and values.size:
        raise ValueError(f"values must be integers, found {values.dtype}")
    values = np.ascontiguousarray(values, dtype=np.uint64)
    row_offsets = np.ascontiguousarray(row_offsets, dtype=np.int64)
    if row_offsets.ndim != 1 or row_offsets.size < 1:
        raise ValueError("row_offsets must be 1-D with n_rows + 1 entries")
    if row_offsets[0] != 0 or row_offsets[-1] != values.size or np.any(np.diff(row_offsets) < 0):
        raise ValueError(
            f"row_offsets must rise from 0 to len(values)={values.size}, found {row_offsets[0]}..{row_offsets[-1]}"
        )
    intervals = np.asarray(intervals)
    if intervals.size == 0:
        intervals = intervals.reshape(0, 2)
    if intervals.ndim != 2 or intervals.shape[1] != 2:
        raise ValueError(f"intervals must have shape (n, 2), found {intervals.shape}")
    if intervals.size and intervals.dtype.kind == "i" and intervals.min() < 0:
        raise ValueError("interval bounds must be non-negative")
    starts = np.ascontiguousarray(intervals[:, 0], dtype=np.uint64)
    ends = np.ascontiguousarray(intervals[:, 1], dtype=np.uint64)
    if np.any(ends < starts):
        bad = int(np.flatnonzero(ends < starts)[0])
        raise ValueError(f"interval {bad} ends before it starts: [{starts[bad]}, {ends[bad]})")
    if check_sorted and values.size > 1:
        pos = _first_unsorted(values, row_offsets)
        if pos >= 0:
            row = int(np.searchsorted(row_offsets, pos, side="right") - 1)
            raise ValueError(f"row {row} is not sorted (value at index {pos} is smaller than the one before)")
    n_rows = row_offsets.size - 1
    n_int = starts.size
    threads = _default_threads(n_rows, n_int, values.size) if n_threads is None else max(1, int(n_threads))
    return _section_kernel(values, row_offsets, starts, ends, n_rows, n_int, threads,
                           _section_counts, _section_gather)


def _section_kernel(values, row_offsets, starts, ends, n_rows, n_int, threads, counts_fn, gather_fn):
    first = np.zeros((n_rows, n_int), dtype=np.int64)
    count = np.zeros((n_rows, n_int), dtype=np.int64)
    if n_rows and n_int:
        start_order = np.argsort(starts, kind="stable").astype(np.int64)
        end_order = np.argsort(ends, kind="stable").astype(np.int64)
        counts_fn(values, row_offsets, starts, ends, start_order, end_order, first, count, threads)
    offsets = np.zeros(n_rows * n_int + 1, dtype=np.int64)
    np.cumsum(count.reshape(-1), out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.uint64)
    if out.size:
        gather_fn(values, first, count, offsets, out, threads)
    return SectionedRows(values=out, offsets=offsets, n_rows=n_rows, n_intervals=n_int)
