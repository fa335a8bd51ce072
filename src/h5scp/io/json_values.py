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
from h5stream.errors import EncodingError

__all__ = ["dumps", "loads", "check_metadata"]


def dumps(value: Any, *, obj: str) -> str:
    """Exact JSON text of a JSON-like value holding numpy scalars and arrays (``obj`` names it in errors)."""
    return jsonvalues.dumps(value, obj=obj)


def check_metadata(metadata: Any, *, obj: str) -> None:
    """Refuse a matrix metadata field these JSON-text formats cannot hold as it is (a SciPy sparse matrix)."""
    for key, value in (metadata or {}).items():
        if hasattr(value, "tocsr") and hasattr(value, "nnz"):
            raise EncodingError(
                "a sparse matrix metadata field is stored by the .h5 format only", obj=f"{obj}/{key}",
                expected="a numpy array, or a JSON-like value", found=type(value).__name__,
                hint=f"save as .h5, or store metadata[{key!r}].toarray()")


def loads(text: str) -> Any:
    """Inverse of :func:`dumps`; also reads the texts written before the codec was shared."""
    return jsonvalues.loads(text)
