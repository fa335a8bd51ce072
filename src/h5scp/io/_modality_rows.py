"""Rows of an assay for the samples a MuData modality holds, and back.

A MuData file's modalities may hold different samples; a container's assays
share all of its samples.  Loading gives an assay a row for every sample, the
rows its modality lacks NaN with mask code :data:`NOT_MEASURED`
(:func:`spread_rows`); saving leaves out of a modality the rows that are NaN
with that code in every layer (:func:`not_measured_rows`), so a round trip
keeps each modality's own samples.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from h5scp.core.structures import Assay, MaskCode, ScpMatrix
from h5scp.io.selection import matrix_rows
from h5scp.io.serializers import normalize_sparse

__all__ = ["NOT_MEASURED", "not_measured_rows", "rows_of", "spread_rows"]

#: Mask code of the rows an assay gets for samples its modality does not hold.  The data model
#: (the original ScpTensor's codes 0-6, kept unchanged) has no "not measured" code; UNCERTAIN is
#: the one it gives a missing cell whose cause the input cannot tell (its matrix importer marks
#: every non-finite cell so), which is what a MuData file says of a sample a modality lacks: it
#: may never have been measured there, or was filtered there.  FILTERED would claim a QC removal.
NOT_MEASURED = MaskCode.UNCERTAIN


def not_measured_rows(assay: Assay, n_samples: int) -> np.ndarray:
    """Samples an assay holds no measurement of: in every layer all NaN with every mask code UNCERTAIN.

    Such rows are what loading a MuData file whose modality lacks a sample
    makes, so saving leaves them out of that modality again.
    """
    out = np.ones(n_samples, dtype=bool)
    if not assay.layers or assay.n_features == 0:
        return np.zeros(n_samples, dtype=bool)
    for matrix in assay.layers.values():
        if matrix.M is None or matrix.X.dtype.kind != "f":
            return np.zeros(n_samples, dtype=bool)
        out &= _rows_all(matrix.X, np.isnan, assay.n_features) & _rows_all(
            matrix.M, lambda m: m == NOT_MEASURED, assay.n_features
        )
    return out


def _rows_all(values, test, width: int) -> np.ndarray:
    """Rows of ``values`` (dense or sparse) where every one of the ``width`` cells passes ``test``."""
    if sparse.issparse(values):
        rows = sparse.csr_matrix(values)
        full = np.diff(rows.indptr) == width  # implicit zeros pass neither test
        row_of = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
        passing = np.bincount(row_of, weights=np.asarray(test(rows.data), dtype=np.float64), minlength=rows.shape[0])
        return full & (passing == width)
    return np.asarray(test(values)).all(axis=1)


def rows_of(assay: Assay, keep: np.ndarray) -> Assay:
    positions = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep)
    layers = {k: matrix_rows(m, positions, obj=f"layers/{k}") for k, m in assay.layers.items()}
    return Assay(assay.var, layers, feature_id_col=assay.feature_id_col)


def spread_rows(matrix: ScpMatrix, held: np.ndarray) -> ScpMatrix:
    """``matrix`` with its rows at ``held`` of ``held.size`` rows; the others NaN, mask NOT_MEASURED."""
    n, width = held.size, matrix.X.shape[1]
    order = np.empty(n, dtype=np.int64)
    order[held] = np.arange(int(held.sum()))
    order[~held] = held.sum() + np.arange(int((~held).sum()))
    missing = int((~held).sum())
    X, M = matrix.X, matrix.M
    if sparse.issparse(X):
        filler = sparse.csr_matrix(np.full((missing, width), np.nan, dtype=X.dtype))
        X = normalize_sparse(sparse.vstack([sparse.csr_matrix(X), filler]).tocsr()[order].asformat(X.format))
    else:
        X = np.concatenate([X, np.full((missing, width), np.nan, dtype=X.dtype)])[order]
    codes = np.full((missing, width), int(NOT_MEASURED), dtype=np.int8)
    if M is None:
        M = np.zeros((held.sum(), width), dtype=np.int8)
    if sparse.issparse(M):
        M = normalize_sparse(sparse.vstack([sparse.csr_matrix(M), sparse.csr_matrix(codes)]).tocsr()[order]
                             .asformat(M.format))
    else:
        M = np.concatenate([M, codes])[order]
    return ScpMatrix(X, M, matrix.metadata)
