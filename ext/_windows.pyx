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
# Counts: the segment's distinct window edges (of the windows with lo < hi, and each event's start), and for
# each edge how many x of each row lie below it (x < edge); a window's count is the x below its hi less those
# below its lo, which is the count of lo <= x < hi whatever the order of the row (a NaN x is below no edge and
# inside no window).  Each row is read once per four edges, four values a pass, each compared with the four,
# without a branch on the values (ext/_windows_rows.h); the same pass tells whether the row's values rise.
# Firsts: in a row whose values rise (x rises with them when the row's start and the scale are finite, the
# scale > 0; a spike train's trial), an event's first x at or past its start is the one after the x below it
# (taken without a branch on whether it lies inside the event); any other row compares each x with each event.
# Segments are independent: the segment loop runs in parallel, each segment's results and scratch its own.
#
# The arrays are taken through the buffer protocol as C pointers, not as typed memoryviews: a module with a
# memoryview carries Cython's memoryview types, registered with collections.abc at import, and a def function
# over a fused memoryview type picks its version by a Python-level signature match at every call; both cost
# more than the kernel's own import and dispatch, once per process and once per call.

from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from libc.math cimport INFINITY, NAN, isfinite
from libc.stdint cimport int64_t, uint64_t
from cython.parallel cimport prange

cdef extern from "_omp_fork.h":
    int h5s_omp_fork_import() except -1
    int h5s_omp_threads(int asked) nogil

h5s_omp_fork_import()  # the decision shared by every kernel (_omp_fork.h)

cdef extern from "_windows_rows.h" nogil:
    void win_choose()
    bint win_below_i64(const int64_t *p, int64_t n, double start, double scale, const double *edges,
                       int64_t *under)
    bint win_below_u64(const uint64_t *p, int64_t n, double start, double scale, const double *edges,
                       int64_t *under)
    bint win_below_f64(const double *p, int64_t n, double start, double scale, const double *edges,
                       int64_t *under)

ctypedef fused value_t:
    int64_t
    uint64_t
    double

# the element kinds a buffer may hold here: a signed, an unsigned 64-bit whole number, a double
cdef enum:
    KIND_I64 = 0
    KIND_U64 = 1
    KIND_F64 = 2
    N_ARRAYS = 10


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


cdef inline Py_ssize_t _edge(double *edges, Py_ssize_t *n, double e) noexcept nogil:
    # the index of e among the distinct edges[:n[0]], e appended when new
    cdef Py_ssize_t k
    for k in range(n[0]):
        if edges[k] == e:
            return k
    edges[n[0]] = e
    n[0] += 1
    return n[0] - 1


cdef inline double _as_double(value_t v) noexcept nogil:
    # the value as a double, rounded as numpy's cast rounds it (a uint64 below 2**63 through the faster
    # signed conversion, which gives the same double)
    if value_t is uint64_t:
        if v < (<uint64_t>1) << 63:
            return <double><int64_t>v
    return <double>v


cdef inline bint _below(const value_t *p, int64_t n, double start, double scale, const double *edges,
                        int64_t *under) noexcept nogil:
    # under[k] (k < 4) gains the x of p[0:n] below edges[k]; whether p[0:n] never falls (ext/_windows_rows.h)
    if value_t is int64_t:
        return win_below_i64(p, n, start, scale, edges, under)
    elif value_t is uint64_t:
        return win_below_u64(p, n, start, scale, edges, under)
    else:
        return win_below_f64(p, n, start, scale, edges, under)


