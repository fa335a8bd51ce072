"""scipy sparse CSR/CSC: ``csr_matrix`` / ``csc_matrix`` 0.1.0.

A group with attribute ``shape`` and datasets ``data``, ``indices`` and
``indptr`` (the AnnData layout).  The format (CSR or CSC), the dtypes of all
three arrays (int32 or int64 indices, as given), explicit zeros and the order
of stored entries are kept.  ``h5stream:sparse-class`` records whether the
value was a sparse *matrix* or a sparse *array* so the same class comes back.

:func:`write_dense_as_csr` encodes a dense matrix straight into a
``csr_matrix`` element with a missing-value rule, row block by row block,
through the compiled kernel of :mod:`h5stream.kernels.csr`; memory beyond the
dense input stays bounded by one block.
"""

from __future__ import annotations

import h5py
import numpy as np
import scipy.sparse as sp

from h5stream.elements.arrays import read_array_node
from h5stream.elements.registry import ElementSpec, register_reader, register_writer, stamp
from h5stream.elements.snapshot import Node
from h5stream.errors import FormatError
from h5stream.writer import WriteOptions, layout_kwargs, write_array

__all__ = ["CSR", "CSC", "write_dense_as_csr"]

CSR = ElementSpec("csr_matrix", "0.1.0")
CSC = ElementSpec("csc_matrix", "0.1.0")
CLASS_ATTR = "h5stream:sparse-class"

_CLASSES = {
    ("csr", "matrix"): sp.csr_matrix,
    ("csc", "matrix"): sp.csc_matrix,
    ("csr", "array"): sp.csr_array,
    ("csc", "array"): sp.csc_array,
}


def _write_compressed(parent: h5py.Group, key: str, value, options: WriteOptions) -> h5py.Group:
    group = parent.create_group(key)
    group.attrs["shape"] = np.asarray(value.shape, dtype=np.int64)
    group.attrs[CLASS_ATTR] = "array" if isinstance(value, sp.sparray) else "matrix"
    # 1-D chunks of the nonzeros: the writer picks ~1 MiB chunks and compresses in parallel.
    write_array(group, "data", np.ascontiguousarray(value.data), options)
    write_array(group, "indices", np.ascontiguousarray(value.indices), options)
    write_array(group, "indptr", np.ascontiguousarray(value.indptr), options)
    return group


for _cls in (sp.csr_matrix, sp.csr_array):
    register_writer(_cls, CSR)(_write_compressed)
for _cls in (sp.csc_matrix, sp.csc_array):
    register_writer(_cls, CSC)(_write_compressed)


def _read_compressed(node: Node, fmt: str):
    """The matrix of the group ``node`` describes."""
    group = node.obj
    shape = tuple(int(s) for s in node.attrs["shape"])
    kind = node.attrs.get(CLASS_ATTR, "matrix")
    data, indices, indptr = (read_array_node(member) for member in node.members(("data", "indices", "indptr")))
    cls = _CLASSES.get((fmt, kind))
    if cls is None or len(shape) != 2:
        raise FormatError(
            "sparse matrix attributes are invalid", path=group.file.filename, obj=group.name,
            expected="shape of two ints and sparse class 'matrix' or 'array'",
            found=f"shape {shape}, class {kind!r}",
        )
    _check_compressed(group, data, indices, indptr, shape, fmt)
    out = cls((data, indices, indptr), shape=shape, copy=False)
    # The constructor may narrow index dtypes; keep what was stored.
    out.indices = indices
    out.indptr = indptr
    return out


def _outside(indices: np.ndarray, n: int) -> bool:
    """Whether any index lies outside ``[0, n)``: one pass (a negative signed index read as unsigned is at
    least 2**(bits-1), beyond any ``n``)."""
    if indices.dtype.kind == "i" and n <= 2 ** (8 * indices.dtype.itemsize - 1):
        return int(indices.view(np.dtype(f"u{indices.dtype.itemsize}")).max()) >= n
    if indices.dtype.kind == "u":
        return int(indices.max()) >= n
    return bool(indices.min() < 0 or indices.max() >= n)


