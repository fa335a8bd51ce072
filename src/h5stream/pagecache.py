"""Which bytes of a file the page cache holds now: asked of the system per range, never assumed.

A read through the page cache of pages it holds is a memory copy (several GB/s per
thread, and threads add up until the memory bus stops them); of pages it lacks, a
disk read plus that copy and the cache's bookkeeping.  A direct read (``O_DIRECT``)
costs the disk's time whether the cache holds the pages or not, and almost no CPU.
Which is faster depends on the file's state and the machine, so a reader that may take
either path asks, piece by piece, with :class:`Residency`: ``mincore`` on a shared
read-only mapping of the file (asking reads nothing and faults no page in).

Where the system cannot answer (no ``mincore``, ``H5STREAM_PORTABLE=1``:
:func:`h5stream.capabilities.page_residency`) :func:`open_residency` returns None and
the caller keeps its own default.
"""

from __future__ import annotations

import mmap
import os

import numpy as np

from h5stream import capabilities
from h5stream.native import libc

__all__ = ["PAGE", "Residency", "open_residency", "resident_fraction"]

PAGE = mmap.PAGESIZE


class Residency:
    """Answers which share of a byte range of one open file the page cache holds now.

    The file is mapped once (its size at opening; bytes past it count as not held);
    :meth:`fraction` may be called from several threads at once.  Close it (or use it as
    a context manager) to unmap the file.
    """

    def __init__(self, size: int, address: int) -> None:
        self.size = int(size)
        self._address = address

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._address is not None:
            libc.unmap(self._address, self.size)
            self._address = None

    def fraction(self, offset: int, length: int) -> float:
        """The share (0 to 1) of the pages overlapping ``[offset, offset + length)`` that the page cache
        holds; 0 for an empty range, a range past the mapped size, or when the system does not answer."""
        first = max(0, int(offset)) // PAGE
        end = -(-min(int(offset) + int(length), self.size) // PAGE)
        if self._address is None or end <= first:
            return 0.0
        pages = bytearray(end - first)
        if not libc.resident_pages(self._address + first * PAGE, (end - first) * PAGE, pages):
            return 0.0
        return float(np.count_nonzero(np.frombuffer(pages, dtype=np.uint8) & 1)) / (end - first)


def open_residency(fd: int) -> Residency | None:
    """A :class:`Residency` of the file open as ``fd`` (its current size), or None where the system
    cannot say which pages it holds (or the file is empty)."""
    if not capabilities.page_residency():
        return None
    size = os.fstat(fd).st_size
    address = libc.map_file(fd, size)
    return None if address is None else Residency(size, address)


def resident_fraction(path: str | os.PathLike, offset: int = 0, length: int | None = None) -> float | None:
    """The share of ``[offset, offset + length)`` of the file at ``path`` (default: all of it) that the
    page cache holds now; None where the system cannot say."""
    fd = os.open(path, os.O_RDONLY)
    try:
        residency = open_residency(fd)
        if residency is None:
            return None
        with residency:
            return residency.fraction(offset, residency.size - offset if length is None else length)
    finally:
        os.close(fd)
