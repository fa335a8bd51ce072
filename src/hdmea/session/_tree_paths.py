"""The session's tree by path: paths checked, and the staged tree read and written at them.

:func:`split_path` checks a ``'/'``-separated path below the file root (the session and the immediate-mode
target, :mod:`hdmea.session.target`, take the same paths).  :class:`StagedTree` is the part of
:class:`~hdmea.session.session.PipelineSession` that reads and writes its staged tree by path (``has``,
``get``, ``keys``, ``put``, ``attrs``, ``set_attrs``) and replaces nodes in it: a value the caller assigned
and may still change is brought up to date on the way (:mod:`hdmea.session._followed`), a replaced node's
arrays leave the staging area and a new node's enter it (:mod:`h5stream.staging`), and every change marks the
session unsaved and checks its size.  The session holds the tree (``_root``), the staging area, the followed
values and the state these methods use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hdmea.io import hdf5_store as store
from hdmea.io.hdf5_store import Group, Node
from hdmea.session._staged_tree import admit_datasets, release_datasets

__all__ = ["split_path", "StagedTree"]

#: ``get``'s default when none is given (a missing path raises KeyError)
_NO_DEFAULT = object()


#: path components found safe, checked once each (a name's safety never changes; a step reads the same few
#: names in every unit's paths); no more are remembered past the bound
_SAFE_PARTS: set[str] = set()
_SAFE_PARTS_BOUND = 65536


def split_path(path: str, *, allow_root: bool = True) -> list[str]:
    """The checked parts of a '/'-separated path relative to the file root."""
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


class StagedTree:
    """Reading and writing a session's staged tree by path (a part of :class:`~hdmea.session.session.PipelineSession`)."""

    def _node(self, parts: list[str], *, write: bool = False) -> Node | None:
        """The node at ``parts`` (a followed value on the way brought up to date; ``write``: the caller
        writes below it next, so such a value is watched from now on)."""
        node: Node = self._root
        for part in parts:
            if not isinstance(node, Group):
                return None
            child = node.children.get(part)
            if child is None:
                return None
            node = self._followed.reach(node, part, child, write) if self._followed else child
        return node

    def _decoded(self, node: Node):
        """The value of ``node``, every followed value below it brought up to date first."""
        self._followed.sync_within(node)
        return store.decode_node(node)

    def _group(self, parts: list[str]) -> Group:
        """The group at ``parts``, creating missing groups on the way (followed values on the way watched)."""
        node: Node = self._root
        for depth, part in enumerate(parts):
            child = node.children.get(part)
            if child is not None and self._followed:
                child = self._followed.reach(node, part, child, True)
            if child is None:
                child = Group()
                node.children[part] = child
            elif not isinstance(child, Group):
                raise store.EncodingError("a dataset stands where a group is needed",
                                          obj="/" + "/".join(parts[: depth + 1]), expected="a group",
                                          found="a dataset")
            node = child
        return node

    def _release(self, node: Node) -> None:
        release_datasets(self._staging, node)
        self._followed.forget(node)

    def _admit(self, node: Node) -> None:
        admit_datasets(self._staging, node)

    def _set_children(self, parent_parts: list[str], nodes: Mapping[str, Node]) -> None:
        self._modified()
        group = self._group(parent_parts)
        for name, node in nodes.items():
            old = group.children.get(name)
            if old is not None:
                self._release(old)
            self._admit(node)
            group.children[name] = node
        self._check_size()

    def _set_node(self, parts: list[str], node: Node) -> None:
        if not parts:
            raise store.UnsafeNameError("the file root cannot be replaced", hint="name a path below the root")
        self._set_children(parts[:-1], {parts[-1]: node})

    # ------------------------------------------------------------------ path access (used by StepTarget)
    def has(self, path: str) -> bool:
        return self._node(split_path(path)) is not None

    def get(self, path: str, default=_NO_DEFAULT):
        node = self._node(split_path(path))
        if node is None:
            if default is _NO_DEFAULT:
                raise KeyError(f"session {self.dataset_id!r} has nothing at {path!r}")
            return default
        return self._decoded(node)

    def keys(self, path: str = "") -> list[str]:
        node = self._node(split_path(path))
        if node is None:
            raise KeyError(f"session {self.dataset_id!r} has nothing at {path!r}")
        if not isinstance(node, Group):
            raise TypeError(f"{path!r} is a dataset, not a group")
        return sorted(node.children)

    def put(self, path: str, value) -> None:
        self._set_node(split_path(path, allow_root=False), store.put_node(value))

    def attrs(self, path: str = "") -> dict[str, Any]:
        node = self._node(split_path(path))
        if node is None:
            raise KeyError(f"session {self.dataset_id!r} has nothing at {path!r}")
        return dict(node.attrs)

    def set_attrs(self, path: str, mapping: Mapping[str, Any]) -> None:
        node = self._node(split_path(path), write=True)
        if node is None:
            raise KeyError(f"session {self.dataset_id!r} has nothing at {path!r}")
        self._modified()
        values = {store.check_attr_name(name): store.normalize_attr(value) for name, value in mapping.items()}
        node.attrs.update(values)
