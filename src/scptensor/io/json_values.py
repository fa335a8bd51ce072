"""Exact JSON text for history parameters inside AnnData and MuData files.

AnnData's readers know only the spec encodings, so a parameter value such as a
mixed list (``[1, "x", None]``) written with our typed ``h5stream:sequence``
encoding would make ``anndata.read_h5ad``/``mudata.read_h5mu`` refuse the whole
file.  In those formats each history entry's parameters are therefore one JSON
string (a spec ``string`` element every reader opens), with tags that make the
round trip exact:

===========================  ===============================================
value                        JSON
===========================  ===============================================
None, bool, int, str, list   themselves
float                        itself (``NaN``/``Infinity`` as Python writes them)
tuple                        ``{"__tuple__": [...]}``
bytes                        ``{"__bytes__": "<base64>"}``
numpy scalar                 ``{"__numpy_scalar__": "<dtype.str>", "b64": ...}``
numpy array (no objects)     ``{"__ndarray__": "<dtype.str>", "shape": [...],
                             "b64": "<C-order bytes>"}``
dict with str keys           an object, unless a key starts with ``__``
other dict                   ``{"__dict__": [[key, value], ...]}``
===========================  ===============================================
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

from h5stream.errors import EncodingError

__all__ = ["dumps", "loads"]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _encode(value: Any) -> Any:
    # numpy scalars first: numpy.float64 is also a Python float and would lose its type
    if isinstance(value, np.generic):
        return {"__numpy_scalar__": value.dtype.str, "b64": _b64(value.tobytes())}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise EncodingError(
                "object arrays cannot be stored exactly", obj="history params",
                found=str(value.dtype), hint="convert the array to a numeric or string dtype",
            )
        return {"__ndarray__": value.dtype.str, "shape": list(value.shape),
                "b64": _b64(np.ascontiguousarray(value).tobytes())}
    if isinstance(value, bytes):
        return {"__bytes__": _b64(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v) for k, v in value.items()}
        return {"__dict__": [[_encode(k), _encode(v)] for k, v in value.items()]}
    raise EncodingError(
        "value cannot be stored exactly", obj="history params", found=type(value).__name__,
        expected="None, bool, int, float, str, bytes, list, tuple, dict, numpy scalars and arrays",
    )


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        raw = base64.b64decode(value["b64"])
        return np.frombuffer(raw, dtype=np.dtype(value["__ndarray__"])).reshape(value["shape"]).copy()
    if "__numpy_scalar__" in value:
        raw = base64.b64decode(value["b64"])
        return np.frombuffer(raw, dtype=np.dtype(value["__numpy_scalar__"]))[0]
    if "__bytes__" in value:
        return base64.b64decode(value["__bytes__"])
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__dict__" in value:
        return {_hashable(_decode(k)): _decode(v) for k, v in value["__dict__"]}
    return {k: _decode(v) for k, v in value.items()}


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def dumps(value: Any) -> str:
    """Exact JSON text of a JSON-like value holding numpy scalars and arrays."""
    return json.dumps(_encode(value), ensure_ascii=False)


def loads(text: str) -> Any:
    """Inverse of :func:`dumps`."""
    return _decode(json.loads(text))
