"""Exact JSON text for history parameters inside AnnData and MuData files.

AnnData's readers know only the spec encodings, so a parameter value such as a
mixed list (``[1, "x", None]``) written with our typed ``h5stream:sequence``
encoding would make ``anndata.read_h5ad``/``mudata.read_h5mu`` refuse the whole
file.  In those formats each history entry's parameters are therefore one JSON
string (a spec ``string`` element every reader opens), written by the engine's
typed JSON codec (:mod:`h5stream.jsonvalues`, whose docstring has the table of
tags), the same codec the recording store uses.
"""

from __future__ import annotations

from typing import Any

from h5stream import jsonvalues

__all__ = ["dumps", "loads"]


def dumps(value: Any) -> str:
    """Exact JSON text of a JSON-like value holding numpy scalars and arrays."""
    return jsonvalues.dumps(value, obj="history params")


def loads(text: str) -> Any:
    """Inverse of :func:`dumps`; also reads the texts written before the codec was shared."""
    return jsonvalues.loads(text)
