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

The parse runs in C (:mod:`h5stream._ext._ohdr`: it is paid at every open, for
every object with attributes); this module turns what it finds into the typed
error.

Formats (HDF5 file format specification, version 1 object headers, attribute
message versions 1-3, datatype class 9, dataspace versions 1-2).
"""

from __future__ import annotations

import os

import h5py

from h5stream.errors import FormatError
from h5stream.native import compiled, libhdf5

__all__ = ["AttributeReferences", "check_attribute_references", "check_object_references", "direct_object_info",
           "find_signature", "refuse"]

_ohdr = compiled("_ohdr")

#: ``find_signature(data, signature, start=0)``: ``data.find(signature, start)`` in C (memchr), for the search
#: of global heap signatures through a file's bytes
find_signature = _ohdr.find
_HINT = "the file is damaged; restore it from a copy"


def check_attribute_references(fd: int, file_size: int, header_address: int, sizes: tuple[int, int], path,
                               obj: str, base: int = 0) -> int:
    """Refuse a variable-length attribute value of the version-1 object header at ``header_address`` whose
    heap collection or length lies past the end of the file; returns how many references were checked.

    ``fd``: the file, open for reading; ``sizes``: the file's (address size, length size); ``base``: the size
    of its user block (a MuData file has 512 bytes), which every address stored in the file is relative to.
    Anything that does not parse as a version-1 header is left to libhdf5 (it reports its own errors).
    """
    return refuse(_ohdr.scan(fd, file_size, header_address, sizes[0], sizes[1], base), file_size, path, obj, base)


def direct_object_info() -> bool:
    """Whether :func:`check_object_references` can ask libhdf5 itself (``H5Oget_info3`` of the library h5py
    loaded, bound on the first call); False without the direct calls (see :mod:`h5stream.native.libhdf5`)."""
    if not _ohdr.configured():
        address = libhdf5.function_address("H5Oget_info3")
        if address is None:
            return False
        _ohdr.configure(address)
    return True


def check_object_references(oid: int, fd: int, file_size: int, sizes: tuple[int, int], path, obj: str,
                            base: int = 0) -> int | None:
    """:func:`check_attribute_references` of the object whose ``hid_t`` is ``oid``, its header's address and
    attribute count asked of libhdf5 (loading the header refuses a damaged one); None when libhdf5 cannot
    load it (the caller asks again through h5py, which raises the library's error).  Needs
    :func:`direct_object_info`."""
    with libhdf5.lock:
        found = _ohdr.check_object(oid, fd, file_size, sizes[0], sizes[1], base)
    if found == _ohdr.INFO_FAILED:
        return None
    return refuse(found, file_size, path, obj, base)


def refuse(found, file_size: int, path, obj: str, base: int = 0) -> int:
    """The count :mod:`h5stream._ext._ohdr` found, or its damage raised as :class:`FormatError` (``base``: the
    user block's size, added to the relative address the scan found to name the byte in the file)."""
    if not isinstance(found, tuple):
        return found
    what, raw_name, a, b, c = found
    name = f"{obj.rstrip('/')}/@{raw_name.decode('utf-8', 'backslashreplace')}"
    if what == _ohdr.DAMAGED_TYPE:
        raise FormatError("an attribute's stored type is damaged", path=path, obj=name,
                          expected="a variable-length sequence or string type (kind 0 or 1, padding 0-2, "
                                   "character set 0-1)",
                          found=f"kind {a}, padding {b}, character set {c}", hint=_HINT)
    where = name + (f"[{a}]" if b > 1 else "")
    if what == _ohdr.OUTSIDE:
        raise FormatError("an attribute's value lies outside the file", path=path, obj=where,
                          expected=f"a global heap inside the file's {file_size} bytes",
                          found=f"a reference to byte {c + base}", hint=_HINT)
    raise FormatError("an attribute's value claims to be longer than the file", path=path, obj=where,
                      expected=f"at most {file_size} bytes (the file's size)", found=f"{c} bytes",
                      hint=_HINT)


class AttributeReferences:
    """The check of variable-length attribute references in version-1 object headers during the open-time
    scan (:func:`h5stream.files.validated.scan_unsafe_objects`); only for files whose superblock is older
    than version 2 (a newer one means version-2 headers, which HDF5 checksums)."""

    def __init__(self, path, fd: int, file_size: int, sizes: tuple[int, int], native: bool, base: int = 0) -> None:
        self.path, self.fd, self.file_size, self.sizes = path, fd, file_size, sizes
        self.native, self.base = native, base

    @classmethod
    def of(cls, f: h5py.File, path, native=direct_object_info) -> AttributeReferences | None:
        """The check for ``f``, or None for a file it does not apply to; ``native()``: whether libhdf5 can be
        asked directly (:func:`direct_object_info`, asked only for a file the check applies to)."""
        try:
            plist = f.id.get_create_plist()
            if plist.get_version()[0] >= 2:
                return None
            sizes = plist.get_sizes()
            base = plist.get_userblock()  # stored addresses are relative to the end of the user block
            name = f.filename
            fd = os.open(name, os.O_RDONLY)
        except (OSError, RuntimeError, ValueError, TypeError):
            return None  # not a file of the disk (an in-memory file): nothing to read
        try:
            return cls(path, fd, os.fstat(fd).st_size, sizes, native(), base)
        except OSError:
            os.close(fd)
            return None

    def check(self, oid, obj: str) -> None:
        if self.native and check_object_references(oid.id, self.fd, self.file_size, self.sizes, self.path,
                                                   obj, self.base) is not None:
            return
        # without the direct calls, or to raise libhdf5's own error about a header it cannot load
        info = h5py.h5o.get_info(oid)
        if info.num_attrs and info.hdr.version == 1:
            check_attribute_references(self.fd, self.file_size, info.addr, self.sizes, self.path, obj, self.base)

    def close(self) -> None:
        os.close(self.fd)
