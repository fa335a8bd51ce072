"""The read side's one pass over the objects below a group: members, plain attributes, datasets' shapes and dtypes.

A reader that knows its layout names the objects it reads below a group as a
:class:`Layout` (relative paths whose parts are names or :data:`ANY`), and
:func:`walk_group` opens each of them once and returns them as a tree of
:class:`Entry`: a group's member names (in the file's listing order) and the
entries of the members the layout names; a dataset's shape and numpy dtype (each
distinct stored type converted once); and, for the objects the layout asks it of,
their plain attributes read in one batch of direct library calls
(:mod:`h5stream.batch_attrs`) or just the named ones.  Datasets are read
whole into the caller's arrays (:meth:`Entry.read_into`) or handed over as h5py
datasets (:meth:`Entry.object`).  The library's ids and h5py's global lock stay
inside the engine: a face reads its layout from the entries and nothing else.

The objects the open-time safety scan already opened can be kept for the walk
(:class:`KeptObjects`, passed as ``visit`` to
:func:`h5stream.files.open_validated`), so a whole-file reader opens nothing twice.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np
from h5py import h5a, h5d, h5g, h5o, h5s, h5t

from h5stream.errors import H5StreamError
from h5stream.files import guard_read
from h5stream.tree import INTERNAL_ATTRS
from h5stream import batch_attrs as native_attrs
from h5stream.batch_attrs import LEFT, library_lock

__all__ = ["ANY", "NOT_PLAIN", "Layout", "Entry", "KeptObjects", "walk_group", "read_plain_attrs"]

#: A part of a :class:`Layout` path that matches any member name.
ANY = "*"
#: The value of a named attribute (:meth:`Entry.named_attrs`) that is present but not a plain scalar.
NOT_PLAIN = object()

#: Attribute names the tree writer keeps for itself: an object carrying one has no plain attributes.
_INTERNAL = frozenset(INTERNAL_ATTRS)
#: What h5py and numpy raise on damaged content (turned into the engine's typed errors).
_READ_FAILURES = (OSError, RuntimeError, KeyError, ValueError, TypeError, UnicodeError, MemoryError)
#: numpy dtypes (and their h5py memory types) of plain scalar attributes, by the file type's class and layout.
_SCALAR_TYPES: dict[tuple, tuple[np.dtype, h5t.TypeID]] = {}
#: h5py memory types of the numpy dtypes datasets are read into.
_MEMORY_TYPES: dict[np.dtype, h5t.TypeID] = {}
_ALL_ATTRS = None  # a layout's "every plain attribute"
#: The children of an entry that has none (a dataset, or a group whose members the layout does not name).
_NO_CHILDREN: types.MappingProxyType = types.MappingProxyType({})


class _Node:
    """One level of a compiled :class:`Layout`: the members it names, and what is read of the object."""

    __slots__ = ("named", "any", "kept", "attrs")

    def __init__(self) -> None:
        self.named: dict[bytes, _Node] = {}
        self.any: _Node | None = None
        self.kept = False
        self.attrs: bool | tuple[str, ...] = False  # False: none; None: every plain one; names: those

    def child(self, name: bytes) -> _Node | None:
        node = self.named.get(name)
        return node if node is not None else self.any

    def step(self, part: str) -> _Node:
        if part == ANY:
            if self.any is None:
                self.any = _Node()
            return self.any
        key = part.encode("utf-8", "surrogateescape")
        node = self.named.get(key)
        if node is None:
            node = self.named[key] = _Node()
        return node


class Layout:
    """The objects a walk reads below its group.

    ``paths``: relative paths (``"*"`` or ``("*", "spike_times")``; a part :data:`ANY`
    matches any name) of the objects to open: a group's members are listed and the
    members the layout names are walked; a dataset's shape and dtype are read.
    ``attrs``: ``{path: None}`` reads every plain attribute of the objects at
    ``path`` (numbers and variable-length text, as h5py reads them; see
    :attr:`Entry.attrs`), ``{path: ("UnitID", ...)}`` just those names (see
    :meth:`Entry.named_attrs`).  Every path of ``attrs`` is opened, and so is every
    group on the way to a path.  A path that is not a name of the file is skipped;
    the reader checks what it needs.
    """

    def __init__(self, paths: Iterable, attrs: dict | None = None) -> None:
        self.root = _Node()
        for path in list(paths) + list(attrs or ()):
            self._node(path)
        for path, names in (attrs or {}).items():
            self._node(path).attrs = _ALL_ATTRS if names is None else tuple(names)

    def _node(self, path) -> _Node:
        """The node of ``path``, it and the groups leading to it opened by a walk."""
        node = self.root
        for part in (path.split("/") if isinstance(path, str) else path):
            node = node.step(part)
            node.kept = True
        return node


class Entry:
    """One object of a walk: a group (``members``, ``children``) or a dataset (``shape``, ``dtype``).

    ``name``: the member's name (the walked group's own entry: its path); ``path``:
    the object's full path; ``kind``: ``"group"``, ``"dataset"`` or ``"other"`` (a
    named datatype).  ``members``: every member name of a group in listing order;
    ``children``: the entries of those the layout names.  ``shape`` is h5py's (None
    for an empty dataspace).  ``attrs``: the object's plain attributes as h5py reads
    them when the layout asked for all of them and each is a plain scalar (a number,
    a variable-length text, a boolean); None otherwise (an array, an enum, a type tag
    of the tree, text that is not UTF-8: read them through :meth:`object`, which
    also names any damage).
    """

    # Defaults at the class: a walk makes an entry per object, each setting only what differs.
    members: tuple[str, ...] = ()
    children: dict[str, Entry] = _NO_CHILDREN
    shape: tuple[int, ...] | None = None
    dtype: np.dtype | None = None
    attrs: dict | None = None
    #: (walked group's entry only) the entries whose attributes the layout asks for, in walk order
    _with_attrs: list[Entry] | None = None

    def __init__(self, name: str, path: str, oid, node: _Node | None) -> None:
        self.name, self.path, self._oid, self._node = name, path, oid, node
        self.kind = _KINDS.get(type(oid)) or ("group" if isinstance(oid, h5g.GroupID) else
                                               "dataset" if isinstance(oid, h5d.DatasetID) else "other")

    def object(self) -> h5py.Group | h5py.Dataset:
        """The object as an h5py group or dataset."""
        return h5py.Group(self._oid) if self.kind == "group" else h5py.Dataset(self._oid)

    def read_into(self, out: np.ndarray) -> None:
        """Read the whole dataset into ``out`` (its shape, any numeric dtype: converted as h5py converts)."""
        mtype = _MEMORY_TYPES.get(out.dtype)
        if mtype is None:
            mtype = _MEMORY_TYPES[out.dtype] = h5t.py_create(out.dtype)
        self._oid.read(h5s.ALL, h5s.ALL, out, mtype=mtype)

    def named_attrs(self, names: Iterable[str]) -> dict:
        """``{name: value}`` of the named attributes the object has: a number or text of one element (shape
        ``()`` or ``(1,)``) as a numpy scalar or ``str``, else :data:`NOT_PLAIN`.  Absent names are left out."""
        with library_lock:
            return _named_attrs(self._oid, names)


_KINDS = {h5g.GroupID: "group", h5d.DatasetID: "dataset"}


class KeptObjects:
    """The objects of a layout below ``root`` that the open-time safety scan opened, kept for the walk.

    Pass it as ``visit`` to :func:`h5stream.files.open_validated` (see
    :data:`h5stream.files.validated.ObjectVisitor`) and to :func:`walk_group`: the
    scan opens every object once and checks it; this keeps the ones the layout names
    and records the member names of the groups it names, in the scan's listing order,
    so the walk opens nothing again.  What it does not hold (a link the scan did not
    open) the walk opens itself.  The walk closes what it did not take.
    """

    def __init__(self, root: str, layout: Layout) -> None:
        self._prefix = root.strip("/").encode("utf-8", "surrogateescape") + b"/"
        self._layout = layout
        self.objects: dict[bytes, object] = {}
        self.members: dict[bytes, list[bytes]] = {}

    def __call__(self, full: bytes, oid) -> bool:
        if not full.startswith(self._prefix):
            return False
        parent, _, member = full.rpartition(b"/")
        node = self._layout.root
        for part in parent[len(self._prefix):].split(b"/") if parent != self._prefix[:-1] else ():
            node = node.child(part)
            if node is None or not node.kept:
                return False  # below an object the layout does not walk
        self.members.setdefault(parent, []).append(member)
        node = node.child(member)
        if oid is None or node is None or not node.kept:
            return False
        self.objects[full] = oid
        return True

    def open(self, parent, key: bytes, member: bytes):
        """The object ``member`` of group ``parent`` (full name ``key``), held or opened now."""
        held = self.objects.pop(key + b"/" + member, None)
        return held if held is not None else h5o.open(parent, member)

    def names(self, group, key: bytes) -> list[bytes]:
        """The member names of ``group`` (full name ``key``) in listing order."""
        held = self.members.get(key)
        if held is not None:
            return held
        return _listed(group)

    def close(self) -> None:
        """Close what the walk did not take."""
        for oid in self.objects.values():
            if oid.valid:
                oid.close()
        self.objects.clear()
        self.members.clear()


class _Fresh:
    """The walk's own opening of every object (no scan kept any)."""

    @staticmethod
    def open(parent, key: bytes, member: bytes):
        return h5o.open(parent, member)

    @staticmethod
    def names(group, key: bytes) -> list[bytes]:
        return _listed(group)

    @staticmethod
    def close() -> None:
        pass


