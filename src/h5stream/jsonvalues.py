"""Typed JSON: exact JSON text for JSON-like values holding numpy scalars and arrays, and one stable hash.

Both faces use this one codec: the recording store for attribute values HDF5
cannot hold exactly and for the keys of dicts with non-name keys, scptensor for
history parameters inside AnnData and MuData files.

===========================  ===============================================
value                        JSON written
===========================  ===============================================
None, bool, int, str, list   themselves
float                        itself (``NaN``/``Infinity`` as Python writes them)
numpy scalar (any kind)      ``{"__numpy_scalar__": "<dtype.str>", "b64": ...}``
numpy array (no objects)     ``{"__ndarray__": "<dtype.str>", "shape": [...],
                             "b64": "<C-order bytes>"}``
tuple                        ``{"__tuple__": [...]}``
bytes                        ``{"__bytes__": "<base64>"}``
os.PathLike                  its path text
dict with str keys           an object, unless a key starts with ``__``
other dict                   ``{"__dict__": [[key, value], ...]}``
===========================  ===============================================

A value's kind comes from :func:`h5stream.valuekinds.kind_of` (exact type
first), so ``numpy.float64``, although a ``float``, is written as a numpy scalar.  Text is written with ASCII
escapes, so NUL characters and lone surrogates survive storage as HDF5 text.

Readers are kept for the older payloads: the recording store's first typed
JSON (``{"__np__": dtype, "v": value}`` scalars, ``{"__ndarray__": dtype,
"shape": ..., "v": nested list}`` arrays) reads through the same
:func:`loads`.

:func:`stable_hash` is the one hash of parameters and configurations: the
SHA-256 of their canonical JSON (keys sorted, numpy scalars as Python numbers,
non-finite floats as text), so equal parameters hash equally whatever their
order or numpy type.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from h5stream.errors import EncodingError
from h5stream.valuekinds import check_codecs, kind_of

__all__ = ["dumps", "loads", "encode", "decode", "stable_hash", "canonical"]

SCALAR_KEY = "__numpy_scalar__"
ARRAY_KEY = "__ndarray__"
TUPLE_KEY = "__tuple__"
DICT_KEY = "__dict__"
BYTES_KEY = "__bytes__"
#: Scalar tag of the recording store's first typed JSON (read only).
LEGACY_SCALAR_KEY = "__np__"

_EXPECTED = "None, bool, int, float, str, bytes, list, tuple, dict, a path or a numpy scalar or array"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scalar(value: np.generic, obj: str | None) -> Any:
    if value.dtype.hasobject:
        raise EncodingError("object scalars cannot be stored exactly", obj=obj, found=str(value.dtype),
                            expected=_EXPECTED)
    return {SCALAR_KEY: value.dtype.str, "b64": _b64(value.tobytes())}


def _mapping(value: Mapping, obj: str | None) -> Any:
    if all(isinstance(k, str) and not k.startswith("__") for k in value):
        # each value's error names its key below ``obj``
        return {k: encode(v, obj=f"{obj}/{k}" if obj else k) for k, v in value.items()}
    return {DICT_KEY: [[encode(k, obj=obj), encode(v, obj=obj)] for k, v in value.items()]}


def _array(value: np.ndarray, obj: str | None) -> Any:
    if not isinstance(value, np.ndarray):  # an array on disk (registered by the tree) is not JSON
        raise EncodingError(f"cannot store a value of type {type(value).__name__} as JSON", obj=obj,
                            expected=_EXPECTED, found=type(value).__name__, hint="read it into memory first")
    if value.dtype.hasobject:
        raise EncodingError("object arrays cannot be stored exactly", obj=obj, found=str(value.dtype),
                            hint="convert the array to a numeric or text dtype")
    return {ARRAY_KEY: value.dtype.str, "shape": list(value.shape),
            "b64": _b64(np.ascontiguousarray(value).tobytes())}


def _list(value: list, obj: str | None) -> list:
    """A list's items encoded; a list of plain ints (a mapping's integer keys, one per trial) is its own form,
    copied in one step."""
    if all(type(v) is int for v in value):  # exactly int: not bool, not an IntEnum
        return list(value)  # a copy, as the items' encoding makes
    return [encode(v, obj=obj) for v in value]


def _itself(value: Any, obj: str | None) -> Any:
    return value


#: kind (:data:`h5stream.valuekinds.KINDS`) -> its JSON-able form; a subclass of a JSON type that is
#: not a numpy scalar (an ``IntEnum``, a ``str`` subclass) is written as its base type's value.
_ENCODERS = {
    "none": _itself,
    "npscalar": _scalar,
    "bool": lambda value, obj: bool(value),
    "int": lambda value, obj: int(value),
    "float": lambda value, obj: float(value),
    "str": lambda value, obj: str(value),
    "bytes": lambda value, obj: {BYTES_KEY: _b64(bytes(value))},
    "ndarray": _array,
    "list": _list,
    "tuple": lambda value, obj: {TUPLE_KEY: [encode(v, obj=obj) for v in value]},
    "mapping": _mapping,
    "path": lambda value, obj: os.fspath(value),
}
check_codecs(_ENCODERS, "h5stream.jsonvalues")


def encode(value: Any, *, obj: str | None = None) -> Any:
    """The JSON-able form of ``value`` (see the module table); ``obj`` names it in errors."""
    encoder = _ENCODERS.get(kind_of(value))
    if encoder is None:
        raise EncodingError(f"cannot store a value of type {type(value).__name__}", obj=obj,
                            expected=_EXPECTED, found=type(value).__name__,
                            hint="convert it to one of those types first")
    return encoder(value, obj)


def decode(value: Any) -> Any:
    """Inverse of :func:`encode`, also for the older payloads named in the module docstring."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if SCALAR_KEY in value:
        dtype = _dtype(value[SCALAR_KEY])
        if dtype.itemsize == 0:  # an empty numpy str_ or bytes_ (``<U0``, ``|S0``)
            return dtype.type()
        return np.frombuffer(base64.b64decode(value["b64"]), dtype=dtype)[0]
    if ARRAY_KEY in value:
        dtype = _dtype(value[ARRAY_KEY])
        if "b64" in value:
            raw = base64.b64decode(value["b64"])
            return np.frombuffer(raw, dtype=dtype).reshape(value["shape"]).copy()
        return np.array(value["v"], dtype=dtype).reshape(value["shape"])
    if LEGACY_SCALAR_KEY in value:
        return _dtype(value[LEGACY_SCALAR_KEY]).type(value["v"])
    if TUPLE_KEY in value:
        return tuple(decode(v) for v in value[TUPLE_KEY])
    if DICT_KEY in value:
        return {_hashable(decode(k)): decode(v) for k, v in value[DICT_KEY]}
    if BYTES_KEY in value:
        return base64.b64decode(value[BYTES_KEY])
    return {k: decode(v) for k, v in value.items()}


