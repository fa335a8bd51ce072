"""Live views of a session's staged tree: ``session.units``, ``session.stimulus``, ``session.metadata``.

The lab's code treats these as its working memory and writes into them at any
depth (``session.units[u]["auto_label"]["axon_type"] = "rgc"``,
``session.stimulus["section_time"][movie] = sections``).  A :class:`LiveGroup`
reads and writes the session's node tree in place, so every such write is
staged, counted against the memory budget (arrays past it spill) and saved.

What a read returns:

==========================  =====================================================
stored                      returned
==========================  =====================================================
a dict, list or array the   that object itself, as a plain dict gives it back
caller assigned and still   (a change to it is saved: :mod:`hdmea.session._followed`)
holds
group (dict)                a :class:`LiveGroup` (writes go to the session)
list, or dict stored as     a :class:`LiveList` / :class:`TrackedDict` (a change, also
one value                   inside its items, is written back to the session)
array held in memory        the staged array itself (in-place edits are kept)
array on disk (spilled,     a read-only copy: an in-place edit raises
or from a checkpoint), or   ``ValueError`` instead of being lost; assign instead
stored converted (text)
other values                their Python value (immutable)
==========================  =====================================================

A sectioned movie (``units/<u>/spike_times_sectioned/<movie>``, stored ragged)
also answers to the original's ``trials_spike_times``: a read-only mapping of trial
index to that trial's spike samples, derived from ``spike_times`` and
``trial_offsets`` on access and never stored (nor listed among the group's keys).

What a write stores (the original pipeline's layout): a scalar set directly in a
unit's group is an attribute of the unit; anywhere else every value is its own
object (a dict a group, a scalar a 1-element dataset, an array a dataset), so
``units/<u>/auto_label/axon_type`` is a dataset a plain h5py reader finds.  A
value the tree cannot store raises :class:`h5stream.errors.EncodingError`.

A dict, list or array assigned here and changed afterwards by the caller
(``d = {}; session.units[u]["f"] = d; d["x"] = 1``) is saved with the change, as
with the original's plain dicts; :mod:`hdmea.session._followed` says how, and when
the session refuses instead.
"""

from __future__ import annotations

import copy
import os
import weakref
from collections.abc import Iterable, Mapping, MutableMapping, MutableSequence, MutableSet
from pathlib import Path
from types import MappingProxyType

import numpy as np

from h5stream.staging import FileArray
from h5stream.tree import Group, decode_node, normalize_attr, value_node
from hdmea.io import hdf5_store as store
from hdmea.session._staged_tree import slot_of as _slot

__all__ = ["LiveGroup", "LiveList", "TrackedDict", "CompletedSteps", "SourceFiles", "LabSessionViews"]

#: The original's name of a sectioned movie's trials: ``{trial index: spike samples}``, one dataset each.
TRIALS_KEY = "trials_spike_times"
_RAGGED = {"spike_times", "trial_offsets"}


