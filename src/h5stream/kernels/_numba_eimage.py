"""Numba kernels of the electrical image (imported lazily by :mod:`h5stream.kernels.eimage`).

Compiled with ``cache=True``; the caller sets the thread count with
``numba.set_num_threads`` before the call.  Kernels never validate.
"""

from __future__ import annotations

import numba
import numpy as np

# Channels per parallel work item of the filter: each thread owns whole blocks, so
# filter states are never shared, and a block's states stay in the L1 cache.
CHANNEL_BLOCK = 256


def _highpass_body(raw, offset, scale, sos, state, out):
    # Cascaded biquads in transposed direct form II (scipy.signal.sosfilt's
    # convention: state[s, 0, c], state[s, 1, c] are the two delays of section s of
    # channel c).  raw: (n, channels), out: (n, channels) float32; state is updated
    # in place so the next chunk continues exactly where this one stopped.
    n_samples = raw.shape[0]
    n_channels = raw.shape[1]
    n_sections = sos.shape[0]
    n_blocks = (n_channels + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK
    for blk in numba.prange(n_blocks):
        c0 = blk * CHANNEL_BLOCK
        c1 = min(n_channels, c0 + CHANNEL_BLOCK)
        width = c1 - c0
        x = np.empty(width, dtype=np.float64)
        for t in range(n_samples):
            row = raw[t]
            for j in range(width):
                x[j] = (np.float64(row[c0 + j]) - offset) * scale
            for s in range(n_sections):
                b0 = sos[s, 0]
                b1 = sos[s, 1]
                b2 = sos[s, 2]
                a1 = sos[s, 4]
                a2 = sos[s, 5]
                z1 = state[s, 0, c0:c1]
                z2 = state[s, 1, c0:c1]
                for j in range(width):
                    xi = x[j]
                    y = b0 * xi + z1[j]
                    z1[j] = b1 * xi - a1 * y + z2[j]
                    z2[j] = b2 * xi - a2 * y
                    x[j] = y
            dst = out[t]
            for j in range(width):
                dst[c0 + j] = np.float32(x[j])


highpass_serial = numba.njit(cache=True, nogil=True)(_highpass_body)
highpass_parallel = numba.njit(cache=True, nogil=True, parallel=True)(_highpass_body)


def _accumulate_body(filtered, window_rows, offsets, window, acc):
    # filtered: (rows, channels) float32, C order, so the window of a spike starting at
    # row r is the contiguous block filtered[r : r + window] of window * channels values.
    # acc: (units, window * channels) float32; each thread owns whole units.
    n_channels = filtered.shape[1]
    block = window * n_channels
    flat = filtered.reshape(filtered.shape[0] * n_channels)
    n_units = offsets.shape[0] - 1
    for u in numba.prange(n_units):
        dst = acc[u]
        for i in range(offsets[u], offsets[u + 1]):
            start = window_rows[i] * n_channels
            src = flat[start : start + block]
            for k in range(block):
                dst[k] += src[k]


accumulate_serial = numba.njit(cache=True, nogil=True)(_accumulate_body)
accumulate_parallel = numba.njit(cache=True, nogil=True, parallel=True)(_accumulate_body)
