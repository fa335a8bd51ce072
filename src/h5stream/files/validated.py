"""Validated reads: a file is checked before h5py trusts it, and every read failure becomes a typed error.

The HDF5 signature is checked before h5py touches the file; pipes and devices
are refused; external links, external storage, virtual datasets and
unavailable filters are refused (:func:`scan_unsafe_objects`, over the bounded walk of
:mod:`h5stream.files._walk`), and every failure leaves as a typed error naming
the path and the object.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py

from h5stream.errors import (
    FormatError,
    H5StreamError,
    MissingPluginError,
    SourceNotFoundError,
    UnsafeFileError,
)
from h5stream.files._headers import (
    check_attribute_references,
    check_object_references,
    direct_object_info,
    find_signature,
)
from h5stream.files._walk import MAX_DEPTH, MAX_GROUP_MEMBERS, MAX_LINKS, _walk, link_names  # noqa: F401  (re-exported)
from h5stream.files.claims import hdf5_lock_held

__all__ = [
    "ALLOWED_FILTERS",
    "link_names",
    "check_hdf5_signature",
    "check_regular_file",
    "check_declared_size",
    "check_stored_type",
    "GLOBAL_HEAP_SCAN_BYTES",
    "check_global_heaps",
    "check_large_global_heaps",
    "check_text_lengths",
    "scan_unsafe_objects",
    "ObjectVisitor",
    "guard_read",
    "open_validated",
    "refuse_unsafe_target",
    "require_attr_format",
]

logger = logging.getLogger("h5stream.files")

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# Filters a reader accepts.  Standard HDF5 filters are always present; the rest
# come with hdf5plugin (imported on demand so their filters register).
ALLOWED_FILTERS = {
    1: "deflate (gzip)",
    2: "shuffle",
    3: "fletcher32",
    4: "szip",
    5: "nbit",
    6: "scaleoffset",
    32000: "lzf",
    32001: "blosc",
    32004: "lz4",
    32008: "bitshuffle",
    32015: "zstd",
    32026: "blosc2",
}
PLUGIN_FILTERS = {32001, 32004, 32008, 32015, 32026}


def check_regular_file(path: str | os.PathLike) -> Path:
    """Refuse a missing path, a directory, a pipe, a socket or a device before anything is read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SourceNotFoundError("file does not exist", path=path, hint="check the path") from None
    except OSError as exc:
        raise FormatError(f"cannot inspect the file ({exc.strerror or exc})", path=path) from exc
    if stat.S_ISDIR(mode):
        raise FormatError("is a directory", path=path, expected="an HDF5 file", found="a directory")
    if not stat.S_ISREG(mode):
        # A FIFO or device would block the reader or stream endless bytes.
        raise FormatError(
            "is not a regular file", path=path, expected="an HDF5 file",
            found="a pipe, socket or device", hint="copy the data into a file first",
        )
    return path


