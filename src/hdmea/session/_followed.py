"""Values the caller assigned into a session and may still change: followed until the caller lets go.

The rule: every change made through any reference the caller may still hold, before ``save()``,
``checkpoint()`` or ``ensure_saved()``, is in the file that call writes, or the call raises a typed
error naming the path; and ``is_saved`` is true only when the file holds what the caller sees.

The lab's code keeps dicts it assigned and changes them afterwards
(``d = {}; session.units[u]["f"] = d; d["x"] = 1``), as it could with the
original pipeline's plain dicts.  So the session keeps the assigned object beside
the node staged from it, and reading it back gives that object
(``session.units[u]["f"] is d``): a write through either is the same write.  The
node is brought up to date from the object (rebuilt, every unchanged part kept, so
arrays already spilled stay where they are and are not written again):

* before the session saves or checkpoints, or tells its state (``save``, ``checkpoint``,
  ``ensure_saved``, ``is_saved``: the one choke point, :meth:`hdmea.session.tree.SessionTree.bring_up_to_date`);
* when a path through the value is read (``session.get``, ``has``, ``keys``, ``to_dict``);
* when the caller no longer holds any part of the object (checked at later assignments; the one
  decision of :mod:`hdmea.session._release`): the node is brought up to date a last time and the
  object let go, so arrays added to it are measured against the memory budget (and spill) then,
  and a spilled array is not kept in memory by the session.  A change made just before the caller
  dropped the object is in that last update: nothing is let go unseen.

What is followed: dicts, lists and tuples that hold something mutable, and arrays whose staged node
is not the array itself (spilled to disk, or stored converted, as text arrays are), each held until
the caller lets go of every part of it.  An array kept in memory as it is needs nothing before a
save: the staged node is the caller's array.  After a save, every array held in memory is compared
with the digest of what the save wrote of it (:meth:`FollowedValues.changed_since_save`), so an
in-place change makes the session unsaved again.  A spilled array is compared with its copy on disk
by the digest taken when it spilled (CRC-32, :func:`h5stream.checksums.value_digest`).

When the session itself writes below a followed value (a step's ``put``, ``add_feature``,
``set_attrs``, or a view taken before the assignment), the node becomes the value's truth:
the object is brought in a last time, then only watched (a fingerprint).  A later change
to it could not be merged with the session's own writes, so ``save`` and ``checkpoint``
refuse with :class:`~hdmea.errors.AssignedValueChangedError`, naming the path, instead of
losing it.  A mapping assigned whole (``session.units = units``) stores its items, each followed
as above; the mapping's own keys are watched: one added, removed or replaced afterwards makes
the save refuse the same way.

Costs: a followed value is kept alive until the caller lets go of it (it is the caller's memory
until then); each assignment checks the newest followed values' reference counts (a walk of the
value), and a rebuild happens only where the value's structure or scalars changed, or it holds an
array the node keeps only as a copy (whose check costs one digest of that array); ``is_saved`` and
``ensure_saved`` on a saved session digest the arrays held in memory.  Measured by
``python -m benchmarks.studies.ab_session_views``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping

import numpy as np

from h5stream import checksums
from h5stream.errors import EncodingError
from h5stream.staging import FileArray, StagingArea
from hdmea.errors import AssignedValueChangedError
from hdmea.io.hdf5_store import Dataset, Group, Node
from hdmea.session._release import RELEASE, Holder
from hdmea.session._staged_tree import admit_datasets, datasets_of, release_datasets, slot_of, walk_datasets

__all__ = ["FollowedValues"]

#: Times a newly followed value is checked for release at later assignments before it waits for a full sweep.
_YOUNG_CHECKS = 3
_CONTAINERS = (dict, list, tuple)


def _mutable_inside(value) -> bool:
    """True when a tuple holds (at any depth) a container or an array its holder could change."""
    return any(isinstance(v, (dict, list, np.ndarray)) or (isinstance(v, tuple) and _mutable_inside(v))
               for v in value)


class _Entry:
    __slots__ = ("node", "parent", "key", "build", "where", "holder", "arrays", "signature", "fingerprint",
                 "checks", "shallow")

    def __init__(self, node: Node, parent: Group, key, build, where: str, value) -> None:
        self.node, self.parent, self.key, self.build, self.where = node, parent, key, build, where
        self.holder = Holder(value)  # the session's one reference to the value (see hdmea.session._release)
        self.restaged(node, value)
        self.fingerprint = None  # set once the session wrote below the value: watched, no longer followed
        self.checks = 0
        self.shallow = False  # watched for its keys and the identity of its values only

    def restaged(self, node: Node, value) -> None:
        """``node`` now holds what was staged from ``value``."""
        self.node = node
        self.arrays = [id(dataset.data) for _, dataset in walk_datasets(node)]  # what the node holds itself
        self.signature = _signature(value, set(self.arrays)) if self.build is not None else None

    def node_arrays(self) -> list[int]:
        """Ids of the arrays the node holds (walked afresh once the session itself writes below it)."""
        return self.arrays if self.fingerprint is None else [id(d.data) for _, d in walk_datasets(self.node)]

    def current_fingerprint(self):
        value = self.value()
        return _keys_and_members(value) if self.shallow else _fingerprint(value)

    def value(self):
        return self.holder.value

    def held_elsewhere(self) -> bool:
        """True while anything outside the session may still change the value (the one decision)."""
        if self.shallow:
            self.holder.node_arrays = []
        else:
            self.holder.node_arrays = self.node_arrays()
        return RELEASE.held_elsewhere(self.holder, whole=not self.shallow)


# --------------------------------------------------------------------------- comparing nodes


def _bytes_of(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8)


def _same_data(old, new) -> bool:
    """True when the staged ``old`` holds the values of ``new`` (bit for bit; on disk: the same digest)."""
    if old is new:
        return True
    if isinstance(old, FileArray):
        return (isinstance(new, np.ndarray) and old.digest is not None and old.shape == new.shape
                and old.dtype == new.dtype and old.digest == checksums.value_digest(new))
    if not (isinstance(old, np.ndarray) and isinstance(new, np.ndarray)):
        return False
    if old.dtype != new.dtype or old.shape != new.shape:
        return False
    if old.dtype.kind == "O":
        return old.tolist() == new.tolist()
    return bool(np.array_equal(_bytes_of(old), _bytes_of(new)))


def _same_value(old, new) -> bool:
    if old is new:
        return True
    if isinstance(old, (np.ndarray, FileArray)) or isinstance(new, np.ndarray):
        return _same_data(old, new)
    return type(old) is type(new) and repr(old) == repr(new)  # repr: NaN equals NaN, -0.0 differs from 0.0


def _same_attrs(old: dict, new: dict) -> bool:
    return old.keys() == new.keys() and all(_same_value(old[k], new[k]) for k in old)


def _merge(old: Node, new: Node, kept: set[int]) -> Node:
    """``new`` with each part that equals ``old``'s replaced by ``old``'s own (their ids added to ``kept``);
    ``old`` itself when nothing changed."""
    if isinstance(old, Dataset) and isinstance(new, Dataset):
        if old.tag == new.tag and _same_attrs(old.attrs, new.attrs) and _same_data(old.data, new.data):
            kept.add(id(old))
            return old
        return new
    if not (isinstance(old, Group) and isinstance(new, Group)):
        return new
    for name, child in new.children.items():
        if name in old.children:
            new.children[name] = _merge(old.children[name], child, kept)
    if (old.tag == new.tag and old.keys == new.keys and old.children.keys() == new.children.keys()
            and all(new.children[n] is old.children[n] for n in new.children) and _same_attrs(old.attrs, new.attrs)):
        kept.add(id(old))
        return old
    return new


def _keys_and_members(mapping: Mapping) -> tuple:
    return tuple((repr(k), id(v)) for k, v in mapping.items())


def _fingerprint(value):
    """A value's content as comparable data (arrays by digest): what a watched value is checked against."""
    if isinstance(value, Mapping):
        return "dict", tuple((repr(k), _fingerprint(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value).__name__, tuple(_fingerprint(v) for v in value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "O":
            return "array", value.dtype.str, value.shape, repr(value.tolist())
        return "array", value.dtype.str, value.shape, checksums.value_digest(value)
    return type(value).__name__, repr(value)


def _shape_of(value, shared: set[int]):
    """``value``'s structure and scalars as comparable data; None when it holds an array the node keeps
    only as a copy (spilled, converted), whose in-place edits only a rebuild finds.  An array the node
    holds itself is compared by identity: its edits are already the node's."""
    if isinstance(value, Mapping):
        items = [(k, _shape_of(v, shared)) for k, v in value.items()]
        return None if any(s is None for _, s in items) else ("dict", type(value), tuple(items))
    if isinstance(value, (list, tuple)):
        if value and all(type(v) is float for v in value):  # bit for bit, at C speed
            return type(value), np.array(value, dtype=np.float64).tobytes()
        items = [_shape_of(v, shared) for v in value]
        return None if any(s is None for s in items) else (type(value), tuple(items))
    if isinstance(value, np.ndarray):
        return ("array", id(value), value.shape, value.dtype.str) if id(value) in shared else None
    if isinstance(value, (float, complex, np.inexact)):
        return type(value), repr(value)  # NaN equals NaN, -0.0 differs from 0.0
    return type(value), value


def _signature(value, shared: set[int]):
    """What tells, without rebuilding its node, that ``value`` is unchanged since its node was staged from
    it (``shared``: ids of the arrays the node holds itself; None: only a rebuild tells)."""
    if isinstance(value, np.ndarray):
        return None
    return _shape_of(value, shared)


# --------------------------------------------------------------------------- the registry


class FollowedValues:
    """The followed values of one session, by the id of the node staged from each."""

    def __init__(self, staging: StagingArea, on_change: Callable[[], None]) -> None:
        self._staging = staging
        # called when a staged node changed; weak, so that the session is freed (its files closed) when dropped
        self._on_change = weakref.WeakMethod(on_change)
        self._entries: dict[int, _Entry] = {}
        self._young: list[_Entry] = []
        self._settled = 0  # entries left after the last full sweep
        # id(dataset node) -> digest of what the last save wrote from memory (ids only: while the session
        # stays saved its tree is the tree written, so no id is reused meanwhile)
        self._saved_digests: dict[int, str] = {}

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def follow(self, node: Node, value, *, parent: Group, key, build: Callable, where: str) -> None:
        """Follow ``value``, just staged as ``node`` under ``key`` of ``parent`` (``build(value)`` stages it anew)."""
        if isinstance(value, np.ndarray):
            if isinstance(node, Dataset) and node.data is value:
                return  # the staged node is the array itself: an in-place change is kept as it is
        elif not isinstance(value, _CONTAINERS) or (isinstance(value, tuple) and not _mutable_inside(value)):
            return
        entry = _Entry(node, parent, key, build, where, value)
        self._entries[id(node)] = entry
        self._young.append(entry)

    def watch_keys(self, group: Group, mapping, *, parent: Group, key: str, where: str) -> None:
        """Watch the keys of ``mapping``, whose items were just assigned one by one into ``group`` (each value
        followed on its own): a key added, removed or given another value afterwards makes the save refuse."""
        if not isinstance(mapping, dict):
            return
        entry = _Entry(group, parent, key, None, where, mapping)
        entry.shallow = True
        entry.fingerprint = _keys_and_members(mapping)
        self._entries[id(group)] = entry
        self._young.append(entry)

    def value_for_read(self, node: Node):
        """The caller's object staged as ``node`` while it is followed, else None."""
        entry = self._entries.get(id(node))
        if entry is None or entry.fingerprint is not None:
            return None
        return entry.value()

    def forget(self, node: Node) -> None:
        """``node`` left the tree (replaced or deleted): stop following every value inside it."""
        if not self._entries:
            return
        todo = [node]
        while todo:
            item = todo.pop()
            self._entries.pop(id(item), None)
            if isinstance(item, Group):
                todo.extend(item.children.values())

    def reach(self, parent: Group, name: str, node: Node, write: bool) -> Node:
        """``node`` (``parent``'s child ``name``) brought up to date if followed; with ``write`` the session
        is about to write below it, so it is watched from now on.  Returns the node now there."""
        entry = self._entries.get(id(node))
        if entry is None:
            return node
        self._sync(entry)
        if write and entry.fingerprint is None and id(entry.node) in self._entries:
            entry.fingerprint = entry.current_fingerprint()
        return parent.children.get(name, node)

    def sync_within(self, node: Node) -> None:
        """Bring every followed value below ``node`` up to date (before it is read whole)."""
        todo = [node] if self._entries and isinstance(node, Group) else []
        while todo:
            group = todo.pop()
            for name, child in list(group.children.items()):
                entry = self._entries.get(id(child))
                if entry is not None and self._sync(entry):
                    child = group.children[name]
                if isinstance(child, Group):
                    todo.append(child)  # (a watched value's node may hold values followed on their own)

    def settle(self, *, everything: bool, strict: bool = True, dataset_id: str = "") -> None:
        """Let go of the values the caller no longer holds (brought up to date a last time).

        ``everything`` (before a save): every value is brought up to date, and a watched value the
        caller changed raises :class:`~hdmea.errors.AssignedValueChangedError` (``strict``; else it
        counts as a change).  Otherwise (at an assignment) the newest values are checked, and all of
        them each time their number doubled.
        """
        if not self._entries:
            return
        if everything or len(self._entries) >= 2 * self._settled + 16:
            candidates = list(self._entries.values())
            self._young = []
            full = True
        else:
            candidates, self._young = self._young, []
            full = False
        for entry in candidates:
            if self._entries.get(id(entry.node)) is not entry:
                continue  # replaced or deleted meanwhile
            entry.checks += 1
            held = entry.held_elsewhere()
            if held and not everything:
                if entry.checks < _YOUNG_CHECKS and not full:
                    self._young.append(entry)
                continue
            if entry.fingerprint is not None:
                if entry.current_fingerprint() != entry.fingerprint:
                    if everything and strict:
                        raise self._changed_error(entry, dataset_id)
                    if everything:
                        self._changed()
                    continue  # kept, so that the save refuses
            else:
                self._sync(entry)
            if not held:
                self._entries.pop(id(entry.node), None)
        if full:
            self._settled = len(self._entries)

    def saved(self, written: dict[int, str]) -> None:
        """The session saved its tree; ``written``: id(dataset node) -> digest of what was written from memory."""
        self._saved_digests = written

    def changed_since_save(self, root: Group) -> bool:
        """True when an array of ``root`` held in memory differs from what the last save wrote of it.

        Such an array may be the caller's own (assigned, or given back by a read): an in-place change
        to it after the save is a change the file does not hold.  Costs one digest of every array the
        session holds in memory (at most ``memory_limit`` bytes)."""
        saved = self._saved_digests
        arrays, digests = [], []
        for dataset in datasets_of(root):
            data = dataset.data
            if isinstance(data, np.ndarray) and data.dtype.kind != "O":
                digest = saved.get(id(dataset))
                if digest is None:
                    return True
                arrays.append(data)
                digests.append(digest)
        return checksums.first_changed(arrays, digests) >= 0

    def clear(self) -> None:
        self._saved_digests = {}
        self._entries.clear()
        self._young = []
        self._settled = 0

    # ------------------------------------------------------------------ inside
    def _changed(self) -> None:
        on_change = self._on_change()
        if on_change is not None:
            on_change()

    def _sync(self, entry: _Entry) -> bool:
        """Rebuild ``entry``'s node from its value; store what changed.  True when the node changed."""
        if entry.fingerprint is not None:
            return False
        value = entry.value()
        slot = slot_of(entry.parent, entry.key)
        if value is None or slot is None or entry.parent.children.get(slot[1]) is not entry.node:
            self._entries.pop(id(entry.node), None)  # nobody can change it, or it is no longer staged
            return False
        if entry.signature is not None and entry.signature == _signature(value, set(entry.arrays)):
            return False
        try:
            new = entry.build(value)
        except EncodingError as exc:
            raise EncodingError(f"the {type(value).__name__} assigned here was changed to hold a value the "
                                f"session cannot store ({exc})", obj=entry.where,
                                hint="change that value in it to one the session stores") from exc
        kept: set[int] = set()
        merged = _merge(entry.node, new, kept)
        if merged is entry.node:
            return False
        self._changed()
        release_datasets(self._staging, entry.node, kept)
        admit_datasets(self._staging, merged, kept)
        entry.parent.children[slot[1]] = merged
        del self._entries[id(entry.node)]
        entry.restaged(merged, value)
        if not (isinstance(value, np.ndarray) and isinstance(merged, Dataset) and merged.data is value):
            self._entries[id(merged)] = entry  # (an array now staged as it is needs following no more)
        return True

    @staticmethod
    def _changed_error(entry: _Entry, dataset_id: str) -> AssignedValueChangedError:
        kind = type(entry.value()).__name__
        if entry.shallow:
            name = entry.where.strip("/")
            return AssignedValueChangedError(
                f"session {dataset_id!r}: the {kind} assigned as session.{name} gained, lost or replaced keys "
                f"afterwards; session.{name} holds its items, not the {kind} itself, so that change is not saved",
                obj=entry.where, expected=f"the keys the {kind} had when it was assigned", found="other keys",
                hint=f"assign it again (session.{name} = ...), or from now on add items through "
                     f"session.{name}[key] = value")
        return AssignedValueChangedError(
            f"session {dataset_id!r}: the {kind} assigned at {entry.where} was changed by the caller after "
            "the session itself wrote below it (a step, put(), add_feature(), set_attrs() or a view taken "
            "before the assignment), so the change cannot be merged and is not saved",
            obj=entry.where, expected=f"the {kind} as it was when the session wrote below it",
            found="a later change",
            hint=f"assign the {kind} again at {entry.where} (session[...] = value) before saving, "
                 "or make the change through the session's view")
