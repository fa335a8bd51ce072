# Interval sectioning of ragged sorted arrays (spike times into trials).
#
# Input is CSR: values[unit_offsets[u]:unit_offsets[u + 1]] are the sorted spike
# times of unit u.  A trial t is the half-open interval [starts[t], ends[t]).
# Per unit, the trials are visited by rising start (then by rising end) and each
# search gallops on from where the previous one stopped, so finding the slice of
# spikes inside every trial costs O(trials * log(gap)) rather than a full binary
# search each; a second pass copies those slices into one output array.  Units are independent,
# so the unit loop runs in parallel with no shared writes.

from cython.parallel cimport prange

cdef extern from "_omp_fork.h":
    int h5s_omp_fork_import() except -1
    int h5s_omp_threads(int asked) nogil

h5s_omp_fork_import()  # the decision shared by every kernel (_omp_fork.h)
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


cdef inline int64_t _gallop(const uint64_t[::1] values, int64_t lo, int64_t hi,
                            uint64_t key) noexcept nogil:
    # First index in [lo, hi) whose value is >= key, searching outward from lo:
    # cheap when the answer is near lo (keys visited in rising order).
    cdef int64_t step = 1
    cdef int64_t probe = lo
    while probe < hi and values[probe] < key:
        lo = probe + 1
        probe = lo + step
        step <<= 1
    if probe > hi:
        probe = hi
    return _lower_bound(values, lo, probe, key)


def _section_counts(const uint64_t[::1] values, const int64_t[::1] unit_offsets,
                    const uint64_t[::1] starts, const uint64_t[::1] ends,
                    const int64_t[::1] start_order, const int64_t[::1] end_order,
                    int64_t[:, ::1] first, int64_t[:, ::1] count, int n_threads):
    """Fill first[u, t] (index into values) and count[u, t] (spikes of unit u in trial t).

    ``start_order``/``end_order`` visit the trials by rising start/end, so each
    search starts where the previous one ended (a merge walk with galloping).
    """
    cdef Py_ssize_t n_units = unit_offsets.shape[0] - 1
    cdef Py_ssize_t n_trials = starts.shape[0]
    cdef Py_ssize_t u, k
    cdef int64_t a, b, pos, t
    with nogil:
        for u in prange(n_units, num_threads=h5s_omp_threads(n_threads), schedule="dynamic", chunksize=4):
            a = unit_offsets[u]
            b = unit_offsets[u + 1]
            pos = a
            for k in range(n_trials):
                t = start_order[k]
                pos = _gallop(values, pos, b, starts[t])
                first[u, t] = pos
            pos = a
            for k in range(n_trials):
                t = end_order[k]
                pos = _gallop(values, pos, b, ends[t])
                # ends[t] >= starts[t], so the end index is never before the start index
                count[u, t] = pos - first[u, t]


def _section_gather(const uint64_t[::1] values, const int64_t[:, ::1] first,
                    const int64_t[:, ::1] count, const int64_t[::1] out_offsets,
                    uint64_t[::1] out, int n_threads):
    """Copy each (unit, trial) slice to out[out_offsets[u * n_trials + t]:...]."""
    cdef Py_ssize_t n_units = first.shape[0]
    cdef Py_ssize_t n_trials = first.shape[1]
    cdef Py_ssize_t u, t
    cdef int64_t k, src, dst, n
    with nogil:
        for u in prange(n_units, num_threads=h5s_omp_threads(n_threads), schedule="dynamic", chunksize=4):
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
