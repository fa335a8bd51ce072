"""A whole 1-D column compressed on several threads and written chunk by chunk, for the NWB export.

HDF5 runs its filters on one thread; the spike times of a large recording (160 MB for
20 M spikes) spend seconds in gzip.  :func:`gzip_column` hands hdmf a placeholder that
makes it create the dataset (its shape, chunks, shuffle and gzip filters) without
writing anything; once pynwb has written the file's structure, :func:`fill_column`
compresses the chunks with the engine's deflate kernel (:func:`h5stream.codecs.deflate_kernel`:
libdeflate when installed, else the compiled zlib kernel, both without the GIL) on the
cores free at the time, and stores each one with ``write_direct_chunk``.  A chunk is what
HDF5's own pipeline stores: the shuffle filter's byte planes, then a zlib stream (with the
zlib kernel byte for byte the same; libdeflate's stream may differ in its bytes and
decodes to the same data), an edge chunk padded to the full chunk size.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np

from h5stream.codecs import deflate_kernel
from h5stream.cores import free_cores

__all__ = ["gzip_column", "fill_column"]

#: Bytes of chunks compressed per batch (each batch's chunks are shared among the threads).
BATCH_BYTES = 16 << 20


def gzip_column(array: np.ndarray, chunk: int, level: int, h5dataio):
    """The ``data`` of a column that :func:`fill_column` fills after the write (gzip ``level`` + shuffle)."""
    from hdmf.data_utils import AbstractDataChunkIterator

    class Placeholder(AbstractDataChunkIterator):
        """Creates the dataset through hdmf and yields no data."""

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


def fill_column(dset: h5py.Dataset, array: np.ndarray, level: int, threads: int | None = None,
                implementation: str = "auto") -> None:
    """Write the 1-D ``array`` into ``dset`` (created by :func:`gzip_column`), compressing on ``threads``.

    ``threads``: default the cores free now (:func:`h5stream.cores.free_cores`).
    ``implementation``: the deflate kernel (``"auto"``, ``"zlib"``, ``"libdeflate"``).
    A dataset whose filters are not exactly shuffle then gzip ``level`` is written
    through h5py instead (HDF5 compresses it).
    """
    if dset.shape != array.shape or array.ndim != 1 or dset.chunks is None:
        raise ValueError(f"{dset.name}: shape {dset.shape}, chunks {dset.chunks} do not fit the column "
                         f"of shape {array.shape}")
    item = array.dtype.itemsize
    if _pipeline(dset) != [(h5py.h5z.FILTER_SHUFFLE, (item,)), (h5py.h5z.FILTER_DEFLATE, (level,))]:
        dset[...] = array
        return
    kernel = deflate_kernel(implementation)
    chunk = dset.chunks[0]
    nbytes = chunk * item
    n_chunks = -(-array.shape[0] // chunk)
    flat = np.ascontiguousarray(array).view(np.uint8)
    threads = threads or free_cores()
    per_batch = max(threads, min(n_chunks, BATCH_BYTES // nbytes))
    packed = np.empty((per_batch, int(kernel.deflate_bound(nbytes))), np.uint8)
    sizes = np.empty(per_batch, np.int64)
    dsid = dset.id

    def compress(source: np.ndarray, lo: int, hi: int) -> int:
        # One serial kernel call per share of a batch; the kernel releases the GIL.
        return kernel._deflate_chunks(source[lo:hi], packed[lo:hi], sizes[lo:hi], hi - lo, level, item, 1)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for first in range(0, n_chunks, per_batch):
            count = min(per_batch, n_chunks - first)
            stop = (first + count) * nbytes
            if stop <= flat.size:
                source = flat[first * nbytes:stop].reshape(count, nbytes)  # whole chunks: a view
            else:
                source = np.zeros((count, nbytes), np.uint8)  # the edge chunk, zero-padded as HDF5 stores it
                tail = flat[first * nbytes:]
                source.reshape(-1)[:tail.size] = tail
            bounds = np.linspace(0, count, min(threads, count) + 1).astype(int)
            failures = sum(f.result() for f in [pool.submit(compress, source, int(lo), int(hi))
                                                for lo, hi in zip(bounds, bounds[1:])])
            if failures:
                raise OSError(f"{dset.name}: the deflate kernel failed on {failures} chunk(s)")
            for i in range(count):
                dsid.write_direct_chunk(((first + i) * chunk,), packed[i, :int(sizes[i])], 0)
