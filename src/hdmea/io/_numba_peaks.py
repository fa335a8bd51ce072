"""Compiled kernel of the ``.cmtr`` reader: one pass over a unit's ``Peaks`` table.

Compiled with ``cache=True`` and ``nogil=True`` (the reader's read-ahead thread
reads the next table meanwhile).  The columns arrive as strided views of the
table's bytes (a record of a ``Peaks`` table is 173 bytes, so no column is
aligned): numba reads them as they are.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def summarise_peaks(timestamps, include, amplitudes, cutouts, factor, samples, amps, sums):
    """Check every peak and summarise the included ones, in one pass.

    For the peaks with ``include == 1`` (in order): ``samples[k] = rint(timestamp * factor)``,
    ``amps[k] = amplitude`` (float32), and each cutout column added to ``sums`` (float64).
    ``amplitudes`` or ``cutouts`` with no rows / no columns are skipped.

    Returns ``(k, first_bad_flag, first_bad_time, first_unsorted)``: the included count, then
    the first row whose flag is neither 0 nor 1, whose timestamp is negative or not finite,
    and whose timestamp is below the one before it (-1: none).
    """
    n = timestamps.shape[0]
    n_cut = cutouts.shape[1]
    with_amps = amplitudes.shape[0] == n
    k = 0
    bad_flag = -1
    bad_time = -1
    unsorted = -1
    previous = timestamps[0] if n else timestamps.dtype.type(0)
    for i in range(n):
        t = timestamps[i]
        flag = include[i]
        if bad_flag < 0 and flag != 0 and flag != 1:
            bad_flag = i
        tf = np.float64(t)
        if bad_time < 0 and not (tf >= 0.0 and tf - tf == 0.0):
            bad_time = i
        if unsorted < 0 and i > 0 and t < previous:
            unsorted = i
        previous = t
        if flag == 1:
            samples[k] = np.uint64(np.rint(tf * factor)) if tf >= 0.0 and tf - tf == 0.0 else np.uint64(0)
            if with_amps:
                amps[k] = np.float32(amplitudes[i])
            for j in range(n_cut):
                sums[j] += np.float64(cutouts[i, j])
            k += 1
    return k, bad_flag, bad_time, unsorted
