"""Digests of the names in a file: each object's attribute names and, for a group, its member names.

A file whose object headers are version 1 (HDF5's default, ``libver="earliest"``,
which the container formats keep so that every reader opens them) stores the
names of attributes in those headers and the names of a group's members in
its local heap, none of which HDF5 checksums.  The digests of values
(:mod:`h5stream.digests`) pair values with names but do not cover the
names themselves, so a flipped byte in the name of an optional attribute or
member reads as its absence: the value it held is silently replaced by the
default.  A walking writer (``checksums="walk"``) of such a file therefore
records, per object that has any, the digest of its names
(:func:`names_digest`), under ``name_digests`` of the manifest (version 3), and
readers check every one when they attach the manifest (:func:`check_names`):
the names are listed from the object headers alone (no value is read), so the
check costs a few tens of microseconds per object.

What a digest covers: the CRC-32 of ``"<number of attributes> <number of
members>"``, a NUL byte, then the attribute names and then the member names,
each group sorted by their bytes (UTF-8: the order of code points) and joined
with NUL bytes (which no HDF5 name holds).  The root's manifest attribute is
left out (it is written after the digests).  Files whose headers HDF5
checksums (version 2, ``libver`` v1.8 or later: names in compact storage live
in the checksummed header, in dense storage in fractal heaps whose blocks HDF5
checksums) record none, nor do files written before version 3.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import h5py

from h5stream.errors import ChecksumError, FormatError

__all__ = ["object_names", "names_digest", "check_names"]


def _object_id(fid, path: str):
    return h5py.h5o.open(fid, b"." if path == "/" else path.lstrip("/").encode("utf-8"))


def object_names(oid, *, root: bool = False, manifest_attr: str = "h5stream_checksums") -> tuple[list[bytes],
                                                                                                    list[bytes]]:
    """(attribute names, member names) of the open object ``oid``, as stored bytes, each sorted (listed
    through h5py; :func:`h5stream.files._walk.stored_names` lists the same in one compiled call)."""
    attrs: list[bytes] = []
    h5py.h5a.iterate(oid, attrs.append)
    if root:
        skip = manifest_attr.encode("utf-8")
        attrs = [n for n in attrs if n != skip]
    members: list[bytes] = []
    if isinstance(oid, h5py.h5g.GroupID):
        oid.links.iterate(members.append)
    attrs.sort()
    members.sort()
    return attrs, members


def names_digest(attrs: list[bytes], members: list[bytes]) -> str:
    """The digest of sorted attribute and member names (see the module text); 8 hex digits."""
    head = f"{len(attrs)} {len(members)}".encode("ascii") + b"\0"
    crc = zlib.crc32(head + b"\0".join(attrs + members)) & 0xFFFFFFFF
    return f"{crc:08x}"


def _shown(names: list[bytes]) -> str:
    return ", ".join(n.decode("utf-8", "backslashreplace") for n in names) or "none"


def _refuse_undecodable(path, where: str, attrs: list[bytes], members: list[bytes]) -> None:
    """A name that is not UTF-8 (every name the engine writes is) is reported as such, naming it."""
    from h5stream.checksums._manifest import attr_name_text

    for name in attrs:
        attr_name_text(path, where, name)
    for name in members:
        try:
            name.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError("a member name is not UTF-8 text", path=path,
                              obj=f"{where.rstrip('/')}/{name.decode('utf-8', 'backslashreplace')}",
                              expected="a UTF-8 member name",
                              found=f"the bytes {name!r} (byte {exc.start} does not decode)",
                              hint="the file is damaged or was written by another tool") from None


def check_names(f: h5py.File, manifest, manifest_attr: str,
                known: Mapping[str, tuple[list[bytes], list[bytes]]] | None = None) -> int:
    """Check every names digest of ``manifest`` against the open file ``f``; returns how many were checked.

    ``known``: the names the open-time scan listed in ``f`` (full name -> (attribute names, member names),
    see :func:`h5stream.files.validated.scan_unsafe_objects`); an object not in it is opened here.
    A ChecksumError names the object whose attribute or member names differ from
    those written, and lists the names found; an object the manifest lists that
    cannot be found is a ChecksumError naming it.
    """
    expected_digests = manifest.name_digests
    if not expected_digests:
        return 0
    fid = f.id
    known = known or {}
    # Parents before their members (a path sorts before every path it prefixes): a renamed member is
    # reported at its group, with the names found there.
    for where in sorted(expected_digests):
        expected = expected_digests[where]
        listed = known.get(where)
        if listed is None:
            attrs, members = _names_of(fid, where, manifest, manifest_attr)
        else:
            attrs, members = listed
            if where == "/":
                skip = manifest_attr.encode("utf-8")
                attrs = [n for n in attrs if n != skip]
        found = names_digest(attrs, members)
        if found != expected:
            _refuse_undecodable(manifest.path, where, attrs, members)
            raise ChecksumError(
                "checksum mismatch: the names of the object's attributes or members are not those written",
                path=manifest.path, obj=where, expected=f"crc32 {expected} of the names written",
                found=f"crc32 {found} of attributes [{_shown(attrs)[:300]}], members [{_shown(members)[:300]}]",
                hint="the file is damaged or was edited by another tool; load with verify=False to read it as "
                     "stored")
    return len(expected_digests)


def _names_of(fid, where: str, manifest, manifest_attr: str) -> tuple[list[bytes], list[bytes]]:
    """:func:`object_names` of the object at ``where``, opened here; a missing or unreadable object raised."""
    try:
        oid = _object_id(fid, where)
    except KeyError:
        raise ChecksumError("an object listed in the checksum manifest is missing", path=manifest.path,
                            obj=where, expected="the object", found="no object at that path",
                            hint="the file is damaged or was edited by another tool") from None
    except (OSError, RuntimeError, ValueError) as exc:
        raise FormatError("an object cannot be opened", path=manifest.path, obj=where,
                          expected="a readable object header", found=f"libhdf5: {exc}",
                          hint="the file is damaged; restore it from a copy") from exc
    try:
        return object_names(oid, root=where == "/", manifest_attr=manifest_attr)
    except (OSError, RuntimeError, ValueError) as exc:
        raise FormatError("the names of an object's attributes or members cannot be read", path=manifest.path,
                          obj=where, expected="readable attribute and link names", found=f"libhdf5: {exc}",
                          hint="the file is damaged; restore it from a copy") from exc
