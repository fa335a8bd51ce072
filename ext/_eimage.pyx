# Electrical images: high-pass filter a chunk of raw rows and add every spike's window
# into its unit's sums, one tile of channels at a time (h5stream.kernels.eimage wraps it).
#
# The work per chunk is split by tiles of EIM_TILE channels, handed to the threads
# dynamically (a descheduled thread delays one tile, not half of the chunk).  A thread
# owns a tile's filter state, its carried rows and every unit's sums of that tile, so no
# two threads write the same memory.  Within a tile the chunk goes by in sub-blocks of
# `sub_rows` rows: the sub-block is filtered into a small scratch that stays in the
# core's L2 cache (behind the last window - 1 filtered rows of the previous sub-block),
# the windows ending in it are added at once, and the scratch's tail moves to the
# front.  The filtered data never goes back to memory.  The sums are laid out by lane
# group first, (groups, units, window, EIM_LANES): the units' sums of one group are one
# contiguous run of memory (1 MB for 310 units) that the units' visits walk in order, so
# the hardware prefetchers bring it from memory ahead of use (unit-major sums put each
# visit 850 KB from the last: in memory, 310 units of a full chip at lab rates, 22.6-28.2
# us of CPU a window became 16.8-19.1 with one thread, 31.2-34.2 became 22.6-25.0 with
# two); untile() turns them into (units, window, channels) in place at the end.
# Inner loops: ext/_eimage_simd.h (AVX2 or baseline, chosen at load).

from cython.parallel cimport prange, threadid

cdef extern from "_omp_fork.h":
    int h5s_omp_fork_import() except -1
    int h5s_omp_threads(int asked) nogil

h5s_omp_fork_import()  # the decision shared by every kernel (_omp_fork.h)
from libc.stdint cimport int16_t, int32_t, int64_t, uint16_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memmove, memset

cdef extern from *:
    """
    #include <time.h>
    /* CPU seconds of the calling thread (0 where the clock is missing) */
    static double eim_thread_seconds(void) {
    #if defined(CLOCK_THREAD_CPUTIME_ID)
        struct timespec ts;
        if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
            return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    #endif
        return 0.0;
    }
    /* untile_frames' lanes: n means written out, each the float32 product (sums * scale) * gain, to dst[i]
       or, with a place, to dst[place[i]] (restrict: the compiler may vectorise the plain rows) */
    #include "_eimage_simd.h"  /* EIM_RESTRICT */
    static void eim_lanes_scaled(float *EIM_RESTRICT dst, const float *EIM_RESTRICT src, Py_ssize_t n, float scale,
                                 const float *EIM_RESTRICT gains) {
        Py_ssize_t i;
        if (gains == NULL) {
            for (i = 0; i < n; i++) dst[i] = src[i] * scale;
        } else {
            for (i = 0; i < n; i++) dst[i] = (src[i] * scale) * gains[i];
        }
    }
    static void eim_lanes_placed(float *EIM_RESTRICT dst, const float *EIM_RESTRICT src, const int64_t *EIM_RESTRICT place,
                                 Py_ssize_t n, float scale, const float *EIM_RESTRICT gains) {
        Py_ssize_t i;
        if (gains == NULL) {
            for (i = 0; i < n; i++) dst[place[i]] = src[i] * scale;
        } else {
            for (i = 0; i < n; i++) dst[place[i]] = (src[i] * scale) * gains[place[i]];
        }
    }
    """
    double eim_thread_seconds() nogil
    void eim_lanes_scaled(float *dst, const float *src, Py_ssize_t n, float scale, const float *gains) nogil
    void eim_lanes_placed(float *dst, const float *src, const int64_t *place, Py_ssize_t n, float scale,
                          const float *gains) nogil

