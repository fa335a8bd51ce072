"""Filling a chunked gzip dataset made by someone else: a whole 1-D column compressed on several threads.

HDF5 runs its filters on one thread; the spike times of a large recording (160 MB for
20 M spikes) spend seconds in gzip.  When another library creates the dataset (its
shape, chunks, shuffle and gzip filters; the NWB export lets hdmf do it, through a
placeholder that writes nothing), :func:`fill_column` and :class:`CompressedColumn`
compress the column with the engine's one chunk-filling gzip writer
(:class:`h5stream.writer.gzip.GzipChunks`: the deflate kernel on every allowed core, with
libdeflate the byte planes that do not compress stored as they are) and store each chunk
with ``write_direct_chunk``.

:class:`CompressedColumn` starts that compression at once on background threads (the
writer's eager schedule), so it runs while pynwb builds and writes the rest of the file,
and its :meth:`~CompressedColumn.fill` then only stores the chunks.
"""

from __future__ import annotations

import h5py
import numpy as np

from h5stream.writer.gzip import GzipChunks

__all__ = ["fill_column", "CompressedColumn"]


class CompressedColumn:
    """The chunks of a whole 1-D column, gzip ``level`` + shuffle, compressed on background threads from now on.

    ``chunk`` elements per chunk (the dataset's chunk shape);
    ``threads``: default every allowed core (:func:`h5stream.cores.sharing_threads`: the chunks are
    independent tasks of one queue, so a thread the scheduler pauses delays none of the others; with
    one of two cores busy, two threads exported 20 M spike times in 2.45 s where one took 2.68 s);
    ``implementation``: the deflate kernel (``"auto"``, ``"zlib"``, ``"libdeflate"``).
    :meth:`fill` stores the chunks in order as they complete; :meth:`close` stops what has not
    started (call it when the column is not written).
    """

    def __init__(self, array: np.ndarray, chunk: int, level: int, threads: int | None = None,
                 implementation: str = "auto") -> None:
        if array.ndim != 1 or chunk < 1:
            raise ValueError(f"a 1-D column and a positive chunk length are needed (found shape {array.shape}, "
                             f"chunk {chunk})")
        self.array = np.ascontiguousarray(array)
        self.chunk, self.level = int(chunk), int(level)
        self._chunks = GzipChunks(self.array, (self.chunk,), self.level, shuffle=True, implementation=implementation,
                                  threads=threads, eager=True) if self.array.size else None

    @property
    def stored_planes(self) -> int:
        """Leading byte planes of each chunk stored as they are (see :mod:`h5stream.writer.gzip`)."""
        return self._chunks.n_stored_planes if self._chunks is not None else 0

    def fill(self, dset: h5py.Dataset) -> None:
        """Store the column in ``dset`` (created with this column's chunk, shuffle and gzip ``level``).

        A dataset whose chunks or filters are not exactly these (shuffle then gzip
        ``level``) is written through h5py instead (HDF5 compresses it).
        """
        if dset.shape != self.array.shape:
            self.close()
            raise ValueError(f"{dset.name}: shape {dset.shape} does not fit the column of shape {self.array.shape}")
        if self._chunks is None or not self._chunks.filters_match(dset):
            self.close()
            dset[...] = self.array
            return
        self._chunks.store(dset)

    def close(self) -> None:
        """Cancel the chunks not started and wait for the running ones."""
        if self._chunks is not None:
            self._chunks.close()


def fill_column(dset: h5py.Dataset, array: np.ndarray, level: int, threads: int | None = None,
                implementation: str = "auto") -> None:
    """Write the 1-D ``array`` into ``dset`` (chunked, shuffle and gzip ``level``), compressing on ``threads``.

    ``threads``: default every allowed core (:func:`h5stream.cores.sharing_threads`).
    ``implementation``: the deflate kernel (``"auto"``, ``"zlib"``, ``"libdeflate"``).
    A dataset whose filters are not exactly shuffle then gzip ``level`` is written
    through h5py instead (HDF5 compresses it).
    """
    if dset.shape != array.shape or array.ndim != 1 or dset.chunks is None:
        raise ValueError(f"{dset.name}: shape {dset.shape}, chunks {dset.chunks} do not fit the column "
                         f"of shape {array.shape}")
    CompressedColumn(array, dset.chunks[0], level, threads, implementation).fill(dset)
