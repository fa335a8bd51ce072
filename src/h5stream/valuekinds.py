"""The kinds of values the engine stores: one table, read by tree nodes, attributes and typed JSON.

Every path that turns a Python value into something stored (a node of the tree,
:mod:`h5stream.tree.nodes`; an HDF5 attribute, ``encode_attr``; typed JSON,
:mod:`h5stream.jsonvalues`) asks :func:`kind_of` what the value is, then looks
its encoder up by the kind's name in a mapping of its own; each of those
mappings is checked against :data:`KINDS` when its module is imported
(:func:`check_codecs`), so a kind added here and forgotten there is an import
error, not a value silently stored as something else.

==========  ====================================  =======================================
kind        types                                 tree tag of a value stored on its own
==========  ====================================  =======================================
none        ``None``                              ``none``
npscalar    every numpy scalar type               ``npscalar`` (numbers), else ``json``
bool        ``bool``                              ``bool``
int         ``int``                               ``int`` (``bigint`` past 64 bits)
float       ``float``                             ``float``
str         ``str``                               ``str`` (``json`` for NUL, lone surrogates)
bytes       ``bytes``                             ``bytes``
ndarray     ``numpy.ndarray`` (and arrays on      none (``ndarray:U``/``ndarray:O`` for text)
            disk, registered by the tree)
list        ``list``                              ``list``, or ``list:K`` when homogeneous
tuple       ``tuple``                             ``tuple``, or ``tuple:K``
mapping     ``collections.abc.Mapping``           none, or ``dict`` for keys that are not names
path        ``os.PathLike``                       as its text
==========  ====================================  =======================================

The lookup is by exact type first: every concrete numpy scalar type is in
that map, so ``numpy.float64`` (a subclass of ``float``), ``numpy.str_`` (of
``str``) and ``numpy.bytes_`` (of ``bytes``) are numpy scalars and keep their
type through every path.  A type not in the map is looked up by
``isinstance`` in the order of the table (numpy scalars before ``bool``,
``bool`` before ``int``), and the result is remembered for that type.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

__all__ = ["ValueKind", "KINDS", "KIND_NAMES", "kind_of", "register_type", "check_codecs"]


class ValueKind(NamedTuple):
    """One row of :data:`KINDS`: the kind's name and the types that have it."""

    name: str
    types: tuple[type, ...]


#: The kinds, in the order ``isinstance`` is tried for a type not in the exact-type map.
KINDS: tuple[ValueKind, ...] = (
    ValueKind("none", (type(None),)),
    ValueKind("npscalar", (np.generic,)),
    ValueKind("bool", (bool,)),
    ValueKind("int", (int,)),
    ValueKind("float", (float,)),
    ValueKind("str", (str,)),
    ValueKind("bytes", (bytes,)),
    ValueKind("ndarray", (np.ndarray,)),
    ValueKind("list", (list,)),
    ValueKind("tuple", (tuple,)),
    ValueKind("mapping", (Mapping,)),
    ValueKind("path", (os.PathLike,)),
)
KIND_NAMES: frozenset[str] = frozenset(kind.name for kind in KINDS)

_NUMPY_SCALAR_TYPES = frozenset(np.sctypeDict.values()) | {np.bool_, np.str_, np.bytes_, np.void, np.object_}

#: exact type -> kind name (None: no kind); filled at import and on first sight of a new type
_EXACT: dict[type, str | None] = {
    type(None): "none", bool: "bool", int: "int", float: "float", str: "str", bytes: "bytes",
    np.ndarray: "ndarray", list: "list", tuple: "tuple", dict: "mapping",
    **{t: "npscalar" for t in _NUMPY_SCALAR_TYPES},
}


def kind_of(value) -> str | None:
    """The name of ``value``'s kind in :data:`KINDS`, or None when no path can store it."""
    cls = type(value)
    try:
        return _EXACT[cls]
    except KeyError:
        pass
    found = next((kind.name for kind in KINDS if issubclass(cls, kind.types)), None)
    _EXACT[cls] = found
    return found


def register_type(cls: type, kind: str) -> None:
    """Give values of exactly ``cls`` the kind ``kind`` (e.g. the tree's arrays on disk are ``ndarray``)."""
    if kind not in KIND_NAMES:
        raise ValueError(f"unknown value kind {kind!r}; the kinds are {sorted(KIND_NAMES)}")
    _EXACT[cls] = kind


def check_codecs(codecs: Mapping[str, object], where: str, *, refused: frozenset[str] = frozenset()) -> None:
    """Raise ``RuntimeError`` unless ``codecs`` (kind name -> encoder) covers every kind but ``refused``.

    Called by each encoding path on its own table at import time.
    """
    missing = KIND_NAMES - set(codecs) - refused
    unknown = set(codecs) - KIND_NAMES
    if missing or unknown:
        raise RuntimeError(f"{where}: the encoders do not match h5stream.valuekinds.KINDS "
                           f"(missing {sorted(missing)}, unknown {sorted(unknown)})")
