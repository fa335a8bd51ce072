"""Nodes of the typed tree and the rules that turn values into them.

A :class:`Group` holds attributes (decoded values) and children; a
:class:`Dataset` holds an array (in memory or a :class:`FileArray`) and
attributes.  Builders turn values into nodes under two rules:
:func:`value_node` (every value its own object: dicts groups, scalars
1-element datasets) and :func:`put_node` (arrays datasets, dicts groups,
everything else attributes of the enclosing group).

A value's kind comes from the one table :mod:`h5stream.valuekinds` (exact type
first, so a ``numpy.float64`` is a numpy scalar, never a ``float``); the
builders and the attribute encoder each map every kind to its encoding.

Exact types: values that HDF5 cannot tell apart carry a small type tag
(attribute ``h5stream_type`` on datasets and groups, ``h5stream_attr_types``
for attributes), so ints stay ``int``, bools ``bool``, text ``str`` (never
bytes), lists stay lists, tuples tuples, ``None`` stays ``None`` and integer
dict keys stay integers.

=================  ==============================================================
tag                stored as
=================  ==============================================================
int float bool     1-element int64 / float64 / bool dataset
str / bigint       1-element UTF-8 dataset (bigint: its decimal text)
none               empty float64 dataset
bytes              uint8 dataset
npscalar           1-element dataset (attribute: scalar) of the scalar's dtype
                   (bool, numbers)
json               1-element UTF-8 dataset or text attribute of typed JSON
                   (:mod:`h5stream.jsonvalues`)
ndarray:U/O        variable-length UTF-8 array read back as ``<U`` / object array
list:K tuple:K     1-D array of kind K (bool, int, float, str)
list tuple dict    group with children ``0..n-1`` (dict: keys in ``h5stream_keys``)
dataset            (attribute tag) a value too large for an attribute, stored as
                   a hidden object (see :mod:`h5stream.tree.write`)
=================  ==============================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from h5stream import jsonvalues
from h5stream.errors import EncodingError, FormatError, UnsafeNameError
from h5stream.names import check_name as _check_link_name
from h5stream.tree.filearray import FileArray
from h5stream.lowlevel import TEXT_DTYPE
from h5stream.valuekinds import check_codecs, kind_of, register_type

__all__ = [
    "Group", "Dataset", "Node", "Pieces", "PiecesGroup",
    "value_node", "array_node", "put_node", "mapping_node",
    "encode_attr", "decode_attr", "normalize_attr", "stored_nbytes",
    "check_name", "check_member_name", "check_attr_name", "is_hidden", "is_safe_key", "plain_text", "text",
    "TYPE_ATTR", "KEYS_ATTR", "ATTR_TYPES_ATTR", "INTERNAL_ATTRS",
    "HIDDEN_PREFIX", "DATASET_ATTRS_PREFIX", "STAGING_PREFIX", "HIDDEN_PREFIXES", "ATTR_LIMIT",
]

TYPE_ATTR = "h5stream_type"
KEYS_ATTR = "h5stream_keys"
ATTR_TYPES_ATTR = "h5stream_attr_types"
INTERNAL_ATTRS = frozenset({TYPE_ATTR, KEYS_ATTR, ATTR_TYPES_ATTR})
register_type(FileArray, "ndarray")

#: A group's attribute ``a`` too large for HDF5 is its hidden child ``__attr__a``.
HIDDEN_PREFIX = "__attr__"
#: Prefix of the hidden group ``__dsattr__<dataset name>`` beside a dataset, holding one
#: object per attribute of that dataset too large for an HDF5 attribute.
DATASET_ATTRS_PREFIX = "__dsattr__"
STAGING_PREFIX = "__h5stream_"
HIDDEN_PREFIXES = (HIDDEN_PREFIX, DATASET_ATTRS_PREFIX, STAGING_PREFIX)
#: Attribute payloads above this many bytes go to a hidden object (HDF5's
#: default object header holds at most 64 KiB of attributes).
ATTR_LIMIT = 60_000


class Group:
    """A group to be written: attributes (decoded values) and children by name."""

    __slots__ = ("attrs", "children", "tag", "keys")

    def __init__(self, attrs=None, children=None, tag: str | None = None, keys: list | None = None):
        self.attrs: dict[str, Any] = attrs if attrs is not None else {}
        self.children: dict[str, Group | Dataset] = children if children is not None else {}
        self.tag = tag
        self.keys = keys

    def __repr__(self) -> str:
        return f"Group({len(self.children)} children, {len(self.attrs)} attrs, tag={self.tag!r})"


class Dataset:
    """A dataset to be written: an array (in memory or a :class:`FileArray`) and attributes."""

    __slots__ = ("data", "attrs", "tag")

    def __init__(self, data, attrs=None, tag: str | None = None):
        self.data = data
        self.attrs: dict[str, Any] = attrs if attrs is not None else {}
        self.tag = tag

    def __repr__(self) -> str:
        return f"Dataset(shape={getattr(self.data, 'shape', None)}, dtype={getattr(self.data, 'dtype', None)})"


Node = Group | Dataset


# =========================================================================== names and text


def _utf8_ok(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def plain_text(value: str) -> bool:
    """True when HDF5 can hold ``value`` as a variable-length UTF-8 string (no NUL, valid UTF-8)."""
    return "\x00" not in value and _utf8_ok(value)


def text(value) -> str:
    """A stored string as ``str`` (h5py returns bytes for some string attributes)."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def check_name(name, *, what: str = "name", path=None) -> str:
    """A safe HDF5 link or attribute name (see :func:`h5stream.names.check_name`) that is valid UTF-8."""
    _check_link_name(name, what=what, path=path)
    if not _utf8_ok(name):
        raise UnsafeNameError(f"{what} {name!r} is not valid UTF-8 text", path=path,
                              expected="text without lone surrogates", found=repr(name), hint="rename it")
    return name


