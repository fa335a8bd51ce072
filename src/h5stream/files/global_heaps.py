"""Damaged global heaps: a collection whose walk would never end is refused before libhdf5 reads a value.

Variable-length values live in global heap collections, which HDF5 checksums
nowhere; :func:`check_global_heaps` walks each collection found in the file's
bytes the way libhdf5 would (small files whole, large ones in bounded blocks
around their datasets' stored data).  Called by
:func:`h5stream.files.validated.open_validated` before the file is opened.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py

from h5stream.errors import FormatError
from h5stream.files._headers import find_signature

__all__ = [
    "GLOBAL_HEAP_SCAN_BYTES",
    "GLOBAL_HEAP_SCAN_BLOCK",
    "add_storage_ranges",
    "check_global_heaps",
    "check_large_global_heaps",
]

#: Files up to this size are read in one piece and searched whole for damaged global heaps when they are
#: opened (about 1.3 ms per MB from the page cache, measured); larger files are searched in blocks of
#: :data:`GLOBAL_HEAP_SCAN_BLOCK`, skipping the stored data of fixed-size datasets (see check_global_heaps).
GLOBAL_HEAP_SCAN_BYTES = 16 * 1024**2
#: The block a large file is searched in (the scan's memory is this plus one collection window).
GLOBAL_HEAP_SCAN_BLOCK = 4 * 1024**2
#: The window a collection is walked in (a collection of a long text can be megabytes).
_COLLECTION_WINDOW = 1024**2
_GCOL = b"GCOL"


def check_global_heaps(path: str | os.PathLike, *, limit: int | None = None) -> int:
    """Refuse a global heap collection whose objects would make libhdf5 loop; returns how many places holding
    the collection's signature were looked at.

    Variable-length values (text attributes, string columns) live in global heap
    collections (signature ``GCOL``), which HDF5 checksums nowhere.  libhdf5 walks a
    collection's objects when it first reads one of its values, advancing by each
    object's size; a free-space entry of size 0 (a zeroed block of the file) does
    not advance, and the read never returns (libhdf5 1.14 and 2.0).  Each
    collection found in the file's bytes is walked the same way first, and one that
    would loop is a :class:`FormatError` naming its offset.  Data that holds the
    signature is refused only when its bytes also form a collection header of a
    plausible size followed by that zero-size step.

    Files up to ``limit`` bytes (:data:`GLOBAL_HEAP_SCAN_BYTES`) are read whole.
    Larger ones are read in blocks of :data:`GLOBAL_HEAP_SCAN_BLOCK` (memory stays
    bounded whatever the size), and the stored data of datasets (their chunks and
    contiguous storage, from libhdf5's own storage map) are skipped: libhdf5
    allocates collections apart from them, and a recording's or a vendor file's
    gigabytes of samples are not read at every open.  When the storage map cannot
    be read (a damaged file), every byte is searched.  ``open_validated`` takes
    the map from its own scan of the file (:func:`check_large_global_heaps`).
    """
    path = Path(path)
    limit = GLOBAL_HEAP_SCAN_BYTES if limit is None else limit
    try:
        size = path.stat().st_size
        if size > limit:
            return _check_global_heaps_in_blocks(path, size, _fixed_size_data_ranges(path))
        with open(path, "rb") as fh:
            content = fh.read()
    except FormatError:
        raise
    except OSError as exc:
        raise FormatError(f"cannot read the file ({exc.strerror})", path=path) from exc
    checked = 0
    start = find_signature(content, _GCOL)
    while start >= 0:
        _refuse_looping(path, start, _collection_loops(lambda at, n: content[at:at + n], start, len(content)))
        checked += 1
        start = find_signature(content, _GCOL, start + 1)
    return checked


def _refuse_looping(path: Path, start: int, loop_at: int | None) -> None:
    if loop_at is not None:
        raise FormatError(
            "a global heap collection is damaged (reading a value from it would never end)",
            path=path, obj=f"global heap at byte {start}",
            expected="heap objects of non-zero size up to the collection's end",
            found=f"an empty free-space entry at byte {loop_at}",
            hint="the file is damaged (a block of it was overwritten); restore it from a copy",
        )


def _fixed_size_data_ranges(path: Path) -> list[tuple[int, int]]:
    """Sorted ``(start, stop)`` byte ranges of the stored data of every dataset (chunks and contiguous
    storage); empty when the file's storage map cannot be read.

    A dataset's storage never holds a global heap collection, whatever its type: variable-length
    values store references there, and their bytes in collections of their own.  Only object headers
    and chunk indexes are read (no value), so a damaged heap cannot stop this.
    """
    ranges: list[tuple[int, int]] = []
    try:
        f = h5py.File(path, "r", locking=False)
    except (OSError, RuntimeError, ValueError):
        return []
    try:
        names: list[bytes] = []
        h5py.h5o.visit(f.id, lambda name, info: names.append(name) if info.type == h5py.h5o.TYPE_DATASET else None,
                       info=True)
        for name in names:
            oid = h5py.h5o.open(f.id, name)
            add_storage_ranges(oid, oid.get_create_plist().get_layout(), ranges)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError):
        return []  # a damaged file: search every byte
    finally:
        f.close()
    ranges.sort()
    return ranges


def add_storage_ranges(oid: h5py.h5d.DatasetID, layout: int, ranges: list[tuple[int, int]]) -> None:
    """Append the ``(start, stop)`` byte ranges of the dataset's stored data (contiguous, or each chunk)."""
    if layout == h5py.h5d.CONTIGUOUS:
        offset, stored = oid.get_offset(), oid.get_storage_size()
        if offset is not None and stored:
            ranges.append((offset, offset + stored))
    elif layout == h5py.h5d.CHUNKED:
        oid.chunk_iter(lambda chunk: ranges.append((chunk.byte_offset, chunk.byte_offset + chunk.size)))


def _searched_ranges(size: int, skipped: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """The byte ranges of a file of ``size`` bytes outside the sorted ``skipped`` ranges."""
    at = 0
    for start, stop in skipped:
        if start > at:
            yield at, min(start, size)
        at = max(at, stop)
        if at >= size:
            return
    if at < size:
        yield at, size


def check_large_global_heaps(path: str | os.PathLike, storage: list[tuple[int, int]]) -> int:
    """:func:`check_global_heaps` of a file past :data:`GLOBAL_HEAP_SCAN_BYTES` whose datasets' storage
    ranges ``storage`` are known (collected by :func:`scan_unsafe_objects`)."""
    path = Path(path)
    try:
        return _check_global_heaps_in_blocks(path, path.stat().st_size, sorted(storage))
    except FormatError:
        raise
    except OSError as exc:
        raise FormatError(f"cannot read the file ({exc.strerror})", path=path) from exc


def _check_global_heaps_in_blocks(path: Path, size: int, skipped: list[tuple[int, int]]) -> int:
    """:func:`check_global_heaps` of a large file: the bytes outside ``skipped`` in blocks."""
    checked = 0
    tail = len(_GCOL) - 1  # bytes kept from a block: a signature may straddle two blocks
    with open(path, "rb") as fh:
        window = _FileWindow(fh)
        for lo, hi in _searched_ranges(size, skipped):
            carry, pos, window.end = b"", lo, hi
            while pos < hi:
                fh.seek(pos)
                block = fh.read(min(GLOBAL_HEAP_SCAN_BLOCK, hi - pos))
                if not block:
                    break
                buf, base = carry + block, pos - len(carry)
                start = find_signature(buf, _GCOL)
                while start >= 0:
                    at = base + start
                    _refuse_looping(path, at, _collection_loops(window.read, at, size))
                    checked += 1
                    start = find_signature(buf, _GCOL, start + 1)
                pos += len(block)
                carry = buf[-tail:]
    return checked


class _FileWindow:
    """Reads of a few bytes of an open file through one window of at most :data:`_COLLECTION_WINDOW` bytes.

    ``end``: where the searched bytes in which the current collection lies end; a window that starts
    before it stops there (the datasets' storage after it is not read for a collection that, intact,
    ends before it: a large read of that storage may be waiting in the disk's queue).
    """

    def __init__(self, fh) -> None:
        self._fh, self._start, self._data = fh, 0, b""
        self.end: int | None = None

    def read(self, at: int, n: int) -> bytes:
        if not (self._start <= at and at + n <= self._start + len(self._data)):
            self._fh.seek(at)
            end = self.end if self.end is not None and at < self.end else at + _COLLECTION_WINDOW
            self._start, self._data = at, self._fh.read(max(n, min(_COLLECTION_WINDOW, end - at)))
        return self._data[at - self._start:at - self._start + n]


def _collection_loops(read: Callable[[int, int], bytes], start: int, file_size: int) -> int | None:
    """The offset of the step at which libhdf5's walk of the collection at ``start`` would stop advancing; None
    when it advances to the end (or the bytes are no collection: version, size or objects out of range).

    ``read(offset, n)`` returns the file's bytes there (fewer at its end).
    """
    header = read(start, 16)
    if len(header) < 16 or header[4] != 1 or header[5:8] != b"\0\0\0":
        return None
    size = int.from_bytes(header[8:16], "little")
    if size < 4096 or start + size > file_size:
        return None  # not one (a collection is at least 4 KiB and lies inside the file)
    end, p = start + size, start + 16
    while p < end:
        if p + 16 > end:
            return None  # the rest is free space
        head = read(p, 16)
        index = int.from_bytes(head[0:2], "little")
        length = int.from_bytes(head[8:16], "little")
        need = 16 + ((length + 7) & ~7) if index > 0 else length
        if need == 0:
            return p
        if need > end - p:
            return None  # libhdf5 refuses an object past the end itself
        p += need
    return None
