"""The staged tree of a session: its one owner.

A :class:`SessionTree` holds everything a :class:`~hdmea.session.session.PipelineSession` has staged: the
recording's node tree, the staging area its arrays are counted in (and spill to,
:mod:`h5stream.staging`), the values the caller assigned and may still change
(:mod:`hdmea.session._followed`), the files lazily loaded arrays are read from, and whether the file
last saved holds all of it.  The session holds one (``session.tree``); the session, its live views
(``session.units``, ``session.stimulus``, ``session.metadata``, ``session.source_files``), its path
access (``get``, ``put``, ...) and the steps go through its methods and nothing else.

Every read of a node walks the path through :meth:`SessionTree.node`, which brings the values the caller
assigned on the way up to date, and every write goes through :meth:`SessionTree.assign`,
:meth:`SessionTree.delete` or :meth:`SessionTree.set_children`, which mark the tree changed, keep the
memory budget (arrays past it spill), follow what the caller assigned and let go of what it no longer
holds.  Whether the tree is synced with the file last saved is decided here only: :meth:`changed` makes it
unsynced, :meth:`saved` synced, and :meth:`bring_up_to_date` (before anything is written or the state is
told) brings in what the caller changed and finds arrays changed in place since the save.

A step may leave a value derived from what it staged for a later step (:meth:`SessionTree.keep_derived`: every
unit's trials of a movie in one form); each write drops those made from a path it touches.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from h5stream.checksums import first_changed
from h5stream.digests import array_digests
from h5stream.staging import FileArray, StagingArea
from h5stream.tree import Group, Node, is_safe_key
from hdmea.errors import SessionError
from hdmea.io import hdf5_store as store
from hdmea.io.recording import SourceFile
from hdmea.session._followed import FollowedValues
from hdmea.session._staged_tree import admit_datasets, as_dict_group, datasets_of, release_datasets, slot_of, walk_datasets

__all__ = ["SessionTree", "Loaded"]


class Loaded(NamedTuple):
    """A tree as loaded from a file: its root, the file, and the digest of each array it holds in memory
    (by id of its dataset node; ``datasets`` those nodes, in the digests' order)."""

    root: Group
    source: SourceFile
    digests: dict[int, str]
    datasets: list


class SessionTree:
    """The staged tree of one :class:`~hdmea.pipeline.PipelineSession` (see the module's text).

    ``after_change`` is called after every write (the session's size check); it is held weakly, so that
    a session nobody holds is freed (and its files closed) at once.
    """

    def __init__(self, dataset_id: str, staging: StagingArea, after_change: Callable[[], None]) -> None:
        self.dataset_id = dataset_id
        self._root: Group = store.recording_root(dataset_id)
        self._staging = staging
        self._followed = FollowedValues(staging, self.changed)
        self._sources: list[SourceFile] = []
        self._synced = False
        self._saved_check_due = False  # synced, and whether an array changed in place since is asked on read
        self._loaded: Loaded | None = None  # the tree as loaded, while nothing changed it
        self._broken: str | None = None
        self._closed = False
        self._derived: dict = {}  # key -> (the paths it was made from, value): see keep_derived
        self._after_change = weakref.WeakMethod(after_change)

    # ------------------------------------------------------------------ state
    @property
    def root(self) -> Group:
        """The recording's root group as staged (read it through :meth:`node` where followed values matter)."""
        return self._root

    @property
    def staging(self) -> StagingArea:
        """Where the staged arrays are counted, and spill to past the memory limit."""
        return self._staging

    @property
    def synced(self) -> bool:
        """True when the file last saved held the tree as it was last brought up to date."""
        if self._saved_check_due:
            self._saved_check_due = False
            if self._synced and self._followed.changed_since_save(self._root):
                self._synced = False
        return self._synced

    @property
    def followed_count(self) -> int:
        """How many values the caller assigned are followed now."""
        return len(self._followed)

    def check_usable(self) -> None:
        """Raise :class:`~hdmea.errors.SessionError` when a failed save left the staged data lost."""
        if self._broken is not None:
            raise SessionError(self._broken)

    def lost(self, text: str) -> None:
        """Record that the staged data was lost (every later change and save then raises)."""
        self._broken = f"session {self.dataset_id!r}: {text}"

    def changed(self) -> None:
        """Before a change of the staged content: the tree is no longer synced."""
        self.check_usable()
        self._synced = False
        self._loaded = None
        if self._followed:  # (a value the caller assigned may be brought in anywhere: nothing derived is kept)
            self._derived.clear()

    def _after_write(self) -> None:
        self._followed.settle(everything=False)
        after = self._after_change()
        if after is not None:
            after()

    def bring_up_to_date(self, *, strict: bool = True, saved_check_on_read: bool = False) -> None:
        """Bring every value the caller assigned and may have changed into the tree (``strict``: a change that
        cannot be merged raises); a tree synced before becomes unsynced when an array written from memory
        has changed since.

        ``saved_check_on_read``: that last comparison (a digest of every array held in memory) is left to
        the next read of :attr:`synced` (a save and a checkpoint, which write every array and never read
        it, do not pay it; a save makes the tree synced anyway)."""
        self._followed.settle(everything=True, strict=strict, dataset_id=self.dataset_id)
        if saved_check_on_read:
            self._saved_check_due = self._synced
        elif self._synced:
            self._saved_check_due = False
            if self._followed.changed_since_save(self._root):
                self._synced = False

    def saved(self, target: Path, written: dict[int, str]) -> None:
        """The tree was just saved to ``target`` (``written``: id of a dataset node -> digest of what was
        written from memory): on-disk arrays now read from ``target``, older sources close, and the tree is
        synced."""
        source = SourceFile(target)
        for path, dataset in walk_datasets(self._root):
            if isinstance(dataset.data, FileArray):
                data = dataset.data
                dataset.data = FileArray(source, "/" + path, data.shape, data.dtype, digest=data.digest)
        for old in self._sources:
            old.close()
        self._sources = [source]
        self._synced, self._saved_check_due = True, False
        self._loaded = None
        self._followed.saved(written)

    def adopt(self, root: Group, source: SourceFile) -> None:
        """Take ``root``, loaded lazily from ``source``, as the staged tree (its arrays staged)."""
        self._root = root
        self._sources = [source]
        self._derived.clear()
        admit_datasets(self._staging, root)
        arrays = [d for d in datasets_of(root) if isinstance(d.data, np.ndarray) and d.data.dtype.kind != "O"]
        self._loaded = Loaded(root, source, dict(zip(map(id, arrays), array_digests([d.data for d in arrays]))),
                              arrays)

    def unchanged_since_load(self) -> Loaded | None:
        """The tree as :meth:`adopt` took it, while nothing has changed it since: no write, no value the
        caller assigned, no array held in memory changed in place (each compared with its digest at load);
        else None (see :mod:`hdmea.session._copy_save`)."""
        loaded = self._loaded
        if loaded is None or self._root is not loaded.root or len(self._followed):
            return None
        if first_changed([d.data for d in loaded.datasets], list(loaded.digests.values())) >= 0:
            self._loaded = None
            return None
        return loaded

    def close(self) -> None:
        """Close the source files and delete the spill file; the staged content is dropped: the arrays held
        in memory go now, not when the session object does (a caller that still holds a closed session
        holds none of its memory budget), and a later read, change or save raises."""
        for source in self._sources:
            source.close()
        self._sources = []
        self._staging.clear()
        self._followed.clear()
        self._root = store.recording_root(self.dataset_id)
        self._derived.clear()
        self._synced = self._saved_check_due = False
        self._loaded = None
        self._closed = True
        if self._broken is None:
            self.lost("closed, its staged content dropped; load the file it saved (PipelineSession.load) "
                      "to go on with it")

    # ------------------------------------------------------------------ reading
    def node(self, parts: list[str], *, write: bool = False) -> Node | None:
        """The node at ``parts``, or None (values the caller assigned on the way brought up to date first;
        ``write``: the caller writes below it next, so such a value is watched from then on)."""
        if self._closed:  # its content is gone: an empty tree would read as a recording without units
            raise SessionError(self._broken)
        node: Node = self._root
        followed = self._followed
        for part in parts:
            if not isinstance(node, Group):
                return None
            child = node.children.get(part)
            if child is None:
                return None
            node = followed.reach(node, part, child, write) if followed else child
        return node

    def group(self, parts: list[str]) -> Group:
        """The group at ``parts``, created with the groups on the way where missing (followed values on
        the way watched)."""
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

    def assigned(self, node: Node):
        """The object the caller assigned and the session staged as ``node``, while it is followed; else None."""
        return self._followed.value_for_read(node)

    def decoded(self, node: Node):
        """The plain value of ``node`` (every followed value below it brought up to date first)."""
        self._followed.sync_within(node)
        return store.decode_node(node)

    def root_attrs(self) -> Mapping[str, Any]:
        """The recording root's attributes (read only: change them with :meth:`update_root_attrs`)."""
        return dict(self._root.attrs)

    # ------------------------------------------------------------------ writing
    def update_root_attrs(self, values: Mapping[str, Any]) -> None:
        self.changed()
        self._root.attrs.update(values)

    def update_attrs(self, parts: list[str], values: Mapping[str, Any]) -> None:
        """Set attributes of the node at ``parts`` (KeyError when absent); a followed value there is
        watched from now on."""
        node = self.node(parts, write=True)
        if node is None:
            raise KeyError(f"session {self.dataset_id!r} has nothing at {'/' + '/'.join(parts)!r}")
        self.changed()
        if self._derived:
            self._touched([parts], attrs=True)
        node.attrs.update(values)

    def set_children(self, parent_parts: list[str], nodes: Mapping[str, Node]) -> None:
        """Stage ``nodes`` as children of the group at ``parent_parts`` (created where missing), replacing
        what stood under their names."""
        self.changed()
        group = self.group(parent_parts)
        if self._derived:
            self._touched([[*parent_parts, name] for name in nodes])
        for name, node in nodes.items():
            self._place(group, name, node)
        self._after_write()

    def set_node(self, parts: list[str], node: Node) -> None:
        """Stage ``node`` at ``parts`` (below the root)."""
        self.set_nodes([(parts, node)])

    def set_nodes(self, items: Iterable[tuple[list[str], Node]]) -> None:
        """Stage each ``(parts, node)`` at its path (below the root), in order, as :meth:`set_node` of each
        would (what stood there released, the node's arrays staged, a node placed below an earlier one
        of ``items`` going into it), with one change mark and one check after all of them: a step's many
        values (every unit's trials) in one call."""
        items = list(items)
        if not all(parts for parts, _ in items):
            raise store.UnsafeNameError("the file root cannot be replaced", hint="name a path below the root")
        self.changed()
        if self._derived:
            self._touched([parts for parts, _ in items])
        for parts, node in items:
            self._place(self.group(parts[:-1]), parts[-1], node)
        self._after_write()

    def _place(self, group: Group, name: str, node: Node) -> None:
        old = group.children.get(name)
        if old is not None:
            self._release(old)
        if type(node) is not Group or node.children:  # (a group of attributes alone holds no array to stage)
            admit_datasets(self._staging, node)
        group.children[name] = node

    def _release(self, node: Node) -> None:
        release_datasets(self._staging, node)
        self._followed.forget(node)

    def assign(self, parts: list[str], key, value, stored_as: Callable, *, follow: bool = True) -> None:
        """Store ``value`` under ``key`` of the group at ``parts`` (created where missing).

        ``stored_as(value)`` gives ``("attr", stored value)`` or ``("child", node)``: how a value is stored
        there.  A value the caller may change afterwards is followed (rebuilt with ``stored_as`` when it
        changed; ``follow=False`` for a value stored as a copy of what the caller holds); the memory budget
        is kept.
        """
        self.changed()
        group = self._writable_group(parts)
        if self._derived:
            self._touched([parts if group.tag == "dict" else [*parts, str(key)]])
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
                self._release(group.children.pop(name))
            else:
                del group.attrs[name]
        if kind == "attr":
            group.attrs[name] = stored
        else:
            admit_datasets(self._staging, stored)
            group.children[name] = stored
            if follow:
                self._followed.follow(stored, value, parent=group, key=key, where=where,
                                         build=lambda v: stored_as(v)[1])
        self._after_write()

    def delete(self, parts: list[str], key) -> None:
        """Remove ``key`` from the group at ``parts`` (KeyError when absent)."""
        group = self._existing_group(parts, write=True)
        slot = slot_of(group, key)
        if slot is None:
            raise KeyError(key)
        self.changed()
        if self._derived:  # (a dict's later keys are renamed: the whole dict touched)
            self._touched([parts if group.tag == "dict" else [*parts, str(key)]])
        kind, name = slot
        if kind == "child":
            self._release(group.children.pop(name))
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
        self._followed.watch_keys(self.group([name]), mapping, parent=self._root, key=name, where=f"/{name}")

    # ------------------------------------------------------------------ derived values
    def keep_derived(self, key, watched: tuple, value) -> None:
        """Hold ``value``, made from the staged content at the paths ``watched`` names (names from the root,
        None for any name: ``("units", None, "spike_times_sectioned", "movie")``), for :meth:`derived` until a
        write at such a path, below one or above one (a node replaced, added or deleted, or its attributes set)
        drops it.  ``value`` must read the arrays where they are staged, so that an array changed in place is
        seen.  Nothing is kept while values the caller assigned are followed (any change may then bring one
        in anywhere) nor in a session with a memory limit (``value`` would hold arrays the budget spills)."""
        if not self._followed and self._staging.memory_limit is None and not self._closed:
            self._derived[key] = (tuple(watched), value)

    def derived(self, key):
        """The value :meth:`keep_derived` kept under ``key`` while no write has touched what it was made
        from, else None."""
        if self._followed:
            self._derived.clear()
        entry = self._derived.get(key)
        return None if entry is None else entry[1]

    def _touched(self, paths: list[list[str]], *, attrs: bool = False) -> None:
        # writes at paths (attrs: of the nodes' attributes alone): drop what was derived from a path there, below
        # or above one (the paths that agree with its names as far as both go; filtered a name at a time, all
        # paths at once: a step's write of every unit's value costs a few list passes, not a check per path)
        for key, (watched, _) in list(self._derived.items()):
            # (the attributes of a group above the watched paths: none of their content)
            rest = [parts for parts in paths if len(parts) >= len(watched)] if attrs else paths
            for depth in range(len(watched) - 1, -1, -1):
                name = watched[depth]
                if name is not None and rest:
                    rest = [parts for parts in rest if len(parts) <= depth or parts[depth] == name]
            if rest:
                del self._derived[key]

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