def _listed(group) -> list[bytes]:
    names: list[bytes] = []
    group.links.iterate(names.append)
    return names


def walk_group(f: h5py.File, root: str, layout: Layout, *, kept: KeptObjects | None = None, attrs: bool = True,
               path: str | Path | None = None) -> Entry:
    """The group ``root`` of ``f`` and the objects below it that ``layout`` names, as a tree of :class:`Entry`.

    Each object is opened once (or taken from ``kept``, which is closed after);
    its members, shape and dtype read by direct library calls where they can be.
    ``attrs=False`` leaves the attributes for :func:`read_plain_attrs` (a reader that
    starts reading datasets first).  A failed read is the engine's typed error naming
    the object (``path``: the file's path for it, default ``f.filename``).
    """
    path = Path(f.filename if path is None else path)
    held = kept if kept is not None else _Fresh
    key = root.strip("/").encode("utf-8", "surrogateescape")
    where = "/" + key.decode("utf-8", "surrogateescape")
    lib = native_attrs.bindings()
    dtypes = _Types()
    at = [where]  # the object being read, for the error
    try:
        try:
            with library_lock:
                top = Entry(where, where, h5g.open(f.id, key or b"/"), layout.root)
                top._with_attrs = _fill(top, key, layout.root, held, lib, dtypes, at)
        finally:
            held.close()
    except H5StreamError:
        raise
    except _READ_FAILURES:
        with guard_read(path, at[0]):  # the engine's typed error (damage, a missing filter, a checksum)
            raise
    if attrs:
        read_plain_attrs(top, path)
    return top


