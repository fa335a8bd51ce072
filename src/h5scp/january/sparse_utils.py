"""Sparse-matrix helpers with the original ScpTensor's names and signatures.

Every function takes a numpy array or a SciPy sparse matrix.  Row and column
operations work on the stored entries only (implicit zeros are not passed to
``func``), as in the original.  Differences from the original, where it was
wrong: :func:`sparse_center_rows` gives 0 (not uninitialised memory) as the
mean of a row without entries, and functions taking ``factors`` check their
length for dense input too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import sparse as sp

from h5scp.core.exceptions import AssayNotFoundError, DimensionError, ScpValueError

__all__ = [
    "is_sparse_matrix",
    "get_sparsity_ratio",
    "to_sparse_if_beneficial",
    "ensure_sparse_format",
    "sparse_copy",
    "cleanup_layers",
    "sparse_safe_operation",
    "get_memory_usage",
    "optimal_format_for_operation",
    "auto_convert_for_operation",
    "sparse_row_operation",
    "sparse_col_operation",
    "sparse_multiply_rowwise",
    "sparse_multiply_colwise",
    "sparse_center_rows",
    "sparse_safe_log1p",
    "sparse_safe_log1p_with_scale",
    "get_format_recommendation",
]

_FORMATS = {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "coo": sp.coo_matrix, "lil": sp.lil_matrix}

# Which format serves each kind of operation best.
_FORMAT_FOR_OPERATION = {
    "row_wise": "csr",
    "col_wise": "csc",
    "arithmetic": "csr",
    "construction": "lil",
    "slicing": "csr",
    "modification": "lil",
}


def _format_class(format: str, allowed=("csr", "csc", "coo", "lil")):
    if format not in allowed:
        raise ScpValueError(
            f"Unsupported sparse format: {format}", parameter="format", value=format,
            expected=f"one of {list(allowed)}",
        )
    return _FORMATS[format]


def is_sparse_matrix(X) -> bool:
    """True when ``X`` is a SciPy sparse matrix or array."""
    return sp.issparse(X)


def get_sparsity_ratio(X) -> float:
    """Share of cells that are zero (dense) or not stored (sparse), 0.0..1.0; 0.0 for an empty matrix."""
    size = X.shape[0] * X.shape[1] if X.ndim == 2 else X.size
    if size == 0:
        return 0.0
    if sp.issparse(X):
        return 1.0 - X.nnz / size
    return float(np.count_nonzero(np.asarray(X) == 0) / size)


def to_sparse_if_beneficial(X, threshold: float = 0.5, format: str = "csr"):
    """``X`` as a sparse matrix of ``format`` when more than ``threshold`` of it is zero; else ``X`` itself."""
    if sp.issparse(X):
        return X
    cls = _format_class(format, ("csr", "csc", "coo"))
    return cls(X) if get_sparsity_ratio(X) > threshold else X


def ensure_sparse_format(X, format: str = "csr"):
    """``X`` (dense or sparse) as a sparse matrix of ``format`` (csr, csc, coo or lil)."""
    cls = _format_class(format)
    if sp.issparse(X):
        return X.asformat(format) if not isinstance(X, cls) else X
    return cls(X)


def sparse_copy(X):
    """An independent copy of a dense or sparse matrix."""
    return X.copy()


def cleanup_layers(container, assay_name: str, keep_layers: list[str]) -> None:
    """Remove every layer of ``assay_name`` that is not in ``keep_layers`` (in place)."""
    if assay_name not in container.assays:
        raise AssayNotFoundError(assay_name, available_assays=list(container.assays))
    layers = container.assays[assay_name].layers
    for name in [n for n in layers if n not in keep_layers]:
        del layers[name]


def sparse_safe_operation(X, operation: Callable[..., Any], *args: Any, **kwargs: Any):
    """``operation(X, *args, **kwargs)``; a dense result of a sparse input turns sparse again when
    more than 10% of it is zero."""
    result = operation(X, *args, **kwargs)
    if sp.issparse(X) and not sp.issparse(result):
        return to_sparse_if_beneficial(result, threshold=0.1)
    return result


def get_memory_usage(X) -> dict[str, Any]:
    """``nbytes`` (data, indices and pointers for a sparse matrix), ``is_sparse``, ``shape``, ``dtype``."""
    if sp.issparse(X):
        if X.format in ("csr", "csc", "bsr"):
            nbytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
        elif X.format == "coo":
            nbytes = X.data.nbytes + X.row.nbytes + X.col.nbytes
        else:
            nbytes = X.tocsr().data.nbytes + X.tocsr().indices.nbytes + X.tocsr().indptr.nbytes
    else:
        nbytes = X.nbytes
    return {"nbytes": int(nbytes), "is_sparse": sp.issparse(X), "shape": X.shape, "dtype": str(X.dtype)}


def optimal_format_for_operation(X, operation: str) -> str:
    """The sparse format that serves ``operation`` best ("dense" for a dense ``X``; csr when unknown)."""
    if not sp.issparse(X):
        return "dense"
    return _FORMAT_FOR_OPERATION.get(operation, "csr")


def auto_convert_for_operation(X, operation: str):
    """``X`` converted to :func:`optimal_format_for_operation`; dense input is returned as is."""
    if not sp.issparse(X):
        return X
    return ensure_sparse_format(X, optimal_format_for_operation(X, operation))


def _axis_operation(X, func, axis_format: str, **kwargs) -> np.ndarray:
    if not sp.issparse(X):
        arr = np.asarray(X)
        lines = arr if axis_format == "csr" else arr.T
        return np.array([func(line, **kwargs) for line in lines], dtype=np.float64)
    M = X.asformat(axis_format)
    out = np.empty(M.shape[0] if axis_format == "csr" else M.shape[1], dtype=np.float64)
    for i in range(out.size):
        stored = M.data[M.indptr[i]:M.indptr[i + 1]]
        out[i] = func(stored, **kwargs) if stored.size else 0.0
    return out


def sparse_row_operation(X, func: Callable[[np.ndarray], Any], **kwargs: Any) -> np.ndarray:
    """``func`` of each row's stored entries (0.0 for a row without entries), as float64."""
    return _axis_operation(X, func, "csr", **kwargs)


