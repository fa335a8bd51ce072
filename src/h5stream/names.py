"""Safe object names: a name never nests, escapes or disappears inside its group."""

from __future__ import annotations

import os

from h5stream.errors import UnsafeNameError

__all__ = ["check_name"]


def check_name(
    name: object,
    *,
    what: str = "name",
    path: str | os.PathLike | None = None,
) -> str:
    """Return ``name`` if it is safe as one HDF5 link name, else raise :class:`UnsafeNameError`.

    Refused: non-strings, the empty string, ``.`` and ``..``, and names holding
    ``/`` (which HDF5 reads as nesting, or as an absolute path) or NUL.
    """
    if not isinstance(name, str):
        raise UnsafeNameError(
            f"{what} must be a string", path=path, expected="str", found=type(name).__name__
        )
    problem = None
    if name == "":
        problem = "is empty"
    elif name in (".", ".."):
        problem = f"is {name!r}"
    elif "/" in name:
        problem = "contains '/'"
    elif "\x00" in name:
        problem = "contains a NUL character"
    if problem is not None:
        raise UnsafeNameError(
            f"{what} {name!r} {problem}",
            path=path,
            expected="a non-empty name without '/' or NUL, other than '.' and '..'",
            found=repr(name),
            hint="rename it",
        )
    return name
