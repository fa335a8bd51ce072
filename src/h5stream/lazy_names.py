"""Names a module hands on from elsewhere, imported on first use.

A module that may not import the modules holding some of its names (they sit above it) serves them
through its ``__getattr__``: :func:`serve_lazily` installs that, a matching ``__dir__`` and the names in
``__all__``.  Used by the fences that give the originals' module paths their names.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["serve_lazily"]


def serve_lazily(namespace: dict, names: list[str], fetch: Callable[[str], object]) -> None:
    """Serve ``names`` in the module whose globals are ``namespace``: each fetched once, on first use.

    ``fetch(name)`` returns the value; it is kept in ``namespace``, so later uses are plain lookups.
    A name not in ``names`` is an ``AttributeError`` naming the module.  ``__all__`` keeps its own
    names first, then ``names`` not already listed.
    """
    own = namespace["__name__"]

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {own!r} has no attribute {name!r}")
        value = namespace[name] = fetch(name)
        return value

    def __dir__():
        return sorted(set(namespace) | set(names))

    namespace["__getattr__"] = __getattr__
    namespace["__dir__"] = __dir__
    listed = list(namespace.get("__all__", ()))
    namespace["__all__"] = [*listed, *(name for name in names if name not in listed)]
