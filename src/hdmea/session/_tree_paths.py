"""The session's tree by path: paths checked, and the staged tree read and written at them.

:func:`split_path` checks a ``'/'``-separated path below the file root (the session and the immediate-mode
target, :mod:`hdmea.session.target`, take the same paths).  :class:`PathAccess` is the part of
:class:`~hdmea.session.session.PipelineSession` that reads and writes its staged tree by path (``has``,
``get``, ``keys``, ``put``, ``attrs``, ``set_attrs``), all through the tree's owner,
:class:`hdmea.session.tree.SessionTree` (``session.tree``): a value the caller assigned and may still change
is brought up to date on the way, a replaced node's arrays leave the staging area and a new node's enter it,
and every change marks the session unsaved and checks its size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hdmea.io import hdf5_store as store
from hdmea.io.hdf5_store import Group

__all__ = ["split_path", "PathAccess"]

#: ``get``'s default when none is given (a missing path raises KeyError)
_NO_DEFAULT = object()


#: path components found safe, checked once each (a name's safety never changes; a step reads the same few
#: names in every unit's paths); no more are remembered past the bound
_SAFE_PARTS: set[str] = set()
_SAFE_PARTS_BOUND = 65536


def split_path(path: str, *, allow_root: bool = True) -> list[str]:
    """The checked parts of a '/'-separated path relative to the file root."""
    if type(path) is str:
        parts = path.split("/")
        if _SAFE_PARTS.issuperset(parts):  # every part checked before (an empty one never is: no '/' at an end)
            return parts
    if not isinstance(path, str):
        raise TypeError(f"a path must be a str like 'units/unit_000/spike_times' (found {type(path).__name__})")
    parts = [p for p in path.strip("/").split("/")] if path.strip("/") else []
    for part in parts:
        if part in _SAFE_PARTS:
            continue
        store.check_name(part, what="path component")
        if store.is_hidden(part):
            raise store.UnsafeNameError(f"path component {part!r} is reserved for internal use", found=repr(path))
        if len(_SAFE_PARTS) < _SAFE_PARTS_BOUND:
            _SAFE_PARTS.add(part)
    if not parts and not allow_root:
        raise store.UnsafeNameError("the file root cannot be replaced", found=repr(path),
                                    hint="name a path below the root")
    return parts


class PathAccess:
    """Reading and writing a session's staged tree by path (a part of
    :class:`~hdmea.session.session.PipelineSession`, through its :attr:`tree`)."""

    def has(self, path: str) -> bool:
        return self.tree.node(split_path(path)) is not None

    def get(self, path: str, default=_NO_DEFAULT):
        tree = self.tree
        node = tree.node(split_path(path))
        if node is None:
            if default is _NO_DEFAULT:
                raise KeyError(f"session {tree.dataset_id!r} has nothing at {path!r}")
            return default
        return tree.decoded(node)

    def keys(self, path: str = "") -> list[str]:
        node = self.tree.node(split_path(path))
        if node is None:
            raise KeyError(f"session {self.tree.dataset_id!r} has nothing at {path!r}")
        if not isinstance(node, Group):
            raise TypeError(f"{path!r} is a dataset, not a group")
        return sorted(node.children)

    def put(self, path: str, value) -> None:
        self.tree.set_node(split_path(path, allow_root=False), store.put_node(value))

    def attrs(self, path: str = "") -> dict[str, Any]:
        node = self.tree.node(split_path(path))
        if node is None:
            raise KeyError(f"session {self.tree.dataset_id!r} has nothing at {path!r}")
        return dict(node.attrs)

    def set_attrs(self, path: str, mapping: Mapping[str, Any]) -> None:
        parts = split_path(path)
        values = {store.check_attr_name(name): store.normalize_attr(value) for name, value in mapping.items()}
        self.tree.update_attrs(parts, values)
