"""What a reader needs to know about an element before it reads values, read once, in one place.

An element's reader (a codec of :mod:`h5stream.elements`) needs its object's attributes (the encoding,
our typed attributes, a container name, a memory order ...), the encoding they name, and, where the
file has a checksum manifest, the digest recorded for the object's values.  :func:`describe` reads all
of it at once and hands it over as a :class:`Node`: every attribute of the object in one pass of direct
libhdf5 calls (:func:`h5stream.checksums.read_attr_values`), the encoding they name (:func:`read_spec`),
and the manifest attached to its file, looked up once for a whole element and handed to its members
(:meth:`Node.members`).  A codec then reads the values and checks them with :meth:`Node.check`,
which asks nothing of the file when the manifest records no digest of the object (as in every file
another tool wrote).  The registry (:func:`h5stream.elements.registry.read_node`) dispatches on
:attr:`Node.spec`; a codec reads its members through the nodes of :meth:`Node.members`, so an element
read from a foreign ``.h5ad`` or ``.h5mu`` file goes downhill: describe, dispatch, read.

The encodings themselves (:class:`ElementSpec`, the attribute names that carry them) are defined here
too, since naming one is the first thing a description does.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import h5py

from h5stream import checksums
from h5stream.errors import FormatError

__all__ = ["ElementSpec", "Node", "describe", "describe_each", "describe_members", "file_name", "open_members",
           "read_spec", "text_of", "ENCODING_TYPE_ATTR",
           "ENCODING_VERSION_ATTR", "TYPED_TYPE_ATTR", "TYPED_VERSION_ATTR"]

ENCODING_TYPE_ATTR = "encoding-type"
ENCODING_VERSION_ATTR = "encoding-version"
TYPED_TYPE_ATTR = "h5stream:encoding-type"
TYPED_VERSION_ATTR = "h5stream:encoding-version"


@dataclasses.dataclass(frozen=True)
class ElementSpec:
    """An encoding: its type name and version, and whether it is layered.

    ``layered=True`` marks a typed encoding of our own whose physical layout is
    a spec encoding; the writer of such an encoding writes the spec element
    first (stamped with its own spec) and the registry then adds the typed
    attributes.
    """

    encoding_type: str
    encoding_version: str
    layered: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.encoding_type, self.encoding_version)

    def __str__(self) -> str:
        return f"{self.encoding_type} {self.encoding_version}"


def file_name(obj) -> str:
    """``obj.file.filename`` of an h5py object (or its low-level id), asked of libhdf5 directly: h5py's
    ``obj.file`` builds a ``File`` object first, which costs a reader more than most of its small reads."""
    name = h5py.h5f.get_name(obj.id if isinstance(obj, h5py.HLObject) else obj)
    # decoded as h5py decodes File.filename: UTF-8 on Windows, the file system's encoding elsewhere
    return name.decode("utf-8") if sys.platform == "win32" else os.fsdecode(name)


def text_of(value: Any) -> Any:
    """An attribute value as h5py gives it, with stored bytes decoded to ``str``."""
    return value.decode() if isinstance(value, bytes) else value


def _attr_str(obj, name: str, values: Mapping[str, Any] | None = None) -> str | None:
    if values is not None:
        value = values.get(name)
    else:
        try:
            value = checksums.read_attr(obj, name)  # a damaged type is refused: it could crash libhdf5 on read
        except KeyError:
            return None
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def read_spec(obj, values: Mapping[str, Any] | None = None) -> ElementSpec | None:
    """The encoding our reader dispatches on (typed attributes first), or None.

    ``values``: all of ``obj``'s attributes already read (:func:`h5stream.checksums.read_attr_values`),
    or None to read them.
    """
    typed, typed_version = _attr_str(obj, TYPED_TYPE_ATTR, values), _attr_str(obj, TYPED_VERSION_ATTR, values)
    etype, version = _attr_str(obj, ENCODING_TYPE_ATTR, values), _attr_str(obj, ENCODING_VERSION_ATTR, values)
    # Writers always set both attributes of a pair: one without the other is a damaged name or
    # value, and reading on with the other layer's encoding would silently change the values.
    for kind, pair in (("h5stream encoding", (typed, typed_version)), ("encoding", (etype, version))):
        if (pair[0] is None) != (pair[1] is None):
            missing = (TYPED_TYPE_ATTR, TYPED_VERSION_ATTR) if kind != "encoding" else \
                (ENCODING_TYPE_ATTR, ENCODING_VERSION_ATTR)
            raise FormatError(
                f"the {kind} attributes are incomplete", path=obj.file.filename, obj=obj.name,
                expected=f"both {missing[0]} and {missing[1]}",
                found=f"only {missing[0] if pair[0] is not None else missing[1]}",
                hint="the file is damaged; restore it from a copy",
            )
    if typed is not None:
        return ElementSpec(typed, typed_version, layered=True)
    if etype is None:
        return None
    return ElementSpec(etype, version)


class _Attrs(Mapping):
    """The attributes of ``obj`` read through h5py as they are asked for, stored bytes decoded to ``str``
    (where the direct calls could not read them: h5py then reports a damaged name or value)."""

    __slots__ = ("_attrs",)

    def __init__(self, obj) -> None:
        self._attrs = obj.attrs

    def __getitem__(self, name: str) -> Any:
        return text_of(self._attrs[name])

    def __contains__(self, name: object) -> bool:
        return name in self._attrs

    def __iter__(self):
        return iter(self._attrs)

    def __len__(self) -> int:
        return len(self._attrs)


@dataclasses.dataclass(frozen=True, slots=True)
class Node:
    """One element as :func:`describe` read it.

    ``obj``: the h5py group or dataset; ``name``: its path in the file; ``values``: every attribute,
    as h5py reads it (None where the direct calls could not read them); ``attrs``: the same with stored
    bytes decoded to ``str`` (read through h5py as they are asked for where ``values`` is None);
    ``manifest``: the checksum manifest attached to the file (None: nothing to check); ``spec``: the
    encoding the attributes name (None: none, or a damaged pair: ``spec_error``).
    """

    obj: Any
    name: str
    values: Mapping[str, Any] | None
    attrs: Mapping[str, Any]
    manifest: Any
    spec: ElementSpec | None
    #: The :class:`FormatError` of a damaged pair of encoding attributes (then ``spec`` is None), raised by the
    #: registry when the element is read: a description alone refuses nothing.
    spec_error: FormatError | None = None

    def check(self, data: Any, *, found: str | None = None) -> Any:
        """``data``, all of the dataset as read, checked against the digest the manifest records (if any)."""
        if self.manifest is None:
            return data
        return checksums.check_dataset(self.obj, data, self.manifest, found=found)

    @property
    def digest(self) -> str | None:
        """The digest of the dataset's values the manifest records, or None."""
        return None if self.manifest is None else self.manifest.datasets.get(self.name)

    def checked(self, *, complete: bool = True) -> Node:
        """This node, its attributes checked against their digests where the file has a manifest
        (:func:`h5stream.checksums.check_attrs`; ``complete``: an attribute the manifest does not record is
        refused too, as the element's own read does)."""
        if self.manifest is not None:
            checksums.check_attrs(self.obj, self.values, self.manifest,
                                  complete=complete and self.values is not None, where=self.name)
        return self

    def members(self, keys: Iterable[str]) -> list[Node]:
        """The members ``keys`` of this group, described in one pass (:func:`describe_each`)."""
        return describe_members(self.obj, keys, self.name, self.manifest)


