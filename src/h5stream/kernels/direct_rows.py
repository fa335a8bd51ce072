"""Rows of a contiguous HDF5 dataset read straight from the disk (``O_DIRECT``), bypassing the page cache.

A streamed pass over a large raw file reads every byte exactly once.  Through
the page cache the kernel copies each page into the caller's buffer, which costs
about one core for the whole read (and much more when the machine is busy),
CPU that the filter and the averaging then lack.  With ``O_DIRECT`` the device
writes into the buffer itself; several requests are kept in flight so the disk
stays busy.

Only a dataset whose bytes are one plain run in the file qualifies: contiguous
layout, allocated, no external storage, native byte order, the file opened
read-only (not SWMR) with the default ``sec2`` driver.  Anything else, and any
system without ``O_DIRECT`` (or a file system refusing it), returns ``None`` from
:func:`open_direct_rows` and the caller reads through h5py as before.  Linux
writes back dirty cached pages of the range before a direct read, so a file
written just before is read correctly.
"""

from __future__ import annotations

import concurrent.futures
import os

import numpy as np

ALIGN = 4096
DEFAULT_PIECE_BYTES = 4 * 2**20
DEFAULT_DEPTH = 16


class DirectRows:
    """Reads rows ``[a, b)`` of one dataset into page-aligned buffers, ``depth`` pieces in flight.

    Use :func:`open_direct_rows` to build one; close it (or use it as a context
    manager) to release the file descriptor and the reader threads.
    """

    def __init__(self, path: str, offset: int, n_rows: int, row_shape: tuple[int, ...], dtype: np.dtype, *,
                 piece_bytes: int = DEFAULT_PIECE_BYTES, depth: int = DEFAULT_DEPTH):
        self.path = path
        self.offset = int(offset)
        self.n_rows = int(n_rows)
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(row_shape, dtype=np.int64)) * self.dtype.itemsize
        self.piece_bytes = max(ALIGN, int(piece_bytes) // ALIGN * ALIGN)
        self.depth = max(1, int(depth))
        self._fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def buffer(self, max_rows: int) -> np.ndarray:
        """A byte buffer able to take any ``max_rows`` consecutive rows (aligned at both ends)."""
        n = (int(max_rows) * self.row_bytes + 2 * ALIGN + ALIGN - 1) // ALIGN * ALIGN
        raw = np.empty(n + ALIGN, dtype=np.uint8)
        skip = (-raw.ctypes.data) % ALIGN
        return raw[skip : skip + n]

    def read(self, a: int, b: int, buffer: np.ndarray) -> np.ndarray:
        """Rows ``[a, b)`` as an array of shape ``(b - a, *row_shape)`` viewing ``buffer``."""
        lo = self.offset + a * self.row_bytes
        hi = self.offset + b * self.row_bytes
        first = lo - lo % ALIGN
        end = -(-hi // ALIGN) * ALIGN
        if end - first > buffer.size:
            raise ValueError(f"buffer: expected at least {end - first} bytes (found {buffer.size})")
        pieces = [(p, min(end, p + self.piece_bytes)) for p in range(first, end, self.piece_bytes)]
        view = memoryview(buffer)
        if len(pieces) == 1:
            self._read_piece(view, first, *pieces[0], hi)
        else:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(self.depth, thread_name_prefix="direct-rows")
            futures = [self._pool.submit(self._read_piece, view, first, p0, p1, hi) for p0, p1 in pieces]
            for future in futures:
                future.result()
        start = lo - first
        rows = buffer[start : start + (b - a) * self.row_bytes].view(self.dtype)
        return rows.reshape((b - a, *self.row_shape))

    def _read_piece(self, view: memoryview, first: int, p0: int, p1: int, needed_end: int) -> None:
        # Reads [p0, p1) of the file into view[p0 - first : p1 - first]; a short read is
        # only acceptable past ``needed_end`` (the end of the file lies inside the last page).
        pos = p0
        while pos < p1:
            n = os.preadv(self._fd, [view[pos - first : p1 - first]], pos)
            if n <= 0:
                if pos >= needed_end:
                    return
                raise OSError(f"{self.path}: the file ends at byte {pos}, expected data up to byte {needed_end}")
            pos += n
            if pos % 512 and pos < p1:  # not a sector boundary: the end of the file
                if pos >= needed_end:
                    return
                raise OSError(f"{self.path}: short read at byte {pos}, expected data up to byte {needed_end}")


def open_direct_rows(dataset, **kwargs) -> DirectRows | None:
    """A :class:`DirectRows` for an h5py dataset stored as one plain run of bytes, else ``None``."""
    if not hasattr(os, "O_DIRECT"):
        return None
    try:
        dsid = dataset.id
        file = dataset.file
        import h5py

        if not isinstance(dsid, h5py.h5d.DatasetID) or dataset.is_virtual:
            return None
        plist = dsid.get_create_plist()
        if plist.get_layout() != h5py.h5d.CONTIGUOUS or plist.get_external_count():
            return None
        if file.driver != "sec2" or file.mode != "r" or file.swmr_mode:
            return None
        dtype = dataset.dtype
        if dtype.hasobject or dtype.fields is not None or not dtype.isnative or len(dataset.shape) < 1:
            return None
        n_bytes = int(np.prod(dataset.shape, dtype=np.int64)) * dtype.itemsize
        offset = dsid.get_offset()
        path = file.filename
        if (offset is None or n_bytes == 0 or dsid.get_storage_size() != n_bytes or offset % dtype.itemsize
                or offset + n_bytes > os.path.getsize(path)):
            return None
    except (AttributeError, TypeError, ValueError, OSError):
        return None
    try:
        reader = DirectRows(path, offset, dataset.shape[0], dataset.shape[1:], dtype, **kwargs)
    except OSError:  # the file system refuses O_DIRECT
        return None
    try:  # the name must still lead to the file h5py has open (not moved or replaced since)
        ours, theirs = os.fstat(reader._fd), os.fstat(file.id.get_vfd_handle())
        same = (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)
    except (OSError, TypeError, ValueError):
        same = False
    if not same:
        reader.close()
        return None
    try:  # some file systems accept the flag but refuse the reads
        reader.read(0, 1, reader.buffer(1))
    except OSError:
        reader.close()
        return None
    return reader
