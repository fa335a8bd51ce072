"""The bounded iterative link walk beneath the open-time safety scan.

``_walk`` visits every link of a file once, opening each object from its group, without
recursion and within :data:`MAX_DEPTH`, :data:`MAX_GROUP_MEMBERS` and
:data:`MAX_LINKS`; :func:`link_names` lists the names it reaches.  Re-exported by
:mod:`h5stream.files.validated`.

Each group's links are listed and their objects opened in one compiled call
(:mod:`h5stream._ext._h5scan`, libhdf5's own functions), which can also check
and describe the plain datasets among them itself (:class:`Descriptions`);
without the direct library calls (:mod:`h5stream.native.libhdf5`) the walk asks
through h5py, with the same outcome.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import h5py

from h5stream.errors import FormatError
from h5stream.files.header_checks import SIZE_FLOOR
from h5stream.native import compiled, libhdf5

__all__ = ["MAX_DEPTH", "MAX_GROUP_MEMBERS", "MAX_LINKS", "Descriptions", "link_names", "stored_names"]

# Bounds of the link walk.  Our formats stay far below them (a recording has a few
# thousand units, nesting follows the data's own dicts); a file past them is refused
# before the walk spends time or memory on it.  Raise them if a genuine file needs more.
MAX_DEPTH = 256
MAX_GROUP_MEMBERS = 100_000
MAX_LINKS = 1_000_000


class Descriptions:
    """The plain datasets of numbers without attributes that the compiled walk checked and closed itself,
    described for a reader of the whole file instead of being handed to the scan's visitor: each item
    ``(full name without the leading slash as bytes, numpy dtype, shape, values, stored_at)``, ``values``
    the dataset's values read in its stored type where they are at most ``limit`` bytes, else None and
    ``stored_at`` the (byte offset, byte count) of its contiguous storage when that holds exactly the
    values, else None (see :func:`h5stream._ext._h5scan.members`); iterating yields the items.
    ``listings``: each group's link names in the order h5py lists them (by name), keyed by the group's full
    name without the leading slash as bytes (b"" for the root), so that reader need not list them again."""

    def __init__(self, limit: int) -> None:
        self.items: list[tuple] = []
        self.limit = limit
        self.listings: dict[bytes, list[bytes]] = {}

    def __iter__(self):
        return iter(self.items)


_members: Callable | None | bool = False


def compiled_members() -> Callable | None:
    """:func:`h5stream._ext._h5scan.members`, bound to the libhdf5 h5py loaded on the first call; None
    without the direct library calls (the walk then asks through h5py)."""
    global _members
    if _members is False:
        _members = None
        scan = compiled("_h5scan")
        addresses = [libhdf5.function_address(name) for name in scan.FUNCTIONS]
        if all(addresses):
            scan.configure(addresses, h5py.h5g.GroupID, h5py.h5d.DatasetID, SIZE_FLOOR)
            scan.configure_headers(libhdf5.function_address("H5_checksum_metadata") or 0)
            _members = scan.members
    return _members


#: The superblock this package's writers leave (version 2 or 3, at the file's start, 8-byte addresses and
#: lengths, base address 0), under which an object's address is its byte offset in the file.
_SUPERBLOCK = re.compile(rb"\x89HDF\r\n\x1a\n[\x02\x03]\x08\x08.\x00{8}", re.DOTALL)


def header_reader(f: h5py.Group) -> tuple[int, int] | None:
    """(descriptor, size) of the file of ``f`` as libhdf5 reads it, when its object headers can be read at
    their addresses (:data:`_SUPERBLOCK`, the POSIX driver, open read-only: nothing the library holds unwritten):
    the compiled listing then takes plain datasets from their headers without the library opening them (see
    :func:`h5stream._ext._h5scan.members`); else None.  The size is the file's end as its superblock records it
    (what the library reads up to), or its size on disk where that is less."""
    try:
        fid = f.file.id
        if fid.get_intent() != h5py.h5f.ACC_RDONLY or fid.get_access_plist().get_driver() != h5py.h5fd.SEC2:
            return None
        fd = fid.get_vfd_handle()
        if not isinstance(fd, int) or fd < 0:
            return None
        superblock = os.pread(fd, 36, 0)
        if len(superblock) < 36 or not _SUPERBLOCK.match(superblock):
            return None
        return fd, min(os.fstat(fd).st_size, int.from_bytes(superblock[28:36], "little"))
    except (OSError, RuntimeError, ValueError, TypeError):
        return None


def _listed(gid, prefix: bytes, seen: set, take: bool, describe: Descriptions | None,
            storage: list | None, checked: set | None, reader: tuple[int, int] | None = None) -> tuple[int, list]:
    """A group's link count and its entries ``(full name, link kind, address, object)`` (see
    :func:`h5stream._ext._h5scan.members`), listed in one compiled call, else through h5py (which
    raises the library's error for a group it cannot list; ``object`` is then the link's name for a
    hard link, opened by the caller).  ``reader``: :func:`header_reader`'s answer for the file."""
    members = compiled_members()
    if members is not None:
        with libhdf5.lock:
            found = members(gid.id, prefix, seen, take, None if describe is None else describe.items,
                            0 if describe is None else describe.limit, storage, checked,
                            None if describe is None else describe.listings,
                            *(reader if reader is not None else ()))
        if found is not None:
            return found
    links: list[tuple[bytes, int, int]] = []
    gid.links.iterate(_collect(links), info=True)
    if describe is not None:
        describe.listings[prefix] = [member for member, _kind, _address in links]
    hard = h5py.h5l.TYPE_HARD
    return len(links), [(prefix + b"/" + member if prefix else member, kind, address if kind == hard else 0,
                         member if kind == hard else None) for member, kind, address in links]


