# Interval sectioning of ragged sorted arrays (spike times into trials).
#
# Input is CSR: values[unit_offsets[u]:unit_offsets[u + 1]] are the sorted spike
# times of unit u.  A trial t is the half-open interval [starts[t], ends[t]).
# Per unit and trial two binary searches find the slice of spikes inside; a
# second pass copies those slices into one output array.  Units are independent,
# so the unit loop runs in parallel with no shared writes.

from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint64_t


cdef inline int64_t _lower_bound(const uint64_t[::1] values, int64_t lo, int64_t hi,
                                 uint64_t key) noexcept nogil:
    # First index in [lo, hi) whose value is >= key (hi if none).
    cdef int64_t mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if values[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _section_counts(const uint64_t[::1] values, const int64_t[::1] unit_offsets,
                    const uint64_t[::1] starts, const uint64_t[::1] ends,
                    int64_t[:, ::1] first, int64_t[:, ::1] count, int n_threads):
    """Fill first[u, t] (index into values) and count[u, t] (spikes of unit u in trial t)."""
    cdef Py_ssize_t n_units = unit_offsets.shape[0] - 1
    cdef Py_ssize_t n_trials = starts.shape[0]
    cdef Py_ssize_t u, t
    cdef int64_t a, b, lo, hi
    with nogil:
        for u in prange(n_units, num_threads=n_threads, schedule="dynamic", chunksize=4):
            a = unit_offsets[u]
            b = unit_offsets[u + 1]
            for t in range(n_trials):
                lo = _lower_bound(values, a, b, starts[t])
                hi = _lower_bound(values, lo, b, ends[t]) if ends[t] > starts[t] else lo
                first[u, t] = lo
                count[u, t] = hi - lo


def _section_gather(const uint64_t[::1] values, const int64_t[:, ::1] first,
                    const int64_t[:, ::1] count, const int64_t[::1] out_offsets,
                    uint64_t[::1] out, int n_threads):
    """Copy each (unit, trial) slice to out[out_offsets[u * n_trials + t]:...]."""
    cdef Py_ssize_t n_units = first.shape[0]
    cdef Py_ssize_t n_trials = first.shape[1]
    cdef Py_ssize_t u, t
    cdef int64_t k, src, dst, n
    with nogil:
        for u in prange(n_units, num_threads=n_threads, schedule="dynamic", chunksize=4):
            for t in range(n_trials):
                src = first[u, t]
                n = count[u, t]
                dst = out_offsets[u * n_trials + t]
                for k in range(n):
                    out[dst + k] = values[src + k]


cdef int64_t _first_fall(const uint64_t[::1] values, const int64_t[::1] row_offsets) noexcept nogil:
    cdef Py_ssize_t r
    cdef int64_t i
    for r in range(row_offsets.shape[0] - 1):
        for i in range(row_offsets[r] + 1, row_offsets[r + 1]):
            if values[i] < values[i - 1]:
                return i
    return -1


def _first_unsorted(const uint64_t[::1] values, const int64_t[::1] row_offsets):
    """Index of the first value smaller than its predecessor within a row, or -1 if every row is sorted."""
    cdef int64_t pos
    with nogil:
        pos = _first_fall(values, row_offsets)
    return pos
