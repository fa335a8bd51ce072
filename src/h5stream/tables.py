"""Whole 1-D tables of an open file read into the caller's buffers, straight from the disk where their rows
lie in plain runs of bytes, else through h5py.

A reader of many tables (a ``.cmtr``'s ``Peaks``, one per unit) knows each
table's layout; this reads the bytes.  :func:`plain_runs` says where a table's
rows lie in the file when they lie there as they are (contiguous and allocated,
or chunked without filters with every chunk allocated whole);
:class:`TableReader` reads such a table's runs with ``os.preadv`` (``O_DIRECT``,
no page-cache copy, where asked and allowed; the GIL released, so a read-ahead
thread overlaps the caller's work) into a page-aligned buffer
(:func:`aligned_buffer`), the rows then viewing it, and any other table with one
h5py read.  Tables are the entries of a walk (:func:`h5stream.walk.walk_group`);
their ids stay inside the engine.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from h5stream.errors import FormatError
from h5stream.walk import Entry

__all__ = ["PAGE", "TableReader", "aligned_buffer", "plain_runs"]

#: file pages: direct reads start and end on them
PAGE = 4096


def plain_runs(entry: Entry) -> list[tuple[int, int]] | None:
    """Where a 1-D table's rows lie in the file, as ``(first_row, file_offset)`` runs, when they lie
    there as they are (contiguous and allocated, or chunked without filters with every chunk
    allocated whole; chunks back to back merge into one run); None otherwise (and for anything but a
    1-D dataset of a fixed-size type)."""
    if entry.kind != "dataset" or entry.shape is None or len(entry.shape) != 1 or entry.dtype.hasobject:
        return None
    dsid, n_rows, itemsize = entry._oid, int(entry.shape[0]), entry.dtype.itemsize
    if n_rows == 0:
        return None
    try:
        plist = dsid.get_create_plist()
        if plist.get_external_count():
            return None
        layout = plist.get_layout()
        if layout == h5py.h5d.CONTIGUOUS:
            offset = dsid.get_offset()
            return None if offset is None or dsid.get_storage_size() != n_rows * itemsize else [(0, int(offset))]
        if layout != h5py.h5d.CHUNKED or plist.get_nfilters():
            return None
        chunk = tuple(plist.get_chunk())
        chunk_bytes = chunk[0] * itemsize
        n_chunks = -(-n_rows // chunk[0])
        if len(chunk) != 1 or dsid.get_num_chunks() != n_chunks:
            return None
        found: list[tuple[int, int, int, int]] = []
        if hasattr(dsid, "chunk_iter"):
            dsid.chunk_iter(lambda info: found.append((info.chunk_offset[0], info.byte_offset, info.size,
                                                       info.filter_mask)))
        else:
            for i in range(n_chunks):
                info = dsid.get_chunk_info(i)
                found.append((info.chunk_offset[0], info.byte_offset, info.size, info.filter_mask))
        found.sort()
    except (AttributeError, TypeError, ValueError, RuntimeError, KeyError, OSError):
        return None
    runs: list[tuple[int, int]] = []
    for i, (row, byte_offset, size, mask) in enumerate(found):
        if row != i * chunk[0] or size != chunk_bytes or mask or byte_offset is None:
            return None
        if not runs or byte_offset != runs[-1][1] + (row - runs[-1][0]) * itemsize:
            runs.append((row, int(byte_offset)))
    return runs


class _RawFile:
    """The file's bytes, read with ``O_DIRECT`` (no page-cache copy) where the system and the file
    system allow it, else through the page cache; ``os.preadv`` releases the GIL."""

    def __init__(self, path: Path, *, direct: bool = True) -> None:
        self.path = path
        self.size = os.path.getsize(path)
        self.fd = None
        from h5stream import capabilities

        if direct and capabilities.direct_io():
            try:
                self.fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
                probe = aligned_buffer(PAGE)
                os.preadv(self.fd, [memoryview(probe)[:PAGE]], 0)  # some file systems refuse the reads
            except OSError:
                if self.fd is not None:
                    os.close(self.fd)
                self.fd = None
        if self.fd is None:
            self.fd = os.open(path, os.O_RDONLY)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def read_into(self, view: memoryview, lo: int, hi: int) -> None:
        """File bytes ``[lo, hi)`` (page-aligned ``lo``) into ``view``; the end of the file may cut the last page."""
        pos = lo
        while pos < hi:
            n = os.preadv(self.fd, [view[pos - lo : hi - lo]], pos)
            if n <= 0 or (pos + n) % 512 and pos + n < hi:
                if pos + max(n, 0) >= min(hi, self.size):
                    return
                raise OSError(f"{self.path}: short read at byte {pos + max(n, 0)}, expected bytes up to {hi}")
            pos += n


def aligned_buffer(nbytes: int) -> np.ndarray:
    """``nbytes`` bytes starting on a page boundary (for direct reads)."""
    raw = np.empty(int(nbytes) + PAGE, dtype=np.uint8)
    skip = (-raw.ctypes.data) % PAGE
    return raw[skip : skip + int(nbytes)]


class TableReader:
    """Reads of whole 1-D tables of the open file ``f`` (read-only, the default driver): :meth:`read`.

    ``direct``: read plain runs with ``O_DIRECT`` where the system and the file
    system allow it.  When the file is not h5py's own (another driver, SWMR, a
    writable file, or the name no longer leading to the file h5py has open) every
    table is read through h5py (:attr:`direct_reads` False).  Close it (or use it as
    a context manager) to release the file descriptor.
    """

    def __init__(self, f: h5py.File, path: str | os.PathLike, *, direct: bool = True) -> None:
        self.path = Path(path)
        self._raw: _RawFile | None = None
        try:
            if f.driver != "sec2" or f.mode != "r" or f.swmr_mode:
                return
            raw = _RawFile(self.path, direct=direct)
        except (OSError, AttributeError, ValueError):
            return
        try:
            ours, theirs = os.fstat(raw.fd), os.fstat(f.id.get_vfd_handle())
            if (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino):
                self._raw = raw
                return
        except (OSError, TypeError, ValueError):
            pass
        raw.close()

    @property
    def direct_reads(self) -> bool:
        """True when tables in plain runs are read from the file's bytes (else all through h5py)."""
        return self._raw is not None

    def __enter__(self) -> TableReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    @staticmethod
    def span(n_rows: int, itemsize: int, runs: list[tuple[int, int]] | None) -> int:
        """Bytes of a buffer taking a table's runs, each read from its own page boundary."""
        return n_rows * itemsize + 2 * PAGE * len(runs or ()) + PAGE

    def read(self, entry: Entry, dtype: np.dtype, runs: list[tuple[int, int]] | None = None,
             buffer: np.ndarray | None = None) -> np.ndarray:
        """The whole table ``entry`` as an array of ``dtype``: its ``runs`` (:func:`plain_runs`) read straight
        from the file into ``buffer`` (:func:`aligned_buffer` of at least :meth:`span` bytes; the rows then
        view it), or, without runs, buffer or direct reads, one h5py read into a new array."""
        n = int(entry.shape[0])
        raw = self._raw
        if raw is None or runs is None or buffer is None:
            out = np.empty(n, dtype=dtype)
            if n:
                entry.read_into(out)
            return out
        itemsize = dtype.itemsize
        view = memoryview(buffer)
        ends = [r for r, _ in runs[1:]] + [n]
        jobs = []
        pos = 0
        for (r0, offset), r1 in zip(runs, ends):
            nbytes = (r1 - r0) * itemsize
            first = offset - offset % PAGE
            last = -(-(offset + nbytes) // PAGE) * PAGE
            if offset + nbytes > raw.size:
                raise FormatError("the table lies past the end of the file", path=self.path, obj=entry.path,
                                  expected=f"bytes up to {offset + nbytes}", found=f"a file of {raw.size} bytes",
                                  hint="the file is truncated or damaged")
            raw.read_into(view[pos : pos + last - first], first, last)
            jobs.append((pos + offset - first, nbytes))
            pos += last - first
        start = jobs[0][0]
        dest = start + jobs[0][1]
        for source, nbytes in jobs[1:]:  # the later runs moved left, after the first: the rows in order
            buffer[dest : dest + nbytes] = buffer[source : source + nbytes]  # numpy copies overlapping ranges safely
            dest += nbytes
        return buffer[start : start + n * itemsize].view(dtype)