_names: Callable | None | bool = False


def _compiled_names() -> Callable | None:
    """:func:`h5stream._ext._h5scan.stored_names`, bound on the first call; None without the direct calls."""
    global _names
    if _names is False:
        _names = None
        address = libhdf5.function_address("H5Aiterate2")
        if address and compiled_members() is not None:
            scan = compiled("_h5scan")
            scan.configure_names(address)
            _names = scan.stored_names
    return _names


def stored_names(oid) -> tuple[list[bytes], list[bytes]]:
    """(attribute names, member names) of the open object ``oid`` (low-level id), as stored bytes, each
    sorted; no member names for a dataset.  Listed in one compiled call where the direct calls are
    available, else through h5py (which raises the library's error for names it cannot list)."""
    names = _compiled_names()
    if names is not None:
        with libhdf5.lock:
            found = names(oid.id, isinstance(oid, h5py.h5g.GroupID))
        if found is not None:
            return found
    from h5stream.checksums._names import object_names  # (the checksums sit below this package)

    return object_names(oid)


def _short_name(name: bytes) -> str:
    text = "/" + name.decode("utf-8", "replace")
    return text if len(text) <= 120 else f"{text[:60]}...{text[-40:]}"


def _collect(into: list) -> Callable[[bytes, h5py.h5l.LinkInfo], None]:
    append = into.append

    def member(name: bytes, info: h5py.h5l.LinkInfo) -> None:
        append((name, info.type, info.u))

    return member