cdef extern from "_eimage_simd.h" nogil:
    int EIM_TILE
    int EIM_LANES
    int EIM_GROUPS
    void eim_add_windows(float *dst, const float *buf, const int64_t *rows, int64_t n, int64_t shift,
                         int64_t block, const float *next)
    void eim_biquad_tile(float *out, int64_t group_stride, int64_t n, const float *coef, float *z1, float *z2,
                         const float *add)
    void eim_first_u16(const uint16_t *raw, int64_t row_stride, int64_t n, int width, const float *base,
                       float gain, const float *coef, float *z1, float *z2, const float *add, float *out,
                       int64_t group_stride)
    void eim_first_i16(const int16_t *raw, int64_t row_stride, int64_t n, int width, const float *base,
                       float gain, const float *coef, float *z1, float *z2, const float *add, float *out,
                       int64_t group_stride)
    void eim_first_i32(const int32_t *raw, int64_t row_stride, int64_t n, int width, const float *base,
                       float gain, const float *coef, float *z1, float *z2, const float *add, float *out,
                       int64_t group_stride)
    void eim_first_f32(const float *raw, int64_t row_stride, int64_t n, int width, const float *base,
                       float gain, const float *coef, float *z1, float *z2, const float *add, float *out,
                       int64_t group_stride)
    void eim_first_f64(const double *raw, int64_t row_stride, int64_t n, int width, const float *base,
                       float gain, const float *coef, float *z1, float *z2, const float *add, float *out,
                       int64_t group_stride)

ctypedef fused raw_t:
    uint16_t
    int16_t
    int32_t
    float
    double


def tile_width():
    """Channels per tile (filtered together; the sums are padded to whole tiles)."""
    return EIM_TILE


def sums_layout():
    """The order of the sums' axes ``acc`` has (the wrapper refuses a build with another)."""
    return "groups, units, window, lanes"


def lane_width():
    """Channels per lane group of the sums: ``acc`` is (channels // lanes, units, window, lanes)."""
    return EIM_LANES


cdef inline void _first_section(const raw_t *raw, int64_t row_stride, int64_t n, int width, const float *base,
                                float gain, const float *coef, float *z1, float *z2, const float *add,
                                float *out, int64_t group_stride) noexcept nogil:
    if raw_t is uint16_t:
        eim_first_u16(raw, row_stride, n, width, base, gain, coef, z1, z2, add, out, group_stride)
    elif raw_t is int16_t:
        eim_first_i16(raw, row_stride, n, width, base, gain, coef, z1, z2, add, out, group_stride)
    elif raw_t is int32_t:
        eim_first_i32(raw, row_stride, n, width, base, gain, coef, z1, z2, add, out, group_stride)
    elif raw_t is float:
        eim_first_f32(raw, row_stride, n, width, base, gain, coef, z1, z2, add, out, group_stride)
    else:
        eim_first_f64(raw, row_stride, n, width, base, gain, coef, z1, z2, add, out, group_stride)


