"""Numba kernels of the spike-triggered average (imported lazily by :mod:`h5stream.kernels.sta`).

Every kernel is compiled with ``cache=True``; the thread count is set by the
caller with ``numba.set_num_threads`` before the call (asking numba for it inside
a cached kernel would defeat the on-disk cache).  Kernels never validate.
"""

from __future__ import annotations

import numba
import numpy as np


def _sta_sums_body(stimulus, frames, offsets, n_lags, first_lag, sums, n_used, n_excluded):
    # stimulus: (n_frames, n_pixels) C-contiguous.  The window of a spike in frame f
    # is the contiguous block stimulus[f - first_lag - n_lags + 1 : f - first_lag + 1],
    # oldest frame first, so one spike is one contiguous multiply-add over
    # n_lags * n_pixels values.  Consecutive equal frames (sorted input) are merged
    # into one weighted add: a frame with c spikes counts c times.
    n_frames = stimulus.shape[0]
    n_pixels = stimulus.shape[1]
    n_units = offsets.shape[0] - 1
    block = n_lags * n_pixels
    flat = stimulus.reshape(n_frames * n_pixels)
    for u in numba.prange(n_units):
        acc = sums[u]
        used = 0
        excluded = 0
        i = offsets[u]
        end = offsets[u + 1]
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
            # a slice view lets LLVM vectorise the add (about 5x faster than flat[base + k])
            window = flat[lo * n_pixels : lo * n_pixels + block]
            if count == 1:
                for k in range(block):
                    acc[k] += window[k]
            else:
                for k in range(block):
                    acc[k] += count * window[k]
        n_used[u] = used
        n_excluded[u] = excluded


sta_sums_serial = numba.njit(cache=True, nogil=True)(_sta_sums_body)
sta_sums_parallel = numba.njit(cache=True, nogil=True, parallel=True)(_sta_sums_body)


def _count_matrix_body(frames, offsets, n_frames, n_lags, first_lag, counts, n_used, n_excluded):
    # Dense (units x frames) spike counts for the BLAS path; same exclusion rule.
    n_units = offsets.shape[0] - 1
    for u in numba.prange(n_units):
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


count_matrix = numba.njit(cache=True, nogil=True)(_count_matrix_body)