def _walk(f: h5py.Group, path, on_member: Callable[[bytes, int, object], bool | None], *,
          take: bool = False, describe: Descriptions | None = None, storage: list | None = None,
          checked: set | None = None) -> None:
    """Visit every link below ``f`` once in one iterative walk (soft and external links not followed).

    ``on_member(full name, link type, oid)`` is called for each link, ``oid`` the
    object opened from its group for a hard link (None otherwise, and for a group
    reached again through another hard link or a cycle); it returns True to keep
    ``oid`` open (it then owns it).  Groups are walked depth first, each opened once
    from its parent and listed once with its links' types and addresses.  Bounds:
    see :func:`link_names`.  A damaged object header raises the checksum error of
    :func:`h5stream.checksums._fletcher32.fletcher32_failure` naming the object, or the library's error.

    With ``take``, the plain datasets the compiled listing checks itself (see
    :func:`h5stream._ext._h5scan.members`) are not handed to ``on_member``: their contiguous storage is
    added to ``storage`` (when a list) and, when ``describe`` is given, they are described there; with
    ``checked`` too, those that pass the same checks but have attributes are handed over with their full
    names added to ``checked`` (and their storage to ``storage``).  Where the file's object headers can be
    read at their addresses (:func:`header_reader`), a plain dataset is checked from its header without the
    library opening it (see :func:`h5stream._ext._h5scan.members`), and one with attributes is then handed
    over with ``oid`` None (its name in ``checked``).
    """
    from h5stream.checksums._fletcher32 import fletcher32_failure  # the checksums module imports this package

    group_id = h5py.h5g.GroupID
    root = f.id
    seen: set[int] = {h5py.h5o.get_info(root).addr}
    reader = header_reader(f) if take and compiled_members() is not None else None
    total = 0
    # (full name, open group id, depth, closed here); the root is the caller's, a kept group the visitor's.
    stack: list[tuple[bytes, h5py.h5g.GroupID, int, bool]] = [(b"", root, 0, False)]
    try:
        while stack:
            prefix, gid, depth, owned = stack.pop()
            where = _short_name(prefix) if prefix else (f.name or "/")
            try:
                count = gid.get_num_objs()
                if count > MAX_GROUP_MEMBERS:
                    raise FormatError(
                        "group has too many members", path=path, obj=where,
                        expected=f"at most {MAX_GROUP_MEMBERS} (h5stream.files._walk.MAX_GROUP_MEMBERS)",
                        found=f"{count} members",
                        hint="the file is damaged or crafted; raise the limit if it is genuine",
                    )
                if total + count > MAX_LINKS:
                    raise FormatError(
                        "file has too many objects", path=path, obj=where,
                        expected=f"at most {MAX_LINKS} links (h5stream.files._walk.MAX_LINKS)",
                        found=f"more than {total + count}",
                        hint="the file is damaged or crafted; raise the limit if it is genuine",
                    )
                listed, entries = _listed(gid, prefix, seen, take, describe, storage, checked, reader)
                total += listed
                children: list[tuple[bytes, h5py.h5g.GroupID, int, bool]] = []
                for full, kind, address, oid in entries:
                    if oid is None:  # not a hard link, or a group reached again (another hard link, a cycle)
                        on_member(full, kind, None)
                        continue
                    if isinstance(oid, bytes):  # opened here
                        if address in seen:
                            on_member(full, kind, None)
                            continue
                        try:
                            oid = h5py.h5o.open(gid, oid)
                        except (OSError, RuntimeError, KeyError) as exc:  # h5py raises KeyError for a damaged header
                            mapped = fletcher32_failure(exc, path, _short_name(full))  # a damaged object header
                            if mapped is None or mapped is exc:
                                raise
                            raise mapped from exc
                    keep = False
                    try:
                        keep = on_member(full, kind, oid)
                    finally:
                        if isinstance(oid, group_id):
                            seen.add(address)
                            children.append((full, oid, depth + 1, not keep))
                        elif not keep:
                            oid.close()
            finally:
                if owned:
                    gid.close()
            if children and depth + 1 > MAX_DEPTH:
                for _name, child, _depth, closed_here in children:
                    if closed_here:
                        child.close()
                raise FormatError(
                    "groups are nested too deeply", path=path, obj=_short_name(children[0][0]),
                    expected=f"at most {MAX_DEPTH} levels (h5stream.files._walk.MAX_DEPTH)",
                    found=f"a group at level {depth + 1}",
                    hint="the file is damaged or crafted; raise the limit if it is genuine",
                )
            stack.extend(reversed(children))
    finally:
        for _prefix, gid, _depth, owned in stack:
            if owned:
                gid.close()


def link_names(f: h5py.Group, path: str | os.PathLike | None = None) -> list[bytes]:
    """Every link name below ``f``, each object visited once (soft and external links not followed).

    The walk is iterative (libhdf5's own recursive visit overflows the C stack on
    a deeply nested file) and bounded: a group nested more than :data:`MAX_DEPTH`
    levels, holding more than :data:`MAX_GROUP_MEMBERS` links, or a file of more
    than :data:`MAX_LINKS` links raises :class:`FormatError` naming the group,
    before its members are listed.
    """
    if path is None:
        path = f.file.filename
    names: list[bytes] = []
    append = names.append

    def on_member(full: bytes, _kind: int, _oid) -> bool:
        append(full)
        return False

    _walk(f, path, on_member)
    return names
