"""Deferred saving: a :class:`PipelineSession` stages every step's results and writes one file.

Steps called with ``session=...`` add their results to the session instead of
rewriting the recording file; ``session.save()`` then writes the file once,
atomically.  ``checkpoint()`` writes an independent, complete file at any point
(the session stays deferred) and :meth:`PipelineSession.load` resumes from it
with every value of its original type.

Memory stays within ``memory_limit``: past it, arrays spill into the session's
partial file beside the target (:mod:`h5stream.staging`), and ``save()``
finishes that very file and renames it over the target, so spilled data is
never copied.  Checkpoints load lazily: datasets are read when accessed.

The file a session writes is the file the same steps write one by one with
``session=None``: both go through the builders and the writer of
:mod:`hdmea.io.hdf5_store`.

Examples
--------
>>> session = create_session("rec_2024_03_01", hdf5_path="out/rec.h5", memory_limit="4 GB")
>>> session = load_recording(cmcr, cmtr, session=session)          # doctest: +SKIP
>>> session.checkpoint("out/rec.after_load.h5")                     # doctest: +SKIP
>>> session = compute_sta("out/rec.h5", session=session)            # doctest: +SKIP
>>> session.save()                                                   # doctest: +SKIP
>>> resumed = PipelineSession.load("out/rec.after_load.h5")          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from h5stream.errors import ChecksumError, H5StreamError
from h5stream.staging import StagingArea, parse_size
from h5stream.stops import check_before_write
from hdmea.errors import CheckpointError, RecordingLockedError, SessionError
from hdmea.io import _files
from hdmea.io import hdf5_store as store
from hdmea.io.hdf5_store import Group
from hdmea.io.recording import read_lazy_tree
from hdmea.session._collector import paused_collections
from hdmea.session._live_tree import CompletedSteps, LabSessionViews
from hdmea.session._copy_save import save_by_copy
from hdmea.session._session_files import save_into_spill_file, write_new_file
from hdmea.session.lab_layout import carry_written, lab_session_tree
from hdmea.session._staged_tree import node_nbytes
from hdmea.session._tree_paths import PathAccess
from hdmea.session.tree import SessionTree
from hdmea.session.names import canonical_step_names
from hdmea.progress import counted

__all__ = ["SaveState", "PipelineSession", "create_session", "DEFAULT_MEMORY_WARNING_BYTES"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: A session whose staged data grows past this size logs a warning (once per crossing).
DEFAULT_MEMORY_WARNING_BYTES = 10 * 1024**3

_GIB = 1024**3


class SaveState(enum.Enum):
    """Whether a session's content is only staged (DEFERRED) or written to its file (SAVED)."""

    DEFERRED = "deferred"
    SAVED = "saved"


# --------------------------------------------------------------------------- the session


