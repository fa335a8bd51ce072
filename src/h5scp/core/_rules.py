"""What the data model accepts: the coercions and checks behind its constructors and filters.

* values become a 2-D numpy array or a CSR/CSC matrix of float32 or float64;
* masks become int8 codes 0..6 of the values' shape (:class:`MaskCodeError` otherwise);
* id columns exist, hold no nulls and are unique (the original's wording in the messages);
* positions are checked against the axis (an ``IndexError`` as numpy's would be), and a
  boolean array of the axis' length is taken as a mask, as numpy indexing does;
* :func:`values_equal` is the exact equality the file-format tests rely on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl
from scipy import sparse

from h5stream.errors import UnsafeNameError
from h5stream.names import check_name
from h5scp.core.exceptions import DimensionError, MaskCodeError, ValidationError

_MASK_MIN, _MASK_MAX = 0, 6  # MaskCode.VALID .. MaskCode.UNCERTAIN


class _IndexOutOfRange(ValidationError, IndexError):
    """A position lies outside the samples or features (an IndexError, as numpy's would be)."""


def _as_sparse_format(matrix):
    """Keep CSR and CSC (as ``*_matrix``); turn other sparse formats into CSR."""
    fmt = matrix.format
    if fmt == "csr":
        return matrix if isinstance(matrix, sparse.csr_matrix) else sparse.csr_matrix(matrix)
    if fmt == "csc":
        return matrix if isinstance(matrix, sparse.csc_matrix) else sparse.csc_matrix(matrix)
    return sparse.csr_matrix(matrix)


def _values_dtype(dtype: np.dtype, what: str) -> np.dtype:
    if dtype == np.float32:
        return np.dtype(np.float32)
    if dtype.kind in "biuf":
        return np.dtype(np.float64)
    raise ValidationError(
        f"{what} must hold real numbers", obj=what, expected="a numeric or boolean dtype",
        found=str(dtype),
    )


def _refuse_masked(value, what: str) -> None:
    """np.asarray drops a masked array's mask: such an array is refused rather than read as if nothing were masked."""
    if isinstance(value, np.ma.MaskedArray) and np.ma.count_masked(value):
        raise ValidationError(
            f"{what} is a numpy masked array; its mask would be lost", obj=what,
            expected="a plain numpy array (the data model's mask is the layer's M, int8 codes)",
            found=f"numpy.ma.MaskedArray with {int(np.ma.count_masked(value))} masked cells",
        )


def _coerce_values(X, what: str):
    _refuse_masked(X, what)
    if sparse.issparse(X):
        X = _as_sparse_format(X)
        target = _values_dtype(X.dtype, what)
        return X if X.dtype == target else X.astype(target)
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValidationError(
            f"{what} must be 2-D (samples x features)", obj=what, expected="2 dimensions",
            found=f"{arr.ndim} dimensions",
        )
    target = _values_dtype(arr.dtype, what)
    return arr if arr.dtype == target else arr.astype(target)


def _coerce_mask(M, shape: tuple[int, int], what: str):
    if M is None:
        return None
    _refuse_masked(M, what)
    if sparse.issparse(M):
        M = _as_sparse_format(M)
        codes = M.data
    else:
        M = np.asarray(M)
        codes = M
    if M.ndim != 2 or tuple(M.shape) != tuple(shape):
        raise DimensionError(
            f"Shape mismatch: X {tuple(shape)} != M {tuple(M.shape)} (the mask's shape differs from the values)",
            expected_shape=tuple(shape), actual_shape=tuple(M.shape), obj=what,
        )
    if codes.dtype.kind not in "biu" and not (
        codes.dtype.kind == "f" and np.all(np.isfinite(codes)) and np.all(codes == np.round(codes))
    ):
        raise MaskCodeError(
            "Invalid mask codes: mask codes must be integers", obj=what, expected="integer codes 0..6",
            found=str(codes.dtype),
        )
    if codes.size:
        low, high = codes.min(), codes.max()
        if low < _MASK_MIN or high > _MASK_MAX:
            present = np.unique(codes)
            bad = present[(present < _MASK_MIN) | (present > _MASK_MAX)]
            shown = [int(b) for b in bad[:10]]
            raise MaskCodeError(
                f"Invalid mask codes: {shown}. Valid: {list(range(_MASK_MIN, _MASK_MAX + 1))}",
                invalid_code=shown[0], obj=what,
                expected=f"codes {_MASK_MIN}..{_MASK_MAX} (MaskCode)", found=f"code {shown[0]!r}",
            )
    if M.dtype != np.int8:
        M = M.astype(np.int8)
    return M


def _check_frame(frame, id_col: str, kind: str, frame_name: str, what: str) -> pl.DataFrame:
    """``kind``: "Sample ID" or "Feature ID"; ``frame_name``: "obs" or "var" (the original's wording)."""
    if not isinstance(frame, pl.DataFrame):
        raise ValidationError(
            f"{what} must be a polars DataFrame", obj=what, expected="polars.DataFrame",
            found=type(frame).__name__,
        )
    if not isinstance(id_col, str) or id_col not in frame.columns:
        raise ValidationError(
            f"{kind} column {id_col!r} not found in {frame_name}", field=str(id_col), obj=what,
            expected=f"a column {id_col!r}", found=f"columns {frame.columns}",
            hint="add the column or pass the id column's name",
        )
    ids = frame.get_column(id_col)
    if ids.null_count():
        raise ValidationError(
            f"{kind} column {id_col!r} holds nulls", field=id_col, obj=what, expected="no nulls",
            found=f"{ids.null_count()} nulls",
        )
    if ids.n_unique() != frame.height:
        dupes = ids.filter(ids.is_duplicated()).unique(maintain_order=True).head(5).to_list()
        raise ValidationError(
            f"{kind} column {id_col!r} is not unique", field=id_col, obj=what, expected="unique ids",
            found=f"duplicates {dupes}",
        )
    return frame


def _safe_name(name, what: str) -> str:
    try:
        return check_name(name, what=what)
    except UnsafeNameError as exc:
        raise ValidationError(str(exc), field=what) from None


def _positions(indices, n: int, what: str) -> np.ndarray:
    """Integer positions (negative ones counted from the end, as numpy does), checked against ``n``;
    booleans of length ``n`` select where True, as in numpy indexing."""
    arr = np.asarray(indices)
    if arr.size == 0:
        return np.zeros(0, dtype=np.intp)
    if arr.dtype == bool:
        if arr.ndim != 1 or arr.size != n:
            raise DimensionError(
                f"Mask length {arr.size} != {n} ({what} given as booleans)", expected_shape=(n,),
                actual_shape=arr.shape, obj=what,
            )
        return np.flatnonzero(arr)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValidationError(
            f"{what} must be a 1-D sequence of integer positions", field=what,
            found=f"dtype {arr.dtype}, {arr.ndim} dimensions",
        )
    if arr.min() < -n or arr.max() >= n:
        bad = arr[(arr < -n) | (arr >= n)][:5].tolist()
        raise _IndexOutOfRange(
            f"{what} holds positions out of range", field=what, expected=f"positions in [{-n}, {n})",
            found=f"{bad}",
        )
    return np.where(arr < 0, arr + n, arr).astype(np.intp)


def _take(matrix, rows=None, cols=None, copy_data: bool = True):
    """Rows and/or columns of a dense or sparse matrix (or None); a sparse result has its indices sorted
    within each row or column (SciPy's row selection of a CSC matrix leaves them in the order asked),
    so that any selection gives the same stored arrays as the file readers."""
    if matrix is None:
        return None
    out = matrix
    if rows is not None:
        out = out[rows] if sparse.issparse(out) else out[rows, :]
    if cols is not None:
        out = out[:, cols]
    if sparse.issparse(out) and out is not matrix and not out.has_sorted_indices:
        out.sort_indices()
    if copy_data and out is matrix:
        out = out.copy()
    return out


def values_equal(a: Any, b: Any) -> bool:
    """Exact structural equality of JSON-like values holding numpy scalars and arrays.

    Types must agree (``np.int64(1)`` differs from ``1``), arrays must agree in
    dtype, shape and values (NaN equals NaN at the same place).
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and bool(
            np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if sparse.issparse(a):
        return a.format == b.format and a.dtype == b.dtype and a.shape == b.shape and values_equal(
            a.toarray(), b.toarray()
        )
    if isinstance(a, np.generic):
        if a.dtype != b.dtype:
            return False
        if a.dtype.kind in "fc":
            return bool(np.array_equal(a, b, equal_nan=True))
        return bool(a == b)
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if isinstance(a, Mapping):
        return list(a.keys()) == list(b.keys()) and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    return bool(a == b)
