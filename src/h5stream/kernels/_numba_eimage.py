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


@numba.njit(cache=True, nogil=True)
def _highpass_block(raw, offset, scale, sos, state, out, c0, c1):
    # Cascaded biquads in transposed direct form II (scipy.signal.sosfilt's
    # convention: state[s, 0, c], state[s, 1, c] are the two delays of section s of
    # channel c) over channels [c0, c1).  The inner loops run across channels, which
    # are contiguous, so they vectorise; state is updated in place so the next chunk
    # continues exactly where this one stopped.
    n_samples = raw.shape[0]
    n_sections = sos.shape[0]
    width = c1 - c0
    x = np.empty(width, dtype=np.float64)
    for t in range(n_samples):
        row = raw[t, c0:c1]
        for j in range(width):
            x[j] = (np.float64(row[j]) - offset) * scale
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
        dst = out[t, c0:c1]
        for j in range(width):
            dst[j] = np.float32(x[j])


# Serial and parallel drivers are separate functions: numba's cache index is keyed by
# the function, not by its compile flags (one function compiled both ways would load
# whichever build was cached first).
@numba.njit(cache=True, nogil=True)
def highpass_serial(raw, offset, scale, sos, state, out):
    """Filter ``raw`` (samples, channels) into ``out`` float32, carrying ``state``."""
    n_channels = raw.shape[1]
    n_blocks = (n_channels + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK
    for blk in range(n_blocks):
        c0 = blk * CHANNEL_BLOCK
        _highpass_block(raw, offset, scale, sos, state, out, c0, min(n_channels, c0 + CHANNEL_BLOCK))


@numba.njit(cache=True, nogil=True, parallel=True)
def highpass_parallel(raw, offset, scale, sos, state, out):
    """As :func:`highpass_serial`, channel blocks spread over threads."""
    n_channels = raw.shape[1]
    n_blocks = (n_channels + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK
    for blk in numba.prange(n_blocks):
        c0 = blk * CHANNEL_BLOCK
        _highpass_block(raw, offset, scale, sos, state, out, c0, min(n_channels, c0 + CHANNEL_BLOCK))


@numba.njit(cache=True, nogil=True)
def _accumulate_unit(flat, n_channels, window_rows, begin, end, window, dst):
    # The window of a spike starting at buffer row r is the contiguous block
    # flat[r * channels : (r + window) * channels].
    block = window * n_channels
    for i in range(begin, end):
        start = window_rows[i] * n_channels
        src = flat[start : start + block]
        for k in range(block):
            dst[k] += src[k]


@numba.njit(cache=True, nogil=True)
def accumulate_serial(filtered, window_rows, offsets, window, acc):
    """Add each unit's spike windows of ``filtered`` (rows, channels) into ``acc[u]``."""
    n_channels = filtered.shape[1]
    flat = filtered.reshape(filtered.shape[0] * n_channels)
    for u in range(offsets.shape[0] - 1):
        _accumulate_unit(flat, n_channels, window_rows, offsets[u], offsets[u + 1], window, acc[u])


@numba.njit(cache=True, nogil=True, parallel=True)
def accumulate_parallel(filtered, window_rows, offsets, window, acc):
    """As :func:`accumulate_serial`, units spread over threads (each owns whole units)."""
    n_channels = filtered.shape[1]
    flat = filtered.reshape(filtered.shape[0] * n_channels)
    for u in numba.prange(offsets.shape[0] - 1):
        _accumulate_unit(flat, n_channels, window_rows, offsets[u], offsets[u + 1], window, acc[u])
