"""Numba kernels of the electrical image (imported lazily by :mod:`h5stream.kernels.eimage`).

Compiled with ``cache=True``; the caller sets the thread count with
``numba.set_num_threads`` before the call.  Kernels never validate.
"""

from __future__ import annotations

import numba
import numpy as np

from h5stream.kernels._tiles import TILE  # a compile-time constant of the kernels below


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


#: rows filtered into a row-major strip before they are spread over the tiles
STRIP = 64


@numba.njit(cache=True, nogil=True, inline="always")
def _biquad_lanes(row, base, add, z1, z2, dst, first, n, b0, b1, b2, a1, a2, gain):
    # Channels [first, first + n) of one sample, into lanes [0, n) of one tile's row
    # (the arithmetic of _biquad_block); inlined, so n = TILE is a constant trip count.
    for j in range(n):
        i = first + j
        xi = (np.float32(row[i]) - base[i]) * gain
        y = b0 * xi + z1[i]
        z1[i] = b1 * xi - a1 * y + z2[i]
        z2[i] = b2 * xi - a2 * y
        dst[j] = y + add[i]


@numba.njit(cache=True, nogil=True)
def _biquad_into_tiles(raw, baseline, scale, sos, state, out, row0, level, c0, c1):
    # A one-section filter straight from the raw rows into the tiles: the arithmetic of
    # _biquad_block (same float32 operations in the same order), the output written
    # tile by tile; lanes past the last channel are zero.
    n_samples = raw.shape[0]
    width = c1 - c0
    b0 = np.float32(sos[0, 0])
    b1 = np.float32(sos[0, 1])
    b2 = np.float32(sos[0, 2])
    a1 = np.float32(sos[0, 4])
    a2 = np.float32(sos[0, 5])
    gain = np.float32(scale)
    base = baseline[c0:c1]
    add = level[c0:c1]
    z1 = np.empty(width, dtype=np.float32)
    z2 = np.empty(width, dtype=np.float32)
    for j in range(width):
        z1[j] = state[0, 0, c0 + j]
        z2[j] = state[0, 1, c0 + j]
    k0 = c0 // TILE
    n_full = width // TILE
    rest = width - n_full * TILE
    for t in range(n_samples):
        row = raw[t, c0:c1]
        for k in range(n_full):
            _biquad_lanes(row, base, add, z1, z2, out[k0 + k, row0 + t], k * TILE, TILE, b0, b1, b2, a1, a2, gain)
        if rest:
            dst = out[k0 + n_full, row0 + t]
            _biquad_lanes(row, base, add, z1, z2, dst, n_full * TILE, rest, b0, b1, b2, a1, a2, gain)
            for j in range(rest, TILE):
                dst[j] = 0.0
    for j in range(width):
        state[0, 0, c0 + j] = z1[j]
        state[0, 1, c0 + j] = z2[j]


@numba.njit(cache=True, nogil=True)
def _highpass_tiles(raw, baseline, scale, sos, state, out, row0, level, c0, c1):
    if sos.shape[0] == 1:
        _biquad_into_tiles(raw, baseline, scale, sos, state, out, row0, level, c0, c1)
        return
    # Channels [c0, c1) (c0 a multiple of TILE) of every sample, filtered a strip of
    # rows at a time into a small row-major scratch (cache-resident), then spread over
    # the tiles: out[k, row0 + t, j] holds channel k * TILE + j; lanes past the last
    # channel are zero.
    n_samples = raw.shape[0]
    n_channels = raw.shape[1]
    strip = np.empty((STRIP, n_channels), dtype=np.float32)
    k0 = c0 // TILE
    k1 = (c1 + TILE - 1) // TILE
    for t0 in range(0, n_samples, STRIP):
        t1 = min(n_samples, t0 + STRIP)
        _highpass_columns(raw[t0:t1], baseline, scale, sos, state, strip[: t1 - t0], level, c0, c1)
        for t in range(t1 - t0):
            row = strip[t]
            for k in range(k0, k1):
                dst = out[k, row0 + t0 + t]
                first = k * TILE
                n = min(TILE, c1 - first)
                for j in range(n):
                    dst[j] = row[first + j]
                for j in range(n, TILE):
                    dst[j] = 0.0