def sparse_col_operation(X, func: Callable[[np.ndarray], Any], **kwargs: Any) -> np.ndarray:
    """``func`` of each column's stored entries (0.0 for a column without entries), as float64."""
    return _axis_operation(X, func, "csc", **kwargs)


def _scaled(X, factors, axis_format: str):
    factors = np.asarray(factors, dtype=np.float64)
    n = X.shape[0] if axis_format == "csr" else X.shape[1]
    if factors.ndim != 1 or factors.size != n:
        kind = "n_rows" if axis_format == "csr" else "n_cols"
        raise DimensionError(
            f"Length of factors ({factors.size}) must equal {kind} ({n})", expected_shape=(n,),
            actual_shape=factors.shape, obj="factors",
        )
    M = ensure_sparse_format(X, axis_format)
    M = M.astype(np.float64) if M.dtype.kind != "f" else M.copy()
    M.data *= np.repeat(factors, np.diff(M.indptr))
    return M


def sparse_multiply_rowwise(X, factors: np.ndarray):
    """Each row times its factor, as a CSR matrix (stored entries only, nothing densified)."""
    return _scaled(X, factors, "csr")


def sparse_multiply_colwise(X, factors: np.ndarray):
    """Each column times its factor, as a CSC matrix."""
    return _scaled(X, factors, "csc")


def sparse_center_rows(X, row_means: np.ndarray | None = None):
    """``(X as CSR, row_means)``: the mean of each row's stored entries (0 for a row without any)
    when ``row_means`` is None.  As in the original, X itself is not shifted (that would densify it)."""
    M = ensure_sparse_format(X, "csr")
    if row_means is None:
        counts = np.diff(M.indptr)
        rows = np.repeat(np.arange(M.shape[0]), counts)
        sums = np.bincount(rows, weights=M.data.astype(np.float64), minlength=M.shape[0])
        row_means = np.divide(sums, counts, out=np.zeros(M.shape[0]), where=counts > 0)
    return M, row_means


def sparse_safe_log1p(X, offset: float = 1.0, use_jit: bool = True):
    """``log(X + offset)`` on the stored entries of a sparse matrix (implicit zeros stay 0, which is
    exact for offset 1), or on every cell of a dense one.  ``use_jit`` is accepted for the original's
    signature; numpy's vectorised log is used."""
    return sparse_safe_log1p_with_scale(X, offset=offset, scale=1.0, use_jit=use_jit)


def sparse_safe_log1p_with_scale(X, offset: float = 1.0, scale: float = 1.0, use_jit: bool = True):
    """``log(X + offset) / scale`` (stored entries only for a sparse matrix), e.g. ``scale=log(2)`` for log2."""
    if sp.issparse(X):
        out = X.astype(np.float64) if X.dtype.kind != "f" else X.copy()
        out.data = np.log1p(out.data + (offset - 1.0)) / scale
        return out
    return np.log1p(np.asarray(X, dtype=np.float64) + (offset - 1.0)) / scale


def get_format_recommendation(n_rows: int, n_cols: int, nnz: int, operations: list) -> str:
    """"dense" below 30% zeros; else lil for construction or modification, csr or csc by the
    majority of row-wise and column-wise operations, and on a tie the longer axis' format."""
    size = n_rows * n_cols
    sparsity = 1.0 - nnz / size if size else 0.0
    if sparsity < 0.3:
        return "dense"
    if any(op in ("construction", "modification") for op in operations):
        return "lil"
    rows = sum("row" in op for op in operations)
    cols = sum("col" in op for op in operations)
    if rows != cols:
        return "csr" if rows > cols else "csc"
    return "csr" if n_rows >= n_cols else "csc"
