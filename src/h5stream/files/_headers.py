"""The stored references of variable-length attribute values, read from version-1 object headers.

A variable-length value (a text attribute, mostly) is stored in its object
header as a reference into a global heap: its length (4 bytes), the heap
collection's address (the file's address size) and the object's index (4
bytes).  Version-1 object headers (files written with HDF5's default
``libver="earliest"``: the container formats, most vendor files) carry no
checksum, so one flipped byte can make a length of gigabytes or move the address
past the end of the file; libhdf5 allocates and fills that length before it fails
on the read (seen in the fuzz tests: the high byte of the length of
``/obs/@h5stream:columns`` of a 46 kB ``.h5ad``, 5 s and 3.1 GB resident, counted
as a hang).  :func:`check_attribute_references`
reads the header's bytes (prefix, messages, continuation blocks) and refuses a
reference whose collection or length lies outside the file, naming the
attribute, before any value is read; a variable-length type whose kind, padding
or character set is none HDF5 defines (libhdf5 crashed on such a type: a
flipped byte of ``/@encoding-type``'s type in the same file) is refused too.
Version-2 headers (signature ``OHDR``) are checksummed by HDF5 and left to it.

Formats (HDF5 file format specification, version 1 object headers, attribute
message versions 1-3, datatype class 9, dataspace versions 1-2).
"""

from __future__ import annotations

import os
import struct

from h5stream.errors import FormatError

__all__ = ["check_attribute_references"]

_CONTINUATION, _ATTRIBUTE = 0x10, 0x0C
_VLEN_CLASS = 9
#: bounds on what is read from one damaged header (a crafted one can claim anything)
_MAX_CHUNKS, _MAX_CHUNK_BYTES, _MAX_VALUES = 64, 1 << 20, 1 << 16


def _u(raw: bytes, at: int, n: int) -> int:
    return int.from_bytes(raw[at:at + n], "little")


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def check_attribute_references(fd: int, file_size: int, header_address: int, sizes: tuple[int, int], path,
                               obj: str) -> int:
    """Refuse a variable-length attribute value of the version-1 object header at ``header_address`` whose
    heap collection or length lies past the end of the file; returns how many references were checked.

    ``fd``: the file, open for reading; ``sizes``: the file's (address size, length size).
    Anything that does not parse as a version-1 header is left to libhdf5 (it reports its own errors).
    """
    prefix = os.pread(fd, 16, header_address)
    if len(prefix) < 16 or prefix[0] != 1:
        return 0  # a version-2 header ("OHDR", checksummed) or not a header at all
    addr_size, length_size = sizes
    chunks = [(header_address + 16, _u(prefix, 8, 4))]
    checked, seen = 0, 0
    while chunks and seen < _MAX_CHUNKS:
        start, size = chunks.pop(0)
        seen += 1
        if size > _MAX_CHUNK_BYTES or start + size > file_size:
            return checked
        raw = os.pread(fd, size, start)
        p, end = 0, len(raw)
        while p + 8 <= end:
            kind, msize = _MESSAGE_HEAD(raw, p)
            at = p + 8
            p = at + msize
            if kind == _ATTRIBUTE:
                # most attributes hold numbers or fixed-size text: only a variable-length one is parsed further
                if _is_vlen_attribute(raw, at, min(p, end)):
                    checked += _check_attribute(raw[at:p], file_size, addr_size, path, obj)
            elif kind == _CONTINUATION and min(p, end) - at >= addr_size + length_size:
                chunks.append((_u(raw, at, addr_size), _u(raw, at + addr_size, length_size)))
    return checked


_MESSAGE_HEAD = struct.Struct("<HH").unpack_from  # a header message's type and body size