cdef void _one_segment(const value_t *data, const int64_t *row_offsets, const int64_t *row_ends,
                       const double *row_starts, double scale, Py_ssize_t row_a, Py_ssize_t row_b,
                       const double *count_windows, const double *event_windows, int64_t *counts, double *means,
                       double *scratch, Py_ssize_t scratch_row, Py_ssize_t n_counts,
                       Py_ssize_t n_events) noexcept nogil:
    # One segment: rows row_a .. row_b - 1; its windows count_windows (n_counts, 2), event_windows (n_events, 2);
    # its results counts[:n_counts], means[:n_events]; its rows' firsts in scratch[f * scratch_row + row_a:]
    cdef Py_ssize_t r, w, f, k, g, n_edges = 0, n_groups
    cdef int64_t i, a, b
    cdef double x, start
    cdef bint rising, order = isfinite(scale) and scale > 0
    cdef int inside
    cdef double *firsts_of
    cdef double firsts[8]
    cdef double los[8]
    cdef double his[8]
    cdef Py_ssize_t hits[8]
    cdef Py_ssize_t event_edge[8]
    cdef Py_ssize_t lo_edge[16]
    cdef Py_ssize_t hi_edge[16]
    cdef double edges[40]
    cdef int64_t below[40]
    cdef int64_t row_below[40]
    # the distinct edges of the windows that hold anything (lo < hi) and each event's start (not NaN)
    for w in range(n_counts):
        lo_edge[w] = -1
        if count_windows[2 * w] < count_windows[2 * w + 1]:
            lo_edge[w] = _edge(edges, &n_edges, count_windows[2 * w])
            hi_edge[w] = _edge(edges, &n_edges, count_windows[2 * w + 1])
    for f in range(n_events):
        los[f] = event_windows[2 * f]
        his[f] = event_windows[2 * f + 1]
        hits[f] = 0
        event_edge[f] = _edge(edges, &n_edges, los[f]) if los[f] == los[f] else -1
    n_groups = (n_edges + 3) // 4
    for k in range(n_edges, 4 * n_groups):  # (a NaN edge has no x below it)
        edges[k] = NAN
    for k in range(4 * n_groups):
        below[k] = 0
    for r in range(row_a, row_b):
        start = row_starts[r]
        a = row_offsets[r]
        b = row_ends[r]
        # each edge's x below it, 4 edges a pass (ext/_windows_rows.h): a window's count is the x below its hi
        # less those below its lo, whatever the order of the row; the first pass also tells whether the values rise
        for k in range(4 * n_groups):
            row_below[k] = 0
        rising = True  # (each pass tells the same)
        for g in range(n_groups):
            rising = _below(data + a, b - a, start, scale, &edges[4 * g], &row_below[4 * g])
        for k in range(4 * n_groups):
            below[k] += row_below[k]
        if n_events and rising and order and isfinite(start) and b > a:
            # x rises with the values: an event's first x at or past its start is the one after those below it;
            # it is written where the row's first goes and counted when inside the event (no branch on the values)
            for f in range(n_events):
                k = event_edge[f]
                i = row_below[k] if k >= 0 else b - a
                inside = i < b - a
                x = (_as_double(data[a + (i if inside else b - a - 1)]) - start) * scale
                inside = inside & (x < his[f])
                scratch[f * scratch_row + row_a + hits[f]] = x - los[f]
                hits[f] += inside
        elif n_events:  # any other row: the smallest x inside each event, the first of equals
            for f in range(n_events):
                firsts[f] = INFINITY
            for i in range(a, b):
                x = (_as_double(data[i]) - start) * scale
                for f in range(n_events):
                    if los[f] <= x and x < his[f] and x < firsts[f]:
                        firsts[f] = x
            for f in range(n_events):
                if firsts[f] != INFINITY:
                    scratch[f * scratch_row + row_a + hits[f]] = firsts[f] - los[f]
                    hits[f] += 1
    for f in range(n_events):  # each first's distance from the event's start, in thousands (all at once)
        firsts_of = scratch + f * scratch_row + row_a
        for i in range(hits[f]):
            firsts_of[i] = firsts_of[i] / 1000.0
        if hits[f]:
            means[f] = (0.0 + _pairwise_sum(firsts_of, hits[f])) / <double>hits[f]
        else:
            means[f] = NAN
    for w in range(n_counts):  # the x in [lo, hi): those below hi less those below lo (lo < hi)
        counts[w] = below[hi_edge[w]] - below[lo_edge[w]] if lo_edge[w] >= 0 else 0


cdef void _all_segments(const value_t *data, const int64_t *row_offsets, const int64_t *row_ends,
                        const double *row_starts, double scale, const int64_t *seg_rows, Py_ssize_t n_segments,
                        const double *count_windows, const double *event_windows, int64_t *counts, double *means,
                        double *scratch, Py_ssize_t scratch_row, Py_ssize_t n_counts, Py_ssize_t n_events,
                        int n_threads) noexcept nogil:
    cdef Py_ssize_t s
    for s in prange(n_segments, num_threads=h5s_omp_threads(n_threads), schedule="dynamic", chunksize=1):
        _one_segment(data, row_offsets, row_ends, row_starts, scale, seg_rows[s], seg_rows[s + 1],
                     count_windows + 2 * s * n_counts, event_windows + 2 * s * n_events,
                     counts + s * n_counts, means + s * n_events, scratch, scratch_row, n_counts, n_events)


cdef int _kind(const Py_buffer *view) noexcept:
    # KIND_* of an 8-byte element's buffer format (numpy's: "l"/"q" int64, "L"/"Q" uint64, "d" double, in this
    # machine's byte order: no prefix, "@" or "="); -1 for any other
    cdef const char *f = view.format
    if view.itemsize != 8 or f == NULL:
        return -1
    if f[0] == b'@' or f[0] == b'=':
        f += 1
    if f[0] == 0 or f[1] != 0:
        return -1
    if f[0] == b'l' or f[0] == b'q':
        return KIND_I64
    if f[0] == b'L' or f[0] == b'Q':
        return KIND_U64
    if f[0] == b'd':
        return KIND_F64
    return -1


# the arrays of _segment_windows, in the order of its arguments (for its errors)
_NAMES = ("values", "row_offsets", "row_ends", "row_starts", "seg_rows", "count_windows", "event_windows", "counts",
          "means", "scratch")


