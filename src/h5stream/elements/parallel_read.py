"""Parallel read of deflate-compressed chunked datasets.

h5py decodes gzip chunks one after the other on the calling thread.  For a
dataset whose filter pipeline is exactly deflate, or shuffle then deflate, this
module reads the stored chunks with ``H5Dread_chunk`` (no filters) and decodes
them on several threads with the compiled zlib kernel
(:func:`h5stream.compression.deflate_kernel`, which releases the GIL), writing each chunk
straight into the preallocated output array.  A chunk that spans whole rows of
the output, and is not an edge chunk, is inflated in place (no copy); other
chunks go through a per-thread scratch buffer of one chunk.  No full-size
temporary is made.

HDF5 calls are serialised by h5py's global lock, so one thread reads a chunk
while the others inflate theirs: decoding, the costly part, runs in parallel.
For a file on the default (sec2) driver, each task also asks the kernel to
read ahead the stored bytes of the chunks that come after it
(``posix_fadvise(WILLNEED)``, a hint), so disk reads overlap decoding instead
of waiting for it.

Anything else (other filters, unallocated chunks, non-numeric types) is left to
h5py: :func:`parallel_deflate_layout` returns None for such datasets.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import math
import os

import h5py
import numpy as np

from h5stream import capabilities, checksums
from h5stream.compression import deflate_kernel
from h5stream.errors import FormatError
from h5stream.writer import resolve_threads

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

__all__ = ["DeflateLayout", "parallel_deflate_layout", "read_deflate_parallel"]

# Below this many chunks the thread pool costs more than it saves.
MIN_PARALLEL_CHUNKS = 2


@dataclasses.dataclass(frozen=True)
class DeflateLayout:
    """What the parallel reader needs to know about a dataset's storage."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    shuffle_position: int | None  # index of the shuffle filter in the pipeline, if any
    deflate_position: int
    fletcher32: bool = False  # the pipeline ends with Fletcher32: each stored chunk ends with its checksum




def parallel_deflate_layout(ds: h5py.Dataset) -> DeflateLayout | None:
    """The layout of ``ds`` when it can be read in parallel, else None.

    Accepted: a chunked dataset of a plain numeric or boolean type whose filter
    pipeline is exactly ``[deflate]`` or ``[shuffle, deflate]`` (either followed
    by Fletcher32, checked here as HDF5 would) and whose chunks are all allocated.
    """
    if ds.chunks is None or ds.shape is None or ds.ndim == 0 or ds.size == 0:
        return None
    dtype = ds.dtype
    if dtype.kind not in "biufc" or dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        return None
    dsid = ds.id
    dcpl = dsid.get_create_plist()
    codes = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
    fletcher = bool(codes) and codes[-1] == h5py.h5z.FILTER_FLETCHER32
    if fletcher:
        codes = codes[:-1]
    if codes == [h5py.h5z.FILTER_DEFLATE]:
        shuffle_position = None
    elif codes == [h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_DEFLATE]:
        shuffle_position = 0
    else:
        return None
    chunks = tuple(int(c) for c in ds.chunks)
    n_grid = math.prod(math.ceil(s / c) for s, c in zip(ds.shape, chunks))
    if dsid.get_num_chunks() != n_grid:
        # Unwritten chunks read as the fill value: h5py handles that.
        return None
    return DeflateLayout(
        shape=tuple(int(s) for s in ds.shape),
        chunks=chunks,
        dtype=dtype,
        shuffle_position=shuffle_position,
        deflate_position=len(codes) - 1,
        fletcher32=fletcher,
    )


def read_deflate_parallel(
    ds: h5py.Dataset,
    out: np.ndarray | None = None,
    *,
    n_threads: int | None = None,
    layout: DeflateLayout | None = None,
) -> np.ndarray:
    """Read all of ``ds`` into a C-ordered array, inflating chunks in parallel.

    Parameters
    ----------
    ds : h5py.Dataset
        A dataset accepted by :func:`parallel_deflate_layout`.
    out : numpy.ndarray, optional
        C-contiguous array of the dataset's shape and dtype to fill.
    n_threads : int, optional
        Decoding threads (default: the cores this process may use); 1 decodes
        on the calling thread.
    layout : DeflateLayout, optional
        The result of :func:`parallel_deflate_layout`, if already known.

    Returns
    -------
    numpy.ndarray
        ``out`` (or a new array), equal to ``ds[()]``.

    Raises
    ------
    FormatError
        The dataset cannot be read this way, or a chunk does not decode.
    """
    layout = layout or parallel_deflate_layout(ds)
    if layout is None:
        raise FormatError(
            "dataset is not a fully allocated deflate(+shuffle) chunked numeric dataset",
            path=ds.file.filename, obj=ds.name, hint="read it with h5py",
        )
    if out is None:
        out = np.empty(layout.shape, layout.dtype)
    elif out.shape != layout.shape or out.dtype != layout.dtype or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(
            f"out must be a writeable C-contiguous {layout.dtype} array of shape {layout.shape}, "
            f"got {out.dtype} {out.shape}"
        )
    # one chunk is one thread's work: no need to ask how many cores are free (five samples of the load, 5 ms)
    one_chunk = all(c >= n for c, n in zip(layout.chunks, layout.shape))
    _read_kernel(ds, out, layout, 1 if one_chunk and n_threads is None else resolve_threads(n_threads))
    return out