def is_hidden(name: str) -> bool:
    """True for the tree's internal members (large attributes, staging), which listings skip."""
    return name.startswith(HIDDEN_PREFIXES)


def check_member_name(name, *, what: str = "name", path=None) -> str:
    """A safe name (see :func:`check_name`) for a group or dataset, outside the reserved names."""
    check_name(name, what=what, path=path)
    if is_hidden(name):
        raise UnsafeNameError(f"{what} {name!r} is reserved for internal use", path=path,
                              expected="a name not starting with " + " or ".join(map(repr, HIDDEN_PREFIXES)),
                              found=repr(name), hint="rename it")
    return name


def check_attr_name(name, *, what: str = "attribute name", path=None) -> str:
    check_name(name, what=what, path=path)
    if name in INTERNAL_ATTRS:
        raise UnsafeNameError(f"{what} {name!r} is reserved for type information", path=path,
                              expected="another name", found=repr(name), hint="rename it")
    return name


#: keys found safe (a feature's dozen keys are checked again for every unit: a set look-up each)
_SAFE_KEYS: set[str] = set()
_SAFE_KEYS_LIMIT = 1 << 16


def is_safe_key(key) -> bool:
    """True when a mapping key can be a link or attribute name as it is."""
    if not isinstance(key, str):
        return False
    if key in _SAFE_KEYS:
        return True
    try:
        check_attr_name(key)
    except UnsafeNameError:
        return False
    if is_hidden(key):
        return False
    if len(_SAFE_KEYS) >= _SAFE_KEYS_LIMIT:
        _SAFE_KEYS.clear()
    _SAFE_KEYS.add(key)
    return True


# =========================================================================== attribute values


def homogeneous_kind(items) -> str | None:
    """'bool', 'int', 'float' or 'str' when every item is of that Python type, else None."""
    if not items:
        return "str"
    first = type(items[0])
    if first not in (bool, int, float, str):
        return None
    if any(type(v) is not first for v in items):
        return None
    if first is int and any(not (-(2**63) <= v < 2**63) for v in items):
        return None
    if first is str and not all(plain_text(v) for v in items):
        return None
    return first.__name__


KIND_DTYPES = {"bool": np.bool_, "int": np.int64, "float": np.float64, "str": TEXT_DTYPE}


def _attr_text(value: str) -> tuple[Any, str | None]:
    value = str(value)
    return (value, None) if plain_text(value) else (jsonvalues.dumps(value), "json")


def _attr_int(value: int) -> tuple[Any, str | None]:
    if -(2**63) <= value < 2**63:
        return np.int64(value), None
    return jsonvalues.dumps(int(value)), "json"


def _attr_npscalar(value: np.generic) -> tuple[Any, str | None]:
    # numbers keep their exact numpy type (a bare float64 would read back as a Python float)
    if value.dtype.kind in "biufc":
        return value, "npscalar"
    return jsonvalues.dumps(value), "json"


def _attr_array(value) -> tuple[Any, str | None]:
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf" and value.ndim >= 1:
            return value, None
        if value.dtype.kind == "U":
            return value.astype(object), "ndarray:U"
    return jsonvalues.dumps(value), "json"


