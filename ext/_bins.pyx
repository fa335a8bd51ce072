# Histograms of the rows of a ragged array, each row with its own bin edges (the kernel of
# h5stream.kernels.bins).
#
# Row k is values[offsets[k]:offsets[k + 1]], counted into the bins of edges[k] as
# np.histogram counts them: bins [e_j, e_j+1), the last one closed.  A sorted row (a spike
# train) is one merge of its values with its edges; a value below the one before it is
# placed by a binary search, so an unsorted row is still counted exactly.

from libc.stdint cimport int64_t


cdef inline Py_ssize_t _last_at_or_below(const int64_t[:, ::1] edges, Py_ssize_t k, Py_ssize_t n_edges,
                                         int64_t value) noexcept nogil:
    # The last edge index j with edges[k, j] <= value (edges[k, 0] <= value is known).
    cdef Py_ssize_t lo = 0, hi = n_edges - 1, mid
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if edges[k, mid] <= value:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _ragged_histograms(const int64_t[::1] values, const int64_t[::1] offsets, const int64_t[:, ::1] edges,
                       int64_t[:, ::1] counts):
    """Add row k's values into ``counts[k]`` (n_rows, n_edges - 1); n_edges >= 2."""
    cdef Py_ssize_t n_rows = edges.shape[0], n_edges = edges.shape[1]
    cdef Py_ssize_t last_bin = n_edges - 2
    cdef Py_ssize_t k, j
    cdef int64_t i, v, low, high, previous
    with nogil:
        for k in range(n_rows):
            low = edges[k, 0]
            high = edges[k, n_edges - 1]
            j = 0
            previous = low
            for i in range(offsets[k], offsets[k + 1]):
                v = values[i]
                if v < low or v > high:
                    continue
                if v < previous:
                    j = _last_at_or_below(edges, k, n_edges, v)
                else:
                    while j < n_edges - 1 and edges[k, j + 1] <= v:
                        j += 1
                previous = v
                counts[k, j if j < last_bin else last_bin] += 1
