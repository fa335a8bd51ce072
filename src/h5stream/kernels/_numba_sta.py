"""Numba kernels of the spike-triggered average (imported lazily by :mod:`h5stream.kernels.sta`).

Every kernel is compiled with ``cache=True``; the thread count is set by the
caller with ``numba.set_num_threads`` before the call (asking numba for it inside
a cached kernel would defeat the on-disk cache).  Kernels never validate.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _sta_unit(flat, n_frames, n_pixels, frames, begin, end, n_lags, first_lag, acc):
    # The window of a spike in frame f is the contiguous block of stimulus frames
    # [f - first_lag - n_lags + 1, f - first_lag], oldest first: one spike is one
    # contiguous multiply-add of n_lags * n_pixels values.  Consecutive equal frames
    # (sorted input) are merged into one weighted add (a frame with c spikes counts c
    # times), and four windows are added per pass so the accumulator, larger than the
    # L1 cache, is read and written once per four frames.  Returns (used, excluded).
    block = n_lags * n_pixels
    used = 0
    excluded = 0
    starts = np.empty(4, dtype=np.int64)
    weights = np.empty(4, dtype=flat.dtype)
    pending = 0
    i = begin
    while i < end:
        f = frames[i]
        count = 1
        while i + count < end and frames[i + count] == f:
            count += 1
        i += count
        lo = f - first_lag - n_lags + 1
        if lo < 0 or f >= n_frames:
            excluded += count
            continue
        used += count
        starts[pending] = lo * n_pixels
        weights[pending] = count
        pending += 1
        if pending == 4:
            # slice views let LLVM vectorise the adds (about 5x faster than flat[base + k])
            a = flat[starts[0] : starts[0] + block]
            b = flat[starts[1] : starts[1] + block]
            c = flat[starts[2] : starts[2] + block]
            d = flat[starts[3] : starts[3] + block]
            wa = weights[0]
            wb = weights[1]
            wc = weights[2]
            wd = weights[3]
            for k in range(block):
                acc[k] += (wa * a[k] + wb * b[k]) + (wc * c[k] + wd * d[k])
            pending = 0
    for j in range(pending):
        a = flat[starts[j] : starts[j] + block]
        wa = weights[j]
        for k in range(block):
            acc[k] += wa * a[k]
    return used, excluded


# The serial and the parallel driver are separate functions on purpose: numba's cache
# index is keyed by the function, not by its compile flags, so one function compiled
# twice (serial and parallel) would load whichever build was cached first.
@numba.njit(cache=True, nogil=True)
def sta_sums_serial(stimulus, frames, offsets, n_lags, first_lag, sums, n_used, n_excluded):
    """Add every unit's spike windows into ``sums[u]`` (n_units, n_lags * n_pixels)."""
    n_frames, n_pixels = stimulus.shape
    flat = stimulus.reshape(n_frames * n_pixels)
    for u in range(offsets.shape[0] - 1):
        used, excluded = _sta_unit(flat, n_frames, n_pixels, frames, offsets[u], offsets[u + 1], n_lags, first_lag, sums[u])
        n_used[u] = used
        n_excluded[u] = excluded


@numba.njit(cache=True, nogil=True, parallel=True)
def sta_sums_parallel(stimulus, frames, offsets, n_lags, first_lag, sums, n_used, n_excluded):
    """As :func:`sta_sums_serial`, units spread over threads (each thread owns whole units)."""
    n_frames, n_pixels = stimulus.shape
    flat = stimulus.reshape(n_frames * n_pixels)
    for u in numba.prange(offsets.shape[0] - 1):
        used, excluded = _sta_unit(flat, n_frames, n_pixels, frames, offsets[u], offsets[u + 1], n_lags, first_lag, sums[u])
        n_used[u] = used
        n_excluded[u] = excluded


@numba.njit(cache=True, nogil=True)
def count_matrix(frames, offsets, n_frames, n_lags, first_lag, counts, n_used, n_excluded):
    """Dense (units x frames) spike counts for the BLAS path; same exclusion rule."""
    n_units = offsets.shape[0] - 1
    for u in range(n_units):
        used = 0
        excluded = 0
        for i in range(offsets[u], offsets[u + 1]):
            f = frames[i]
            if f - first_lag - n_lags + 1 < 0 or f >= n_frames:
                excluded += 1
            else:
                counts[u, f] += 1
                used += 1
        n_used[u] = used
        n_excluded[u] = excluded

