"""Compiled dense-to-CSR kernel against the naive reference."""

from __future__ import annotations


import numpy as np
import pytest
import scipy.sparse as sp

from h5stream.kernels.csr import count_rows, csr_from_blocks, dense_to_csr, iter_csr_blocks
from tests.reference import csr_reference

DTYPES = [np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def _matrix(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.integers(1, 100, size=shape).astype(dtype)
    values[rng.random(shape) < 0.6] = 0
    if np.dtype(dtype).kind == "f":
        values[rng.random(shape) < 0.15] = np.nan
    return values


def _check(out, dense, missing):
    data, indices, indptr = csr_reference(dense, missing)
    assert isinstance(out, (sp.csr_matrix, sp.csr_array)) and out.shape == dense.shape
    assert out.dtype == dense.dtype
    assert np.array_equal(out.indptr, indptr)
    assert np.array_equal(out.indices, indices)
    assert np.array_equal(out.data, data, equal_nan=dense.dtype.kind == "f")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("missing", ["zero", "nan", "zero_or_nan"])
def test_matches_reference_for_every_dtype_and_rule(dtype, missing):
    dense = _matrix((23, 17), dtype)
    _check(dense_to_csr(dense, missing=missing, block_rows=4), dense, missing)


@pytest.mark.parametrize(
    "shape", [(0, 0), (0, 7), (7, 0), (1, 1), (40, 1), (1, 40), (5, 5)]
)
def test_edge_shapes(shape):
    dense = _matrix(shape, np.float32, seed=2)
    for missing in ("zero", "nan"):
        _check(dense_to_csr(dense, missing=missing, block_rows=3), dense, missing)


def test_all_missing_rows_and_all_missing_matrix():
    dense = _matrix((12, 9), np.float64)
    dense[[0, 5, 11]] = 0
    _check(dense_to_csr(dense, missing="zero", block_rows=5), dense, "zero")
    nan = np.full((6, 4), np.nan)
    out = dense_to_csr(nan, missing="nan")
    assert out.nnz == 0 and np.array_equal(out.indptr, np.zeros(7))
    out = dense_to_csr(nan, missing="zero")
    assert out.nnz == 24  # NaN is a stored value under the zero rule


def test_serial_equals_parallel_and_block_size_does_not_matter():
    # 400 x 100 blocks run in parallel; small blocks (7 rows) take the serial path.
    dense = _matrix((400, 100), np.float32, seed=9)
    ref = dense_to_csr(dense, n_threads=1, block_rows=400)
    for threads in (1, 2, 3):
        for block_rows in (1, 7, 400, 1000):
            out = dense_to_csr(dense, n_threads=threads, block_rows=block_rows)
            assert np.array_equal(out.indptr, ref.indptr)
            assert np.array_equal(out.indices, ref.indices)
            assert np.array_equal(out.data, ref.data, equal_nan=True)


def test_fortran_and_strided_input():
    dense = _matrix((30, 20), np.float64, seed=4)
    _check(dense_to_csr(np.asfortranarray(dense), block_rows=7), dense, "zero")
    view = dense[::2, 1::3]
    _check(dense_to_csr(view, missing="nan"), np.ascontiguousarray(view), "nan")


def test_equals_scipy_under_zero_rule():
    dense = _matrix((64, 48), np.float32, seed=6)
    dense[np.isnan(dense)] = 0
    ours = dense_to_csr(dense)
    theirs = sp.csr_matrix(dense)
    assert (ours != theirs).nnz == 0 and ours.nnz == theirs.nnz


def test_blocks_and_counts():
    dense = _matrix((19, 6), np.float32, seed=8)
    data, indices, indptr = csr_reference(dense, "nan")
    assert np.array_equal(count_rows(dense, missing="nan", block_rows=4), np.diff(indptr))
    blocks = list(iter_csr_blocks(dense, missing="nan", block_rows=4, index_dtype=np.int64))
    assert [b.row_start for b in blocks] == [0, 4, 8, 12, 16]
    assert np.array_equal(np.concatenate([b.indices for b in blocks]), indices)
    out = csr_from_blocks([dense[:5], dense[5:5], dense[5:]], 6, missing="nan")
    _check(out, dense, "nan")


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="2-D"):
        dense_to_csr(np.zeros(3))
    with pytest.raises(TypeError, match="supports"):
        dense_to_csr(np.zeros((2, 2), dtype=np.complex64))
    with pytest.raises(ValueError, match="missing"):
        dense_to_csr(np.zeros((2, 2)), missing="negative")
