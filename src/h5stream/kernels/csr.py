"""Chunked CSR encoding of dense matrices with a missing-value rule.

The compiled kernel (``h5stream._ext._csr``) works on one block of rows at a
time, in two passes: count the stored entries per row, then fill ``data`` and
``indices``.  Peak memory beyond the input and the output is one block (a
C-contiguous copy only when the input is not C-contiguous), never the matrix:
scipy's ``csr_matrix(dense)`` builds full-size coordinate arrays first.

Missing-value rules (``missing=``):

* ``"zero"``: zeros are left out (as scipy does); NaN is stored;
* ``"nan"``: NaN is left out; zeros are stored as explicit entries (matrices
  where 0 is a measurement and NaN means "not observed");
* ``"zero_or_nan"``: both are left out.

Public functions: :func:`dense_to_csr` (in memory), :func:`iter_csr_blocks`
and :func:`count_rows` (streaming: :func:`h5stream.elements.write_dense_as_csr`
writes blocks to a file as they are encoded), :func:`csr_from_blocks` (encode
a stream of dense row blocks, e.g. read from disk).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator

import numpy as np
import scipy.sparse as sp

from h5stream.writer import resolve_threads

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

__all__ = [
    "MISSING_RULES",
    "CsrBlock",
    "count_rows",
    "iter_csr_blocks",
    "dense_to_csr",
    "csr_from_blocks",
    "default_block_rows",
]

MISSING_RULES = {"zero": 0, "nan": 1, "zero_or_nan": 2}
_SUPPORTED = {np.dtype(t) for t in (
    np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
    np.uint8, np.uint16, np.uint32, np.uint64,
)}
BLOCK_TARGET_BYTES = 16 << 20
# Blocks smaller than this run on one thread: starting a parallel region costs
# more than the work, most of all on a busy machine.
PARALLEL_MIN_ITEMS = 1 << 15


@dataclasses.dataclass
class CsrBlock:
    """CSR of rows ``row_start:row_stop``; ``indptr`` is local (starts at 0)."""

    row_start: int
    row_stop: int
    indptr: np.ndarray
    data: np.ndarray
    indices: np.ndarray


def _kernel():
    from h5stream._ext import _csr

    return _csr


def _validate(dense: np.ndarray, missing: str) -> int:
    if not isinstance(dense, np.ndarray) or dense.ndim != 2:
        raise ValueError(
            f"expected a 2-D numpy array, found {type(dense).__name__} "
            f"with shape {getattr(dense, 'shape', None)}"
        )
    if dense.dtype not in _SUPPORTED:
        raise TypeError(
            f"dense-to-CSR supports {sorted(str(d) for d in _SUPPORTED)}, found {dense.dtype}"
        )
    if missing not in MISSING_RULES:
        raise ValueError(f"missing must be one of {sorted(MISSING_RULES)}, found {missing!r}")
    return MISSING_RULES[missing]


def default_block_rows(dense: np.ndarray) -> int:
    """Rows per block: about 16 MiB of dense input, at least one row."""
    row_bytes = max(1, dense.shape[1] * dense.dtype.itemsize)
    return max(1, BLOCK_TARGET_BYTES // row_bytes)


def _row_blocks(dense: np.ndarray, block_rows: int | None) -> Iterator[tuple[int, int, np.ndarray]]:
    step = block_rows or default_block_rows(dense)
    if step < 1:
        raise ValueError(f"block_rows must be >= 1, found {step}")
    for start in range(0, dense.shape[0], step):
        stop = min(dense.shape[0], start + step)
        # A view when the input is C-contiguous; otherwise one block is copied.
        yield start, stop, np.ascontiguousarray(dense[start:stop])


def count_rows(
    dense: np.ndarray, *, missing: str = "zero", block_rows: int | None = None, n_threads: int | None = None
) -> np.ndarray:
    """Stored entries per row (int64, length ``n_rows``) under the rule ``missing``."""
    rule = _validate(dense, missing)
    threads = resolve_threads(n_threads)
    kernel = _kernel()
    counts = np.zeros(dense.shape[0], dtype=np.int64)
    if dense.shape[1] == 0:
        return counts
    for start, stop, block in _row_blocks(dense, block_rows):
        kernel._count_rows(block, counts[start:stop], rule, _threads_for(block, threads))
    return counts


def _threads_for(block: np.ndarray, threads: int) -> int:
    return threads if block.size >= PARALLEL_MIN_ITEMS else 1


def _fill(kernel, block, starts, data, indices, rule, threads) -> None:
    threads = _threads_for(block, threads)
    failed = np.zeros(1, dtype=np.int32)
    kernel._fill_rows(block, starts, data, indices, rule, threads, failed)
    if failed[0]:
        raise MemoryError("dense-to-CSR kernel could not allocate its per-thread scratch row")


def _index_dtype(nnz: int, n_cols: int) -> type:
    return np.int32 if max(nnz, n_cols) < 2**31 else np.int64


def iter_csr_blocks(
    dense: np.ndarray,
    *,
    missing: str = "zero",
    block_rows: int | None = None,
    n_threads: int | None = None,
    index_dtype=np.int32,
) -> Iterator[CsrBlock]:
    """Encode ``dense`` one row block at a time; each block's arrays are fresh."""
    rule = _validate(dense, missing)
    threads = resolve_threads(n_threads)
    index_dtype = np.dtype(index_dtype)
    if index_dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise TypeError(f"index_dtype must be int32 or int64, found {index_dtype}")
    kernel = _kernel()
    for start, stop, block in _row_blocks(dense, block_rows):
        counts = np.zeros(stop - start, dtype=np.int64)
        if dense.shape[1]:
            kernel._count_rows(block, counts, rule, _threads_for(block, threads))
        indptr = np.zeros(stop - start + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        nnz = int(indptr[-1])
        data = np.empty(nnz, dtype=dense.dtype)
        indices = np.empty(nnz, dtype=index_dtype)
        if nnz:
            _fill(kernel, block, indptr[:-1], data, indices, rule, threads)
        yield CsrBlock(start, stop, indptr, data, indices)


def dense_to_csr(
    dense: np.ndarray,
    *,
    missing: str = "zero",
    block_rows: int | None = None,
    n_threads: int | None = None,
    sparse_array: bool = False,
) -> sp.csr_matrix | sp.csr_array:
    """CSR of ``dense`` under a missing-value rule, built block by block.

    Parameters
    ----------
    dense : numpy.ndarray
        2-D matrix of float32/64 or an integer dtype, any memory order.
    missing : {"zero", "nan", "zero_or_nan"}
    block_rows : int, optional
        Rows per block (default about 16 MiB of input).
    n_threads : int, optional
        Threads of the compiled kernel (default: all cores).
    sparse_array : bool
        Return ``scipy.sparse.csr_array`` instead of ``csr_matrix``.

    Returns
    -------
    scipy.sparse.csr_matrix or csr_array
        Same dtype as ``dense``; int32 indices when they fit, else int64;
        column indices sorted within rows.

    Notes
    -----
    The first pass counts every row so ``data`` and ``indices`` are allocated
    once at their exact size; the second fills them block by block.  Extra
    memory: the output plus one block.
    """
    rule = _validate(dense, missing)
    threads = resolve_threads(n_threads)
    kernel = _kernel()
    n_rows, n_cols = dense.shape
    counts = count_rows(dense, missing=missing, block_rows=block_rows, n_threads=threads)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    del counts
    nnz = int(indptr[-1])
    index_dtype = _index_dtype(nnz, n_cols)
    data = np.empty(nnz, dtype=dense.dtype)
    indices = np.empty(nnz, dtype=index_dtype)
    if nnz:
        for start, stop, block in _row_blocks(dense, block_rows):
            _fill(kernel, block, indptr[start:stop], data, indices, rule, threads)
    return _assemble(data, indices, indptr.astype(index_dtype, copy=False), (n_rows, n_cols), sparse_array)


def _assemble(data, indices, indptr, shape, sparse_array: bool):
    cls = sp.csr_array if sparse_array else sp.csr_matrix
    out = cls((data, indices, indptr), shape=shape, copy=False)
    out.indices, out.indptr = indices, indptr
    out.has_sorted_indices = True
    return out


def csr_from_blocks(
    blocks: Iterable[np.ndarray],
    n_cols: int,
    *,
    missing: str = "zero",
    dtype=None,
    n_threads: int | None = None,
    sparse_array: bool = False,
) -> sp.csr_matrix | sp.csr_array:
    """CSR of a matrix given as a stream of dense row blocks (e.g. read from disk).

    Only one dense block is held at a time; encoded blocks are concatenated at
    the end.
    """
    parts: list[CsrBlock] = []
    n_rows = 0
    out_dtype = np.dtype(dtype) if dtype is not None else None
    for block in blocks:
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[1] != n_cols:
            raise ValueError(f"every block must have shape (rows, {n_cols}), found {block.shape}")
        out_dtype = out_dtype or block.dtype
        for part in iter_csr_blocks(block, missing=missing, block_rows=block.shape[0] or 1, n_threads=n_threads, index_dtype=np.int64):
            part.row_start += n_rows
            part.row_stop += n_rows
            parts.append(part)
        n_rows += block.shape[0]
    out_dtype = out_dtype or np.dtype(np.float64)
    nnz = sum(p.data.size for p in parts)
    index_dtype = _index_dtype(nnz, n_cols)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    data = np.empty(nnz, dtype=out_dtype)
    indices = np.empty(nnz, dtype=index_dtype)
    pos = 0
    for part in parts:
        k = part.data.size
        data[pos : pos + k] = part.data
        indices[pos : pos + k] = part.indices
        indptr[part.row_start + 1 : part.row_stop + 1] = part.indptr[1:] + pos
        pos += k
    return _assemble(data, indices, indptr.astype(index_dtype, copy=False), (n_rows, n_cols), sparse_array)
