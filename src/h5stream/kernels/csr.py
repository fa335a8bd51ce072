"""Chunked CSR encoding of dense matrices with a missing-value rule.

The compiled kernel (``h5stream._ext._csr``) works on one block of rows at a
time, in two passes: count the stored entries per row, then fill ``data`` and
``indices``.  Blocks are spread over Python threads (the kernel releases the
GIL); a thread takes the next block when it finishes one, which keeps both
cores busy even when the machine is shared.  Peak memory beyond the input and the output is one block (a
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

import concurrent.futures
import dataclasses
import logging
from functools import partial
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


@dataclasses.dataclass
class CsrBlock:
    """CSR of rows ``row_start:row_stop``; ``indptr`` is local (starts at 0)."""

    row_start: int
    row_stop: int
    indptr: np.ndarray
    data: np.ndarray
    indices: np.ndarray


def _kernel():
    from h5stream.native import compiled

    return compiled("_csr")


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


def _row_ranges(n_rows: int, step: int) -> list[tuple[int, int]]:
    if step < 1:
        raise ValueError(f"block_rows must be >= 1, found {step}")
    return [(start, min(n_rows, start + step)) for start in range(0, n_rows, step)]


def _rows(dense: np.ndarray, start: int, stop: int) -> np.ndarray:
    # A view when the input is C-contiguous; otherwise these rows are copied.
    return np.ascontiguousarray(dense[start:stop])


def _parallel(tasks: list, threads: int) -> None:
    """Run argument-less callables on ``threads`` Python threads (kernels release the GIL).

    Threads take the next task when they finish one, so a thread the OS
    pauses on a busy machine delays only its own task, not a barrier every
    other thread waits at (as an OpenMP loop over rows would).
    """
    if threads <= 1 or len(tasks) <= 1:
        for task in tasks:
            task()
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(threads, len(tasks))) as pool:
        for future in [pool.submit(task) for task in tasks]:
            future.result()


def _task_rows(dense: np.ndarray, block_rows: int | None, threads: int) -> int:
    """Rows per task: the block size, split so every thread gets work."""
    step = block_rows or default_block_rows(dense)
    if threads > 1 and dense.shape[0] < step * threads * 4:
        step = max(1, -(-dense.shape[0] // (threads * 4)))
    return step


def _count_range(kernel, dense, counts, rule, start, stop) -> None:
    kernel._count_rows(_rows(dense, start, stop), counts[start:stop], rule, 1)


def _fill_range(kernel, dense, starts, data, indices, rule, start, stop) -> None:
    failed = np.zeros(1, dtype=np.int32)
    kernel._fill_rows(_rows(dense, start, stop), starts[start:stop], data, indices, rule, 1, failed)
    if failed[0]:
        raise MemoryError("dense-to-CSR kernel could not allocate its scratch row")


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
    step = _task_rows(dense, block_rows, threads)
    _parallel(
        [partial(_count_range, kernel, dense, counts, rule, a, b) for a, b in _row_ranges(dense.shape[0], step)],
        threads,
    )
    return counts


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
    """Encode ``dense`` one row block at a time; each block's arrays are fresh.

    Within a block, row ranges are encoded on ``n_threads`` threads.
    """
    _validate(dense, missing)
    threads = resolve_threads(n_threads)
    index_dtype = np.dtype(index_dtype)
    if index_dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise TypeError(f"index_dtype must be int32 or int64, found {index_dtype}")
    step = block_rows or default_block_rows(dense)
    for start, stop in _row_ranges(dense.shape[0], step):
        # Count then fill this block, each pass split over the threads.
        local = dense_to_csr(
            dense[start:stop], missing=missing, block_rows=None, n_threads=threads, index_dtype=index_dtype
        )
        yield CsrBlock(start, stop, local.indptr.astype(np.int64, copy=False), local.data, local.indices)


def dense_to_csr(
    dense: np.ndarray,
    *,
    missing: str = "zero",
    block_rows: int | None = None,
    n_threads: int | None = None,
    sparse_array: bool = False,
    index_dtype=None,
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
        Threads running the compiled kernel over blocks (default: all cores).
    sparse_array : bool
        Return ``scipy.sparse.csr_array`` instead of ``csr_matrix``.
    index_dtype : numpy dtype, optional
        int32 or int64; default int32 when the matrix allows it, else int64.

    Returns
    -------
    scipy.sparse.csr_matrix or csr_array
        Same dtype as ``dense``; column indices sorted within rows.

    Notes
    -----
    The first pass counts every row so ``data`` and ``indices`` are allocated
    once at their exact size; the second fills them block by block.  Extra
    memory: the output plus one block per thread (blocks are views of a
    C-contiguous input).
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
    index_dtype = np.dtype(index_dtype) if index_dtype is not None else np.dtype(_index_dtype(nnz, n_cols))
    data = np.empty(nnz, dtype=dense.dtype)
    indices = np.empty(nnz, dtype=index_dtype)
    if nnz:
        step = _task_rows(dense, block_rows, threads)
        starts = indptr[:-1]
        _parallel(
            [
                partial(_fill_range, kernel, dense, starts, data, indices, rule, a, b)
                for a, b in _row_ranges(n_rows, step)
            ],
            threads,
        )
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
