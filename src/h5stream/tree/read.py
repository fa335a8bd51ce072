"""The reader of the typed tree: HDF5 objects to nodes (:func:`node_from_h5`), nodes to values (:func:`decode_node`).

A value read from a staged tree and the same value read from a file decode
through the same :func:`decode_node`, so they are identical.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

import h5py
import numpy as np

from h5stream import jsonvalues
from h5stream.errors import FormatError
from h5stream.tree.filearray import FileArray
from h5stream.tree.nodes import (
    ATTR_TYPES_ATTR,
    DATASET_ATTRS_PREFIX,
    HIDDEN_PREFIX,
    KEYS_ATTR,
    TYPE_ATTR,
    Dataset,
    Group,
    Node,
    decode_attr,
    is_hidden,
    text,
)

__all__ = ["read_attrs", "node_from_h5", "decode_node"]


def read_attrs(obj) -> tuple[dict[str, Any], str | None, list | None]:
    """(decoded attributes, node type tag, dict keys) of an HDF5 object; large attributes included."""
    raw = {}
    for name in obj.attrs:
        try:
            raw[name] = obj.attrs[name]
        except (OSError, TypeError, ValueError) as exc:
            raise FormatError(f"cannot read attribute {name!r} ({exc})", path=obj.file.filename, obj=obj.name) from exc
    tags = json.loads(text(raw.pop(ATTR_TYPES_ATTR))) if ATTR_TYPES_ATTR in raw else {}
    tag = text(raw.pop(TYPE_ATTR)) if TYPE_ATTR in raw else None
    keys = jsonvalues.loads(text(raw.pop(KEYS_ATTR))) if KEYS_ATTR in raw else None
    attrs = {name: decode_attr(value, tags.get(name)) for name, value in raw.items()}
    for name, tag_value in tags.items():
        if tag_value == "dataset":
            attrs[name] = decode_node(node_from_h5(_large_attr_object(obj, name), lazy=False))
    return attrs, tag, keys


def _large_attr_object(obj, name: str):
    """The hidden object holding attribute ``name`` of ``obj`` (see :mod:`h5stream.tree.write`)."""
    if isinstance(obj, h5py.Group):
        container, member = obj, HIDDEN_PREFIX + name
    else:
        container = obj.parent
        member = f"{DATASET_ATTRS_PREFIX}{posixpath.basename(obj.name)}/{name}"
    if member not in container:
        raise FormatError(f"attribute {name!r} is stored as an object that is missing", path=obj.file.filename,
                          obj=obj.name, expected=f"{container.name.rstrip('/')}/{member}", found="nothing",
                          hint="the file was damaged or edited by another tool")
    return container[member]


def node_from_h5(obj, *, lazy: bool = False, opener=None) -> Node:
    """The node of an HDF5 object; datasets become :class:`FileArray` references when ``lazy``."""
    attrs, tag, keys = read_attrs(obj)
    if isinstance(obj, h5py.Group):
        children = {}
        for name in obj:
            if is_hidden(name):
                continue
            children[name] = node_from_h5(obj[name], lazy=lazy, opener=opener)
        return Group(attrs, children, tag, keys)
    if obj.shape is None:
        data = np.empty((0,), dtype=obj.dtype)
    elif lazy and tag is None and obj.dtype.kind in "biufc":
        data = FileArray(opener, obj.name, obj.shape, obj.dtype)
    else:
        data = obj[()]
    return Dataset(data, attrs, tag)


def _text_items(data: np.ndarray) -> list[str]:
    return [text(v) for v in data.tolist()]


#: How a tagged dataset turns back into its Python value (tag -> decoder of the stored array).
_DATASET_DECODERS = {
    "int": lambda data: int(data[0]),
    "float": lambda data: float(data[0]),
    "bool": lambda data: bool(data[0]),
    "str": lambda data: text(data[0]),
    "none": lambda data: None,
    "bytes": lambda data: data.astype(np.uint8).tobytes(),
    "npscalar": lambda data: data[0],
    "bigint": lambda data: int(text(data[0])),
    "json": lambda data: jsonvalues.loads(text(data[0])),
    "ndarray:U": lambda data: np.array([text(v) for v in data.ravel()]).reshape(data.shape),
    "ndarray:O": lambda data: np.array([text(v) for v in data.ravel()], dtype=object).reshape(data.shape),
    "list:str": _text_items,
    "tuple:str": lambda data: tuple(_text_items(data)),
    **{f"list:{kind}": (lambda data: data.tolist()) for kind in ("bool", "int", "float")},
    **{f"tuple:{kind}": (lambda data: tuple(data.tolist())) for kind in ("bool", "int", "float")},
}


def _dataset_value(node: Dataset):
    data = node.data
    if node.tag is None:
        if isinstance(data, FileArray):
            return data.read()
        if isinstance(data, np.ndarray) and data.dtype.kind == "O":
            return np.array([text(v) for v in data.ravel()], dtype=object).reshape(data.shape)
        return data
    decoder = _DATASET_DECODERS.get(node.tag)
    if decoder is None:
        raise FormatError("unknown dataset type tag", expected="a tag this version writes", found=repr(node.tag),
                          hint="upgrade h5stream")
    return decoder(np.asarray(data))


def decode_node(node: Node):
    """The Python value of a node: arrays for datasets, values for tagged data, dicts for groups."""
    if isinstance(node, Dataset):
        return _dataset_value(node)
    if node.tag in ("list", "tuple"):
        items = [decode_node(node.children[str(i)]) for i in range(len(node.children))]
        return items if node.tag == "list" else tuple(items)
    if node.tag == "dict":
        out = {}
        for index, key in enumerate(node.keys or []):
            name = str(index)
            out[key] = decode_node(node.children[name]) if name in node.children else node.attrs[name]
        return out
    out = dict(node.attrs)
    for name, child in node.children.items():
        out[name] = decode_node(child)
    # Name order, as HDF5 lists a group's members, so a staged group and a saved one agree.
    return {name: out[name] for name in sorted(out)}
