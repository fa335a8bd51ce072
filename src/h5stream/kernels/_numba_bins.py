"""Numba kernel of :func:`h5stream.kernels.bins.ragged_histograms` (imported lazily; never validates)."""

from __future__ import annotations

import numba


@numba.njit(cache=True, nogil=True)
def _last_at_or_below(edges, k, n_edges, value):
    # The last edge index j with edges[k, j] <= value (edges[k, 0] <= value is known).
    lo, hi = 0, n_edges - 1
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if edges[k, mid] <= value:
            lo = mid
        else:
            hi = mid - 1
    return lo


@numba.njit(cache=True, nogil=True)
def ragged_histograms(values, offsets, edges, counts):
    # Row k: values[offsets[k]:offsets[k + 1]] counted into the bins of edges[k] as np.histogram
    # counts them (bins [e_j, e_j+1), the last one closed).  A sorted row is one merge of its
    # values and edges; a value below the one before it is placed by a binary search.
    n_rows, n_edges = edges.shape
    last_bin = n_edges - 2
    for k in range(n_rows):
        low = edges[k, 0]
        high = edges[k, n_edges - 1]
        j = 0
        previous = low
        for i in range(offsets[k], offsets[k + 1]):
            v = values[i]
            if v < low or v > high:
                continue
            if v < previous:
                j = _last_at_or_below(edges, k, n_edges, v)
            else:
                while j < n_edges - 1 and edges[k, j + 1] <= v:
                    j += 1
            previous = v
            counts[k, j if j < last_bin else last_bin] += 1
    return counts
