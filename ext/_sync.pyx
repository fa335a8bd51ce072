# The display's frame-sync pulses in one pass over the light-reference channel (the kernel of
# hdmea.steps.section_time.frame_times_from_sync).
#
# The numpy form scales the whole channel to float64, takes its difference, and splits the
# difference into runs of equal values: five or six arrays the channel's length (a 30-minute
# channel at 20 kHz is 36 M samples, 288 MB each in float64).  This pass computes each
# difference from two neighbouring samples as it goes and keeps only the current and the
# previous run, so it allocates nothing but the peaks found.  The arithmetic is the numpy
# form's, in the same order (sample / scale in float64, then the difference), so the peaks
# are the same ones.  No GIL is held.

cimport numpy as cnp
from libc.stdint cimport int64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy

import numpy as np

cnp.import_array()

ctypedef fused real:
    float
    double


cdef Py_ssize_t _scan(const real* s, Py_ssize_t n, double scale, double height,
                      int64_t** out, Py_ssize_t* capacity) noexcept nogil:
    """The peaks of diff(s / scale) at or above ``height`` into ``out`` (grown as needed); -1: no memory."""
    cdef Py_ssize_t m = n - 1  # length of the difference
    cdef Py_ssize_t i, k = 0, start = 0
    cdef double a = <double>s[0] / scale
    cdef double b = <double>s[1] / scale
    cdef double run = b - a  # value of the current run of equal differences
    cdef double previous = 0.0  # value of the run before it
    cdef bint has_previous = False
    cdef double d
    cdef int64_t* grown
    a = b
    for i in range(1, m):
        b = <double>s[i + 1] / scale
        d = b - a
        a = b
        if d != run:  # the run [start, i - 1] ends; d is the next run's value
            # bitwise, not short-circuit: one well-predicted branch (peaks are rare) instead of three
            if has_previous & (run > previous) & (run > d) & (run >= height):
                if k == capacity[0]:
                    grown = <int64_t*>realloc(out[0], 2 * capacity[0] * sizeof(int64_t))
                    if grown == NULL:
                        return -1
                    out[0] = grown
                    capacity[0] *= 2
                out[0][k] = (start + i - 1) // 2
                k += 1
            previous = run
            has_previous = True
            run = d
            start = i
    # the last run never counts (it has no run after it)
    return k


def sync_peaks(cnp.ndarray sync, double scale, double height):
    """Indices ``i`` (int64, ascending) of the peaks of ``diff(sync / scale)`` at or above ``height``.

    Equal to ``peaks_above(np.diff(sync.astype(np.float64) / scale), height)`` of
    :mod:`hdmea.steps.section_time`: a peak is a sample of the difference, or a flat run of
    equal samples (counted once, at its middle rounded down), higher than the samples on
    both sides; the first and the last run never count.  ``sync`` is a 1-d C-contiguous
    native float32 or float64 array.
    """
    if sync.ndim != 1 or not sync.flags.c_contiguous or not sync.dtype.isnative or sync.dtype.kind != "f" or \
            sync.dtype.itemsize not in (4, 8):
        raise TypeError(f"sync_peaks: sync must be a 1-d C-contiguous native float32 or float64 array, found "
                        f"{sync.dtype} with shape {(<object>sync).shape}")
    cdef Py_ssize_t n = sync.shape[0]
    if n < 3:
        return np.zeros(0, dtype=np.int64)
    cdef Py_ssize_t capacity = 4096, k
    cdef int64_t* found = <int64_t*>realloc(NULL, capacity * sizeof(int64_t))
    if found == NULL:
        raise MemoryError("sync_peaks: no memory for the peaks")
    cdef const float* fp = <const float*>cnp.PyArray_DATA(sync)
    cdef const double* dp = <const double*>cnp.PyArray_DATA(sync)
    cdef bint single = sync.dtype.itemsize == 4
    cdef cnp.ndarray out
    try:
        with nogil:
            if single:
                k = _scan(fp, n, scale, height, &found, &capacity)
            else:
                k = _scan(dp, n, scale, height, &found, &capacity)
        if k < 0:
            raise MemoryError(f"sync_peaks: no memory for more than {capacity} peaks")
        out = np.empty(k, dtype=np.int64)
        if k:
            memcpy(cnp.PyArray_DATA(out), found, k * sizeof(int64_t))
        return out
    finally:
        free(found)