cdef void _tile(const raw_t *raw0, const int64_t[:, ::1] pieces, Py_ssize_t n, Py_ssize_t n_channels,
                Py_ssize_t k, const float[::1] baseline, const float[::1] level,
                const float[::1] zeros, float gain, const float[:, ::1] coef, float[:, :, ::1] state,
                float[:, ::1] tail, Py_ssize_t n_tail, const int64_t[::1] rows, const int64_t[::1] offsets,
                Py_ssize_t n_units, Py_ssize_t sub_rows, Py_ssize_t window, float[:, :, :, ::1] acc,
                float *buf, double *spent) noexcept nogil:
    # buf: EIM_GROUPS groups of (carry + sub_rows) rows x EIM_LANES; tail[k]: the same groups of carry rows.
    # The chunk's n rows lie in pieces, each (first row, rows, address of its first row) of rows
    # n_channels apart (raw0: only the type of the rows).
    cdef Py_ssize_t carry = window - 1
    cdef Py_ssize_t stride = (carry + sub_rows) * EIM_LANES
    cdef Py_ssize_t n_sections = coef.shape[0]
    cdef Py_ssize_t c0 = k * EIM_TILE
    cdef int width = <int>(n_channels - c0 if n_channels - c0 < EIM_TILE else EIM_TILE)
    cdef Py_ssize_t nt = n_tail
    cdef Py_ssize_t r0, m, keep, sb, s, u, v, a, b, g, t, end, p = 0
    cdef const raw_t *piece
    cdef const float *add
    cdef float *out
    cdef double t0, t1, t2
    for g in range(EIM_GROUPS):
        if nt:
            memcpy(buf + g * stride, &tail[k, g * carry * EIM_LANES], nt * EIM_LANES * sizeof(float))
    r0 = 0
    sb = 0
    while r0 < n:
        m = sub_rows if n - r0 > sub_rows else n - r0
        t0 = eim_thread_seconds()
        out = buf + nt * EIM_LANES
        add = &level[c0] if n_sections == 1 else &zeros[0]
        t = r0
        while t < r0 + m:  # the sub-block's rows piece by piece (one piece but at a piece's edge)
            while t >= pieces[p, 0] + pieces[p, 1]:
                p += 1
            end = pieces[p, 0] + pieces[p, 1]
            if end > r0 + m:
                end = r0 + m
            piece = <const raw_t *> <uintptr_t> pieces[p, 2]
            _first_section(piece + (t - pieces[p, 0]) * n_channels + c0, n_channels, end - t, width,
                           &baseline[c0], gain, &coef[0, 0], &state[0, 0, c0], &state[0, 1, c0], add,
                           out + (t - r0) * EIM_LANES, stride)
            t = end
        for s in range(1, n_sections):
            add = &level[c0] if s == n_sections - 1 else &zeros[0]
            eim_biquad_tile(out, stride, m, &coef[s, 0], &state[s, 0, c0], &state[s, 1, c0], add)
        t1 = eim_thread_seconds()
        # windows ending in (r0, r0 + m]: rows[i] is the window's first sample relative to
        # the chunk's first new row; in the scratch that is rows[i] - r0 + nt.  One lane group
        # at a time, so its rows stay in L2 while every unit's windows are added from them.
        for g in range(EIM_GROUPS):
            u = 0
            while u < n_units:
                a = offsets[sb * n_units + u]
                b = offsets[sb * n_units + u + 1]
                v = u + 1
                while v < n_units and offsets[sb * n_units + v + 1] == offsets[sb * n_units + v]:
                    v += 1
                if b > a:
                    eim_add_windows(&acc[k * EIM_GROUPS + g, u, 0, 0], buf + g * stride, &rows[a], b - a,
                                    nt - r0, window * EIM_LANES,
                                    &acc[k * EIM_GROUPS + g, v, 0, 0] if v < n_units else NULL)
                u = v
        t2 = eim_thread_seconds()
        spent[0] += t1 - t0
        spent[1] += t2 - t1
        keep = nt + m if nt + m < carry else carry
        for g in range(EIM_GROUPS):
            memmove(buf + g * stride, buf + g * stride + (nt + m - keep) * EIM_LANES,
                    keep * EIM_LANES * sizeof(float))
        nt = keep
        r0 += m
        sb += 1
    for g in range(EIM_GROUPS):
        if nt:
            memcpy(&tail[k, g * carry * EIM_LANES], buf + g * stride, nt * EIM_LANES * sizeof(float))