def _check_compressed(group, data, indices, indptr, shape, fmt) -> None:
    """Refuse index arrays that would make scipy read out of bounds."""
    n_major, n_minor = shape if fmt == "csr" else shape[::-1]
    problem = None
    if indptr.ndim != 1 or indptr.size != n_major + 1:
        problem = f"indptr has {indptr.size} entries for {n_major} rows/columns"
    elif data.shape != indices.shape or data.ndim != 1:
        problem = f"data {data.shape} and indices {indices.shape} differ"
    elif indptr[0] != 0 or indptr[-1] != data.size or np.any(np.diff(indptr) < 0):
        problem = "indptr does not run non-decreasing from 0 to nnz"
    elif indices.size and _outside(indices, n_minor):
        problem = f"indices outside [0, {n_minor})"
    if problem is not None:
        raise FormatError(
            "sparse matrix arrays are inconsistent", path=group.file.filename, obj=group.name,
            expected=f"a valid {fmt.upper()} structure for shape {tuple(shape)}", found=problem,
        )


@register_reader(CSR, node=True)
def _read_csr(node: Node, *, series: bool = False):
    return _read_compressed(node, "csr")


@register_reader(CSC, node=True)
def _read_csc(node: Node, *, series: bool = False):
    return _read_compressed(node, "csc")


def write_dense_as_csr(
    parent: h5py.Group,
    key: str,
    dense: np.ndarray,
    *,
    missing: str = "zero",
    options: WriteOptions | None = None,
    block_rows: int | None = None,
    n_threads: int | None = None,
) -> h5py.Group:
    """Encode ``dense`` into a ``csr_matrix`` element without building it in memory.

    Parameters
    ----------
    parent, key
        Where the element goes.
    dense : numpy.ndarray
        2-D numeric matrix (any memory order; non-C blocks are copied one block at a time).
    missing : {"zero", "nan", "zero_or_nan"}
        Which entries are left out: zeros (explicit NaN kept), NaN (zeros
        kept as explicit entries), or both.
    options : WriteOptions, optional
        Compression of the three datasets.
    block_rows : int, optional
        Rows per block (default: about 16 MiB of dense input).
    n_threads : int, optional
        Threads of the compiled kernel.

    Notes
    -----
    Two passes over ``dense``: the first counts the stored entries of every
    row (``indptr``), so the ``data`` and ``indices`` datasets are created at
    their final size; the second encodes one block at a time and writes it.
    Index dtype: int32 when the matrix allows it, else int64 (as scipy does).
    """
    from h5stream.kernels.csr import count_rows, iter_csr_blocks

    options = options or WriteOptions()
    counts = count_rows(dense, missing=missing, block_rows=block_rows, n_threads=n_threads)
    indptr = np.zeros(dense.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    nnz = int(indptr[-1])
    index_dtype = np.int32 if max(nnz, dense.shape[1]) < 2**31 else np.int64
    group = parent.create_group(key)
    group.attrs["shape"] = np.asarray(dense.shape, dtype=np.int64)
    group.attrs[CLASS_ATTR] = "matrix"
    data_ds = group.create_dataset(
        "data", shape=(nnz,), dtype=dense.dtype, **layout_kwargs((nnz,), dense.dtype.itemsize, options)
    )
    indices_ds = group.create_dataset(
        "indices", shape=(nnz,), dtype=index_dtype, **layout_kwargs((nnz,), np.dtype(index_dtype).itemsize, options)
    )
    for block in iter_csr_blocks(
        dense, missing=missing, block_rows=block_rows, n_threads=n_threads, index_dtype=index_dtype
    ):
        start = int(indptr[block.row_start])
        stop = start + block.data.size
        if stop > start:
            data_ds[start:stop] = block.data
            indices_ds[start:stop] = block.indices
    write_array(group, "indptr", indptr.astype(index_dtype, copy=False), options)
    stamp(group, CSR)
    return group