class LiveGroup(MutableMapping):
    """A group of a :class:`~hdmea.pipeline.PipelineSession`'s tree, read and written in place."""

    __slots__ = ("_session", "_parts")

    def __init__(self, session, parts: list[str]) -> None:
        self._session = session
        self._parts = list(parts)

    # ------------------------------------------------------------------ where
    @property
    def path(self) -> str:
        return "/" + "/".join(self._parts)

    def _group(self) -> Group:
        node = self._session.tree.node(self._parts)
        if not isinstance(node, Group):
            raise KeyError(f"session {self._session.tree.dataset_id!r} has no group at {self.path} any more "
                           "(it was replaced or deleted)")
        return node

    def _is_unit(self) -> bool:
        return len(self._parts) == 2 and self._parts[0] == "units"

    # ------------------------------------------------------------------ reading
    def _keys(self) -> list:
        group = self._session.tree.node(self._parts)
        if not isinstance(group, Group):
            return []
        if group.tag == "dict":
            return list(group.keys or [])
        return sorted(set(group.children) | set(group.attrs))

    def __iter__(self):
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def __contains__(self, key) -> bool:
        group = self._session.tree.node(self._parts)
        return isinstance(group, Group) and (_slot(group, key) is not None or self._derived(group, key))

    def _derived(self, group: Group, key) -> bool:
        """True for the original's per-trial view of a sectioned movie (read-only, derived, never stored)."""
        return (key == TRIALS_KEY and len(self._parts) == 4 and self._parts[0] == "units"
                and self._parts[2] == "spike_times_sectioned" and _RAGGED <= set(group.children))

    def _trials(self, group: Group) -> MappingProxyType:
        values = np.asarray(decode_node(group.children["spike_times"]))
        offsets = np.asarray(decode_node(group.children["trial_offsets"]), dtype=np.int64)
        trials = {}
        for k in range(offsets.size - 1):
            trial = values[offsets[k]:offsets[k + 1]].copy()
            trial.flags.writeable = False
            trials[k] = trial
        return MappingProxyType(trials)

    def __getitem__(self, key):
        group = self._group()
        slot = _slot(group, key)
        if slot is None and self._derived(group, key):
            return self._trials(group)
        if slot is None:
            raise KeyError(key)
        kind, name = slot
        if kind == "attr":
            value = group.attrs[name]
            return _tracked(value, _write_back(self, key, value)) if isinstance(value, (list, dict)) else value
        node = group.children[name]
        assigned = self._session.tree.assigned(node)
        if assigned is not None:
            return assigned  # the dict, list or array the caller assigned here, as a plain dict would
        if isinstance(node, Group):
            if node.tag == "list":
                items = decode_node(node)
                return LiveList(items, _write_back(self, key, items))
            if node.tag == "tuple":
                return decode_node(node)
            return LiveGroup(self._session, self._parts + [name])
        if node.tag is None and isinstance(node.data, np.ndarray) and node.data.dtype.kind != "O":
            return node.data  # the staged array itself: in-place edits are kept
        value = decode_node(node)
        if isinstance(value, np.ndarray) and value is not node.data:
            value.flags.writeable = False  # a copy (of data on disk, or converted): an edit would be lost, so it raises
        if isinstance(value, list):
            return LiveList(value, _write_back(self, key, value))
        if isinstance(value, dict):  # a dict stored as one value (typed JSON)
            return TrackedDict(value, _write_back(self, key, value))
        return value

    def get(self, key, default=None):
        return self[key] if key in self else default

    def to_dict(self) -> dict:
        """A plain copy of the group (arrays on disk are read)."""
        return self._session.tree.decoded(self._group())

    copy = to_dict

    # copy.copy, copy.deepcopy and pickle give a plain dict (never a copy of the session behind the view)
    def __copy__(self) -> dict:
        return self.to_dict()

    def __deepcopy__(self, memo) -> dict:
        return self.to_dict()

    def __reduce__(self):
        return dict, (self.to_dict(),)

    def __repr__(self) -> str:
        return f"LiveGroup({self.path}, keys={self._keys()!r})"

    def __eq__(self, other) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self.items()) == dict(other.items())

    __hash__ = None

    # ------------------------------------------------------------------ writing
    def _rule(self) -> str:
        """How a value is stored here (see :func:`_stored`)."""
        return "units" if self._parts == ["units"] else "unit" if self._is_unit() else "any"

    def __setitem__(self, key, value) -> None:
        rule = self._rule()
        # live views and tracked containers are stored as copies: nothing of the caller's to follow
        self._session.tree.assign(self._parts, key, value, lambda v: _stored(rule, key, v),
                                  follow=not isinstance(value, (LiveGroup, _Tracked)))

    def __delitem__(self, key) -> None:
        self._session.tree.delete(self._parts, key)

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]


def _stored(rule: str, key, value):
    """('attr', value) or ('child', node) for ``value`` stored under ``key`` in the units group (``rule``
    "units"), in a unit's own group ("unit") or anywhere else ("any")."""
    if rule == "units":
        return "child", store.unit_node(store.check_name(key, what="unit id"), value)
    if isinstance(value, LiveGroup):
        value = value.to_dict()
    elif isinstance(value, _Tracked):
        value = _plain(value)
    if isinstance(value, (np.ndarray, FileArray)):
        return "child", store.array_node(value)
    if rule == "unit" and not isinstance(value, (Mapping, list, tuple, bytes)):
        return "attr", normalize_attr(value)
    return "child", value_node(value)