def _attr_sequence(value) -> tuple[Any, str | None]:
    kind = homogeneous_kind(value)
    if kind is not None:
        tag = "list" if isinstance(value, list) else "tuple"
        return np.array(list(value), dtype=KIND_DTYPES[kind]).reshape(len(value)), f"{tag}:{kind}"
    return jsonvalues.dumps(value), "json"


def _attr_json(value) -> tuple[Any, str | None]:
    return jsonvalues.dumps(value), "json"


#: kind (:data:`h5stream.valuekinds.KINDS`) -> (value as stored in an HDF5 attribute, type tag or None)
_ATTR_ENCODERS = {
    "none": lambda value: ("", "none"),
    "npscalar": _attr_npscalar,
    "bool": lambda value: (np.bool_(value), None),
    "int": _attr_int,
    "float": lambda value: (np.float64(value), None),
    "str": _attr_text,
    "bytes": _attr_json,
    "ndarray": _attr_array,
    "list": _attr_sequence,
    "tuple": _attr_sequence,
    "mapping": _attr_json,
    "path": lambda value: _attr_text(os.fspath(value)),
}
check_codecs(_ATTR_ENCODERS, "h5stream.tree.nodes (attributes)")


def encode_attr(value) -> tuple[Any, str | None]:
    """(value as stored in an HDF5 attribute, type tag or None)."""
    encoder = _ATTR_ENCODERS.get(kind_of(value))
    # a value of no kind goes to typed JSON, which raises the error naming its type
    return encoder(value) if encoder is not None else _attr_json(value)


def _text_items(value) -> list[str]:
    return [text(v) for v in np.asarray(value).ravel().tolist()]


#: untagged attributes, by the exact type h5py reads them as -> their Python value (others stay as read)
_PLAIN_DECODERS = {
    bytes: lambda value: value.decode("utf-8", "surrogateescape"),
    np.bool_: bool,
    np.int64: int,
    np.float64: float,
}

#: type tag -> the Python value of an attribute stored with it (inverse of the encoders above)
_ATTR_DECODERS = {
    "none": lambda value: None,
    "json": lambda value: jsonvalues.loads(text(value)),
    "npscalar": lambda value: value,
    "ndarray:U": lambda value: np.array(_text_items(value)).reshape(np.shape(value)),
    "list:str": _text_items,
    "tuple:str": lambda value: tuple(_text_items(value)),
    **{f"list:{kind}": (lambda value: np.asarray(value).ravel().tolist()) for kind in ("bool", "int", "float")},
    **{f"tuple:{kind}": (lambda value: tuple(np.asarray(value).ravel().tolist()))
       for kind in ("bool", "int", "float")},
}


def decode_attr(value, tag: str | None):
    """The Python value of a stored attribute (inverse of :func:`encode_attr`)."""
    if tag is None:
        plain = _PLAIN_DECODERS.get(type(value))
        if plain is not None:
            return plain(value)
        if isinstance(value, np.ndarray) and value.dtype.kind == "O":
            return np.array([text(v) for v in value.ravel()], dtype=object).reshape(value.shape)
        return value
    decoder = _ATTR_DECODERS.get(tag)
    if decoder is None:
        raise FormatError("unknown attribute type tag", expected="a tag this version writes", found=repr(tag),
                          hint="upgrade h5stream")
    return decoder(value)


def stored_nbytes(stored) -> int:
    if isinstance(stored, str):
        return len(stored.encode("utf-8", "surrogatepass"))
    if isinstance(stored, np.ndarray) and stored.dtype.kind == "O":
        return sum(len(text(v).encode("utf-8", "surrogatepass")) + 16 for v in stored.ravel())
    return int(getattr(stored, "nbytes", 8))


def normalize_attr(value):
    """The value as it will read back from a file (what a session stages)."""
    if type(value) is float or type(value) is bool:  # most values: they read back as they are
        return value
    stored, tag = encode_attr(value)
    return decode_attr(stored, tag)


# =========================================================================== builders


def _text_dataset(value: str, tag: str) -> Dataset:
    return Dataset(np.array([value], dtype=TEXT_DTYPE), tag=tag)


def _node_text(value: str) -> Dataset:
    value = str(value)
    return _text_dataset(value, "str") if plain_text(value) else _text_dataset(jsonvalues.dumps(value), "json")