# Serial and parallel drivers are separate functions: numba's cache index is keyed by
# the function, not by its compile flags (one function compiled both ways would load
# whichever build was cached first).
@numba.njit(cache=True, nogil=True)
def highpass_serial(raw, baseline, scale, sos, state, out, row0, level, n_blocks):
    """Filter ``(raw - baseline) * scale`` (samples, channels) into the tiled ``out``, carrying ``state``.

    ``out`` is float32 of shape ``(n_tiles, rows, TILE)``; sample ``t`` of channel
    ``c`` goes to ``out[c // TILE, row0 + t, c % TILE]``.  ``baseline`` and ``level``
    are float32 per channel: the value removed before filtering and the constant
    added after it (the filter's response to the baseline).  ``n_blocks`` is ignored
    (one pass over all channels is fastest on one thread); it keeps the signature of
    :func:`highpass_parallel`.
    """
    _highpass_tiles(raw, baseline, scale, sos, state, out, row0, level, 0, raw.shape[1])


@numba.njit(cache=True, nogil=True, parallel=True)
def highpass_parallel(raw, baseline, scale, sos, state, out, row0, level, n_blocks):
    """As :func:`highpass_serial`, channels split into ``n_blocks`` blocks of whole tiles run by threads."""
    n_channels = raw.shape[1]
    n_tiles = (n_channels + TILE - 1) // TILE
    width = (n_tiles + n_blocks - 1) // n_blocks * TILE
    for blk in numba.prange(n_blocks):
        c0 = blk * width
        c1 = min(n_channels, c0 + width)
        if c0 < c1:
            _highpass_tiles(raw, baseline, scale, sos, state, out, row0, level, c0, c1)


@numba.njit(cache=True, nogil=True)
def _accumulate_tile(tile, window_rows, offsets, window, acc, k):
    # Tile ``k`` of every unit: the window of a spike starting at buffer row r is the
    # contiguous block tile[r * TILE : (r + window) * TILE], added into the unit's
    # contiguous acc[u, k].  A tile of the buffer (rows x 64 bytes) stays in the L2
    # cache while every unit's spikes are added from it, and a unit's accumulator tile
    # (window x 64 bytes) in L1 while its spikes are added; spikes go four at a time.
    flat = tile.reshape(tile.shape[0] * TILE)
    block = window * TILE
    for u in range(offsets.shape[0] - 1):
        end = offsets[u + 1]
        i = offsets[u]
        if i == end:
            continue
        dst = acc[u, k].reshape(block)
        while i + 4 <= end:
            a = flat[window_rows[i] * TILE : window_rows[i] * TILE + block]
            b = flat[window_rows[i + 1] * TILE : window_rows[i + 1] * TILE + block]
            c = flat[window_rows[i + 2] * TILE : window_rows[i + 2] * TILE + block]
            d = flat[window_rows[i + 3] * TILE : window_rows[i + 3] * TILE + block]
            for j in range(block):
                dst[j] += (a[j] + b[j]) + (c[j] + d[j])
            i += 4
        if i + 2 <= end:
            a = flat[window_rows[i] * TILE : window_rows[i] * TILE + block]
            b = flat[window_rows[i + 1] * TILE : window_rows[i + 1] * TILE + block]
            for j in range(block):
                dst[j] += a[j] + b[j]
            i += 2
        if i < end:
            a = flat[window_rows[i] * TILE : window_rows[i] * TILE + block]
            for j in range(block):
                dst[j] += a[j]


@numba.njit(cache=True, nogil=True)
def accumulate_serial(filtered, window_rows, offsets, window, acc):
    """Add each unit's spike windows of the tiled ``filtered`` (tiles, rows, TILE) into ``acc[u]``.

    ``acc`` is float32 of shape ``(units, tiles, window, TILE)``; see :func:`untile`.
    """
    for k in range(filtered.shape[0]):
        _accumulate_tile(filtered[k], window_rows, offsets, window, acc, k)


@numba.njit(cache=True, nogil=True, parallel=True)
def accumulate_parallel(filtered, window_rows, offsets, window, acc):
    """As :func:`accumulate_serial`, tiles spread over threads (each owns whole tiles of every unit)."""
    for k in numba.prange(filtered.shape[0]):
        _accumulate_tile(filtered[k], window_rows, offsets, window, acc, k)


@numba.njit(cache=True, nogil=True)
def untile(acc, n_channels):
    """Rewrite each unit's tiled sums ``acc[u]`` (tiles, window, TILE) in place as (window, channels).

    Returns a view of shape ``(units, window * n_channels)`` on ``acc``'s memory (row
    ``u`` is unit ``u``'s image, samples by channels); only one unit's worth of
    scratch is used.
    """
    n_units, n_tiles, window, _ = acc.shape
    size = n_tiles * window * TILE
    flat = acc.reshape(n_units, size)
    scratch = np.empty(size, dtype=np.float32)
    for u in range(n_units):
        scratch[:] = flat[u]
        dst = flat[u]
        for w in range(window):
            for c in range(n_channels):
                dst[w * n_channels + c] = scratch[((c // TILE) * window + w) * TILE + c % TILE]
    return flat[:, : window * n_channels]