def _fill(top: Entry, top_key: bytes, top_node: _Node, held, lib, dtypes: _Types, at: list) -> list[Entry]:
    """Open and describe the objects below ``top``; returns the entries whose attributes the layout asks for.
    ``at[0]``: the path of the object being read."""
    with_attrs = [top] if top_node.attrs is not False else []
    stack = [(top, top_key, top_node)]
    while stack:
        entry, key, node = stack.pop()
        at[0] = entry.path
        if node.attrs is not False and entry is not top:
            with_attrs.append(entry)
        oid = entry._oid
        if entry.kind == "dataset":
            if lib is not None:
                entry.shape, dtype = native_attrs.dataset_shape_and_dtype(lib, oid.id)
                entry.dtype = dtype if dtype is not None else dtypes.dtype(oid)
            else:
                entry.shape, entry.dtype = oid.shape, dtypes.dtype(oid)
            continue
        if entry.kind != "group":
            continue
        names = held.names(oid, key)
        entry.members = members = tuple([n.decode("utf-8", "surrogateescape") for n in names])
        if not node.named and node.any is None:
            continue  # the layout names none of its members
        children = entry.children = {}
        prefix = entry.path.rstrip("/") + "/"
        first = len(stack)
        named, any_node = node.named, node.any
        for raw, name in zip(names, members):
            child_node = named.get(raw, any_node)
            if child_node is None or not child_node.kept:
                continue
            child = children[name] = Entry(name, prefix + name, held.open(oid, key, raw), child_node)
            stack.append((child, (key + b"/" + raw) if key else raw, child_node))
        stack[first:] = stack[first:][::-1]  # walked in listing order
    return with_attrs