def _plain(value):
    """A value as stored: live views and tracked containers become plain dicts and lists."""
    if isinstance(value, LiveGroup):
        return value.to_dict()
    if isinstance(value, _Tracked):
        return copy.deepcopy(value._data)
    return value


def _tracked(value, store):
    """``value`` read from inside a stored list or dict: containers tracked (a change is written back by
    ``store``), arrays read-only (an in-place edit of this copy would be lost, so it raises)."""
    if isinstance(value, dict):
        return TrackedDict(value, store)
    if isinstance(value, list):
        return LiveList(value, store)
    if isinstance(value, np.ndarray) and value.flags.writeable:
        value = value.view()
        value.flags.writeable = False
    return value


class _Tracked:
    """A list or dict read from a session (a value of an attribute or a tagged dataset, or an item inside
    one): every change is written back whole through ``store``, so that it is kept like any other write."""

    __slots__ = ("_data", "_store")

    def __init__(self, data, store) -> None:
        self._data = data
        self._store = store

    def __getitem__(self, key):
        return _tracked(self._data[key], self._store)

    def __setitem__(self, key, value) -> None:
        self._data[key] = _plain(value)
        self._store()

    def __delitem__(self, key) -> None:
        del self._data[key]
        self._store()

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other) -> bool:
        return _plain(self) == _plain(other)

    __hash__ = None

    def __repr__(self) -> str:
        return repr(self._data)

    def __copy__(self):
        return copy.copy(self._data)

    def __deepcopy__(self, memo):
        return copy.deepcopy(self._data, memo)

    def __reduce__(self):
        return type(self._data), (copy.deepcopy(self._data),)


class LiveList(_Tracked, MutableSequence):
    """A list stored in a session: every change (also inside its items) is written back to where it came from."""

    __slots__ = ()

    def insert(self, index, value) -> None:
        self._data.insert(index, _plain(value))
        self._store()


class TrackedDict(_Tracked, MutableMapping):
    """A dict stored as one value (inside a list, or a JSON attribute): every change is written back whole."""

    __slots__ = ()

    def __iter__(self):
        return iter(self._data)


def _write_back(parent: LiveGroup, key, data):
    def store() -> None:
        parent[key] = copy.deepcopy(data)

    return store


class CompletedSteps(MutableSet):
    """The steps a session has completed: a set (``add``, ``discard``, ``in``) that keeps their order.

    The original pipeline's ``completed_steps`` is a set and the lab's scripts call
    ``.add()`` and ``.discard()``; the runner reads the order of completion
    (iteration is in that order).  Compares equal to a set of the same steps and to
    a list or tuple of them in the same order.
    """

    __slots__ = ("_steps", "_on_change")

    def __init__(self, steps: Iterable[str] = (), on_change=None) -> None:
        self._steps: dict[str, None] = {}
        self._on_change = None
        for step in steps:
            self.add(step)
        # a weak reference: the session holding this set is freed (and its files closed) as soon as it is dropped
        self._on_change = weakref.WeakMethod(on_change) if on_change is not None else None

    def _changing(self) -> None:
        callback = self._on_change() if self._on_change is not None else None
        if callback is not None:
            callback()

    def __contains__(self, step) -> bool:
        return step in self._steps

    def __iter__(self):
        return iter(list(self._steps))

    def __len__(self) -> int:
        return len(self._steps)

    def add(self, step: str) -> None:
        if not isinstance(step, str) or not step:
            raise ValueError(f"a step name must be non-empty text (found {step!r})")
        if step not in self._steps:
            self._changing()
            self._steps[step] = None

    def discard(self, step: str) -> None:
        if step in self._steps:
            self._changing()
            del self._steps[step]

    # list-like reading, for code written against the earlier list
    def __getitem__(self, index):
        return list(self._steps)[index]

    def append(self, step: str) -> None:
        self.add(step)

    def __add__(self, other):
        return list(self._steps) + list(other)

    def __eq__(self, other) -> bool:
        if isinstance(other, (list, tuple)):
            return list(self._steps) == list(other)
        if isinstance(other, (set, frozenset, CompletedSteps)):
            return set(self._steps) == set(other)
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return "{" + ", ".join(repr(s) for s in self._steps) + "}" if self._steps else "set()"