class PipelineSession(PathAccess, LabSessionViews):
    """Results of pipeline steps, staged for one deferred save.

    Parameters
    ----------
    dataset_id
        The recording's identifier (non-empty text).
    hdf5_path
        Where :meth:`save` writes by default; also where spilled arrays go
        (a partial file beside it).
    memory_limit
        Bytes of array data held in memory (an int, or text like ``"512 MB"``);
        beyond it arrays spill to disk.  ``None`` keeps everything in memory.
    memory_warning
        Staged size past which a warning is logged (default 10 GiB).

    Attributes
    ----------
    units, stimulus, metadata : LiveGroup
        The staged content as live dicts: a write at any depth is staged and saved
        (see :mod:`hdmea.session._live_tree`).
    completed_steps : CompletedSteps
        A set (``add``, ``discard``, ``in``) that keeps the order of completion.
    warnings : list[str]
    source_files : SourceFiles
        ``{"cmcr_path": Path, "cmtr_path": Path}`` (see :meth:`set_source_files`).
    created_at, saved_at : str or None
        ISO times (UTC) of creation and of the last :meth:`save`.
    checkpoint_name : str or None
        Name of the checkpoint this session was loaded from.
    """

    def __init__(
        self,
        dataset_id: str,
        hdf5_path: str | os.PathLike | None = None,
        memory_limit: int | str | None = None,
        *,
        memory_warning: int | str | None = DEFAULT_MEMORY_WARNING_BYTES,
    ) -> None:
        dataset_id = store.check_dataset_id(dataset_id)
        self.hdf5_path = Path(hdf5_path) if hdf5_path is not None else None
        self.output_dir: Path | None = None  # create_session's output_dir: where save() goes without a path
        self.memory_limit = parse_size(memory_limit)
        self.memory_warning = parse_size(memory_warning)
        # everything staged, and whether the file last saved holds it: the tree's one owner
        self._tree = SessionTree(dataset_id, StagingArea(self.hdf5_path, self.memory_limit), self._check_size)
        self._steps = CompletedSteps(on_change=self._modified)
        self.warnings: list[str] = []
        self.checkpoint_name: str | None = None
        self.saved_at: str | None = None
        self._warned_size = False

    # ------------------------------------------------------------------ state
    @property
    def tree(self) -> SessionTree:
        """The staged tree and everything staged with it (:mod:`hdmea.session.tree`): the one way the session,
        its live views, the path access and the steps read and write it."""
        return self._tree

    @property
    def dataset_id(self) -> str:
        return self._tree.dataset_id

    @dataset_id.setter
    def dataset_id(self, value: str) -> None:
        self._tree.dataset_id = store.check_dataset_id(value)

    @property
    def save_state(self) -> SaveState:
        """SAVED while the file last saved holds the staged tree as last brought up to date (see
        :attr:`is_saved`, which brings it up to date first)."""
        return SaveState.SAVED if self._tree.synced else SaveState.DEFERRED

    @property
    def completed_steps(self) -> CompletedSteps:
        return self._steps

    @completed_steps.setter
    def completed_steps(self, steps) -> None:
        self._modified()
        self._steps = CompletedSteps(steps, on_change=self._modified)

    @property
    def is_saved(self) -> bool:
        """True only when the file last saved holds what the caller sees now (every value the caller
        assigned, and every array it may have changed in place, compared with what was written)."""
        self._tree.bring_up_to_date(strict=False)
        return self._tree.synced

    @property
    def is_deferred(self) -> bool:
        return not self.is_saved

    @property
    def unit_count(self) -> int:
        units = self._tree.root.children.get("units")
        return len(units.children) if isinstance(units, Group) else 0

    @property
    def staged_bytes(self) -> int:
        """Bytes of everything staged: arrays in memory, spilled or lazily loaded, and attributes."""
        return node_nbytes(self._tree.root) + sum(len(s) for s in [*self.completed_steps, *self.warnings])

    @property
    def memory_estimate_gb(self) -> float:
        """Size of everything staged, in GiB (see :attr:`staged_bytes`)."""
        return self.staged_bytes / _GIB

    @property
    def resident_bytes(self) -> int:
        """Bytes of staged arrays held in memory (spilled and lazily loaded arrays excluded)."""
        return self._tree.staging.resident_bytes

    @property
    def spilled_bytes(self) -> int:
        return self._tree.staging.spilled_bytes

    @property
    def spill_path(self) -> Path | None:
        """The partial file spilled arrays live in, if any spilled."""
        return self._tree.staging.spill_path

    def __repr__(self) -> str:
        return (f"PipelineSession({self.dataset_id!r}, {self.save_state.value}, units={self.unit_count}, "
                f"steps={self.completed_steps}, staged={self.memory_estimate_gb:.3f} GiB)")

    def _modified(self) -> None:
        self._tree.changed()

    def _check_size(self) -> None:
        """After each write to the tree: warn (once per crossing) when the staged data outgrows ``memory_warning``."""
        if self.memory_warning is None:
            return
        size = self.resident_bytes + self.spilled_bytes
        if size > self.memory_warning and not self._warned_size:
            self._warned_size = True
            logger.warning(
                "session %s holds %.2f GiB of staged data (threshold %.2f GiB); "
                "set memory_limit to spill arrays to disk, or save/checkpoint more often",
                self.dataset_id, size / _GIB, self.memory_warning / _GIB,
            )
        elif size <= self.memory_warning:
            self._warned_size = False

    # ------------------------------------------------------------------ adding results
    def add_units(self, units_data: Mapping[str, Mapping[str, Any]]) -> None:
        """Stage units (same rules as :func:`hdmea.io.hdf5_store.write_units`)."""
        self._tree.set_children(["units"], store.units_nodes(units_data))
        logger.debug("session %s: staged %d units", self.dataset_id, len(units_data))

    def add_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Stage metadata (same rules as :func:`hdmea.io.hdf5_store.write_metadata`)."""
        self._tree.set_children(["metadata"], store.metadata_nodes(metadata))

    def add_stimulus(self, light_reference=None, frame_times=None, section_times=None) -> None:
        """Stage stimulus arrays (same rules as :func:`hdmea.io.hdf5_store.write_stimulus`)."""
        for group_name, nodes in store.stimulus_nodes(light_reference, frame_times, section_times).items():
            self._tree.set_children(["stimulus", group_name], nodes)

    def add_feature(self, unit_id: str, feature_name: str, feature_data: Any,
                    metadata: Mapping[str, Any] | None = None) -> None:
        """Stage a unit's feature.

        A mapping follows :func:`hdmea.io.hdf5_store.write_feature_to_unit` (its
        arrays datasets, its scalars attributes, ``metadata`` attributes of the
        feature's group).  Any other value (an array, a number, a list) is stored
        as the original pipeline stores it: ``features/<name>/data`` holds the
        value and ``features/<name>/metadata`` the metadata.
        """
        self.add_features(feature_name, [(unit_id, feature_data, metadata)])

    def add_features(self, feature_name: str, results, *, rows=None) -> None:
        """Stage one feature of many units at once: ``results`` holds ``(unit_id, feature_data, metadata)``
        of each, stored as :meth:`add_feature` stores it, in one change of the tree (every unit is checked
        before any is staged).  ``rows``: ``(names, [(unit_id, row), ...], metadata)``, more units whose
        features share their keys, unit ``unit_id``'s being ``dict(zip(names, row))`` (staged as that dict,
        the keys and metadata checked once for all; :class:`hdmea.features.base.FeatureRows`)."""
        units = self._tree.node(["units"])
        items = []
        seen: dict = {}  # the names and text checked once for every unit
        nodes = [(unit_id, store.feature_node(feature_name, feature_data, metadata, _seen=seen)
                  if isinstance(feature_data, Mapping) else None, feature_data, metadata)
                 for unit_id, feature_data, metadata in results]
        if rows is not None:
            names, unit_rows, metadata = rows
            nodes += [(unit_id, node, None, None) for (unit_id, _), node in
                      zip(unit_rows, store.feature_row_nodes(feature_name, names, [row for _, row in unit_rows],
                                                             metadata))]
        for unit_id, node, feature_data, metadata in nodes:
            store.check_name(unit_id, what="unit id")
            if node is None:
                store.check_member_name(feature_name, what="feature name")
                node = store.value_node({"data": feature_data, "metadata": dict(metadata or {})})
            if not isinstance(units, Group) or units.children.get(unit_id) is None:
                raise store.UnknownUnitError(
                    f"session {self.dataset_id!r} [/units/{unit_id}]: no such unit; add the units first")
            items.append((["units", unit_id, "features", feature_name], node))
        if not items:
            return
        self._tree.set_nodes(items)
        self._tree.update_root_attrs({"features_extracted": store.features_after(
            self._tree.root_attrs().get("features_extracted"), feature_name)})

    def mark_step_complete(self, step: str) -> None:
        """Record that ``step`` ran (each step once, in the order they completed)."""
        if not isinstance(step, str) or not step:
            raise ValueError(f"a step name must be non-empty text (found {step!r})")
        self.completed_steps.add(step)

    def add_warning(self, text: str) -> None:
        self._modified()
        self.warnings.append(str(text))

    # ------------------------------------------------------------------ read views
    def unit_ids(self) -> list[str]:
        units = self._tree.node(["units"])
        return [] if units is None else sorted(units.children)

    # ------------------------------------------------------------------ writing
    def _tree_for_file(self, checkpoint_name: str | None, replaced: dict | None = None) -> Group:
        info = store.session_info_node(self.completed_steps, self.warnings, checkpoint_name)
        if checkpoint_name is not None:
            info.attrs["target_path"] = os.fspath(self.hdf5_path) if self.hdf5_path is not None else ""
            info.attrs["memory_limit"] = self.memory_limit if self.memory_limit is not None else -1
        staged = self._tree.root
        root = Group(dict(staged.attrs), dict(staged.children), staged.tag, staged.keys)
        root.attrs["updated_at"] = store.now_iso()
        pipeline = staged.children.get("pipeline")
        pipeline_children = dict(pipeline.children) if isinstance(pipeline, Group) else {}
        pipeline_children["session_info"] = info
        root.children["pipeline"] = Group(dict(pipeline.attrs) if isinstance(pipeline, Group) else {},
                                          pipeline_children)
        return lab_session_tree(root, version=store.PIPELINE_VERSION, saved_at=info.attrs["saved_at"], replaced=replaced,
                                source_files={key: os.fspath(self.source_files[key]) for key in self.source_files})

    def _target(self, path) -> Path:
        if path is None:
            path = self.hdf5_path
        if path is None and self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            path = self.output_dir / f"{self.dataset_id}.h5"
        if path is None:
            raise SessionError(f"session {self.dataset_id!r} has no hdf5_path",
                               hint="pass save(path) or create the session with hdf5_path=...")
        return Path(path)

    def save(self, output_path: str | os.PathLike | None = None, *, overwrite: bool = False,
             path: str | os.PathLike | None = None) -> Path:
        """Write everything staged to ``output_path`` in one atomic step.

        ``output_path`` defaults to ``hdf5_path``, else ``<output_dir>/<dataset_id>.h5``
        (``path=`` is the same argument under its earlier name); missing parent
        folders are created, as the original pipeline does.  Returns the path written.  The file appears only when complete (partial
        file, fsync, rename); a failure leaves any earlier file at ``path``
        untouched and the session deferred.  Arrays spilled on the filesystem
        of ``path`` (beside it, or in the temporary folder of a session made
        without a target) are moved into place, not copied.

        Raises
        ------
        FileExistsError
            (:class:`hdmea.errors.RecordingExistsError`) ``path`` exists and
            ``overwrite`` is False.
        UnsafeFileError
            ``path`` is an HDF5 file a read refuses (external links, external
            storage, virtual datasets); it is left as it is.
        KeyboardInterrupt
            A Ctrl-C a library took before the save (:func:`h5stream.stops.recorded`)
            ends it here, before anything is written.
        """
        check_before_write()
        self._tree.check_usable()
        if path is not None:
            if output_path is not None:
                raise TypeError("save() takes output_path or path, not both")
            output_path = path
        with paused_collections():  # the nodes the file's tree needs, kept: no garbage to look for among them
            return self._save(output_path, overwrite)

    def _save(self, output_path, overwrite: bool) -> Path:
        """:meth:`save`'s work."""
        self._tree.bring_up_to_date(saved_check_on_read=True)
        target = self._target(output_path)
        store.check_suffix(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and not overwrite:
            raise _files.exists_error(target)
        _files.check_replace_target(target)
        tree = self._tree_for_file(None, replaced := {})
        spill = self._tree.staging
        written: dict[int, str] = {}  # id(dataset node) -> digest of what was written from memory
        # a spill file elsewhere on the same filesystem (a session made without its target) moves beside it
        loaded = None if spill.has_spill_file else self._tree.unchanged_since_load()
        if loaded is not None and save_by_copy(loaded, tree, target, written=written):
            spill.discard()  # (a resumed session, unchanged: its file copied whole, its changes written in)
        elif spill.has_spill_file and spill.move_spill_file(target):
            self._save_into_spill_file(target, tree, written)
        else:
            self._write_new_file(target, tree, overwrite=True, written=written)
            spill.discard()
        self._tree.saved(target, carry_written(written, replaced))
        self.hdf5_path = target if self.hdf5_path is None else self.hdf5_path
        self.saved_at = tree.children["pipeline"].children["session_info"].attrs.get("saved_at")
        logger.info("session %s saved to %s (%s, steps %s)", self.dataset_id, target,
                    counted(self.unit_count, "unit"), self.completed_steps)
        return target

    def _write_new_file(self, target: Path, tree: Group, *, overwrite: bool, written: dict | None = None) -> None:
        write_new_file(target, tree, overwrite=overwrite, written=written)

    def _save_into_spill_file(self, target: Path, tree: Group, written: dict | None = None) -> None:
        save_into_spill_file(self._tree.staging, target, tree, self._tree.lost, written)

    def ensure_saved(self) -> Path | None:
        """Save to ``hdf5_path`` if there is anything unsaved; returns the file or None if nothing to do."""
        self._tree.bring_up_to_date()
        if self._tree.synced:
            return self.hdf5_path
        target = self._target(None)
        overwrite = target.exists()
        if overwrite:
            logger.warning("session %s: ensure_saved() replaces %s with the session's content",
                           self.dataset_id, target)
        else:
            logger.info("session %s: ensure_saved() writes %s", self.dataset_id, target)
        return self.save(target, overwrite=overwrite)

    def checkpoint(self, path: str | os.PathLike, checkpoint_name: str | None = None,
                   overwrite: bool = True) -> Path:
        """Write an independent, complete copy of the session to ``path``; the session stays deferred.

        ``PipelineSession.load(path)`` resumes from it exactly.  An earlier
        checkpoint at ``path`` is replaced (atomically, with a warning logged) unless
        ``overwrite=False``, as in the original pipeline.  A Ctrl-C a library
        took before (:func:`h5stream.stops.recorded`) ends it here, nothing written.
        """
        check_before_write()
        self._tree.check_usable()
        target = Path(path)
        if self.hdf5_path is not None and target.resolve() == self.hdf5_path.resolve():
            raise CheckpointError("a checkpoint cannot be written over the session's target file", path=target,
                                  hint="choose another path for the checkpoint")
        if target.exists() and not overwrite:
            raise _files.exists_error(target, hint="pass overwrite=True to replace the checkpoint")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            logger.warning("session %s: replacing the checkpoint %s", self.dataset_id, target)
        _files.check_replace_target(target)
        name = checkpoint_name if checkpoint_name is not None else target.stem
        with paused_collections():  # (as in save)
            self._tree.bring_up_to_date(saved_check_on_read=True)
            self._write_new_file(target, self._tree_for_file(name), overwrite=True)
        logger.info("session %s checkpointed to %s (%s)", self.dataset_id, target, name)
        return target

    # ------------------------------------------------------------------ resuming
    @classmethod
    def load(cls, path: str | os.PathLike, *, memory_limit: int | str | None = None,
             hdf5_path: str | os.PathLike | None = None, verify: bool = True) -> PipelineSession:
        """Resume a session from a checkpoint (or any recording file) written by this package.

        Values come back with their types (text as ``str``, integer keys as
        ``int``, arrays with their dtypes); ``completed_steps`` and ``warnings``
        are restored.  Arrays are not read now: they are read on access, or
        copied when the session is saved (checked against their digests, which the new file carries).

        With ``verify`` (default) every value is checked against the file's
        checksum manifest when it is read (:mod:`h5stream.checksums`): a
        mismatch raises :class:`~h5stream.errors.ChecksumError` naming the
        object.  A file written before checksums existed loads unchecked.
        """
        path = Path(path)
        with paused_collections():  # a node per object, all kept: no garbage for the collector to look for
            return cls._resumed(path, memory_limit=memory_limit, hdf5_path=hdf5_path, verify=verify)

    @classmethod
    def _resumed(cls, path: Path, *, memory_limit, hdf5_path, verify: bool) -> PipelineSession:
        """:meth:`load`'s work."""
        try:
            root, source = read_lazy_tree(path, verify=verify)
        except (FileNotFoundError, ChecksumError, RecordingLockedError):
            raise
        except H5StreamError as exc:
            raise CheckpointError(f"cannot resume from this file ({exc})", path=path) from exc
        dataset_id = root.attrs.get("dataset_id")
        pipeline = root.children.get("pipeline")
        info = pipeline.children.get("session_info") if isinstance(pipeline, Group) else None
        info_value = store.decode_node(info) if isinstance(info, Group) else {}
        target = hdf5_path if hdf5_path is not None else (info_value.get("target_path") or None)
        if memory_limit is None:
            stored_limit = info_value.get("memory_limit")
            memory_limit = stored_limit if isinstance(stored_limit, int) and stored_limit >= 0 else None
        session = cls(dataset_id, hdf5_path=target, memory_limit=memory_limit)
        if isinstance(pipeline, Group):
            pipeline.children.pop("session_info", None)
        session.completed_steps = canonical_step_names(info_value.get("completed_steps", []))
        session.warnings = list(info_value.get("warnings", []))
        session._tree.adopt(root, source)  # (last: the tree is then as loaded, see SessionTree.unchanged_since_load)
        session.checkpoint_name = info_value.get("checkpoint_name")
        session.saved_at = info_value.get("saved_at")
        logger.info("session %s resumed from %s (steps %s)", dataset_id, path, session.completed_steps)
        return session

    def close(self) -> None:
        """Release open source files and delete the spill file; the staged content is dropped (its arrays
        are let go at once) and a later read, change or save raises :class:`~hdmea.errors.SessionError`."""
        self._tree.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            staging = self._tree.staging
            if staging.has_spill_file:
                staging.discard()


def create_session(
    dataset_id: str | None = None,
    cmcr_path: str | os.PathLike | None = None,
    cmtr_path: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = "artifacts",
    *,
    hdf5_path: str | os.PathLike | None = None,
    memory_limit: int | str | None = None,
    **kwargs,
) -> PipelineSession:
    """A new, empty :class:`PipelineSession` (see its parameters).

    The original pipeline's form also works: ``dataset_id`` defaults to the
    ``.cmtr``'s (else the ``.cmcr``'s) stem, and ``save()`` without a path, on a
    session without ``hdf5_path``, writes ``<output_dir>/<dataset_id>.h5``.
    """
    if dataset_id is None:
        from hdmea.io.dataset_ids import dataset_id_from_files

        dataset_id = dataset_id_from_files(cmcr_path, cmtr_path)
    session = PipelineSession(dataset_id, hdf5_path=hdf5_path, memory_limit=memory_limit, **kwargs)
    session.output_dir = Path(output_dir) if output_dir is not None else None
    if cmcr_path or cmtr_path:
        session.set_source_files(cmcr_path=cmcr_path, cmtr_path=cmtr_path)
    return session
