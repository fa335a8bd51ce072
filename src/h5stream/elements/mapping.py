"""JSON-like mappings and sequences: ``dict`` 0.1.0 and ``h5stream:sequence`` 0.1.0.

Exact round trip, documented:

* ``dict`` -> a ``dict`` 0.1.0 group created with tracked order, one element
  per item, so the items come back in insertion order.  Keys may be ``str``
  (any text: a key holding ``/``, ``%`` or NUL, or equal to ``""``, ``.`` or
  ``..`` is stored under a percent-escaped member name) or ``int`` (not bool;
  stored under the member name ``%i<number>``).  When any member name differs
  from its key, the keys are kept in the attribute ``h5stream:keys`` (JSON
  list) and come back with their type.  Other key types raise
  ``EncodingError``.
* ``list``/``tuple`` of only ``str`` -> ``string-array``; of ``str`` and
  ``None`` -> ``nullable-string-array``; of only Python ``bool``, only ``int``
  (64-bit), only ``float`` or only ``complex`` -> ``array`` of bool, int64,
  float64, complex128.  These carry ``h5stream:container`` = ``list`` or
  ``tuple`` and come back as that container of Python values.  Anything else
  (mixed, nested, numpy scalars, empty) -> ``h5stream:sequence`` 0.1.0, a
  group with members ``0``, ``1``, ... each an element.
* Values: every element kind of :mod:`h5stream.elements` (numpy arrays and
  scalars keep their dtype, Python scalars their type, NaN and infinities are
  kept, ``None`` is ``null``, ``bytes`` is ``h5stream:bytes``).  Sets, objects
  and other types raise ``EncodingError``; nothing is pickled.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from h5stream.elements.registry import (
    CONTAINER_ATTR,
    ElementSpec,
    read_node,
    register_reader,
    register_writer,
    write_with,
)
from h5stream.elements.snapshot import Node
from h5stream.elements.strings import NULLABLE_STRING_ARRAY, STRING_ARRAY, write_string_list
from h5stream.errors import EncodingError, FormatError
from h5stream.writer import WriteOptions, write_array

__all__ = ["DICT", "SEQUENCE", "escape_name", "member_name", "KEYS_ATTR"]

DICT = ElementSpec("dict", "0.1.0")
SEQUENCE = ElementSpec("h5stream:sequence", "0.1.0")
ARRAY = ElementSpec("array", "0.2.0")
KEYS_ATTR = "h5stream:keys"
ITEM_TYPE_ATTR = "h5stream:item-type"

_SPECIAL = {"": "%", ".": "%2E", "..": "%2E%2E"}


def escape_name(name: str, reserved: frozenset[str] = frozenset()) -> str:
    """An HDF5 link name for ``name``: injective percent-escaping of ``%``, ``/`` and NUL.

    ``""``, ``.`` and ``..`` and the names in ``reserved`` are escaped too, so
    the result is always a single safe link name distinct from every other
    escaped name.
    """
    out = name.replace("%", "%25").replace("/", "%2F").replace("\x00", "%00")
    if out in _SPECIAL:
        return _SPECIAL[out]
    if out in reserved:
        return f"%{ord(out[0]):02X}{out[1:]}"
    return out


def member_name(key) -> str:
    """The member name of a dict key (str or int)."""
    if isinstance(key, str):
        return escape_name(key)
    return f"%i{int(key)}"


def _check_key(parent: h5py.Group, key: str, item_key) -> None:
    if isinstance(item_key, bool) or not isinstance(item_key, (str, int)):
        raise EncodingError(
            "mapping key cannot be stored",
            path=parent.file.filename,
            obj=f"{parent.name.rstrip('/')}/{key}",
            expected="str or int keys",
            found=f"{type(item_key).__name__} key {item_key!r}",
            hint="convert the keys to str",
        )


@register_writer(dict, DICT)
def _write_dict(parent: h5py.Group, key: str, value: dict, options: WriteOptions) -> h5py.Group:
    for item_key in value:
        _check_key(parent, key, item_key)
    group = parent.create_group(key, track_order=True)
    keys = list(value)
    names = [member_name(k) for k in keys]
    if any(n != k for n, k in zip(names, keys)):
        group.attrs[KEYS_ATTR] = json.dumps(keys, ensure_ascii=False)
    for name, item_key in zip(names, keys):
        write_with(group, name, value[item_key], options)
    return group


@register_reader(DICT, node=True)
def _read_dict(node: Node, *, series: bool = False) -> dict:
    group = node.obj
    keys_json = node.attrs.get(KEYS_ATTR)
    if keys_json is None:
        names = list(group)
        for name in names:
            if not isinstance(name, str):  # h5py hands a name that is not UTF-8 over as bytes
                raise FormatError(
                    "a member name of a dict is not UTF-8 text", path=group.file.filename, obj=group.name,
                    expected="member names written as UTF-8 text", found=repr(name),
                    hint="the file is damaged; restore it from a copy",
                )
        return {name: read_node(member) for name, member in zip(names, node.members(names))}
    keys = json.loads(keys_json)
    return {k: read_node(member) for k, member in zip(keys, node.members([member_name(k) for k in keys]))}


# --------------------------------------------------------------------------- sequences

_HOMOGENEOUS = {bool: np.bool_, int: np.int64, float: np.float64, complex: np.complex128}


def _homogeneous_type(value) -> type | None:
    if not value:
        return None
    first = type(value[0])
    if first not in _HOMOGENEOUS or any(type(v) is not first for v in value):
        return None
    if first is int and not all(-(2**63) <= v < 2**63 for v in value):
        return None
    return first


def _has_none(value) -> bool:
    return any(v is None for v in value)


def _register_sequence_writers(container: type) -> None:
    @register_writer(container, STRING_ARRAY, match=lambda v: _is_strings(v) and not _has_none(v))
    def _write_strings(parent, key, value, options):
        return write_string_list(parent, key, value, options)[0]

    @register_writer(container, NULLABLE_STRING_ARRAY, match=lambda v: _is_strings(v) and _has_none(v))
    def _write_nullable_strings(parent, key, value, options):
        return write_string_list(parent, key, value, options)[0]

    @register_writer(container, ARRAY, match=lambda v: _homogeneous_type(v) is not None)
    def _write_numbers(parent, key, value, options):
        item_type = _homogeneous_type(value)
        ds = write_array(parent, key, np.array(value, dtype=_HOMOGENEOUS[item_type]), options)
        ds.attrs[CONTAINER_ATTR] = type(value).__name__
        ds.attrs[ITEM_TYPE_ATTR] = item_type.__name__
        return ds

    @register_writer(container, SEQUENCE)
    def _write_sequence(parent, key, value, options):
        group = parent.create_group(key, track_order=True)
        group.attrs[CONTAINER_ATTR] = type(value).__name__
        group.attrs["length"] = len(value)
        for i, item in enumerate(value):
            write_with(group, str(i), item, options)
        return group


def _is_strings(value) -> bool:
    from h5stream.elements.strings import is_string_list

    return is_string_list(value)


_register_sequence_writers(list)
_register_sequence_writers(tuple)


def restore_container(node: Node, array: np.ndarray):
    """A list/tuple of Python values when the element ``node`` describes records a container, else ``array``."""
    container = node.attrs.get(CONTAINER_ATTR)
    if container is None:
        return array
    items = np.asarray(array).tolist()
    return items if container == "list" else tuple(items)


@register_reader(SEQUENCE, node=True)
def _read_sequence(node: Node, *, series: bool = False):
    n = int(node.attrs["length"])
    items = [read_node(member) for member in node.members([str(i) for i in range(n)])]
    container = node.attrs.get(CONTAINER_ATTR)
    return tuple(items) if container == "tuple" else items
