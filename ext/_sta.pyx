# Spike-triggered sums of a stimulus movie (the kernels of h5stream.kernels.sta).
#
# The movie is (n_frames, n_pixels), C-contiguous, float32 or float64.  The window of a
# spike in frame f is the contiguous block of frames [f - first_lag - n_lags + 1,
# f - first_lag], oldest first, so one spike is one contiguous multiply-add of
# n_lags * n_pixels values into its unit's accumulator.  A spike whose window starts
# before frame 0 or ends past the last frame, or whose frame lies past the last, is excluded
# and counted (a window is never read outside the movie, whatever the sign of first_lag).
#
# Compiled at install (not JIT-compiled on first call): a fresh process on a fresh node
# pays nothing before its first STA.  Units are independent, so the unit loop runs in
# parallel, each thread owning whole units (no shared writes).  The multiply-add loop is C
# (_sta_simd.h), built for AVX2 and for the baseline, the CPU's pick taken when loaded.

cimport cython
from cython.parallel cimport prange

cdef extern from "_omp_fork.h":
    int h5s_omp_fork_import() except -1
    int h5s_omp_threads(int asked) nogil

h5s_omp_fork_import()  # the decision shared by every kernel (_omp_fork.h)
from libc.stdint cimport int64_t

ctypedef fused real_t:
    float
    double


cdef extern from "_sta_simd.h" nogil:
    # acc[0:block] += sum_j weights[j] * flat[starts[j]:starts[j] + block] for n <= 4 windows; the
    # AVX2 or baseline build picked when loaded, or ("_base") the baseline build
    void sta_add_windows_f32(const float* flat, int64_t block, float* acc, const int64_t* starts,
                             const float* weights, int n)
    void sta_add_windows_f64(const double* flat, int64_t block, double* acc, const int64_t* starts,
                             const double* weights, int n)
    void sta_add_windows_f32_base(const float* flat, int64_t block, float* acc, const int64_t* starts,
                                  const float* weights, int n)
    void sta_add_windows_f64_base(const double* flat, int64_t block, double* acc, const int64_t* starts,
                                  const double* weights, int n)


cdef inline void _add_windows(const real_t* flat, int64_t block, real_t* acc,
                              const int64_t* starts, const real_t* weights, int n, bint baseline) noexcept nogil:
    if real_t is float:
        if baseline:
            sta_add_windows_f32_base(flat, block, acc, starts, weights, n)
        else:
            sta_add_windows_f32(flat, block, acc, starts, weights, n)
    else:
        if baseline:
            sta_add_windows_f64_base(flat, block, acc, starts, weights, n)
        else:
            sta_add_windows_f64(flat, block, acc, starts, weights, n)


cdef inline void _sta_unit(const real_t* flat, int64_t n_frames, int64_t n_pixels,
                           const int64_t* frames, int64_t begin, int64_t end,
                           int64_t n_lags, int64_t first_lag, real_t* acc,
                           int64_t* n_used, int64_t* n_excluded, bint baseline) noexcept nogil:
    # Consecutive equal frames (sorted input) are merged into one weighted add: a frame
    # holding c spikes of the unit counts c times.
    cdef int64_t block = n_lags * n_pixels
    cdef int64_t used = 0, excluded = 0, i = begin, f, count, lo
    cdef int64_t starts[4]
    cdef real_t weights[4]
    cdef int pending = 0
    while i < end:
        f = frames[i]
        count = 1
        while i + count < end and frames[i + count] == f:
            count += 1
        i += count
        lo = f - first_lag - n_lags + 1
        if lo < 0 or f >= n_frames or f - first_lag >= n_frames:  # the last, with a negative first_lag
            excluded += count
            continue
        used += count
        starts[pending] = lo * n_pixels
        weights[pending] = <real_t>count
        pending += 1
        if pending == 4:
            _add_windows(flat, block, acc, starts, weights, 4, baseline)
            pending = 0
    if pending:
        _add_windows(flat, block, acc, starts, weights, pending, baseline)
    n_used[0] = used
    n_excluded[0] = excluded


def _sta_sums(const real_t[:, ::1] stimulus, const int64_t[::1] frames, const int64_t[::1] offsets,
              int64_t n_lags, int64_t first_lag, real_t[:, ::1] sums, int64_t[::1] n_used,
              int64_t[::1] n_excluded, int n_threads, bint baseline=False):
    """Add every unit's spike windows into ``sums[u]`` (n_units, n_lags * n_pixels); fill the counts.

    ``n_threads`` 1 runs the unit loop serially; more spread whole units over threads.  ``baseline``
    True adds with the loop built for the baseline instruction set, not the one picked for this CPU
    (equal sums, bit for bit: see _sta_simd.h).
    """
    cdef Py_ssize_t n_units = offsets.shape[0] - 1
    cdef int64_t n_frames = stimulus.shape[0], n_pixels = stimulus.shape[1]
    cdef Py_ssize_t u
    if n_units <= 0:
        return
    if n_frames == 0 or n_pixels == 0:
        # nothing to add and no window inside the movie: every spike is excluded
        for u in range(n_units):
            n_used[u] = 0
            n_excluded[u] = offsets[u + 1] - offsets[u]
        return
    cdef const real_t* flat = &stimulus[0, 0]
    cdef const int64_t* fr = &frames[0] if frames.shape[0] else NULL
    with nogil:
        if n_threads <= 1:
            for u in range(n_units):
                _sta_unit(flat, n_frames, n_pixels, fr, offsets[u], offsets[u + 1], n_lags, first_lag,
                          &sums[u, 0], &n_used[u], &n_excluded[u], baseline)
        else:
            for u in prange(n_units, num_threads=h5s_omp_threads(n_threads), schedule="dynamic", chunksize=1):
                _sta_unit(flat, n_frames, n_pixels, fr, offsets[u], offsets[u + 1], n_lags, first_lag,
                          &sums[u, 0], &n_used[u], &n_excluded[u], baseline)


def _count_matrix(const int64_t[::1] frames, const int64_t[::1] offsets, int64_t n_frames,
                  int64_t n_lags, int64_t first_lag, real_t[:, ::1] counts, int64_t[::1] n_used,
                  int64_t[::1] n_excluded):
    """Dense (units x frames) spike counts for the matrix-product path; same exclusion rule."""
    cdef Py_ssize_t n_units = offsets.shape[0] - 1
    cdef Py_ssize_t u
    cdef int64_t i, f, used, excluded
    with nogil:
        for u in range(n_units):
            used = 0
            excluded = 0
            for i in range(offsets[u], offsets[u + 1]):
                f = frames[i]
                if f - first_lag - n_lags + 1 < 0 or f >= n_frames or f - first_lag >= n_frames:
                    excluded += 1
                else:
                    counts[u, f] += 1
                    used += 1
            n_used[u] = used
            n_excluded[u] = excluded
