"""Where a pipeline step reads its inputs and writes its results, whatever the mode.

A step written against :func:`open_target` runs unchanged in both modes::

    with open_target(hdf5_path, session, step="section_spike_times") as target:
        target.require_steps("add_section_time")
        for unit_id in target.unit_ids():
            spikes = target.get(f"units/{unit_id}/spike_times")
            ...
            target.put(f"units/{unit_id}/spike_times_sectioned/{movie}", {...})
        target.mark_step_complete("section_spike_times")

* ``session`` given: the target stages into the session (no file I/O).
* ``session=None`` (immediate mode): the target works on a copy-on-write
  partial of ``hdf5_path`` (or a new file with ``create=True``) that replaces
  the file atomically when the block exits cleanly; on an exception nothing
  changes, so a crash in a later step never loses the results of earlier ones.
  The file is checked as a read checks it before anything is written: external
  links, external storage and virtual datasets raise
  :class:`~h5stream.errors.UnsafeFileError` and nothing outside the file is touched.

Both modes use the builders and the writer of :mod:`hdmea.io.hdf5_store`, so
they produce files equal object by object.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py

from h5stream.files import create_atomic
from h5stream.staging import LIBVER
from hdmea.errors import MissingInputError, MissingStepError, SessionError
from hdmea.io import _files
from hdmea.io import hdf5_store as store
from hdmea.session._collector import step_collections
from hdmea.session._tree_paths import _NO_DEFAULT, split_path
from hdmea.session.session import PipelineSession
from hdmea.session.names import canonical_step_names, steps_done

__all__ = ["StepTarget", "open_target"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

_INFO = "pipeline/session_info"


class _FileBackend:
    """Path-level reads and writes on an open recording file."""

    def __init__(self, f: h5py.File, path: Path) -> None:
        self.f = f
        self.path = path

    def _obj(self, parts):
        name = "/".join(parts)
        if not name:
            return self.f
        try:
            return self.f[name] if name in self.f else None
        except (KeyError, ValueError):
            return None

    def has(self, path: str) -> bool:
        return self._obj(split_path(path)) is not None

    def get(self, path: str, default=_NO_DEFAULT):
        obj = self._obj(split_path(path))
        if obj is None:
            if default is _NO_DEFAULT:
                raise KeyError(f"{self.path} has nothing at {path!r}")
            return default
        return store.decode_node(store.node_from_h5(obj))

    def keys(self, path: str = "") -> list[str]:
        obj = self._obj(split_path(path))
        if obj is None:
            raise KeyError(f"{self.path} has nothing at {path!r}")
        if not isinstance(obj, h5py.Group):
            raise TypeError(f"{path!r} is a dataset, not a group")
        return sorted(name for name in obj if not store.is_hidden(name))

    def put(self, path: str, value) -> None:
        parts = split_path(path, allow_root=False)
        node = store.put_node(value)
        self._set_children(parts[:-1], {parts[-1]: node})

    def put_values(self, path: str, value) -> None:
        parts = split_path(path, allow_root=False)
        self._set_children(parts[:-1], {parts[-1]: store.value_node(value)})

    def put_many(self, items, *, values: bool = False) -> None:
        for path, value in items:
            self.put_values(path, value) if values else self.put(path, value)

    def _set_children(self, parent_parts, nodes: Mapping[str, store.Node]) -> None:
        group = store.require_h5_group(self.f, "/".join(parent_parts))
        for name, node in nodes.items():
            store.replace_child(group, name, node)

    def attrs(self, path: str = "") -> dict[str, Any]:
        obj = self._obj(split_path(path))
        if obj is None:
            raise KeyError(f"{self.path} has nothing at {path!r}")
        attrs, _, _ = store.read_attrs(obj)
        return attrs

    def set_attrs(self, path: str, mapping: Mapping[str, Any]) -> None:
        obj = self._obj(split_path(path))
        if obj is None:
            raise KeyError(f"{self.path} has nothing at {path!r}")
        store.set_h5_attrs(obj, mapping)

    def add_units(self, units_data) -> None:
        store.write_units(self.f, units_data)

    def add_metadata(self, metadata) -> None:
        store.write_metadata(self.f, metadata)

    def add_stimulus(self, light_reference=None, frame_times=None, section_times=None) -> None:
        store.write_stimulus(self.f, light_reference, frame_times, section_times)

    def add_feature(self, unit_id, feature_name, feature_data, metadata=None) -> None:
        store.write_feature_to_unit(self.f, unit_id, feature_name, feature_data, metadata)

    def add_features(self, feature_name, results, rows=None) -> None:
        for unit_id, feature_data, metadata in results:
            self.add_feature(unit_id, feature_name, feature_data, metadata)
        if rows is not None:
            names, unit_rows, metadata = rows
            for unit_id, row in unit_rows:
                self.add_feature(unit_id, feature_name, dict(zip(names, row)), metadata)

    def unit_ids(self) -> list[str]:
        return store.list_units(self.f)

    def _info_list(self, name: str) -> list[str]:
        return list(self.get(f"{_INFO}/{name}", []))

    @property
    def completed_steps(self) -> list[str]:
        return canonical_step_names(self._info_list("completed_steps"))

    def mark_step_complete(self, step: str) -> None:
        steps = self.completed_steps
        if step not in steps:
            self.set_completed_steps(steps + [step])

    def set_completed_steps(self, steps: list[str]) -> None:
        self._set_children(_INFO.split("/"), {"completed_steps": store.value_node(list(steps))})

    def add_warning(self, text: str) -> None:
        warnings_list = self._info_list("warnings") + [str(text)]
        self._set_children(_INFO.split("/"), {"warnings": store.value_node(warnings_list)})

    def stamp(self) -> None:
        info = store.require_h5_group(self.f, _INFO)
        now = store.now_iso()
        store.set_h5_attrs(info, {"saved_at": now})
        if "updated_at" in self.f.attrs:
            store.set_h5_attrs(self.f, {"updated_at": now})


def _staged_node(root, parts):
    """The node at ``parts`` below ``root`` of a session's tree that follows no value the caller assigned
    (:meth:`~hdmea.session.tree.SessionTree.node`'s walk, with nothing to bring up to date), else None."""
    node = root
    for part in parts:
        if not isinstance(node, store.Group):
            return None
        node = node.children.get(part)
        if node is None:
            return None
    return node


class _SessionBackend:
    """The same operations, staged in a :class:`PipelineSession`."""

    def __init__(self, session: PipelineSession) -> None:
        self.session = session

    def __getattr__(self, name):
        return getattr(self.session, name)

    @property
    def completed_steps(self) -> list[str]:
        return list(self.session.completed_steps)

    def set_completed_steps(self, steps: list[str]) -> None:
        self.session.completed_steps = list(steps)

    def put_values(self, path: str, value) -> None:
        self.session.tree.set_node(split_path(path, allow_root=False), store.value_node(value))

    def has_each(self, paths) -> list[bool]:
        tree = self.session.tree
        if tree.followed_count:  # a value the caller assigned on the way: each path walked as has walks it
            return [tree.node(split_path(path)) is not None for path in paths]
        return [_staged_node(tree.root, split_path(path)) is not None for path in paths]

    def members_of(self, paths, names: tuple[str, ...]) -> list:
        tree = self.session.tree
        followed = tree.followed_count
        root, decode = tree.root, store.decode_node
        wanted = set(names)
        out = []
        for path in paths:
            parts = split_path(path)
            group = tree.node(parts) if followed else _staged_node(root, parts)
            if not isinstance(group, store.Group) or not group.children.keys() >= wanted:
                out.append(None)
                continue
            if followed:  # a value the caller assigned on the way: each member walked to as get walks
                nodes = [tree.node([*parts, name]) for name in names]
                if any(node is None or isinstance(node, store.Group) for node in nodes):
                    out.append(None)
                    continue
                out.append(([tree.decoded(node) for node in nodes], dict(group.attrs)))
                continue
            nodes = [group.children[name] for name in names]
            if any(isinstance(node, store.Group) for node in nodes):
                out.append(None)
                continue
            # (no followed value anywhere: a dataset's node decodes as tree.decoded decodes it)
            out.append(([decode(node) for node in nodes], dict(group.attrs)))
        return out

    def keep_derived(self, key, watched: tuple, value) -> None:
        self.session.tree.keep_derived(key, watched, value)

    def derived(self, key):
        return self.session.tree.derived(key)

    def put_many(self, items, *, values: bool = False) -> None:
        build = store.value_node if values else store.put_node
        self.session.tree.set_nodes([(split_path(path, allow_root=False), build(value)) for path, value in items])


class StepTarget:
    """A pipeline step's view of its recording, staged in a session or written to the file.

    Paths are '/'-separated and relative to the file root, e.g.
    ``"units/unit_003/spike_times"``.
    """

    def __init__(self, backend, *, step: str, mode: str) -> None:
        self._backend = backend
        self.step = step
        self.mode = mode

    @property
    def is_deferred(self) -> bool:
        """True when results are staged in a session (no file I/O)."""
        return self.mode == "session"

    # -- generic access
    def get(self, path: str, default=_NO_DEFAULT):
        """A dataset as a numpy array (dtype kept), a tagged value as its Python value, a group as a dict.

        Raises ``KeyError`` when nothing is at ``path`` and no ``default`` is given.
        """
        return self._backend.get(path, default)

    def has(self, path: str) -> bool:
        return self._backend.has(path)

    def spike_times(self, unit_id: str):
        """A unit's spike times; a unit stored without them raises :class:`~hdmea.errors.MissingInputError`
        naming the unit and this step."""
        path = f"units/{unit_id}/spike_times"
        if not self._backend.has(path):
            raise MissingInputError(
                f"step {self.step!r} needs the spike times of unit {unit_id!r}, which has none",
                obj=f"/{path}", expected="a spike_times array", found="a unit without spike times",
                hint="assign the unit's spike_times, or leave the unit out of this step", missing_input="spike_times")
        return self._backend.get(path)

    def keys(self, path: str = "") -> list[str]:
        """Names of a group's children, sorted."""
        return self._backend.keys(path)

    def put(self, path: str, value) -> None:
        """Store ``value`` at ``path``, replacing what was there.

        Arrays become datasets; dicts groups (arrays as datasets, dicts as
        subgroups, scalars and text as attributes of that group); any other
        value a typed 1-element dataset.
        """
        self._backend.put(path, value)

    def put_values(self, path: str, value) -> None:
        """Store ``value`` at ``path`` as the session stores the lab's own dicts: dicts groups, every
        other value a dataset (scalars too, 0-d in a session's file); see :meth:`put`."""
        self._backend.put_values(path, value)

    def put_many(self, items, *, values: bool = False) -> None:
        """:meth:`put` (``values``: :meth:`put_values`) of each ``(path, value)`` of ``items``, in order, in one
        call: a session takes them all with one change and one check (a step's value for every unit)."""
        self._backend.put_many(items, values=values)

    def has_each(self, paths) -> list[bool]:
        """:meth:`has` of each of ``paths``, in one call (a step checking the same path in every unit)."""
        many = getattr(self._backend, "has_each", None)
        if many is not None:
            return many(paths)
        return [self._backend.has(path) for path in paths]

    def attrs(self, path: str = "") -> dict[str, Any]:
        return self._backend.attrs(path)

    def members_of(self, paths, names: tuple[str, ...]) -> list:
        """For each group of ``paths``: ``(values, attrs)``, the :meth:`get` of each of its members ``names``
        and its :meth:`attrs`, or None where the group or one of those members is absent (a step reading the
        same few datasets of every unit's group, in one call)."""
        many = getattr(self._backend, "members_of", None)
        if many is not None:
            return many(paths, names)
        out = []
        for path in paths:
            if not all(self.has(f"{path}/{name}") for name in names):
                out.append(None)
                continue
            out.append(([self.get(f"{path}/{name}") for name in names], self.attrs(path)))
        return out

    def set_attrs(self, path: str, mapping: Mapping[str, Any]) -> None:
        self._backend.set_attrs(path, mapping)

    def keep_derived(self, key, watched: tuple, value) -> None:
        """A session: keep ``value``, made by this step from what it staged at the paths ``watched`` names, for
        a later step's :meth:`derived`, until a write there drops it
        (:meth:`hdmea.session.tree.SessionTree.keep_derived`); a file keeps nothing."""
        keep = getattr(self._backend, "keep_derived", None)
        if keep is not None:
            keep(key, watched, value)

    def derived(self, key):
        """What :meth:`keep_derived` kept under ``key`` while nothing it was made from has been written since,
        else None (always None for a file)."""
        find = getattr(self._backend, "derived", None)
        return None if find is None else find(key)

    # -- recording content
    def add_units(self, units_data: Mapping[str, Mapping[str, Any]]) -> None:
        self._backend.add_units(units_data)

    def add_stimulus(self, light_reference=None, frame_times=None, section_times=None) -> None:
        self._backend.add_stimulus(light_reference=light_reference, frame_times=frame_times,
                                   section_times=section_times)

    def add_metadata(self, metadata: Mapping[str, Any]) -> None:
        self._backend.add_metadata(metadata)

    def add_feature(self, unit_id: str, feature_name: str, feature_data: Mapping[str, Any],
                    metadata: Mapping[str, Any] | None = None) -> None:
        self._backend.add_feature(unit_id, feature_name, feature_data, metadata)

    def add_features(self, feature_name: str, results, rows=None) -> None:
        """:meth:`add_feature` of each ``(unit_id, feature_data, metadata)`` of ``results``, and of the units of
        ``rows`` (``(names, [(unit_id, row), ...], metadata)``: unit ``unit_id``'s features
        ``dict(zip(names, row))``, :class:`hdmea.features.base.FeatureRows`): a session stages them in one
        change; a file writes them one by one."""
        if rows is None:
            self._backend.add_features(feature_name, results)
        else:
            self._backend.add_features(feature_name, results, rows=rows)

    def unit_ids(self) -> list[str]:
        return self._backend.unit_ids()

    # -- pipeline bookkeeping
    @property
    def completed_steps(self) -> list[str]:
        return self._backend.completed_steps

    def mark_step_complete(self, step: str | None = None) -> None:
        """Record ``step`` (default: this target's step) as completed."""
        step = self.step if step is None else step
        if not isinstance(step, str) or not step:
            raise ValueError(f"a step name must be non-empty text (found {step!r})")
        self._backend.mark_step_complete(step)

    def require_steps(self, *steps: str) -> None:
        """Raise :class:`hdmea.errors.MissingStepError` naming the first of ``steps`` that has not run."""
        done = steps_done(self.completed_steps)
        for needed in steps:
            if needed not in done:
                where = "the session" if self.is_deferred else str(getattr(self._backend, "path", "the file"))
                raise MissingStepError(
                    f"step {self.step!r} needs {needed!r}, which has not run on {where}",
                    expected=f"{needed!r} in completed steps",
                    found=", ".join(self.completed_steps) or "no completed steps",
                    hint=f"run {needed} first",
                )

    def record_as_one_step(self, inner: tuple[str, ...], step: str | None = None) -> None:
        """Record ``step`` (default: this target's) in place of ``inner``, the steps it ran (:data:`COMPOSITE_STEPS`)."""
        step = self.step if step is None else step
        kept = [s for s in self.completed_steps if s not in inner]
        self._backend.set_completed_steps(kept + ([step] if step not in kept else []))

    def add_warning(self, text: str) -> None:
        self._backend.add_warning(text)

    def __repr__(self) -> str:
        return f"StepTarget(step={self.step!r}, mode={self.mode!r})"


@contextlib.contextmanager
def open_target(
    hdf5_path: str | os.PathLike | None = None,
    session: PipelineSession | None = None,
    *,
    step: str,
    create: bool = False,
    dataset_id: str | None = None,
    overwrite: bool = False,
) -> Iterator[StepTarget]:
    """Open the target of one pipeline step (see the module docstring).

    Parameters
    ----------
    hdf5_path
        The recording file (immediate mode; ignored when ``session`` is given).
    session
        Stage into this session instead of writing the file.
    step
        The step's name, used by :meth:`StepTarget.mark_step_complete` and in errors.
    create
        Immediate mode: create a new recording (``dataset_id`` required) instead of
        updating an existing one.
    dataset_id
        The recording's id for ``create=True``; in a session it must match the
        session's id when given.
    overwrite
        With ``create=True``: replace an existing file (atomically, on success).
    """
    if not isinstance(step, str) or not step:
        raise ValueError(f"step must be non-empty text (found {step!r})")
    if session is not None:
        if not isinstance(session, PipelineSession):
            raise TypeError(f"session must be a PipelineSession (found {type(session).__name__})")
        if dataset_id is not None and dataset_id != session.dataset_id:
            raise SessionError(f"the session holds recording {session.dataset_id!r}, not {dataset_id!r}",
                               hint="use one session per recording")
        with step_collections():  # (the session's staged tree is not walked by the step's collections)
            yield StepTarget(_SessionBackend(session), step=step, mode="session")
        return
    if hdf5_path is None:
        raise ValueError("immediate mode (session=None) needs hdf5_path")
    path = Path(hdf5_path)
    if create:
        if dataset_id is None:
            raise ValueError("create=True needs dataset_id")
        store.check_suffix(path)
        root = store.recording_root(dataset_id)
        if path.exists() and not overwrite:
            raise _files.exists_error(path)
        _files.check_replace_target(path)
        atomic = create_atomic(path, overwrite=overwrite, libver=LIBVER, checksums=True)
        with _files.recording_errors(path):
            f = atomic.open()
    else:
        atomic = _files.open_update(path)
        f = atomic.file
    try:
        if create:
            store.write_root(f, root)
        backend = _FileBackend(f, path)
        yield StepTarget(backend, step=step, mode="file")
        backend.stamp()
    except BaseException:
        atomic.abort()
        raise
    atomic.commit()
    logger.debug("step %s committed to %s", step, path)