def _dtype(text: Any) -> np.dtype:
    """The numpy type a payload names; a text numpy cannot read (it parses some with Python's own parser, which
    raises ``SyntaxError``) is a ``ValueError`` naming it, as every other undecodable payload."""
    try:
        return np.dtype(text)
    except (TypeError, ValueError, SyntaxError) as exc:
        raise ValueError(f"not a numpy type: {text!r} ({type(exc).__name__}: {exc})") from None


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key


def dumps(value: Any, *, obj: str | None = None) -> str:
    """Exact JSON text of ``value`` (ASCII only)."""
    return json.dumps(encode(value, obj=obj), ensure_ascii=True, allow_nan=True)


def loads(text: str) -> Any:
    """The value of a typed JSON text (inverse of :func:`dumps`)."""
    return decode(json.loads(text))


# --------------------------------------------------------------------------- stable hash


def canonical(value: Any) -> Any:
    """The order-independent JSON-able form hashed by :func:`stable_hash`.

    Mapping keys become text and are sorted; tuples become lists; numpy scalars
    their Python value; arrays ``{"__array__": dtype, "shape", "data"}``;
    non-finite floats their ``repr``.  Anything else is hashed as its ``str``.
    """
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, np.ndarray):
        return {"__array__": value.dtype.str, "shape": list(value.shape), "data": canonical(value.tolist())}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return repr(value)
    return value


def stable_hash(value: Any, *, digits: int = 16, spaced: bool = False) -> str:
    """The first ``digits`` hex digits of the SHA-256 of ``value``'s canonical JSON.

    ``spaced`` writes the JSON with ``", "`` and ``": "`` separators instead of
    the compact ones: the form pipeline configuration digests have always been
    computed in, kept so that digests stored in batch markers and checkpoint
    names stay byte-identical.
    """
    separators = (", ", ": ") if spaced else (",", ":")
    text = json.dumps(canonical(value), sort_keys=True, separators=separators, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:digits]
