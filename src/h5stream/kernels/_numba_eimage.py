"""Numba kernels of the electrical image (imported lazily by :mod:`h5stream.kernels.eimage`).

Compiled with ``cache=True``; the caller sets the thread count with
``numba.set_num_threads`` before the call.  Kernels never validate.
"""

from __future__ import annotations

import numba
import numpy as np

@numba.njit(cache=True, nogil=True)
def _biquad_block(src, baseline, scale, sos, state, out, section, level, c0, c1):
    # One biquad section in transposed direct form II (scipy.signal.sosfilt's
    # convention: state[s, 0, c], state[s, 1, c] are the two delays of section s of
    # channel c) over channels [c0, c1) of every sample, on (src - baseline) * scale,
    # plus ``level`` added to the output.  The delays live in local arrays during the
    # pass: LLVM then knows nothing aliases them and vectorises the loop across
    # channels (about 4x faster than updating ``state`` in place).  The arithmetic is
    # float32 (twice the SIMD width of float64); the caller removes each channel's DC
    # level first, so rounding stays relative to the signal, not to the ADC offset.
    n_samples = src.shape[0]
    width = c1 - c0
    b0 = np.float32(sos[section, 0])
    b1 = np.float32(sos[section, 1])
    b2 = np.float32(sos[section, 2])
    a1 = np.float32(sos[section, 4])
    a2 = np.float32(sos[section, 5])
    gain = np.float32(scale)
    base = baseline[c0:c1]
    add = level[c0:c1]
    z1 = np.empty(width, dtype=np.float32)
    z2 = np.empty(width, dtype=np.float32)
    for j in range(width):
        z1[j] = state[section, 0, c0 + j]
        z2[j] = state[section, 1, c0 + j]
    for t in range(n_samples):
        row = src[t, c0:c1]
        dst = out[t, c0:c1]
        for j in range(width):
            xi = (np.float32(row[j]) - base[j]) * gain
            y = b0 * xi + z1[j]
            z1[j] = b1 * xi - a1 * y + z2[j]
            z2[j] = b2 * xi - a2 * y
            dst[j] = y + add[j]
    for j in range(width):
        state[section, 0, c0 + j] = z1[j]
        state[section, 1, c0 + j] = z2[j]


@numba.njit(cache=True, nogil=True)
def _highpass_columns(raw, baseline, scale, sos, state, out, level, c0, c1):
    # The first section reads the raw values minus their baseline; later sections
    # filter ``out`` in place; the last adds the filtered baseline's level back.
    n_sections = sos.shape[0]
    zero = np.zeros(raw.shape[1], dtype=np.float32)
    _biquad_block(raw, baseline, scale, sos, state, out, 0, level if n_sections == 1 else zero, c0, c1)
    for section in range(1, n_sections):
        last = section == n_sections - 1
        _biquad_block(out, zero, 1.0, sos, state, out, section, level if last else zero, c0, c1)


# Serial and parallel drivers are separate functions: numba's cache index is keyed by
# the function, not by its compile flags (one function compiled both ways would load
# whichever build was cached first).
@numba.njit(cache=True, nogil=True)
def highpass_serial(raw, baseline, scale, sos, state, out, level, n_blocks):
    """Filter ``(raw - baseline) * scale`` (samples, channels) into ``out`` float32, carrying ``state``.

    ``baseline`` and ``level`` are float32 per channel: the value removed before
    filtering and the constant added after it (the filter's response to the
    baseline).  ``n_blocks`` is ignored (one pass over all channels is fastest on
    one thread); it keeps the signature of :func:`highpass_parallel`.
    """
    _highpass_columns(raw, baseline, scale, sos, state, out, level, 0, raw.shape[1])


@numba.njit(cache=True, nogil=True, parallel=True)
def highpass_parallel(raw, baseline, scale, sos, state, out, level, n_blocks):
    """As :func:`highpass_serial`, channels split into ``n_blocks`` column blocks run by threads."""
    n_channels = raw.shape[1]
    width = (n_channels + n_blocks - 1) // n_blocks
    for blk in numba.prange(n_blocks):
        c0 = blk * width
        c1 = min(n_channels, c0 + width)
        if c0 < c1:
            _highpass_columns(raw, baseline, scale, sos, state, out, level, c0, c1)


@numba.njit(cache=True, nogil=True)
def _accumulate_unit(flat, n_channels, window_rows, begin, end, window, dst):
    # The window of a spike starting at buffer row r is the contiguous block
    # flat[r * channels : (r + window) * channels].  Spikes are added four at a time,
    # and the last one to three together, so the accumulator (window * channels
    # values, larger than the L2 cache share of one unit) is read and written once
    # per four spikes instead of once per spike: a unit with five spikes in a chunk
    # costs two passes over it, not five.
    block = window * n_channels
    i = begin
    while i + 4 <= end:
        a = flat[window_rows[i] * n_channels : window_rows[i] * n_channels + block]
        b = flat[window_rows[i + 1] * n_channels : window_rows[i + 1] * n_channels + block]
        c = flat[window_rows[i + 2] * n_channels : window_rows[i + 2] * n_channels + block]
        d = flat[window_rows[i + 3] * n_channels : window_rows[i + 3] * n_channels + block]
        for k in range(block):
            dst[k] += (a[k] + b[k]) + (c[k] + d[k])
        i += 4
    left = end - i
    if left == 3:
        a = flat[window_rows[i] * n_channels : window_rows[i] * n_channels + block]
        b = flat[window_rows[i + 1] * n_channels : window_rows[i + 1] * n_channels + block]
        c = flat[window_rows[i + 2] * n_channels : window_rows[i + 2] * n_channels + block]
        for k in range(block):
            dst[k] += (a[k] + b[k]) + c[k]
    elif left == 2:
        a = flat[window_rows[i] * n_channels : window_rows[i] * n_channels + block]
        b = flat[window_rows[i + 1] * n_channels : window_rows[i + 1] * n_channels + block]
        for k in range(block):
            dst[k] += a[k] + b[k]
    elif left == 1:
        a = flat[window_rows[i] * n_channels : window_rows[i] * n_channels + block]
        for k in range(block):
            dst[k] += a[k]


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
