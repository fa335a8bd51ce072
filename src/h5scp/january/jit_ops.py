"""Mask-code and missing-value helpers of the original ScpTensor's ``jit_ops``.

The original compiled these loops with Numba; each is one vectorised numpy
expression here, which is as fast for these element-wise passes and needs no
compilation on first call.  ``NUMBA_AVAILABLE`` still says whether Numba
imports (the engine uses it elsewhere).  The names, arguments and results are
the original's:

* :func:`count_mask_codes`: how many cells hold each code 0..6.
* :func:`find_missing_indices`: (rows, cols) of the cells holding given codes.
* :func:`apply_mask_threshold`: a boolean mask from a comparison with a threshold.
* :func:`fill_missing_with_value`: set the cells with a given code to a value, in place.
* :func:`compute_euclidean_distance`: NaN-aware RMS distance of each row to a vector.

The imputation and statistics kernels of the original module belong to its
analysis toolkit and are not part of this package.
"""

from __future__ import annotations

import importlib.util

import numpy as np
from scipy import sparse as sp

from h5scp.core.exceptions import DimensionError, ScpValueError

__all__ = [
    "NUMBA_AVAILABLE",
    "count_mask_codes",
    "find_missing_indices",
    "apply_mask_threshold",
    "count_above_threshold",
    "filter_by_threshold_count",
    "fill_missing_with_value",
    "fill_nan_with_value",
    "compute_euclidean_distance",
]

NUMBA_AVAILABLE: bool = importlib.util.find_spec("numba") is not None

_N_CODES = 7


def _dense(M) -> np.ndarray:
    return M.toarray() if sp.issparse(M) else np.asarray(M)


def count_mask_codes(M) -> np.ndarray:
    """int64 array of length 7: the number of cells holding each code 0..6 (other values are not counted)."""
    codes = _dense(M).ravel()
    codes = codes[(codes >= 0) & (codes < _N_CODES)].astype(np.intp)
    return np.bincount(codes, minlength=_N_CODES).astype(np.int64)


def find_missing_indices(M, mask_codes: tuple[int, ...] = (1, 2)) -> tuple[np.ndarray, np.ndarray]:
    """int64 row and column indices (row-major order) of the cells whose code is in ``mask_codes``."""
    hits = np.isin(_dense(M), np.asarray(list(mask_codes)))
    rows, cols = np.nonzero(hits)
    return rows.astype(np.int64), cols.astype(np.int64)


_COMPARISONS = {0: np.less, 1: np.less_equal, 2: np.greater, 3: np.greater_equal}


def apply_mask_threshold(X, threshold: float, comparison: int) -> np.ndarray:
    """Boolean mask of ``X < threshold`` (comparison 0), ``<=`` (1), ``>`` (2) or ``>=`` (3)."""
    if comparison not in _COMPARISONS:
        raise ScpValueError(
            "comparison must be 0 (<), 1 (<=), 2 (>) or 3 (>=)", parameter="comparison", value=comparison,
        )
    return _COMPARISONS[comparison](_dense(X), threshold)


def count_above_threshold(X, threshold: float, axis: int) -> np.ndarray:
    """Number of cells greater than ``threshold`` along ``axis`` (0: per column, 1: per row)."""
    return np.count_nonzero(_dense(X) > threshold, axis=axis).astype(np.int64)


def filter_by_threshold_count(X, threshold: float, min_count: int, axis: int) -> np.ndarray:
    """Boolean: at least ``min_count`` cells greater than ``threshold`` along ``axis``."""
    return count_above_threshold(X, threshold, axis) >= min_count


def fill_missing_with_value(X: np.ndarray, M, fill_value: float, fill_mask_code: int) -> None:
    """Set, in place, every cell of dense ``X`` whose code in ``M`` is ``fill_mask_code`` to ``fill_value``."""
    codes = _dense(M)
    if not isinstance(X, np.ndarray):
        raise ScpValueError(
            "X must be a dense numpy array (it is filled in place)", parameter="X", value=type(X).__name__,
        )
    if codes.shape != X.shape:
        raise DimensionError(
            f"Shape mismatch: X {X.shape} != M {codes.shape}", expected_shape=X.shape, actual_shape=codes.shape,
            obj="M",
        )
    X[codes == fill_mask_code] = fill_value


def fill_nan_with_value(X: np.ndarray, fill_value: float) -> None:
    """Set, in place, every NaN cell of dense ``X`` to ``fill_value``."""
    X[np.isnan(X)] = fill_value


def compute_euclidean_distance(X, y, mask_codes=None) -> np.ndarray:
    """Distance of each row of ``X`` to ``y`` over the features where both are not NaN:
    ``sqrt(mean of squared differences)``, ``inf`` for a row sharing no such feature.
    ``mask_codes`` is accepted for the original's signature and not used (as there)."""
    X = np.asarray(_dense(X), dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    if X.ndim != 2 or X.shape[1] != y.size:
        raise DimensionError(
            "y must have one value per column of X", expected_shape=(X.shape[-1],), actual_shape=y.shape, obj="y",
        )
    diff = X - y
    both = ~np.isnan(diff)
    n_valid = both.sum(axis=1)
    sq = np.where(both, diff, 0.0) ** 2
    out = np.full(X.shape[0], np.inf)
    has = n_valid > 0
    out[has] = np.sqrt(sq[has].sum(axis=1) / n_valid[has])
    return out