def read_plain_attrs(top: Entry, path: str | Path) -> None:
    """Read the attributes the layout asks for into ``top`` and the entries below it (see :class:`Layout`);
    ``path``: the file's, for the typed error of a failed read."""
    where = top.path
    try:
        with library_lock:
            for entry in top._with_attrs or ():
                wanted = entry._node.attrs
                where = entry.path
                entry.attrs = _plain_attrs(entry._oid) if wanted is _ALL_ATTRS else _named_attrs(entry._oid, wanted)
    except H5StreamError:
        raise
    except _READ_FAILURES:
        with guard_read(path, where):
            raise


class _Types:
    """Numpy dtypes of the walk's datasets, each distinct stored type converted once."""

    def __init__(self) -> None:
        self.numbers: dict[tuple, np.dtype] = {}
        self.others: list[tuple[h5t.TypeID, np.dtype]] = []

    def dtype(self, dsid: h5d.DatasetID) -> np.dtype:
        tid = dsid.get_type()
        cls = tid.get_class()
        if cls in (h5t.INTEGER, h5t.FLOAT):
            key = (cls, tid.get_size(), tid.get_order(), tid.get_sign() if cls == h5t.INTEGER else None)
            dtype = self.numbers.get(key)
            if dtype is None:
                dtype = self.numbers[key] = tid.dtype
            return dtype
        for known, dtype in self.others:  # tables: a file of many mostly repeats one type (H5Tequal)
            if tid.equal(known):
                return dtype
        dtype = tid.dtype
        if len(self.others) < 16:
            self.others.append((tid, dtype))
        return dtype


def _scalar_type(tid: h5t.TypeID):
    """(numpy dtype, memory type) of a plain number or variable-length text type, else None."""
    cls = tid.get_class()
    if cls == h5t.INTEGER:
        key = (cls, tid.get_size(), tid.get_order(), tid.get_sign())
    elif cls == h5t.FLOAT:
        key = (cls, tid.get_size(), tid.get_order())
    elif cls == h5t.STRING and tid.is_variable_str():
        key = (cls, tid.get_cset())
    else:
        return None
    known = _SCALAR_TYPES.get(key)
    if known is None:
        dtype = tid.dtype
        known = _SCALAR_TYPES[key] = (dtype, h5t.py_create(dtype))
    return known


def _h5py_value(oid, raw: bytes):
    """A plain scalar attribute as h5py reads it, through h5py's low-level API, or :data:`LEFT`."""
    attr = h5a.open(oid, raw)
    if attr.get_space().get_simple_extent_type() != h5s.SCALAR:
        return LEFT
    tid = attr.get_type()
    if tid.get_class() == h5t.ENUM:
        dtype = tid.dtype  # h5py's booleans are an enum; other enums are left to the tree reader
        if dtype.kind != "b":
            return LEFT
        known = (dtype, h5t.py_create(dtype))
    else:
        known = _scalar_type(tid)
    if known is None:
        return LEFT
    dtype, mtype = known
    value = np.empty((), dtype=dtype)
    attr.read(value, mtype=mtype)
    value = value[()]
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return LEFT
    return value


def _plain_attrs(oid) -> dict | None:
    """The attributes of an object as h5py reads them when each is a plain scalar; else None (see
    :attr:`Entry.attrs`).  Read by direct library calls where they can be, else through h5py's
    low-level API."""
    lib = native_attrs.bindings()
    if lib is not None:
        out = native_attrs.read_plain(lib, oid.id, _INTERNAL)
        if out is None:
            return None
        for name, value in out.items():
            if value is LEFT:
                value = out[name] = _h5py_value(oid, name.encode("utf-8"))
                if value is LEFT:
                    return None
        return out
    names: list[bytes] = []
    h5a.iterate(oid, names.append)
    out = {}
    for raw in names:
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if name in _INTERNAL:
            return None
        value = _h5py_value(oid, raw)
        if value is LEFT:
            return None
        out[name] = value
    return out


def _named_attrs(oid, names: Iterable[str]) -> dict:
    """See :meth:`Entry.named_attrs` (the caller holds the library lock)."""
    out = {}
    for name in names:
        raw = name.encode("utf-8")
        if not h5a.exists(oid, raw):
            continue
        aid = h5a.open(oid, raw)
        dtype = aid.dtype
        if dtype.kind not in "iuf" or aid.shape not in ((), (1,)):
            value = _h5py_value(oid, raw) if aid.shape == () else LEFT
            out[name] = NOT_PLAIN if value is LEFT else value
            continue
        value = np.zeros(aid.shape, dtype=dtype)
        aid.read(value)
        out[name] = value.reshape(-1)[0]
    return out

