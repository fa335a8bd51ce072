"""The staged tree of a session as its live views read and write it: one way in.

``session.tree`` (a :class:`SessionTree`) is what ``session.units``, ``session.stimulus``,
``session.metadata`` and ``session.source_files`` go through; they touch nothing else of the session.
Every read of a node walks the path through :meth:`SessionTree.node`, which brings the values the caller
assigned on the way up to date (:mod:`hdmea.session._followed`), and every write goes through
:meth:`SessionTree.assign` or :meth:`SessionTree.delete`, which mark the session changed, keep the memory
budget (arrays past it spill), follow what the caller assigned and let go of what it no longer holds.
So no view has to remember any of that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from h5stream.tree import Group, Node, is_safe_key
from hdmea.io import hdf5_store as store
from hdmea.session._staged_tree import as_dict_group, slot_of

__all__ = ["SessionTree"]


class SessionTree:
    """The staged tree of one :class:`~hdmea.pipeline.PipelineSession` (see the module's text)."""

    __slots__ = ("_session",)

    def __init__(self, session) -> None:
        self._session = session

    @property
    def dataset_id(self) -> str:
        return self._session.dataset_id

    # ------------------------------------------------------------------ reading
    def node(self, parts: list[str], *, write: bool = False) -> Node | None:
        """The node at ``parts``, or None (values the caller assigned on the way brought up to date first;
        ``write``: the caller writes below it next, so such a value is watched from then on)."""
        return self._session._node(parts, write=write)

    def group(self, parts: list[str]) -> Group:
        """The group at ``parts``, created with the groups on the way where missing."""
        return self._session._group(parts)

    def assigned(self, node: Node):
        """The object the caller assigned and the session staged as ``node``, while it is followed; else None."""
        return self._session._followed.value_for_read(node)

    def decoded(self, node: Node):
        """The plain value of ``node`` (every followed value below it brought up to date first)."""
        return self._session._decoded(node)

    def root_attrs(self) -> Mapping[str, Any]:
        """The recording root's attributes (read only: change them with :meth:`update_root_attrs`)."""
        return dict(self._session._root.attrs)

    # ------------------------------------------------------------------ writing
    def update_root_attrs(self, values: Mapping[str, Any]) -> None:
        self._session._modified()
        self._session._root.attrs.update(values)

    def assign(self, parts: list[str], key, value, stored_as: Callable, *, follow: bool = True) -> None:
        """Store ``value`` under ``key`` of the group at ``parts`` (created where missing).

        ``stored_as(value)`` gives ``("attr", stored value)`` or ``("child", node)``: how a value is stored
        there.  A value the caller may change afterwards is followed (rebuilt with ``stored_as`` when it
        changed; ``follow=False`` for a value stored as a copy of what the caller holds); the memory budget
        is kept.
        """
        session = self._session
        session._modified()
        group = self._writable_group(parts)
        kind, stored = stored_as(value)
        where = "/" + "/".join([*parts, str(key)])
        slot = slot_of(group, key)
        if slot is None:
            if group.tag not in (None, "dict"):
                raise TypeError(f"{'/' + '/'.join(parts)} holds a {group.tag}, not a dict: it takes no new keys")
            if group.tag is None and not is_safe_key(key):
                as_dict_group(group)
            if group.tag == "dict":
                group.keys = list(group.keys or []) + [key]
                name = str(len(group.keys) - 1)
            else:
                store.check_member_name(key, what="key")
                name = key
        else:
            old_kind, name = slot
            if old_kind == "child":
                session._release(group.children.pop(name))
            else:
                del group.attrs[name]
        if kind == "attr":
            group.attrs[name] = stored
        else:
            session._admit(stored)
            group.children[name] = stored
            if follow:
                session._followed.follow(stored, value, parent=group, key=key, where=where,
                                         build=lambda v: stored_as(v)[1])
        session._check_size()

    def delete(self, parts: list[str], key) -> None:
        """Remove ``key`` from the group at ``parts`` (KeyError when absent)."""
        session = self._session
        group = self._existing_group(parts, write=True)
        slot = slot_of(group, key)
        if slot is None:
            raise KeyError(key)
        session._modified()
        kind, name = slot
        if kind == "child":
            session._release(group.children.pop(name))
        else:
            del group.attrs[name]
        if group.tag == "dict":
            # keep the stored names 0..n-1 in key order
            keys = list(group.keys or [])
            index = keys.index(key)
            del keys[index]
            for later in range(index + 1, len(keys) + 1):
                old, new = str(later), str(later - 1)
                if old in group.children:
                    group.children[new] = group.children.pop(old)
                elif old in group.attrs:
                    group.attrs[new] = group.attrs.pop(old)
            group.keys = keys

    def replace_group(self, name: str, mapping: Mapping, assign: Callable) -> None:
        """Make the top-level group ``name`` hold the items of ``mapping`` (each stored by ``assign(key,
        value)``); the mapping's own keys are watched (a key added or removed afterwards refuses the save)."""
        group = self.node([name])
        if isinstance(group, Group):
            for key in list(group.keys or []) if group.tag == "dict" else sorted(set(group.children) | set(group.attrs)):
                self.delete([name], key)
        for key, value in mapping.items():
            assign(key, value)
        session = self._session
        session._followed.watch_keys(self.group([name]), mapping, parent=session._root, key=name, where=f"/{name}")

    # ------------------------------------------------------------------ inside
    def _existing_group(self, parts: list[str], *, write: bool = False) -> Group:
        node = self.node(parts, write=write)
        if not isinstance(node, Group):
            raise KeyError(f"session {self.dataset_id!r} has no group at {'/' + '/'.join(parts)} any more "
                           "(it was replaced or deleted)")
        return node

    def _writable_group(self, parts: list[str]) -> Group:
        node = self.node(parts, write=True)
        if node is None:
            return self.group(parts)
        if not isinstance(node, Group):
            raise KeyError(f"session {self.dataset_id!r} has no group at {'/' + '/'.join(parts)} any more "
                           "(it was replaced or deleted)")
        return node