_SOURCE_KEYS = ("cmcr_path", "cmtr_path")


class SourceFiles(MutableMapping):
    """``session.source_files``: ``{"cmcr_path": Path, "cmtr_path": Path}``, kept in the recording's root.

    Stored as the root attributes ``source_files`` (the original's JSON text),
    ``cmcr_exists`` and ``cmtr_exists``, as a step run without a session writes them.
    """

    __slots__ = ("_session",)

    def __init__(self, session) -> None:
        self._session = session

    def _paths(self) -> list[str]:
        return store.source_paths(self._session.tree.root_attrs().get("source_files"))

    def __getitem__(self, key):
        if key not in _SOURCE_KEYS:
            raise KeyError(key)
        value = self._paths()[_SOURCE_KEYS.index(key)]
        if not value:
            raise KeyError(key)
        return Path(value)

    def __iter__(self):
        paths = self._paths()
        return iter([k for k, p in zip(_SOURCE_KEYS, paths) if p])

    def __len__(self) -> int:
        return sum(1 for p in self._paths() if p)

    def _set(self, paths: list[str]) -> None:
        cmcr, cmtr = (p or None for p in paths)
        self._session.tree.update_root_attrs(store.source_files_attrs(cmcr, cmtr))

    def __setitem__(self, key, value) -> None:
        if key not in _SOURCE_KEYS:
            raise KeyError(f"source_files takes {', '.join(_SOURCE_KEYS)} (found {key!r})")
        paths = self._paths()
        paths[_SOURCE_KEYS.index(key)] = os.fspath(value) if value is not None else ""
        self._set(paths)

    def __delitem__(self, key) -> None:
        self[key] = None

    def __repr__(self) -> str:
        return repr(dict(self.items()))


def _replace_group(session, name: str, mapping: Mapping) -> None:
    """Make the session's top-level group ``name`` hold the items of ``mapping``, each stored as a live
    view's assignment stores it."""
    session.tree.replace_group(name, mapping, LiveGroup(session, [name]).__setitem__)


class LabSessionViews:
    """The session's members as the lab's code uses them (mixed into :class:`~hdmea.pipeline.PipelineSession`).

    ``units``, ``stimulus`` and ``metadata`` are live dicts; ``source_files``, ``set_source_files()``,
    ``created_at``.  Everything goes through the session's :attr:`tree` (:mod:`hdmea.session.tree`).
    """

    @property
    def created_at(self) -> str | None:
        return self.tree.root_attrs().get("created_at")

    @created_at.setter
    def created_at(self, value: str | None) -> None:
        self.tree.update_root_attrs({"created_at": "" if value is None else str(value)})

    @property
    def source_files(self) -> SourceFiles:
        return SourceFiles(self)

    @source_files.setter
    def source_files(self, mapping: Mapping) -> None:
        self.set_source_files(**{k: mapping.get(k) for k in ("cmcr_path", "cmtr_path")})

    def set_source_files(self, cmcr_path: str | os.PathLike | None = None,
                         cmtr_path: str | os.PathLike | None = None) -> None:
        """Record the paths of the original ``.cmcr``/``.cmtr`` (a path left out keeps its value)."""
        files = self.source_files
        if cmcr_path:
            files["cmcr_path"] = cmcr_path
        if cmtr_path:
            files["cmtr_path"] = cmtr_path

    @property
    def units(self) -> LiveGroup:
        """Every unit by id, live: reads come from the staged tree and writes at any depth go into it."""
        return LiveGroup(self, ["units"])

    @units.setter
    def units(self, mapping: Mapping) -> None:
        _replace_group(self, "units", mapping)

    @property
    def metadata(self) -> LiveGroup:
        """The recording's metadata, live (see :attr:`units`)."""
        return LiveGroup(self, ["metadata"])

    @metadata.setter
    def metadata(self, mapping: Mapping) -> None:
        _replace_group(self, "metadata", mapping)

    @property
    def stimulus(self) -> LiveGroup:
        """The stimulus arrays (light reference, frame and section times), live (see :attr:`units`)."""
        return LiveGroup(self, ["stimulus"])

    @stimulus.setter
    def stimulus(self, mapping: Mapping) -> None:
        _replace_group(self, "stimulus", mapping)
