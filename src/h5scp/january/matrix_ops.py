"""``MatrixOps``: the original ScpTensor's mask-code operations on an :class:`ScpMatrix`.

Every ``mark_*``/``filter_*``/``apply_*`` method returns a new matrix (an
independent copy) and keeps the storage of its input: a sparse mask stays
sparse in its format, a sparse ``X`` stays sparse.  Boolean results
(``get_valid_mask`` ...) are dense numpy arrays; the original returned a sparse
boolean matrix for a sparse mask, which SciPy builds only with a warning and
which cannot index ``X``.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse as sp

from h5scp.core.exceptions import ScpValueError
from h5scp.core.structures import MaskCode, ScpMatrix

__all__ = ["MatrixOps", "sparse_filter_mask"]


def sparse_filter_mask(M, keep_values: list[int]):
    """CSR boolean matrix, True at the stored entries of ``M`` whose code is in ``keep_values``."""
    coo = sp.coo_matrix(M)
    keep = np.isin(coo.data, keep_values)
    return sp.csr_matrix((keep[keep], (coo.row[keep], coo.col[keep])), shape=M.shape, dtype=bool)


def _codes(matrix: ScpMatrix) -> np.ndarray:
    return matrix.mask_or_valid()


def _with_cells(values, rows, cols, value, dtype):
    """``values`` (dense or sparse) with the cells (rows, cols) set to ``value``, storage kept."""
    if sp.issparse(values):
        fmt = values.format
        lil = values.tolil()
        lil[rows, cols] = value
        return lil.asformat(fmt).astype(dtype)
    out = np.array(values, dtype=dtype, copy=True)
    out[rows, cols] = value
    return out


class MatrixOps:
    """Mask-code queries and edits of an :class:`ScpMatrix` (all static methods)."""

    @staticmethod
    def get_valid_mask(matrix: ScpMatrix) -> np.ndarray:
        """Boolean array, True where the code is VALID."""
        return _codes(matrix) == MaskCode.VALID

    @staticmethod
    def get_missing_mask(matrix: ScpMatrix) -> np.ndarray:
        """Boolean array, True where the code is anything but VALID."""
        return _codes(matrix) != MaskCode.VALID

    @staticmethod
    def get_missing_type_mask(matrix: ScpMatrix, mask_code: MaskCode) -> np.ndarray:
        """Boolean array, True where the code is ``mask_code``."""
        return _codes(matrix) == int(mask_code)

    @staticmethod
    def mark_values(matrix: ScpMatrix, indices: tuple[np.ndarray, np.ndarray], mask_code: MaskCode) -> ScpMatrix:
        """A copy of ``matrix`` whose cells ``indices`` (rows, cols) carry ``mask_code``."""
        code = MaskCode(int(mask_code))
        new = matrix.copy()
        rows, cols = (np.asarray(i) for i in indices)
        M = new.get_m()
        new.M = _with_cells(M, rows, cols, int(code), np.int8)
        return new

    @staticmethod
    def mark_imputed(matrix: ScpMatrix, indices: tuple[np.ndarray, np.ndarray]) -> ScpMatrix:
        """``mark_values`` with IMPUTED."""
        return MatrixOps.mark_values(matrix, indices, MaskCode.IMPUTED)

    @staticmethod
    def mark_outliers(matrix: ScpMatrix, indices: tuple[np.ndarray, np.ndarray]) -> ScpMatrix:
        """``mark_values`` with OUTLIER."""
        return MatrixOps.mark_values(matrix, indices, MaskCode.OUTLIER)

    @staticmethod
    def mark_lod(matrix: ScpMatrix, indices: tuple[np.ndarray, np.ndarray]) -> ScpMatrix:
        """``mark_values`` with LOD."""
        return MatrixOps.mark_values(matrix, indices, MaskCode.LOD)

    @staticmethod
    def mark_uncertain(matrix: ScpMatrix, indices: tuple[np.ndarray, np.ndarray]) -> ScpMatrix:
        """``mark_values`` with UNCERTAIN."""
        return MatrixOps.mark_values(matrix, indices, MaskCode.UNCERTAIN)

    @staticmethod
    def combine_masks(masks: list[np.ndarray], operation: str = "union") -> np.ndarray:
        """Cell-wise OR ("union"), AND ("intersection") or more-than-half ("majority") of boolean masks."""
        if not masks:
            raise ScpValueError("No masks provided", parameter="masks", value=masks)
        stacked = np.stack([np.asarray(m, dtype=bool) for m in masks])
        if operation == "union":
            return stacked.any(axis=0)
        if operation == "intersection":
            return stacked.all(axis=0)
        if operation == "majority":
            return stacked.sum(axis=0) > len(masks) // 2
        raise ScpValueError(
            f"Unknown operation: {operation}", parameter="operation", value=operation,
            expected="'union', 'intersection' or 'majority'",
        )

    @staticmethod
    def get_mask_statistics(matrix: ScpMatrix) -> dict:
        """``{code name: {"count": int, "percentage": float}}`` for every MaskCode."""
        codes = _codes(matrix)
        total = codes.size
        stats = {}
        for code in MaskCode:
            count = int(np.count_nonzero(codes == code.value))
            stats[code.name] = {"count": count, "percentage": (count / total * 100.0) if total else 0.0}
        return stats

    @staticmethod
    def filter_by_mask(matrix: ScpMatrix, keep_codes: list[MaskCode]) -> ScpMatrix:
        """A copy where every cell whose code is not in ``keep_codes`` becomes NaN and FILTERED."""
        new = matrix.copy()
        drop = ~np.isin(_codes(matrix), [int(c) for c in keep_codes])
        rows, cols = np.nonzero(drop)
        new.M = _with_cells(new.get_m(), rows, cols, int(MaskCode.FILTERED), np.int8)
        new.X = _with_cells(new.X, rows, cols, np.nan, new.X.dtype)
        return new

    @staticmethod
    def apply_mask_to_values(matrix: ScpMatrix, operation: str = "zero") -> ScpMatrix:
        """A copy whose non-VALID cells are set to 0 ("zero") or NaN ("nan"), or kept ("keep")."""
        if operation not in ("zero", "nan", "keep"):
            raise ScpValueError(
                f"Unknown operation: {operation}", parameter="operation", value=operation,
                expected="'zero', 'nan' or 'keep'",
            )
        new = matrix.copy()
        if operation == "keep":
            return new
        rows, cols = np.nonzero(_codes(matrix) != MaskCode.VALID)
        fill = 0.0 if operation == "zero" else np.nan
        X = _with_cells(new.X, rows, cols, fill, new.X.dtype)
        new.X = X
        return new