_LOOK_UP = object()


def describe(obj, name: str | None = None, manifest: Any = _LOOK_UP, values: Mapping[str, Any] | None = None
             ) -> Node:
    """``obj`` (an h5py group or dataset) as a :class:`Node`: its attributes read in one pass, its encoding,
    its file's manifest.

    ``name``: ``obj.name`` when the caller knows it (asking HDF5 costs more than the rest); ``manifest``:
    the manifest of the file when the caller has it; ``values``: the attributes when the caller read them
    already.
    """
    if name is None:
        name = obj.name
    if manifest is _LOOK_UP:
        manifest = checksums.manifest_for(obj)
    if values is None:
        return describe_each((obj,), (name,), manifest)[0]
    return _node(obj, name, values, manifest)


def describe_each(objs, names, manifest: Any) -> list[Node]:
    """:func:`describe` of each object of ``objs`` (``names``: their paths), all attributes read in one pass."""
    keys = list(names)
    found = checksums.read_attr_values_each(objs, keys)
    return [_node(obj, name, values, manifest) for obj, name, values in zip(objs, keys, found)]


def describe_members(group, keys: Iterable[str], where: str | None = None, manifest: Any = _LOOK_UP
                     ) -> list[Node]:
    """:func:`describe` of the members ``keys`` of ``group``, all attributes read in one pass (``where``:
    ``group.name`` when the caller knows it; ``manifest``: the file's, when the caller has it)."""
    keys = list(keys)
    if where is None:
        where = group.name
    if manifest is _LOOK_UP:
        manifest = checksums.manifest_for(group)
    base = "" if where == "/" else where
    return describe_each(open_members(group, keys), [f"{base}/{key}" for key in keys], manifest)


def open_members(group, keys: Iterable[str]) -> list:
    """``[group[key] for key in keys]`` (h5py groups and datasets, as h5py opens them), the file's intent asked
    once: h5py's ``group[key]`` builds a ``File`` object for each dataset to ask it."""
    readonly = None
    found = []
    gid = group.id
    for key in keys:
        oid = h5py.h5o.open(gid, key.encode("utf-8")) if isinstance(key, str) else None
        kind = None if oid is None else h5py.h5i.get_type(oid)
        if kind == h5py.h5i.GROUP:
            found.append(h5py.Group(oid))
        elif kind == h5py.h5i.DATASET:
            if readonly is None:
                readonly = h5py.h5i.get_file_id(gid).get_intent() == h5py.h5f.ACC_RDONLY  # h5py's File.mode == "r"
            found.append(h5py.Dataset(oid, readonly=readonly))
        elif kind == h5py.h5i.DATATYPE:
            found.append(h5py.Datatype(oid))
        else:  # a name that is not text: h5py's own answer
            found.append(group[key])
    return found


def _node(obj, name: str, values: Mapping[str, Any] | None, manifest: Any) -> Node:
    attrs = _Attrs(obj) if values is None else {k: text_of(v) for k, v in values.items()}
    try:
        return Node(obj, name, values, attrs, manifest, read_spec(obj, values))
    except FormatError as exc:
        return Node(obj, name, values, attrs, manifest, None, exc)