def _chunk_origins(shape: tuple[int, ...], chunks: tuple[int, ...]) -> list[tuple[int, ...]]:
    counts = [math.ceil(s / c) for s, c in zip(shape, chunks)]
    return [tuple(i * c for i, c in zip(idx, chunks)) for idx in np.ndindex(*counts)]


def _read_kernel(ds: h5py.Dataset, out: np.ndarray, layout: DeflateLayout, n_threads: int) -> None:
    # inflating is deterministic: the fastest installed implementation decodes the same bytes
    kernel = deflate_kernel("auto")
    shape, chunks, itemsize = layout.shape, layout.chunks, layout.dtype.itemsize
    chunk_nbytes = math.prod(chunks) * itemsize
    row_bytes = math.prod(shape[1:]) * itemsize
    whole_rows = tuple(chunks[1:]) == tuple(shape[1:])
    flat = out.reshape(-1).view(np.uint8)
    shuffle_itemsize = itemsize if layout.shuffle_position is not None and itemsize > 1 else 0
    deflate_bit = 1 << layout.deflate_position
    shuffle_bit = 0 if layout.shuffle_position is None else 1 << layout.shuffle_position
    origins = _chunk_origins(shape, chunks)
    read_capacity = max(int(kernel.deflate_bound(chunk_nbytes)), chunk_nbytes) + 4
    fletcher_bit = 1 << (layout.deflate_position + 1)
    dsid = ds.id

    def decode_chunks(lo: int, hi: int) -> None:
        # Per-thread buffers: one for the stored bytes, one for a decoded edge
        # chunk, one for the shuffled planes.
        stored = np.empty(read_capacity, np.uint8)
        decoded = np.empty(chunk_nbytes, np.uint8)
        planes = np.empty(chunk_nbytes if shuffle_itemsize else 0, np.uint8)
        for origin in origins[lo:hi]:
            mask, raw = dsid.read_direct_chunk(origin, out=stored)
            if layout.fletcher32 and not mask & fletcher_bit:
                raw = checksums.strip_fletcher32(raw, path=ds.file.filename, obj=ds.name,
                                                 where=f" in the chunk at {origin}")
            stops = tuple(min(o + c, s) for o, c, s in zip(origin, chunks, shape))
            in_place = whole_rows and stops[0] - origin[0] == chunks[0]
            if in_place:
                start = origin[0] * row_bytes
                target = flat[start : start + chunk_nbytes]
            else:
                target = decoded
            produced = kernel._inflate_chunk(
                raw, target, planes, not (mask & deflate_bit),
                0 if mask & shuffle_bit else shuffle_itemsize,
            )
            if produced != chunk_nbytes:
                raise FormatError(
                    "a compressed chunk does not decode", path=ds.file.filename, obj=ds.name,
                    expected=f"{chunk_nbytes} bytes after inflate", found=f"zlib status {produced}",
                    hint=f"chunk at {origin}",
                )
            if not in_place:
                block = decoded.view(layout.dtype).reshape(chunks)
                out[tuple(slice(o, e) for o, e in zip(origin, stops))] = block[
                    tuple(slice(0, e - o) for o, e in zip(origin, stops))
                ]

    parallel = n_threads > 1 and len(origins) >= MIN_PARALLEL_CHUNKS
    # Small slices keep threads busy until the end even on a loaded machine.
    n_tasks = min(len(origins), n_threads * 8) if parallel else 1
    bounds = np.linspace(0, len(origins), n_tasks + 1).astype(int)
    with _readahead(ds) as advise:

        def task(lo: int, hi: int) -> None:
            # The chunks of the tasks next in line are read ahead while this one decodes.
            advise(hi, hi + (hi - lo) * n_threads)
            decode_chunks(lo, hi)

        if not parallel:
            task(0, len(origins))
            return
        with concurrent.futures.ThreadPoolExecutor(max_workers=n_threads) as pool:
            futures = [pool.submit(task, int(lo), int(hi)) for lo, hi in zip(bounds, bounds[1:])]
            for future in futures:
                future.result()


@contextlib.contextmanager
def _readahead(ds: h5py.Dataset):
    """Yield ``advise(lo, hi)``: hint the kernel to read the stored bytes of chunks ``lo..hi-1``.

    Only for files on the sec2 driver (a plain file descriptor can be
    advised); elsewhere ``advise`` does nothing.  Chunks are numbered in the
    row-major grid order used by the reader; their file extents come from one
    pass of ``H5Dchunk_iter``.
    """
    fd = None
    extents: dict[tuple[int, ...], tuple[int, int]] = {}
    if ds.file.driver == "sec2" and capabilities.fadvise() and hasattr(ds.id, "chunk_iter"):
        with contextlib.suppress(Exception):
            base = int(ds.file.userblock_size)
            ds.id.chunk_iter(
                lambda info: extents.__setitem__(tuple(info.chunk_offset), (base + info.byte_offset, info.size))
            )
            fd = os.open(ds.file.filename, os.O_RDONLY)
    origins = _chunk_origins(tuple(ds.shape), tuple(ds.chunks)) if fd is not None else []

    def advise(lo: int, hi: int) -> None:
        spans = [extents[o] for o in origins[lo:hi] if o in extents]
        if fd is None or not spans:
            return
        start = min(s for s, _ in spans)
        stop = max(s + n for s, n in spans)
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, start, stop - start, os.POSIX_FADV_WILLNEED)

    try:
        yield advise
    finally:
        if fd is not None:
            os.close(fd)