def _node_int(value: int) -> Dataset:
    if -(2**63) <= value < 2**63:
        return Dataset(np.array([value], dtype=np.int64), tag="int")
    return _text_dataset(str(int(value)), "bigint")


def _node_npscalar(value: np.generic) -> Dataset:
    if value.dtype.kind in "biufc":
        return Dataset(np.array([value], dtype=value.dtype), tag="npscalar")
    return _text_dataset(jsonvalues.dumps(value), "json")


def _node_sequence(value) -> Node:
    container = "list" if isinstance(value, list) else "tuple"
    kind = homogeneous_kind(value)
    if kind is not None:
        return Dataset(np.array(list(value), dtype=KIND_DTYPES[kind]).reshape(len(value)), tag=f"{container}:{kind}")
    return Group(children={str(i): value_node(v) for i, v in enumerate(value)}, tag=container)


#: kind (:data:`h5stream.valuekinds.KINDS`) -> the node of a value under the metadata rules
_VALUE_NODES = {
    "none": lambda value: Dataset(np.zeros((0,), dtype=np.float64), tag="none"),
    "npscalar": _node_npscalar,
    "bool": lambda value: Dataset(np.array([value], dtype=np.bool_), tag="bool"),
    "int": _node_int,
    "float": lambda value: Dataset(np.array([value], dtype=np.float64), tag="float"),
    "str": _node_text,
    "bytes": lambda value: Dataset(np.frombuffer(value, dtype=np.uint8).copy(), tag="bytes"),
    "ndarray": lambda value: array_node(value),
    "list": _node_sequence,
    "tuple": _node_sequence,
    "mapping": lambda value: mapping_node(value, value_node, scalars_as_attrs=False),
    "path": lambda value: value_node(os.fspath(value)),
}
check_codecs(_VALUE_NODES, "h5stream.tree.nodes (nodes)")


def value_node(value) -> Node:
    """A node for any JSON-like value under the metadata rules.

    Nested mappings become groups, arrays datasets, and scalars 1-element
    datasets (text as variable-length UTF-8); the type tag restores the exact
    Python or numpy type on read.
    """
    if isinstance(value, Pieces):
        return value.node()
    builder = _VALUE_NODES.get(kind_of(value))
    if builder is None:
        raise EncodingError(
            f"cannot store a value of type {type(value).__name__}",
            expected="None, bool, int, float, str, bytes, list, tuple, dict or a numpy array/scalar",
            found=type(value).__name__,
            hint="convert it to one of those types first",
        )
    return builder(value)


def array_node(value) -> Dataset:
    """A dataset node for an array; text arrays keep their numpy kind through a tag."""
    if isinstance(value, FileArray):
        return Dataset(value)
    array = np.asarray(value)
    if array.dtype.kind in "UO":
        if array.dtype.kind == "O" and not all(isinstance(v, str) for v in array.ravel()):
            raise EncodingError("object arrays may hold only str", found="other objects",
                                hint="convert the array to a numeric or text dtype")
        if not all(plain_text(str(v)) for v in array.ravel()):
            raise EncodingError("text arrays cannot hold NUL characters or lone surrogates",
                                found="such text", hint="store the text as a list, which is encoded exactly")
        return Dataset(array.astype(object), tag="ndarray:U" if array.dtype.kind == "U" else "ndarray:O")
    if array.dtype.kind == "S":
        return Dataset(array)
    if array.dtype.kind not in "biufc" and not array.dtype.names:
        raise EncodingError(f"cannot store an array of dtype {array.dtype}",
                            expected="bool, integer, float, complex, text or structured",
                            found=str(array.dtype))
    return Dataset(array)


