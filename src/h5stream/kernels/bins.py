"""Histograms of the rows of a ragged array, each row with its own bin edges."""

from __future__ import annotations

import numpy as np

from h5stream.native import compiled

__all__ = ["ragged_histograms"]


def ragged_histograms(values: np.ndarray, offsets: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts (n_rows, n_edges - 1) int64 of row k, ``values[offsets[k]:offsets[k + 1]]``, in the
    bins of ``edges[k]``, equal to ``np.histogram(row, bins=edges[k])[0]``.

    ``values`` int64; ``offsets`` int64 of length n_rows + 1, non-decreasing;
    ``edges`` int64 (n_rows, n_edges >= 2), each row non-decreasing.  Rows
    sorted in time cost one merge of their values with their edges (the common
    case: spike trains); an unsorted row is still counted exactly.
    """
    values = np.ascontiguousarray(values, dtype=np.int64)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    edges = np.ascontiguousarray(edges, dtype=np.int64)
    n_rows, n_edges = edges.shape
    if n_edges < 2:
        raise ValueError(f"edges: expected at least 2 per row, found {n_edges}")
    if offsets.shape != (n_rows + 1,) or (n_rows and (offsets[0] < 0 or offsets[-1] > values.size
                                                      or np.any(np.diff(offsets) < 0))):
        raise ValueError(f"offsets: expected {n_rows + 1} non-decreasing offsets within {values.size} values")
    counts = np.zeros((n_rows, n_edges - 1), dtype=np.int64)
    compiled("_bins")._ragged_histograms(values, offsets, edges, counts)
    return counts