def filter_accumulate(const raw_t[:, ::1] raw, const float[::1] baseline, const float[::1] level, float gain,
                      const float[:, ::1] coef, float[:, :, ::1] state, float[:, ::1] tail, Py_ssize_t n_tail,
                      const int64_t[::1] rows, const int64_t[::1] offsets, Py_ssize_t n_units,
                      Py_ssize_t sub_rows, Py_ssize_t window, float[:, :, :, ::1] acc, int n_threads,
                      scratch=None, more=()):
    """Filter the chunk ``raw`` (rows, channels) and add its spikes' windows into ``acc``.

    ``more``: arrays of the chunk's further rows, in order, each (rows, channels) of
    ``raw``'s type and C-contiguous: the chunk is their rows following ``raw``'s, read
    where they lie (a read whose rows lie in several runs of a file needs no move to
    make them one array).

    ``baseline``, ``level`` (float32, channels padded to whole tiles): subtracted from
    the raw values before filtering, added to the output after it; ``gain`` multiplies
    ``raw - baseline``.  ``coef`` (sections, 5): b0 b1 b2 a1 a2 of each normalised
    section; ``state`` (sections, 2, padded channels): the delays, carried.  ``tail``
    (tiles, (window - 1) * EIM_TILE): the last ``n_tail`` filtered rows before this chunk,
    replaced by the last rows of this one.  Returns ``(filtering, accumulating)``: the
    threads' CPU seconds in each part.  The windows: CSR by (sub-block, unit), entry
    ``sb * n_units + u`` of ``offsets`` opening the windows of unit ``u`` that end in
    sub-block ``sb`` (rows ``(sb * sub_rows, (sb + 1) * sub_rows]``), ``rows`` their first
    samples relative to the chunk's first row (>= -n_tail).  ``acc`` (padded channels //
    EIM_LANES, units, window, EIM_LANES) float32 receives the sums.  ``scratch``: the threads'
    working memory from :func:`thread_scratch` (made here when None; a pass that calls this chunk
    after chunk passes one, so its pages are touched once).  Never validates the data.
    """
    cdef Py_ssize_t n_tiles = tail.shape[0]
    cdef Py_ssize_t carry = window - 1
    cdef Py_ssize_t k
    cdef float[::1] zeros_view
    cdef float[:, ::1] scratch_view
    cdef double[:, ::1] spent_view
    cdef int64_t[:, ::1] pieces_view
    cdef Py_ssize_t n_rows = raw.shape[0]
    cdef Py_ssize_t n_channels = raw.shape[1]
    cdef const raw_t *raw0 = &raw[0, 0] if raw.shape[0] and raw.shape[1] else NULL
    import numpy as np

    pieces = np.zeros((1 + len(more), 3), dtype=np.int64)
    pieces[0] = (0, raw.shape[0], <uintptr_t> raw0)
    raw_dtype = np.asarray(raw).dtype
    for i, rest in enumerate(more, 1):
        if rest.dtype != raw_dtype or rest.ndim != 2 or rest.shape[1] != n_channels or not rest.flags.c_contiguous:
            raise ValueError(f"more[{i - 1}]: expected C-contiguous (rows, {n_channels}) of {raw_dtype}, found "
                             f"{rest.dtype} {rest.shape}")
        pieces[i] = (n_rows, rest.shape[0], rest.ctypes.data)
        n_rows += rest.shape[0]
    pieces_view = pieces
    if n_rows == 0 or n_tiles == 0:
        return 0.0, 0.0
    n_threads = max(1, min(n_threads, n_tiles))
    zeros = np.zeros(EIM_TILE, dtype=np.float32)
    zeros_view = zeros
    if scratch is None:
        scratch = thread_scratch(n_threads, sub_rows, window)
    wanted = thread_scratch_shape(n_threads, sub_rows, window)
    if (scratch.dtype != np.float32 or scratch.shape[0] < wanted[0] or scratch.shape[1] != wanted[1]
            or scratch.ctypes.data % 64 or not scratch.flags.c_contiguous):
        raise ValueError(f"scratch: expected float32 {wanted} on a cache line (thread_scratch), found "
                         f"{scratch.dtype} {scratch.shape}")
    scratch_view = scratch
    spent = np.zeros((n_threads, 8), dtype=np.float64)  # a cache line per thread
    spent_view = spent
    with nogil:
        for k in prange(n_tiles, num_threads=h5s_omp_threads(n_threads), schedule="dynamic", chunksize=1):
            _tile(raw0, pieces_view, n_rows, n_channels, k, baseline, level, zeros_view, gain, coef, state, tail,
                  n_tail, rows, offsets,
                  n_units, sub_rows, window, acc, &scratch_view[threadid(), 0], &spent_view[threadid(), 0])
    return float(spent[:, 0].sum()), float(spent[:, 1].sum())


