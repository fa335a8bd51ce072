"""scipy sparse CSR/CSC elements: format, class, index dtype and explicit zeros kept."""

from __future__ import annotations


import numpy as np
import pytest
import scipy.sparse as sp

from h5stream.elements import read_elem, write_dense_as_csr, write_elem
from tests.reference import csr_reference


def _same_sparse(a, b):
    assert type(a) is type(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    assert a.indices.dtype == b.indices.dtype and a.indptr.dtype == b.indptr.dtype
    assert np.array_equal(a.indptr, b.indptr)
    assert np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.data, b.data, equal_nan=True)


@pytest.mark.parametrize("cls", [sp.csr_matrix, sp.csc_matrix, sp.csr_array, sp.csc_array])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_format_class_and_index_dtype_are_kept(h5, cls, index_dtype):
    fmt = "csr" if cls in (sp.csr_matrix, sp.csr_array) else "csc"
    m = cls(sp.random(30, 20, density=0.2, format=fmt, random_state=3, dtype=np.float32))
    m.indices = m.indices.astype(index_dtype)
    m.indptr = m.indptr.astype(index_dtype)
    m.data[:3] = 0  # explicit zeros stay stored
    write_elem(h5, "m", m, compression="gzip")
    back = read_elem(h5["m"])
    _same_sparse(back, m)
    assert back.nnz == m.nnz
    assert h5["m"].attrs["encoding-type"] == f"{fmt}_matrix"


@pytest.mark.parametrize("shape", [(0, 0), (0, 5), (5, 0), (4, 6)])
def test_empty_matrices_and_empty_rows(h5, shape):
    m = sp.csr_matrix(shape, dtype=np.float64)
    write_elem(h5, "m", m)
    _same_sparse(read_elem(h5["m"]), m)


def test_integer_and_bool_data(h5):
    m = sp.csr_matrix(np.array([[0, 3], [-1, 0]], dtype=np.int8))
    b = sp.csc_matrix(np.array([[True, False], [False, True]]))
    write_elem(h5, "m", m)
    write_elem(h5, "b", b)
    _same_sparse(read_elem(h5["m"]), m)
    _same_sparse(read_elem(h5["b"]), b)


@pytest.mark.parametrize("missing", ["zero", "nan", "zero_or_nan"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_dense_written_as_csr_matches_reference(h5, missing, order):
    rng = np.random.default_rng(5)
    dense = rng.normal(size=(57, 13)).astype(np.float32)
    dense[rng.random(dense.shape) < 0.5] = 0
    dense[rng.random(dense.shape) < 0.2] = np.nan
    dense[7] = np.nan
    dense[8] = 0
    dense = np.asarray(dense, order=order)
    write_dense_as_csr(h5, "x", dense, missing=missing, block_rows=10, options=None)
    back = read_elem(h5["x"])
    data, indices, indptr = csr_reference(dense, missing)
    assert isinstance(back, sp.csr_matrix) and back.shape == dense.shape
    assert np.array_equal(back.indptr, indptr)
    assert np.array_equal(back.indices, indices)
    assert np.array_equal(back.data, data, equal_nan=True)


@pytest.mark.parametrize("dtype,bad", [(d, b) for d in ("<i4", "<i8", "<u4", "<i2")
                                       for b in (-1, -(2 ** 15), 0, 3, 4, 5, 2 ** 15 - 1)
                                       if np.iinfo(np.dtype(d)).min <= b])
def test_an_index_outside_the_columns_is_refused_in_any_index_dtype(tmp_path, dtype, bad):
    """A CSR group written with plain h5py, one index set to ``bad``: refused when ``bad`` lies outside
    [0, 4) (the reference: that comparison), read as written when it lies inside."""
    import h5py
    from scipy import sparse

    from h5stream.elements import read_elem
    from h5stream.errors import FormatError

    indices = np.array([0, 1, 2, 3], dtype=dtype)
    indices[2] = bad
    with h5py.File(tmp_path / "m.h5", "w") as f:
        g = f.create_group("m")
        g.attrs["encoding-type"], g.attrs["encoding-version"] = "csr_matrix", "0.1.0"
        g.attrs["shape"] = np.array([4, 4])
        g.create_dataset("data", data=np.ones(4))
        g.create_dataset("indices", data=indices)
        g.create_dataset("indptr", data=np.array([0, 1, 2, 3, 4]))
        if 0 <= bad < 4:
            back = read_elem(g)
            assert sparse.issparse(back) and back.indices.tolist() == indices.tolist()
        else:
            with pytest.raises(FormatError, match=r"indices outside \[0, 4\)"):
                read_elem(g)