def check_hdf5_signature(path: str | os.PathLike) -> int:
    """Return the superblock offset of an HDF5 file, or raise :class:`FormatError`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            offset = 0
            while offset + len(HDF5_SIGNATURE) <= size:
                fh.seek(offset)
                if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                    return offset
                offset = 512 if offset == 0 else offset * 2
    except FileNotFoundError:
        raise SourceNotFoundError("file does not exist", path=path) from None
    except OSError as exc:
        raise FormatError(f"cannot read the file ({exc.strerror})", path=path) from exc
    raise FormatError(
        "not an HDF5 file",
        path=path,
        expected="the HDF5 signature at offset 0, 512, 1024, ...",
        found=f"no signature in {size} bytes",
        hint="check that the path names an HDF5 file",
    )


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
            carry, pos = b"", lo
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
    """Reads of a few bytes of an open file through one window of at most :data:`_COLLECTION_WINDOW` bytes."""

    def __init__(self, fh) -> None:
        self._fh, self._start, self._data = fh, 0, b""

    def read(self, at: int, n: int) -> bytes:
        if not (self._start <= at and at + n <= self._start + len(self._data)):
            self._fh.seek(at)
            self._start, self._data = at, self._fh.read(max(n, _COLLECTION_WINDOW))
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


def _plugin_filters_loaded() -> None:
    with contextlib.suppress(ImportError):
        import hdf5plugin  # noqa: F401  (registers its filters with HDF5)


#: ``visit(name, oid) -> bool`` of :func:`scan_unsafe_objects`: called for every link below the
#: file's root, ``name`` its full path without the leading ``/`` (bytes), ``oid`` the object's open
#: low-level id once the scan has checked it (None for a link the scan does not open: soft,
#: accepted external, or a group already reached through another link).  Returning True keeps
#: ``oid`` open for the caller, who then owns it; otherwise the scan closes it.
ObjectVisitor = Callable[[bytes, "h5py.h5o.ObjectID | None"], bool]


# Bounds on what a dataset may declare (a damaged or crafted header can claim any size).
#: Bytes a dataset may declare beyond what its storage can hold (unwritten fill values).
SIZE_FLOOR = 64 * 1024**2
#: Largest expansion of filtered (compressed) storage that is believed.
MAX_EXPANSION = 65_536
#: Largest fixed-length string element.
MAX_STRING_BYTES = 16 * 1024**2


def check_declared_size(dsid: h5py.h5d.DatasetID, path: str | os.PathLike, obj: str, *,
                        filtered: bool | None = None) -> int:
    """The bytes dataset ``dsid`` declares, or :class:`FormatError` when the file cannot hold them.

    A dataset declares ``elements * element size`` bytes; its storage in the file
    (never more than the file's size) must hold them: all of them without filters,
    a :data:`MAX_EXPANSION`-th with compression; up to :data:`SIZE_FLOOR` bytes of
    unwritten fill are allowed.  A fixed-length string element longer than
    :data:`MAX_STRING_BYTES` is refused.  Checked before anything is allocated.
    """
    tid = dsid.get_type()
    item = tid.get_size()
    if isinstance(tid, h5py.h5t.TypeStringID) and not tid.is_variable_str() and item > MAX_STRING_BYTES:
        raise FormatError(
            "string elements are too long", path=path, obj=obj,
            expected=f"at most {MAX_STRING_BYTES} bytes per string (h5stream.files.validated.MAX_STRING_BYTES)",
            found=f"{item} bytes declared", hint="the file is damaged or crafted",
        )
    space = dsid.get_space()
    if space.get_simple_extent_type() != h5py.h5s.SIMPLE:
        return 0 if space.get_simple_extent_type() == h5py.h5s.NULL else item
    declared = 1
    for extent in space.shape:
        declared *= int(extent)
    declared *= item
    if declared <= SIZE_FLOOR:
        return declared
    if filtered is None:
        filtered = dsid.get_create_plist().get_nfilters() > 0
    stored = dsid.get_storage_size()
    try:
        stored = min(stored, os.stat(path).st_size)
    except OSError:
        pass
    holds = stored * (MAX_EXPANSION if filtered else 1) + SIZE_FLOOR
    if declared > holds:
        raise FormatError(
            "dataset declares more data than the file holds", path=path, obj=obj,
            expected=f"at most {holds} bytes for {stored} bytes of {'compressed ' if filtered else ''}storage",
            found=f"shape {tuple(space.shape)} of {item}-byte elements ({declared} bytes)",
            hint="the file is damaged, truncated or crafted",
        )
    return declared


_INTEGER, _FLOAT, _COMPOUND, _ARRAY = h5py.h5t.INTEGER, h5py.h5t.FLOAT, h5py.h5t.COMPOUND, h5py.h5t.ARRAY
#: Nesting of compound and array types a stored type may have (real files have one or two levels).
MAX_TYPE_DEPTH = 8


def check_stored_type(tid: h5py.h5t.TypeID, path: str | os.PathLike, obj: str) -> None:
    """Refuse a stored type whose layout does not fit in its own size, before any value of it is read.

    A compound's members must lie inside the compound's size without
    overlapping, an array's elements must fill its size exactly, and the bits
    of a number (precision and offset; a float's sign, exponent and mantissa)
    must lie inside its bytes.  Converting values of a type that breaks these
    rules makes libhdf5 read and write past its buffers: releases before 2.0
    do not check them when they decode the type, and a damaged object header
    (HDF5 checksums none of version 1) is all it takes; the process then dies
    with SIGSEGV inside the read.  A table is also read into the layout h5py gives
    its numpy type, which must be just as sound: a float member whose stored
    exponent bias is damaged (127 read as 224) becomes an 8-byte float there at
    the 4-byte member's offset, over its neighbour, and the conversion into it
    corrupts the heap.  Raises :class:`FormatError` naming ``obj``.

    A type found sound is remembered for the process by its encoding (``H5Tencode``: every
    property the check reads), so the files of one layout (a vendor's tables) have their types
    checked once, not at every open (see :data:`SOUND_TYPES_KEPT`).
    """
    try:
        key = tid.encode()
    except (TypeError, ValueError, RuntimeError):
        key = None
    if key is not None and key in _sound_types:
        return
    _check_type(tid, path, obj, "", 0)
    if tid.get_class() in (_COMPOUND, _ARRAY):
        try:
            dtype = tid.dtype
        except (TypeError, ValueError, KeyError) as exc:
            raise _type_error(path, obj, "", "a type numpy can hold", f"{type(exc).__name__}: {exc}") from None
        _check_memory_layout(dtype, tid, path, obj, "")
    if key is not None:
        if len(_sound_types) >= SOUND_TYPES_KEPT:
            _sound_types.pop(next(iter(_sound_types)), None)
        _sound_types[key] = None


#: How many stored types found sound :func:`check_stored_type` remembers (by their encoded bytes; the
#: oldest is forgotten first).  The check of a 43-member table type costs about 8 million instructions.
SOUND_TYPES_KEPT = 64
_sound_types: dict[bytes, None] = {}


def _check_memory_layout(dtype, tid, path, obj: str, where: str) -> None:
    """The numpy type h5py reads ``tid`` into: members inside its size and apart."""
    if dtype.subdtype is not None:
        base = tid.get_super() if tid.get_class() == _ARRAY else None
        if base is not None:
            _check_memory_layout(dtype.subdtype[0], base, path, obj, where + "[]")
        return
    if dtype.names is None:
        return
    spans = []
    for i, name in enumerate(dtype.names):
        member, offset = dtype.fields[name][:2]
        label = f"{where}.{name}" if where else f"member {name!r}"
        stored = tid.get_member_type(i) if tid.get_class() == _COMPOUND and i < tid.get_nmembers() else None
        if offset + member.itemsize > dtype.itemsize:
            raise _type_error(path, obj, label, f"inside the {dtype.itemsize} bytes of a row",
                              f"{member.itemsize} bytes at offset {offset}")
        spans.append((offset, member.itemsize, label))
        if stored is not None:
            _check_memory_layout(member, stored, path, obj, label)
    spans.sort()
    for (a, la, first), (b, _lb, second) in zip(spans, spans[1:]):
        if a + la > b:
            raise _type_error(path, obj, second, f"after {first}, which ends at byte {a + la}",
                              f"a member starting at byte {b}")


def _type_error(path, obj: str, where: str, expected: str, found: str) -> FormatError:
    return FormatError("the stored data type is damaged", path=path, obj=obj,
                       expected=f"{where or 'the type'}: {expected}", found=found,
                       hint="the file is damaged (its object header was changed); restore it from a copy")


def _check_type(tid, path, obj: str, where: str, depth: int) -> None:
    kind = tid.get_class()
    size = tid.get_size()
    if kind in (_INTEGER, _FLOAT):
        bits = 8 * size
        precision, offset = tid.get_precision(), tid.get_offset()
        if precision < 1 or offset + precision > bits:
            raise _type_error(path, obj, where, f"a number whose bits lie inside its {size} bytes",
                              f"precision {precision} at bit offset {offset}")
        if kind == _FLOAT:
            spos, epos, esize, mpos, msize = tid.get_fields()
            spans = sorted([(spos, 1), (epos, esize), (mpos, msize)])
            inside = all(0 <= start and start + length <= offset + precision and start >= offset
                         for start, length in spans)
            apart = all(a + la <= b for (a, la), (b, _) in zip(spans, spans[1:]))
            if not (inside and apart and esize >= 1 and msize >= 1):
                raise _type_error(path, obj, where, "a float whose sign, exponent and mantissa lie apart "
                                  f"inside its {precision} bits",
                                  f"sign at {spos}, exponent {esize} bits at {epos}, mantissa {msize} bits at {mpos}")
        return
    if kind not in (_COMPOUND, _ARRAY):
        return
    if depth >= MAX_TYPE_DEPTH:
        raise _type_error(path, obj, where, f"at most {MAX_TYPE_DEPTH} levels of nested types", "more")
    if kind == _ARRAY:
        base = tid.get_super()
        count = 1
        for extent in tid.get_array_dims():
            count *= int(extent)
        if count * base.get_size() != size:
            raise _type_error(path, obj, where, f"an array of {size} bytes",
                              f"{count} elements of {base.get_size()} bytes")
        _check_type(base, path, obj, where + "[]", depth + 1)
        return
    spans = []
    for i in range(tid.get_nmembers()):
        name = tid.get_member_name(i).decode("utf-8", errors="backslashreplace")
        member = tid.get_member_type(i)
        start, length = tid.get_member_offset(i), member.get_size()
        label = f"{where}.{name}" if where else f"member {name!r}"
        if start + length > size:
            raise _type_error(path, obj, label, f"inside the compound's {size} bytes",
                              f"{length} bytes at offset {start}")
        spans.append((start, length, label))
        _check_type(member, path, obj, label, depth + 1)
    spans.sort()
    for (a, la, first), (b, _lb, second) in zip(spans, spans[1:]):
        if a + la > b:
            raise _type_error(path, obj, second, f"after {first}, which ends at byte {a + la}",
                              f"a member starting at byte {b}")


#: Variable-length text datasets up to this many values have their stored lengths checked at open.
MAX_CHECKED_TEXT_VALUES = 65_536
_STRING = h5py.h5t.STRING


def check_text_lengths(dsid: h5py.h5d.DatasetID, path: str | os.PathLike, obj: str) -> None:
    """Refuse a contiguous variable-length text dataset that claims a value longer than the file.

    Each stored value is a reference into a global heap (length, heap address,
    index: 16 bytes in most files), covered by no checksum of HDF5.  A damaged length makes
    libhdf5 allocate and fill that many bytes when the value is read (a flipped
    high byte: 3.5 GB for a word, a read of minutes); no value can be longer than
    the file that holds it.  Read here from the file's bytes, for datasets of up
    to :data:`MAX_CHECKED_TEXT_VALUES` values; raises :class:`FormatError`.
    """
    offset, stored = dsid.get_offset(), dsid.get_storage_size()
    # (length: 4 bytes, heap address: the file's address size, index: 4 bytes)
    item = 8 + h5py.h5i.get_file_id(dsid).get_create_plist().get_sizes()[0]
    if offset is None or not stored or stored > item * MAX_CHECKED_TEXT_VALUES or stored % item:
        return
    try:
        file_size = os.stat(path).st_size
        with open(path, "rb") as fh:
            raw = os.pread(fh.fileno(), stored, offset)
    except OSError:
        return  # the read that follows reports it
    for i in range(len(raw) // item):
        length = int.from_bytes(raw[item * i:item * i + 4], "little")
        if length > file_size:
            raise FormatError(
                "a text value claims to be longer than the file", path=path, obj=f"{obj}[{i}]",
                expected=f"at most {file_size} bytes (the file's size)", found=f"{length} bytes",
                hint="the file is damaged; restore it from a copy",
            )


#: ``allow_link(link name, target file, target object) -> bool``: an external link a caller accepts.
LinkRule = Callable[[str, str, str], bool]


def scan_unsafe_objects(f: h5py.File, path: str | os.PathLike, *, allow_link: LinkRule | None = None,
                        visit: ObjectVisitor | None = None, storage: list[tuple[int, int]] | None = None) -> None:
    """Refuse external links, external storage, virtual datasets and unavailable filters.

    One walk of the file (:func:`link_names`' walk, with its bounds) opens each
    object once from its group and checks each dataset as it goes.
    ``allow_link`` accepts named external links (never followed), for example
    the vendor link rule the recording face passes for an MCS ``.cmtr``.
    ``visit`` sees every link and its checked object on the way and may keep the
    object open (see :data:`ObjectVisitor`), so a reader that walks the same
    objects next need not open them again.
    Raises :class:`UnsafeFileError`, :class:`MissingPluginError` or
    :class:`FormatError` naming the offending object.
    """
    plugins = [False]  # hdf5plugin imported (its filters registered)
    external, dataset_id = h5py.h5l.TYPE_EXTERNAL, h5py.h5d.DatasetID
    # table types already found sound in this walk: a file of many tables (a .cmtr's Peaks, one per
    # unit) mostly repeats one type, which H5Tequal (every property, bit fields included) recognises
    checked: list = []
    headers = _AttributeReferences.of(f, path)

    def on_member(full: bytes, kind: int, oid) -> bool:
        if kind == external:
            name = "/" + full.decode("utf-8", errors="replace")
            target_file, target_obj = _external_link_target(f, full)
            if allow_link is None or not allow_link(name, target_file, target_obj):
                raise UnsafeFileError(
                    "external link to another file",
                    path=path,
                    obj=name,
                    found=f"link to {target_file}:{target_obj}",
                    hint="external links are refused; copy the data into the file",
                )
        elif isinstance(oid, dataset_id):
            _check_dataset(oid, path, full, plugins, checked)
            if storage is not None:
                add_storage_ranges(oid, oid.get_create_plist().get_layout(), storage)
        if oid is not None and headers is not None:
            headers.check(oid, "/" + full.decode("utf-8", errors="replace"))
        # Soft links name objects of this file, visited through their hard link.
        return visit(full, oid) if visit is not None else False

    try:
        if headers is not None:
            headers.check(f.id, f.name or "/")
        _walk(f, path, on_member)
    finally:
        if headers is not None:
            headers.close()


class _AttributeReferences:
    """The check of variable-length attribute references in version-1 object headers during the scan (see
    :mod:`h5stream.files._headers`); only for files whose superblock is older than version 2 (a newer one
    means version-2 headers, which HDF5 checksums)."""

    def __init__(self, path, fd: int, file_size: int, sizes: tuple[int, int]) -> None:
        self.path, self.fd, self.file_size, self.sizes = path, fd, file_size, sizes
        self.native = direct_object_info()

    @classmethod
    def of(cls, f: h5py.File, path) -> _AttributeReferences | None:
        try:
            plist = f.id.get_create_plist()
            if plist.get_version()[0] >= 2:
                return None
            sizes = plist.get_sizes()
            name = f.filename
            fd = os.open(name, os.O_RDONLY)
        except (OSError, RuntimeError, ValueError, TypeError):
            return None  # not a file of the disk (an in-memory file): nothing to read
        try:
            return cls(path, fd, os.fstat(fd).st_size, sizes)
        except OSError:
            os.close(fd)
            return None

    def check(self, oid, obj: str) -> None:
        if self.native and check_object_references(oid.id, self.fd, self.file_size, self.sizes, self.path,
                                                   obj) is not None:
            return
        # without the direct calls, or to raise libhdf5's own error about a header it cannot load
        info = h5py.h5o.get_info(oid)
        if info.num_attrs and info.hdr.version == 1:
            check_attribute_references(self.fd, self.file_size, info.addr, self.sizes, self.path, obj)

    def close(self) -> None:
        os.close(self.fd)


def _check_dataset(oid: h5py.h5d.DatasetID, path, full: bytes, plugins: list[bool],
                   checked: list | None = None) -> None:
    """Refuse a virtual dataset, external raw storage, an implausible declared size or a filter not allowed or
    not available; ``checked`` holds table types found sound before (each checked once)."""
    name = "/" + full.decode("utf-8", errors="replace")
    plist = oid.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL:
        raise UnsafeFileError(
            "virtual dataset", path=path, obj=name,
            found="a dataset mapped onto other files",
            hint="virtual datasets read other files and are refused",
        )
    if plist.get_external_count() > 0:
        raise UnsafeFileError(
            "dataset with external storage", path=path, obj=name,
            found=f"raw data in {plist.get_external(0)[0].decode(errors='replace')}",
            hint="external raw storage reads other files and is refused",
        )
    nfilters = plist.get_nfilters()
    check_declared_size(oid, path, name, filtered=nfilters > 0)
    tid = oid.get_type()
    if tid.get_class() in (_COMPOUND, _ARRAY):  # tables: the layouts older libhdf5 trusts (see there)
        if checked is None or not any(tid.equal(known) for known in checked):
            check_stored_type(tid, path, name)
            if checked is not None and len(checked) < 16:
                checked.append(tid)
    elif tid.get_class() == _STRING and tid.is_variable_str() and plist.get_layout() == h5py.h5d.CONTIGUOUS:
        check_text_lengths(oid, path, name)
    for i in range(nfilters):
        code, _flags, _vals, fname = plist.get_filter(i)
        if code not in ALLOWED_FILTERS:
            raise FormatError(
                "dataset uses a filter that is not allowed",
                path=path, obj=name,
                expected="one of " + ", ".join(sorted(ALLOWED_FILTERS.values())),
                found=f"filter {code} ({fname.decode(errors='replace')})",
                hint="rewrite the data with an allowed filter",
            )
        if code in PLUGIN_FILTERS and not plugins[0]:
            _plugin_filters_loaded()
            plugins[0] = True
        if not h5py.h5z.filter_avail(code):
            raise MissingPluginError(
                f"dataset is compressed with {ALLOWED_FILTERS[code]} (filter {code}), "
                "which is not available here",
                path=path, obj=name,
                hint="install the plugin: pip install 'h5stream[fast]' (hdf5plugin)",
            )


def _external_link_target(f: h5py.File, raw_name: bytes) -> tuple[str, str]:
    try:
        link = f.get(raw_name.decode("utf-8", errors="replace"), getlink=True)
    except Exception:  # noqa: BLE001 - the link is refused either way; its target is only for the message
        return "?", "?"
    return getattr(link, "filename", "?"), getattr(link, "path", "?")


# Exceptions h5py, numpy and the OS raise for corrupt or truncated content.
# SystemError appears when libhdf5 fails inside an h5py callback; MemoryError
# and OverflowError when a corrupted shape or size asks for an impossible array.
_READ_FAILURES = (
    OSError,
    RuntimeError,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    AttributeError,
    SystemError,
    ArithmeticError,
    MemoryError,
)


@contextlib.contextmanager
def guard_read(path: str | os.PathLike, obj: str | None = None) -> Iterator[None]:
    """Turn any low-level failure inside the block into a :class:`FormatError`.

    Our own typed errors pass through unchanged.  A missing decompression
    filter becomes :class:`MissingPluginError`.
    """
    try:
        yield
    except H5StreamError:
        raise
    except _READ_FAILURES as exc:
        text = str(exc) or type(exc).__name__
        from h5stream.checksums import fletcher32_failure  # the checksums module imports this package

        mismatch = fletcher32_failure(exc, path, obj)
        if mismatch is not None:
            raise mismatch from exc
        if "filter" in text and ("not registered" in text or "can't open" in text or "available" in text):
            raise MissingPluginError(
                f"cannot decompress data ({text})", path=path, obj=obj,
                hint="install the plugin: pip install 'h5stream[fast]' (hdf5plugin)",
            ) from exc
        if isinstance(exc, MemoryError):
            raise FormatError(
                "the object asks for more memory than is available (corrupted size?)",
                path=path, obj=obj, hint="the file may be corrupted",
            ) from exc
        raise FormatError(
            f"cannot read the object ({type(exc).__name__}: {text})",
            path=path, obj=obj,
            hint="the file may be corrupted or incomplete",
        ) from exc


#: The out-of-process whole-file check behind ``open_validated(verify_timeout=...)``: set by
#: :mod:`h5stream.files.verify` when it is imported (with the package), so the dependency runs one way
#: (verify's child process opens files through this module).
_whole_file_check = None


def open_validated(
    path: str | os.PathLike,
    *,
    check: Callable[[h5py.File], None] | None = None,
    scan: bool = True,
    verify_timeout: float | None = None,
    allow_link: LinkRule | None = None,
    visit: ObjectVisitor | None = None,
    **h5py_kwargs,
) -> h5py.File:
    """Open an HDF5 file for reading after checking it can be trusted.

    Parameters
    ----------
    path : path
        A regular file; pipes and devices are refused before anything is read.
    check : callable, optional
        ``check(f)`` validates the format name and version (see
        :func:`require_attr_format`) and raises :class:`FormatError`; any raw
        exception it lets through becomes a :class:`FormatError` too.
    scan : bool, default True
        Refuse external links, external storage, virtual datasets and filters
        that are not allowed or not installed (see :func:`scan_unsafe_objects`).
        The scan opens every object once (about 0.1 ms each).
    verify_timeout : float, optional
        First read the whole file in a separate process with
        :func:`verify_file` (``check`` must then be a module-level function):
        a file that would make libhdf5 loop or crash becomes a typed error
        within this many seconds instead of hanging this process.
    allow_link : callable, optional
        External links the scan accepts (see :func:`scan_unsafe_objects`).
    visit : callable, optional
        Sees every object the scan opens, before ``check`` runs (see
        :data:`ObjectVisitor`): a reader of the whole file reads each object
        there instead of walking the file again.  Only with ``scan``.
    **h5py_kwargs
        Passed to ``h5py.File`` (for example ``rdcc_nbytes``).

    Returns
    -------
    h5py.File
        Open read-only; read objects inside :func:`guard_read`.

    Raises
    ------
    SourceNotFoundError, FormatError, UnsafeFileError, MissingPluginError
    """
    if visit is not None and not scan:
        raise ValueError("visit needs the scan (scan=True): the scan's walk is what visits the objects")
    path = check_regular_file(path)
    check_hdf5_signature(path)
    # A large file's heaps are searched around its datasets' storage, which the scan below maps.
    large = scan and path.stat().st_size > GLOBAL_HEAP_SCAN_BYTES
    if not large:
        check_global_heaps(path)
    if verify_timeout is not None:
        if _whole_file_check is None:
            raise RuntimeError("verify_timeout needs h5stream.files.verify (import h5stream.files first)")
        _whole_file_check(path, check=check, timeout=verify_timeout)
    try:
        f = _open_read_only(path, h5py_kwargs)
    except _READ_FAILURES as exc:
        if _lock_errno(exc) in (errno.EAGAIN, errno.EWOULDBLOCK) or _held_elsewhere(path):
            raise FormatError(
                "file is held by another program, which has it open for writing (HDF5 file lock held)",
                path=path,
                hint="wait until the writer has closed it",
            ) from exc
        raise FormatError(
            f"cannot open the HDF5 file ({exc})", path=path,
            hint="the file may be corrupted, truncated or still being written",
        ) from exc
    try:
        with guard_read(path, "/"):
            if scan:
                storage: list[tuple[int, int]] | None = [] if large else None
                scan_unsafe_objects(f, path, allow_link=allow_link, visit=visit, storage=storage)
                if large:
                    check_large_global_heaps(path, storage)
            if check is not None:
                check(f)
    except BaseException:
        f.close()
        raise
    return f


def refuse_unsafe_target(path: str | os.PathLike) -> None:
    """Refuse to replace an HDF5 file whose objects a read refuses.

    A writer about to replace ``path`` calls this first, so that writers never
    accept what readers refuse: an existing HDF5 file with an external link,
    external storage or a virtual dataset raises the :class:`UnsafeFileError`
    that :func:`open_validated` raises for it.  A missing path, a file that is
    not HDF5 or one that cannot be read is left for the writer to replace.
    """
    path = Path(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return
        check_hdf5_signature(path)
        f = _open_read_only(path, {"locking": False})
    except (H5StreamError, *_READ_FAILURES):
        return
    try:
        with guard_read(path, "/"):
            scan_unsafe_objects(f, path)
    except UnsafeFileError:
        raise
    except H5StreamError:
        return  # unreadable or unknown filters: replaced whole, nothing is read through it
    finally:
        f.close()


def _held_elsewhere(path: Path) -> bool:
    """Another program holds HDF5's write lock on ``path`` (seen even when opening without locks,
    as libhdf5 then refuses the superblock's "open for write" flag)."""
    return hdf5_lock_held(path)


def _lock_errno(exc: BaseException) -> int | None:
    """The errno of an HDF5 file-locking failure, or None for any other error."""
    match = re.search(r"unable to lock file, errno = (\d+)", str(exc))
    return int(match.group(1)) if match else None


# Errors of filesystems that do not support locks (NFS, Lustre): ENOLCK, ENOSYS, ENOTSUP, ENOTSUPP.
_LOCKS_UNSUPPORTED = {errno.ENOLCK, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, 524}


def open_without_unsupported_locks(opener: Callable[..., h5py.File], path: Path, mode: str,
                                    kwargs: dict) -> h5py.File:
    """Open with HDF5's file lock, or without it where the filesystem has no locks.

    On such filesystems the claim file is the single-writer guard.
    """
    try:
        return opener(path, mode, **kwargs)
    except OSError as exc:
        if "locking" in kwargs or _lock_errno(exc) not in _LOCKS_UNSUPPORTED:
            raise
    logger.info("%s: the filesystem refuses HDF5 file locks; opening without them", path)
    if mode == "x":  # our own fresh partial path: drop what the failed attempt created
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return opener(path, mode, locking=False, **kwargs)


def _open_read_only(path: Path, kwargs: dict) -> h5py.File:
    return open_without_unsupported_locks(h5py.File, path, "r", kwargs)


def require_attr_format(
    f: h5py.File,
    path: str | os.PathLike,
    *,
    name_attr: str | None,
    expected_name: str | None,
    version_attr: str,
    supported: tuple[str, ...] | set[str],
) -> str:
    """Check a root format-name/version attribute pair and return the version found."""
    if name_attr is not None:
        found = f.attrs.get(name_attr)
        if isinstance(found, bytes):
            found = found.decode(errors="replace")
        if found != expected_name:
            raise FormatError(
                "file was written by another tool or in another format",
                path=path, obj=f"/@{name_attr}",
                expected=repr(expected_name), found=repr(found),
            )
    version = f.attrs.get(version_attr)
    if isinstance(version, bytes):
        version = version.decode(errors="replace")
    if version is None:
        raise FormatError(
            "format version attribute is missing", path=path, obj=f"/@{version_attr}",
            expected="one of " + ", ".join(sorted(supported)), found="nothing",
        )
    version = str(version)
    if version not in supported:
        raise FormatError(
            "unsupported format version", path=path, obj=f"/@{version_attr}",
            expected="one of " + ", ".join(sorted(supported)), found=repr(version),
            hint="upgrade h5stream to read newer files",
        )
    return version