def thread_scratch_shape(int n_threads, Py_ssize_t sub_rows, Py_ssize_t window):
    """The shape of the threads' scratch: per thread the carried window - 1 rows and a sub-block of
    ``sub_rows`` rows of one tile, in whole cache lines (so each thread's starts on one)."""
    return (max(1, n_threads), -(-(window - 1 + sub_rows) * EIM_TILE // 16) * 16)


def thread_scratch(int n_threads, Py_ssize_t sub_rows, Py_ssize_t window):
    """The threads' scratch for :func:`filter_accumulate` (uninitialised, on cache lines; one L2-sized
    sub-block of a tile per thread)."""
    return on_cache_lines(thread_scratch_shape(n_threads, sub_rows, window), zeros=False)


def on_cache_lines(shape, bint zeros=True):
    """A float32 array of ``shape`` (zeros, or uninitialised) whose first value starts a 64-byte cache line
    (numpy's arrays start 16 bytes into one), so that each row of 16 floats (a lane group's row of the scratch
    or of the sums) is one cache line, not parts of two."""
    import math

    import numpy as np

    count = math.prod(shape)
    spare = (np.zeros if zeros else np.empty)(count + 16, dtype=np.float32)
    first = (-(spare.ctypes.data // 4)) % 16
    return spare[first:first + count].reshape(shape)


def untile(float[:, :, :, ::1] acc, Py_ssize_t n_channels):
    """Rewrite the sums ``acc`` (lane groups, units, window, EIM_LANES) in place as (units, window, channels).

    First the (groups x units) matrix of blocks (window x EIM_LANES floats each) is transposed
    in place (following each cycle of the permutation, one block of scratch), so that each
    unit's blocks are contiguous; then each unit's blocks are interleaved into rows of
    channels.  Returns nothing; the caller views ``acc`` as (units, groups * window *
    EIM_LANES) and takes the first ``window * n_channels`` values of each row.
    """
    _untile(acc, n_channels, NULL, NULL, NULL)


cdef void _untile(float[:, :, :, ::1] acc, Py_ssize_t n_channels, const float *unit_scale, const int64_t *place,
                  const float *gains) except *:
    """:func:`untile`; with ``unit_scale`` (one per unit) each of a unit's values multiplied by its own, then
    with ``gains`` (one per channel position) by the gain of the position it goes to, channel ``c`` going to
    position ``place[c]`` of its row (``place`` NULL: ``c``)."""
    cdef Py_ssize_t n_groups = acc.shape[0]
    cdef Py_ssize_t n_units = acc.shape[1]
    cdef Py_ssize_t window = acc.shape[2]
    cdef Py_ssize_t lanes = acc.shape[3]
    cdef Py_ssize_t block = window * lanes
    cdef Py_ssize_t size = n_groups * block
    cdef Py_ssize_t n_blocks = n_groups * n_units
    cdef Py_ssize_t u, w, g, width, first, i, j, c
    cdef float *base
    cdef float *scratch
    cdef float *held
    cdef float *spare
    cdef float *swap
    cdef unsigned char *moved
    cdef float *dst
    cdef const float *src
    cdef float scale
    cdef bint plain = unit_scale == NULL and place == NULL and gains == NULL
    if n_units == 0 or n_groups == 0 or block == 0:
        return
    base = &acc[0, 0, 0, 0]
    scratch = <float *> malloc((size + 2 * block) * sizeof(float))
    moved = <unsigned char *> malloc(n_blocks)
    if scratch == NULL or moved == NULL:
        free(scratch)
        free(moved)
        raise MemoryError("electrical-image untile scratch")
    held = scratch + size
    spare = held + block
    with nogil:
        # block (g, u) at index g * n_units + u goes to u * n_groups + g
        if n_groups > 1 and n_units > 1:
            memset(moved, 0, n_blocks)
            for first in range(1, n_blocks - 1):
                if moved[first]:
                    continue
                memcpy(held, base + first * block, block * sizeof(float))
                i = first
                while True:
                    j = (i % n_units) * n_groups + i // n_units
                    memcpy(spare, base + j * block, block * sizeof(float))
                    memcpy(base + j * block, held, block * sizeof(float))
                    moved[j] = 1
                    swap = held
                    held = spare
                    spare = swap
                    i = j
                    if j == first:
                        break
        for u in range(n_units):
            dst = base + u * size
            memcpy(scratch, dst, size * sizeof(float))
            scale = unit_scale[u] if unit_scale != NULL else 1.0
            for w in range(window):
                for g in range(n_groups):
                    width = n_channels - g * lanes
                    if width > lanes:
                        width = lanes
                    if width <= 0:
                        continue
                    src = scratch + (g * window + w) * lanes
                    if plain:
                        memcpy(dst + w * n_channels + g * lanes, src, width * sizeof(float))
                        continue
                    # the products in float32, in the order the numpy passes they stand for made them
                    c = g * lanes
                    if place == NULL:
                        eim_lanes_scaled(dst + w * n_channels + c, src, width, scale,
                                         gains + c if gains != NULL else NULL)
                    else:
                        eim_lanes_placed(dst + w * n_channels, src, place + c, width, scale, gains)
    free(scratch)
    free(moved)


def untile_frames(float[:, :, :, ::1] acc, Py_ssize_t n_channels, const float[::1] unit_scale, place=None,
                  gains=None):
    """:func:`untile` with each unit's values multiplied by ``unit_scale[unit]`` (float32, one per unit of
    ``acc``) on the way (the mean of the sums), then, each row of channels put in another order, channel ``c``
    at position ``place[c]`` (int64, a permutation of the channels; None: in place), and multiplied by
    ``gains[position]`` (float32, one per position; None: by none).  Each value is the float32 product the
    separate passes (the scale, the reorder, the gains) give, bit for bit.
    """
    cdef const int64_t[::1] where
    cdef const float[::1] factors
    cdef const int64_t *where_at = NULL
    cdef const float *factors_at = NULL
    cdef Py_ssize_t c
    if unit_scale.shape[0] != acc.shape[1]:
        raise ValueError(f"untile_frames: {unit_scale.shape[0]} unit scales for {acc.shape[1]} units")
    if n_channels < 0 or n_channels > acc.shape[0] * acc.shape[3]:
        raise ValueError(f"untile_frames: {n_channels} channels do not fit {acc.shape[0]} groups of "
                         f"{acc.shape[3]} lanes")
    if place is not None:
        where = place
        if where.shape[0] != n_channels:
            raise ValueError(f"untile_frames: {where.shape[0]} places for {n_channels} channels")
        seen = bytearray(n_channels)
        for c in range(n_channels):
            if where[c] < 0 or where[c] >= n_channels or seen[where[c]]:
                raise ValueError(f"untile_frames: place is not a permutation of the {n_channels} channels "
                                 f"(channel {c} goes to {where[c]})")
            seen[where[c]] = 1
        if n_channels:
            where_at = &where[0]
    if gains is not None:
        factors = gains
        if factors.shape[0] != n_channels:
            raise ValueError(f"untile_frames: {factors.shape[0]} gains for {n_channels} channels")
        if n_channels:
            factors_at = &factors[0]
    if unit_scale.shape[0] == 0:
        return
    _untile(acc, n_channels, &unit_scale[0], where_at, factors_at)
