# Window counts and first values of ragged rows in segments (the kernel of h5stream.kernels.windows).
#
# Row r is values[row_offsets[r]:row_ends[r]] (rows may leave values between them unread), each value
# taken as x = (v - row_starts[r]) * scale
# in double precision (as numpy computes it: the value made a double, less the row's start, times the
# scale).  Segment s holds rows seg_rows[s] to seg_rows[s + 1].  For each segment: how many x of its rows
# lie in each of its count windows [lo, hi); for each of its event windows [lo, hi), the smallest x of each
# row inside it, and the mean over its rows that have one of (x_first - lo) / 1000, summed as numpy's
# add.reduce sums a double array (pairwise, blocks of 8), so the mean is the one numpy gives bit for bit.
#
# A row whose values rise (a spike train's trial) is walked once against the segment's sorted window edges:
# each x is counted in the cell between the edges around it, and a window's count is the sum of its cells
# (lo <= x < hi exactly: x >= an edge is where the walk passes it).  Any other row (values out of order, a
# NaN, a start or scale of no number) compares each x with each window.  Segments are independent: the
# segment loop runs in parallel, each segment's results and scratch its own.

from libc.math cimport INFINITY, NAN, isfinite
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint64_t

ctypedef fused value_t:
    int64_t
    uint64_t
    double


