"""Bounds on what a dataset's header declares, checked before any value is read: its size against the
file's storage, its stored type's layout (compound and array members, number bit fields), and the
lengths its variable-length text values claim.

A damaged or crafted object header can declare any of these; libhdf5 trusts
them (older releases read and write past their buffers on a broken type).
:func:`h5stream.files.validated.scan_unsafe_objects` runs these checks on
every dataset it walks.
"""

from __future__ import annotations

import os

import h5py

from h5stream.errors import FormatError
from h5stream.native import libhdf5

__all__ = [
    "MAX_STRING_BYTES",
    "MAX_TYPE_DEPTH",
    "check_declared_size",
    "check_stored_type",
    "check_text_lengths",
    "plain_storage",
]

# Bounds on what a dataset may declare (a damaged or crafted header can claim any size).
#: Bytes a dataset may declare beyond what its storage can hold (unwritten fill values).
SIZE_FLOOR = 64 * 1024**2
#: Largest expansion of filtered (compressed) storage that is believed.
MAX_EXPANSION = 65_536
#: Largest fixed-length string element.
MAX_STRING_BYTES = 16 * 1024**2


def check_declared_size(dsid: h5py.h5d.DatasetID, path: str | os.PathLike, obj: str, *,
                        filtered: bool | None = None, tid: h5py.h5t.TypeID | None = None,
                        space: h5py.h5s.SpaceID | None = None) -> int:
    """The bytes dataset ``dsid`` declares, or :class:`FormatError` when the file cannot hold them.

    A dataset declares ``elements * element size`` bytes; its storage in the file
    (never more than the file's size) must hold them: all of them without filters,
    a :data:`MAX_EXPANSION`-th with compression; up to :data:`SIZE_FLOOR` bytes of
    unwritten fill are allowed.  A fixed-length string element longer than
    :data:`MAX_STRING_BYTES` is refused.  Checked before anything is allocated.  ``tid`` and ``space``:
    the dataset's type and dataspace, when the caller has them.
    """
    if tid is None:
        tid = dsid.get_type()
    item = tid.get_size()
    if isinstance(tid, h5py.h5t.TypeStringID) and not tid.is_variable_str() and item > MAX_STRING_BYTES:
        raise FormatError(
            "string elements are too long", path=path, obj=obj,
            expected=f"at most {MAX_STRING_BYTES} bytes per string (h5stream.files.header_checks.MAX_STRING_BYTES)",
            found=f"{item} bytes declared", hint="the file is damaged or crafted",
        )
    if space is None:
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
    if offset is None or not stored:  # nothing stored (an empty dataset): no value to check
        return
    # (length: 4 bytes, heap address: the file's address size, index: 4 bytes)
    item = 8 + h5py.h5i.get_file_id(dsid).get_create_plist().get_sizes()[0]
    if stored > item * MAX_CHECKED_TEXT_VALUES or stored % item:
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


_storage_calls: dict | None | bool = False


def plain_storage(dsid: h5py.h5d.DatasetID) -> int | None:
    """The layout of dataset ``dsid`` when its creation properties name no filter, no external file and
    no virtual mapping (most of a file's datasets), asked of libhdf5 directly (h5py's copy of the
    properties costs more than the questions); None otherwise, or without the direct calls: the caller
    then asks through h5py, which names what it finds."""
    global _storage_calls
    if _storage_calls is False:
        lib = libhdf5.library()
        try:
            _storage_calls = libhdf5.functions(lib, ("H5Dget_create_plist", "H5Pget_layout", "H5Pget_external_count",
                                                      "H5Pget_nfilters", "H5Pclose")) if lib is not None else None
        except AttributeError:  # a library without one of them
            _storage_calls = None
    calls = _storage_calls
    if calls is None:
        return None
    with libhdf5.lock:
        pid = calls["H5Dget_create_plist"](dsid.id)
        if pid < 0:
            return None
        try:
            layout = calls["H5Pget_layout"](pid)
            plain = calls["H5Pget_external_count"](pid) == 0 and calls["H5Pget_nfilters"](pid) == 0
        finally:
            calls["H5Pclose"](pid)
    return layout if plain and layout in (h5py.h5d.COMPACT, h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED) else None