class Pieces(Mapping):
    """``{0: values[offsets[0]:offsets[1]], 1: ..., n - 1: ...}`` without building the dict: many small
    arrays cut from one (the trials of a spike train).  A read-only mapping like any other, and its node
    (a group of datasets named "0".."n-1", keyed by the ints, as :func:`mapping_node` makes of the dict)
    is built in one pass: the pieces are views of ``values`` (numeric, 1-D), checked once."""

    __slots__ = ("values", "offsets")

    def __init__(self, values, offsets) -> None:
        values, offsets = np.asarray(values), np.asarray(offsets, dtype=np.int64)
        if values.ndim != 1 or values.dtype.kind not in "biuf":
            raise EncodingError("pieces must be cut from a 1-D numeric array",
                                found=f"shape {values.shape}, dtype {values.dtype}")
        if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or offsets[-1] != values.size \
                or np.any(offsets[1:] < offsets[:-1]):
            raise EncodingError("piece offsets must rise from 0 to the number of values",
                                expected=f"n + 1 non-decreasing offsets ending at {values.size}",
                                found=f"{offsets[:3].tolist()}...{offsets[-1:].tolist()}")
        self.values, self.offsets = values, offsets

    def __len__(self) -> int:
        return self.offsets.size - 1

    def __iter__(self):
        return iter(range(len(self)))

    def __getitem__(self, key):
        if not isinstance(key, (int, np.integer)) or isinstance(key, bool) or not 0 <= key < len(self):
            raise KeyError(key)
        return self.values[self.offsets[key]:self.offsets[key + 1]]

    def node(self) -> Group:
        """The group of the pieces: a :class:`PiecesGroup` (its datasets built when first asked for)."""
        if not len(self):
            return Group()  # as mapping_node makes of an empty dict
        return PiecesGroup(self)

    def datasets(self) -> dict[str, Dataset]:
        """The datasets "0".."n-1", views of ``values``, built in one pass."""
        bounds = self.offsets.tolist()
        # one slice object and one view per piece, built by map (no Python frame per piece)
        views = map(self.values.__getitem__, map(slice, bounds[:-1], bounds[1:]))
        return dict(zip(_piece_names(len(self)), map(Dataset, views)))


_GROUP_CHILDREN = Group.children  # the slot of Group's children (a PiecesGroup fills it when first asked)


class PiecesGroup(Group):
    """The group of :class:`Pieces` (what :meth:`Pieces.node` makes): datasets "0".."n-1" keyed by the
    ints 0..n-1 (tag ``dict``), held as one table, the pieces' array and their offsets (``pieces``), until
    something reads or changes its children, which are then built once, in one pass, and the group is
    an ordinary :class:`Group` from then on (``pieces`` None).  While it is not built, a stager can count
    the table as the one array it is (``pieces.values``: the pieces cover it exactly), so that thousands of
    small values are taken in at the cost of one."""

    __slots__ = ("pieces",)

    def __init__(self, pieces: Pieces) -> None:
        self.attrs, self.tag, self.keys = {}, "dict", list(range(len(pieces)))
        _GROUP_CHILDREN.__set__(self, None)
        self.pieces: Pieces | None = pieces

    @property
    def children(self) -> dict[str, Node]:
        children = _GROUP_CHILDREN.__get__(self, Group)
        if children is None:
            pieces = self.pieces
            if pieces is None:  # another thread built it meanwhile (it sets the children first)
                return _GROUP_CHILDREN.__get__(self, Group)
            children = pieces.datasets()
            _GROUP_CHILDREN.__set__(self, children)
            self.pieces = None
        return children

    @children.setter
    def children(self, value: dict[str, Node]) -> None:
        if _GROUP_CHILDREN.__get__(self, Group) is None:
            self.pieces = None
        _GROUP_CHILDREN.__set__(self, value)

    def __repr__(self) -> str:
        if self.pieces is not None:
            return f"PiecesGroup({len(self.pieces)} pieces of one array, not built)"
        return super().__repr__()


_PIECE_NAMES: list[str] = []


def _piece_names(n: int) -> list[str]:
    """The names "0" .. str(n - 1) (shared: every spike train has as many trials per movie)."""
    if len(_PIECE_NAMES) < n:
        _PIECE_NAMES.extend(map(str, range(len(_PIECE_NAMES), n)))
    return _PIECE_NAMES[:n]


def put_node(value) -> Node:
    """A node under the feature rules: arrays are datasets, dicts groups, everything else attributes."""
    if isinstance(value, (np.ndarray, FileArray)):
        return array_node(value)
    if isinstance(value, Pieces):
        return value.node()
    if isinstance(value, Mapping):
        return mapping_node(value, put_node, scalars_as_attrs=True)
    return value_node(value)


def mapping_node(mapping: Mapping, child_builder, *, scalars_as_attrs: bool) -> Group:
    """A group for a mapping; keys that are not safe names are kept in ``h5stream_keys`` (tag ``dict``)."""
    keys = list(mapping.keys())
    plain = all(is_safe_key(k) for k in keys)
    group = Group()
    if not plain:
        group.tag = "dict"
        group.keys = keys
    for index, key in enumerate(keys):
        value = mapping[key]
        name = key if plain else str(index)
        if scalars_as_attrs and not isinstance(value, (np.ndarray, FileArray, Mapping)):
            group.attrs[name] = normalize_attr(value)
        else:
            group.children[name] = child_builder(value)
    return group