def _segment_windows(values, row_offsets, row_ends, row_starts, double scale, seg_rows, count_windows,
                     event_windows, counts, means, scratch, int n_threads):
    """Fill ``counts`` (n_segments, n_count_windows) and ``means`` (n_segments, n_event_windows) from one read
    per four window edges of the rows ``values[row_offsets[r]:row_ends[r]]``; ``scratch`` is (n_event_windows, at
    least n_rows); ``n_threads`` run the segment loop.  Every array C-contiguous: ``values`` 1-D int64, uint64
    or float64; ``row_offsets``, ``row_ends`` and ``seg_rows`` 1-D int64; ``row_starts`` 1-D float64;
    ``count_windows`` and ``event_windows`` (n_segments, n, 2) float64; ``counts`` int64 and ``means`` and
    ``scratch`` float64, 2-D and writable."""
    cdef Py_buffer views[N_ARRAYS]
    cdef int taken = 0, k
    # each array's kind (-1: any of the three) and dimensions; the last three are written
    arrays = (values, row_offsets, row_ends, row_starts, seg_rows, count_windows, event_windows, counts, means,
              scratch)
    cdef int kinds[N_ARRAYS]
    cdef int ndims[N_ARRAYS]
    kinds[:] = [-1, KIND_I64, KIND_I64, KIND_F64, KIND_I64, KIND_F64, KIND_F64, KIND_I64, KIND_F64, KIND_F64]
    ndims[:] = [1, 1, 1, 1, 1, 3, 3, 2, 2, 2]
    cdef Py_ssize_t n_segments, n_counts, n_events
    cdef int value_kind
    try:
        for k in range(N_ARRAYS):
            try:
                PyObject_GetBuffer(arrays[k], &views[k],
                                   PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (PyBUF_WRITABLE if k >= 7 else 0))
            except (BufferError, TypeError, ValueError) as exc:
                raise ValueError(f"_segment_windows: argument {k} ({_NAMES[k]}) expected a C-contiguous"
                                 f"{' writable' if k >= 7 else ''} array ({exc}); "
                                 f"h5stream.kernels.windows.segment_windows converts its arguments") from exc
            taken += 1
            if views[k].ndim != ndims[k] or _kind(&views[k]) < 0 or (kinds[k] >= 0 and _kind(&views[k]) != kinds[k]):
                raise ValueError(
                    f"_segment_windows: argument {k} ({_NAMES[k]}) expected a C-contiguous {ndims[k]}-D array of "
                    f"{('int64, uint64 or float64', 'int64', 'uint64', 'float64')[kinds[k] + 1]} in this machine's "
                    f"byte order (found {views[k].ndim}-D, format "
                    f"{(<bytes>views[k].format).decode() if views[k].format != NULL else 'B'!r}); "
                    f"h5stream.kernels.windows.segment_windows converts its arguments")
        n_segments = views[4].shape[0] - 1
        n_counts = views[5].shape[1]
        n_events = views[6].shape[1]
        if n_counts > 16 or n_events > 8:
            raise ValueError(f"at most 16 count windows and 8 event windows (found {n_counts}, {n_events})")
        if n_segments <= 0:
            return
        value_kind = _kind(&views[0])
        win_choose()  # the rows' reader this CPU runs (ext/_windows_rows.h)
        with nogil:
            if value_kind == KIND_I64:
                _all_segments(<const int64_t *>views[0].buf, <const int64_t *>views[1].buf,
                              <const int64_t *>views[2].buf, <const double *>views[3].buf, scale,
                              <const int64_t *>views[4].buf, n_segments, <const double *>views[5].buf,
                              <const double *>views[6].buf, <int64_t *>views[7].buf, <double *>views[8].buf,
                              <double *>views[9].buf, views[9].shape[1], n_counts, n_events, n_threads)
            elif value_kind == KIND_U64:
                _all_segments(<const uint64_t *>views[0].buf, <const int64_t *>views[1].buf,
                              <const int64_t *>views[2].buf, <const double *>views[3].buf, scale,
                              <const int64_t *>views[4].buf, n_segments, <const double *>views[5].buf,
                              <const double *>views[6].buf, <int64_t *>views[7].buf, <double *>views[8].buf,
                              <double *>views[9].buf, views[9].shape[1], n_counts, n_events, n_threads)
            else:
                _all_segments(<const double *>views[0].buf, <const int64_t *>views[1].buf,
                              <const int64_t *>views[2].buf, <const double *>views[3].buf, scale,
                              <const int64_t *>views[4].buf, n_segments, <const double *>views[5].buf,
                              <const double *>views[6].buf, <int64_t *>views[7].buf, <double *>views[8].buf,
                              <double *>views[9].buf, views[9].shape[1], n_counts, n_events, n_threads)
    finally:
        for k in range(taken):
            PyBuffer_Release(&views[k])
