"""A whole 1-D column compressed on several threads and written chunk by chunk, for the NWB export.

HDF5 runs its filters on one thread; the spike times of a large recording (160 MB for
20 M spikes) spend seconds in gzip.  :func:`gzip_column` hands hdmf a placeholder that
makes it create the dataset (its shape, chunks, gzip and shuffle filters) without
writing anything; once pynwb has written the file's structure, :func:`fill_column`
compresses the chunks on a few threads (``zlib`` releases the GIL) and stores each one
with ``write_direct_chunk``.  The bytes are those HDF5's own pipeline writes: the shuffle
filter's byte planes, then a zlib stream (HDF5's deflate filter is zlib's ``compress2``),
an edge chunk padded to the full chunk size as HDF5 stores it.
"""

from __future__ import annotations

import collections
import os
import zlib
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np

__all__ = ["gzip_column", "fill_column", "compress_threads"]


def compress_threads() -> int:
    """Threads for compression: the CPUs this process may use, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def gzip_column(array: np.ndarray, chunk: int, level: int, h5dataio):
    """The ``data`` of a column that :func:`fill_column` fills after the write (gzip ``level`` + shuffle)."""
    from hdmf.data_utils import AbstractDataChunkIterator

    class Placeholder(AbstractDataChunkIterator):
        """Creates the dataset through hdmf and yields no data."""

        def __init__(self):
            self.array = array

        def __iter__(self):
            return self

        def __next__(self):
            raise StopIteration

        def recommended_chunk_shape(self):
            return (chunk,)

        def recommended_data_shape(self):
            return array.shape

        @property
        def dtype(self):
            return array.dtype

        @property
        def maxshape(self):
            return array.shape

    return h5dataio(Placeholder(), compression="gzip", compression_opts=level, shuffle=True, chunks=(chunk,))


def _pipeline(dset: h5py.Dataset) -> list[tuple[int, tuple]]:
    plist = dset.id.get_create_plist()
    return [(code, tuple(values)) for code, _flags, values, _name in
            (plist.get_filter(i) for i in range(plist.get_nfilters()))]


def fill_column(dset: h5py.Dataset, array: np.ndarray, level: int, threads: int | None = None) -> None:
    """Write ``array`` into ``dset`` (created by :func:`gzip_column`), compressing chunks on ``threads``.

    A dataset whose filters are not exactly shuffle then gzip ``level`` is written
    through h5py instead (HDF5 compresses it).
    """
    if dset.shape != array.shape or dset.chunks is None or len(dset.chunks) != 1:
        raise ValueError(f"{dset.name}: shape {dset.shape}, chunks {dset.chunks} do not fit the column "
                         f"of shape {array.shape}")
    item = array.dtype.itemsize
    if _pipeline(dset) != [(h5py.h5z.FILTER_SHUFFLE, (item,)), (h5py.h5z.FILTER_DEFLATE, (level,))]:
        dset[...] = array
        return
    chunk = dset.chunks[0]
    n_chunks = -(-array.shape[0] // chunk)

    def compress(k: int) -> bytes:
        part = array[k * chunk:(k + 1) * chunk]
        if part.shape[0] < chunk:
            padded = np.zeros(chunk, dtype=array.dtype)
            padded[:part.shape[0]] = part
            part = padded
        planes = np.ascontiguousarray(part).view(np.uint8).reshape(chunk, item).T.copy()
        return zlib.compress(planes, level)

    threads = threads or compress_threads()
    dsid = dset.id
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: collections.deque = collections.deque()
        for k in range(n_chunks):
            pending.append((k, pool.submit(compress, k)))
            while len(pending) > 2 * threads or (k == n_chunks - 1 and pending):
                index, future = pending.popleft()
                dsid.write_direct_chunk((index * chunk,), future.result(), 0)