cdef double _pairwise_sum(const double *a, Py_ssize_t n) noexcept nogil:
    # numpy's pairwise summation of a contiguous double array (its add.reduce): the same additions in the
    # same order, so the same result.
    cdef Py_ssize_t i, n2
    cdef double res
    cdef double r[8]
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[i]
        return res
    elif n <= 128:
        for i in range(8):
            r[i] = a[i]
        i = 8
        while i < n - (n % 8):
            r[0] += a[i]
            r[1] += a[i + 1]
            r[2] += a[i + 2]
            r[3] += a[i + 3]
            r[4] += a[i + 4]
            r[5] += a[i + 5]
            r[6] += a[i + 6]
            r[7] += a[i + 7]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            res += a[i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(a, n2) + _pairwise_sum(a + n2, n - n2)


def pairwise_sum(const double[::1] a):
    """numpy's ``np.add.reduce`` of a contiguous double array, computed here (for its tests)."""
    cdef double res
    with nogil:
        res = 0.0 + _pairwise_sum(&a[0] if a.shape[0] else NULL, a.shape[0])
    return res


cdef inline Py_ssize_t _insert(double *edges, Py_ssize_t *events, Py_ssize_t n, double e,
                               Py_ssize_t event) noexcept nogil:
    # e (with its event, or -1) put into the sorted edges[:n] after its equals; the new count
    cdef Py_ssize_t j = n
    while j > 0 and edges[j - 1] > e:
        edges[j] = edges[j - 1]
        events[j] = events[j - 1]
        j -= 1
    edges[j] = e
    events[j] = event
    return n + 1


cdef inline double _as_double(value_t v) noexcept nogil:
    # the value as a double, rounded as numpy's cast rounds it (a uint64 below 2**63 through the faster
    # signed conversion, which gives the same double)
    if value_t is uint64_t:
        if v < (<uint64_t>1) << 63:
            return <double><int64_t>v
    return <double>v


cdef inline bint _rising(const value_t *values, int64_t a, int64_t b) noexcept nogil:
    # True when values[a:b] never falls (and holds no NaN); a pointer, not a view: no reference counted per row
    cdef int64_t i
    for i in range(a + 1, b):
        if not (values[i - 1] <= values[i]):
            return False
    if value_t is double and b > a and values[a] != values[a]:
        return False
    return True


cdef void _one_segment(const value_t *data, const int64_t[::1] row_offsets, const int64_t[::1] row_ends,
                       const double[::1] row_starts,
                       double scale, Py_ssize_t row_a, Py_ssize_t row_b, const double[:, ::1] count_windows,
                       const double[:, ::1] event_windows, int64_t *counts, double *means, double[:, ::1] scratch,
                       Py_ssize_t n_counts, Py_ssize_t n_events) noexcept nogil:
    # One segment: rows row_a .. row_b - 1; its windows count_windows (n_counts, 2), event_windows (n_events, 2);
    # its results counts[:n_counts], means[:n_events]; its rows' firsts in scratch[:, row_a:row_b]
    cdef Py_ssize_t r, w, f, k, n_edges = 0
    cdef int64_t i, a, b, mark
    cdef double x, start
    cdef bint walk
    cdef double firsts[8]
    cdef double los[8]
    cdef double his[8]
    cdef Py_ssize_t hits[8]
    cdef double clo[16]
    cdef double chi[16]
    cdef int64_t tally[16]
    cdef double edges[41]
    cdef Py_ssize_t edge_event[41]
    cdef int64_t cells[42]
    cdef Py_ssize_t lo_cell[16]
    cdef Py_ssize_t hi_cell[16]
    # the windows that hold anything (lo < hi), their edges sorted; each event's start an edge too
    for w in range(n_counts):
        clo[w] = count_windows[w, 0]
        chi[w] = count_windows[w, 1]
        tally[w] = 0
        if clo[w] < chi[w]:
            n_edges = _insert(edges, edge_event, n_edges, clo[w], -1)
            n_edges = _insert(edges, edge_event, n_edges, chi[w], -1)
    for f in range(n_events):  # an event's start: where the walk meets the first x at or past it
        los[f] = event_windows[f, 0]
        his[f] = event_windows[f, 1]
        hits[f] = 0
        if los[f] == los[f]:
            n_edges = _insert(edges, edge_event, n_edges, los[f], f)
    for k in range(n_edges + 1):
        cells[k] = 0
    for w in range(n_counts):  # window w holds the cells lo_cell[w] .. hi_cell[w] - 1 (edges <= lo, <= hi)
        lo_cell[w] = 0
        hi_cell[w] = 0
        if clo[w] < chi[w]:
            for k in range(n_edges):
                if edges[k] <= clo[w]:
                    lo_cell[w] = k + 1
                if edges[k] <= chi[w]:
                    hi_cell[w] = k + 1
    for r in range(row_a, row_b):
        start = row_starts[r]
        a = row_offsets[r]
        b = row_ends[r]
        for f in range(n_events):
            firsts[f] = INFINITY
        walk = isfinite(start) and isfinite(scale) and scale > 0 and (b - a < 2 or _rising(data, a, b))
        if walk:
            # x rises with the values: one walk past the edges; the x in cell k are counted when the walk
            # leaves it, and the x that passes an event's start is the event's first, if inside the event
            k = 0
            mark = a
            for i in range(a, b):
                x = (_as_double(data[i]) - start) * scale
                if k < n_edges and edges[k] <= x:
                    cells[k] += i - mark
                    mark = i
                    while k < n_edges and edges[k] <= x:
                        f = edge_event[k]
                        if f >= 0 and x < his[f]:
                            firsts[f] = x
                        k += 1
            cells[k] += b - mark
        else:
            for i in range(a, b):
                x = (_as_double(data[i]) - start) * scale
                for w in range(n_counts):
                    tally[w] += (clo[w] <= x) & (x < chi[w])
                for f in range(n_events):
                    if los[f] <= x and x < his[f] and x < firsts[f]:
                        firsts[f] = x
        for f in range(n_events):
            if firsts[f] != INFINITY:
                scratch[f, row_a + hits[f]] = (firsts[f] - los[f]) / 1000.0
                hits[f] += 1
    for f in range(n_events):
        if hits[f]:
            means[f] = (0.0 + _pairwise_sum(&scratch[f, row_a], hits[f])) / <double>hits[f]
        else:
            means[f] = NAN
    for w in range(n_counts):  # the walked rows' x in [lo, hi): the cells from lo's to hi's
        for k in range(lo_cell[w], hi_cell[w]):
            tally[w] += cells[k]
        counts[w] = tally[w]


def _segment_windows(const value_t[::1] values, const int64_t[::1] row_offsets, const int64_t[::1] row_ends,
                     const double[::1] row_starts,
                     double scale, const int64_t[::1] seg_rows, const double[:, :, ::1] count_windows,
                     const double[:, :, ::1] event_windows, int64_t[:, ::1] counts, double[:, ::1] means,
                     double[:, ::1] scratch, int n_threads):
    """Fill ``counts`` (n_segments, n_count_windows) and ``means`` (n_segments, n_event_windows) in one pass
    over the values of the rows ``values[row_offsets[r]:row_ends[r]]``; ``scratch`` is (n_event_windows, at
    least n_rows); ``n_threads`` run the segment loop."""
    cdef Py_ssize_t n_segments = seg_rows.shape[0] - 1
    cdef Py_ssize_t n_counts = count_windows.shape[1], n_events = event_windows.shape[1]
    cdef Py_ssize_t s
    if n_counts > 16 or n_events > 8:
        raise ValueError(f"at most 16 count windows and 8 event windows (found {n_counts}, {n_events})")
    if n_segments <= 0:
        return
    cdef const value_t *data = &values[0] if values.shape[0] else NULL
    cdef int64_t *count_rows = &counts[0, 0] if n_counts else NULL
    cdef double *mean_rows = &means[0, 0] if n_events else NULL
    with nogil:
        for s in prange(n_segments, num_threads=max(n_threads, 1), schedule="dynamic", chunksize=1):
            _one_segment(data, row_offsets, row_ends, row_starts, scale, seg_rows[s], seg_rows[s + 1],
                         count_windows[s],
                         event_windows[s], count_rows + s * n_counts if n_counts else NULL,
                         mean_rows + s * n_events if n_events else NULL, scratch, n_counts, n_events)