def _is_vlen_attribute(raw: bytes, at: int, stop: int) -> bool:
    """Whether the attribute message whose body is ``raw[at:stop]`` stores a variable-length type (class 9):
    False wherever :func:`_check_attribute` would check nothing (a short body, a shared type, another class,
    a version it does not read)."""
    if stop - at < 8:
        return False
    version, flags = raw[at], raw[at + 1]
    name_size = raw[at + 2] | raw[at + 3] << 8
    if version == 1:
        type_at = at + 8 + _pad8(name_size)
    elif version in (2, 3):
        if flags & 0x03:
            return False
        type_at = at + (8 if version == 2 else 9) + name_size
    else:
        return False
    return type_at < stop and raw[type_at] & 0x0F == _VLEN_CLASS


def _check_attribute(body: bytes, file_size: int, addr_size: int, path, obj: str) -> int:
    if len(body) < 8:
        return 0
    version, flags = body[0], body[1]
    name_size, type_size, space_size = _u(body, 2, 2), _u(body, 4, 2), _u(body, 6, 2)
    if version == 1:
        p = 8
        name_end, type_at = p + name_size, p + _pad8(name_size)
        space_at = type_at + _pad8(type_size)
        data_at = space_at + _pad8(space_size)
    elif version in (2, 3):
        if flags & 0x03:
            return 0  # a shared datatype or dataspace: a reference to another message
        p = 8 if version == 2 else 9
        name_end, type_at = p + name_size, p + name_size
        space_at = type_at + type_size
        data_at = space_at + space_size
    else:
        return 0
    if data_at > len(body) or type_size < 8:
        return 0
    if body[type_at] & 0x0F != _VLEN_CLASS:
        return 0
    name = body[p:name_end].rstrip(b"\0").decode("utf-8", "backslashreplace")
    bits, charset = body[type_at + 1], body[type_at + 2] & 0x0F
    # bits 0-3: sequence (0) or string (1); a string's padding (bits 4-7) 0-2 and character set 0-1
    if (bits & 0x0F) > 1 or ((bits & 0x0F) == 1 and ((bits >> 4) > 2 or charset > 1)):
        raise FormatError("an attribute's stored type is damaged", path=path, obj=f"{obj.rstrip('/')}/@{name}",
                          expected="a variable-length sequence or string type (kind 0 or 1, padding 0-2, "
                                   "character set 0-1)",
                          found=f"kind {bits & 0x0F}, padding {bits >> 4}, character set {charset}",
                          hint="the file is damaged; restore it from a copy")
    count = _values(body[space_at:space_at + space_size])
    item = 8 + addr_size
    if count is None or count > _MAX_VALUES or data_at + count * item > len(body):
        return 0
    undefined = (1 << (8 * addr_size)) - 1
    for i in range(count):
        at = data_at + i * item
        length, address = _u(body, at, 4), _u(body, at + 4, addr_size)
        if length == 0 or address == undefined:
            continue  # an empty value reads nothing
        where = f"{obj.rstrip('/')}/@{name}" + (f"[{i}]" if count > 1 else "")
        if address + 16 > file_size:
            raise FormatError("an attribute's value lies outside the file", path=path, obj=where,
                              expected=f"a global heap inside the file's {file_size} bytes",
                              found=f"a reference to byte {address}",
                              hint="the file is damaged; restore it from a copy")
        if length > file_size:
            raise FormatError("an attribute's value claims to be longer than the file", path=path, obj=where,
                              expected=f"at most {file_size} bytes (the file's size)", found=f"{length} bytes",
                              hint="the file is damaged; restore it from a copy")
    return count


def _values(space: bytes) -> int | None:
    """The number of values a dataspace message holds; None when it does not parse."""
    if len(space) < 4:
        return None
    version, rank = space[0], space[1]
    if version == 1:
        dims_at = 8
    elif version == 2:
        if space[3] == 2:  # null dataspace
            return 0
        dims_at = 4
    else:
        return None
    if rank > 32 or dims_at + 8 * rank > len(space):
        return None
    count = 1
    for d in range(rank):
        count *= _u(space, dims_at + 8 * d, 8)
    return count
