"""The recording store: one HDF5 file per recording in the layout downstream code relies on.

Layout (root attributes ``dataset_id``, ``hdmea_pipeline_version``, ``created_at``,
``updated_at``, ``stage1_completed``, ``stage1_params_hash``, ``features_extracted``,
``h5stream_format``, ``h5stream_format_version``)::

    /units/{unit_id}/spike_times      uint64 samples
    /units/{unit_id}/waveform         float32
    /units/{unit_id}/features/{name}/ arrays as datasets, scalars as attributes
    /stimulus/light_reference/{rate}  float32
    /stimulus/frame_time/{name}       uint64
    /stimulus/section_time/{movie}    int64 (n, 2), as the original
    /metadata/...                     nested dicts as groups, scalars as 1-element datasets
    /pipeline/session_info/           completed_steps, warnings (+ saved_at, checkpoint_name)

This module holds the contract: the root's layout, file handles, immediate-mode
writers; the builders of units, stimulus arrays, features and metadata live in
:mod:`hdmea.io._store_nodes` and are re-exported here.  Immediate mode (functions below on an open file) and a deferred
:class:`hdmea.pipeline.PipelineSession` write the same file because both build
the engine's typed node tree (:mod:`h5stream.tree`) and hand it to its one
writer; reads go back through :func:`node_from_h5` and :func:`decode_node`.
The tree's names are re-exported here for the pipeline modules.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import warnings
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from h5stream import __version__ as _h5stream_version
from h5stream import checksums
from h5stream.errors import EncodingError, FormatError, UnsafeNameError, WriterClaimError  # noqa: F401
from h5stream.files import (GLOBAL_HEAP_SCAN_BYTES, AtomicFile, check_global_heaps, check_hdf5_signature,
                            check_large_global_heaps, create_atomic, guard_read, hdf5_lock_held,
                            scan_unsafe_objects, update_atomic)
from h5stream.jsonvalues import stable_hash
from h5stream.staging import LIBVER
# The tree's names the pipeline modules use through the store.
from h5stream.tree import (  # noqa: F401
    Dataset, Group, array_node, Node, WriteContext, check_attr_name, check_member_name, check_name, decode_attr,
    decode_node, is_hidden, is_safe_key, mapping_node, node_from_h5, normalize_attr, plain_text, put_node,
    read_attrs, replace_child, require_h5_group, set_h5_attrs, text, value_node, write_node, write_root,
)
from hdmea.io.dataset_ids import check_dataset_id  # noqa: F401  (the store's rule, re-exported)
from hdmea.errors import (  # noqa: F401  (the store's errors, re-exported)
    CorruptRecordingError, HdmeaError, RecordingExistsError, RecordingFormatError, RecordingLockedError,
    RecordingNotFoundError, SuffixWarning, UnknownUnitError,
)
from hdmea.io import _files
from hdmea.io._files import corrupt_error, exists_error, locked_error, not_found_error
# The builders of units, stimulus, features and metadata (used by the pipeline session through the store).
from hdmea.io._store_nodes import (  # noqa: F401
    feature_node, feature_row_nodes, metadata_nodes, stimulus_nodes, unit_node, units_nodes,
)

__all__ = [
    "create_recording_hdf5", "open_recording_hdf5", "write_units", "write_stimulus", "write_metadata",
    "write_feature_to_unit", "mark_stage1_complete", "get_stage1_status", "list_units", "list_features",
    "write_source_files", "stage1_params_hash", "RecordingFile", "RecordingExistsError", "RecordingNotFoundError",
    "RecordingLockedError", "CorruptRecordingError", "UnknownUnitError", "SuffixWarning",
    "FORMAT_NAME", "FORMAT_VERSION", "PIPELINE_VERSION",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

FORMAT_NAME = "hdmea-recording"
FORMAT_VERSION = "1"
SUPPORTED_VERSIONS = ("1",)
PIPELINE_VERSION = _h5stream_version

TIMESTAMP_ATTRS = frozenset({"created_at", "updated_at", "saved_at", "extracted_at", "stage1_timestamp"})



def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def stage1_params_hash(config: Mapping | None) -> str:
    """The ``stage1_params_hash`` attribute: 64 hex digits of :func:`h5stream.jsonvalues.stable_hash` of the
    stage-1 configuration; '' for None.  (A feature's ``params_hash`` is
    :func:`hdmea.features.registry.params_hash`.)"""
    if config is None:
        return ""
    return stable_hash(dict(config), digits=64)


# =========================================================================== layout builders


def recording_root(dataset_id: str, config: Mapping | None = None) -> Group:
    """The node tree of a new, empty recording (root attributes and the standard groups)."""
    check_dataset_id(dataset_id)
    stamp = now_iso()
    root = Group(attrs={
        "dataset_id": dataset_id,
        "hdmea_pipeline_version": PIPELINE_VERSION,
        "created_at": stamp,
        "updated_at": stamp,
        "stage1_completed": False,
        "stage1_params_hash": stage1_params_hash(config),
        "features_extracted": features_text([]),
        "h5stream_format": FORMAT_NAME,
        "h5stream_format_version": FORMAT_VERSION,
    })
    root.children.update(units=Group(), stimulus=Group(), metadata=Group(),
                         pipeline=Group(children={"session_info": session_info_node([], [])}))
    return root


def session_info_node(completed_steps, warnings_list, checkpoint_name: str | None = None) -> Group:
    info = Group(children={
        "completed_steps": value_node(list(completed_steps)),
        "warnings": value_node(list(warnings_list)),
    })
    info.attrs["saved_at"] = now_iso()
    if checkpoint_name is not None:
        info.attrs["checkpoint_name"] = checkpoint_name
    return info


# =========================================================================== file handles


def check_suffix(path: Path) -> None:
    if path.suffix != ".h5":
        warnings.warn(f"{path}: recording files are expected to end with .h5 "
                      f"(found {path.suffix or 'no suffix'!r})", SuffixWarning, stacklevel=3)


#: The open RecordingFile of each HDF5 file id: a write given a group of one (or ``.file``, a plain
#: h5py.File on the same id) still finds the handle to abort when it fails.
_open_handles: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


class RecordingFile(h5py.File):
    """An ``h5py.File`` open on a partial file that becomes the recording on :meth:`close`.

    Writes go to ``<target>.partial-<pid>-<n>``; ``close()`` (or a clean exit of
    a ``with`` block) flushes, fsyncs and renames it over the target, so the
    target is never seen half-written.  An exception inside ``with`` discards
    the partial file and leaves the target as it was; :meth:`abort` does the
    same explicitly, and so does a write of this module (:func:`write_units`, ...) that fails: its
    partial file and claim are released when the error is raised, not when the handle is collected, so
    the same process can open the recording again at once (``close()`` then does nothing).
    """

    _atomic: AtomicFile | None = None

    @classmethod
    def _adopt(cls, atomic: AtomicFile) -> RecordingFile:
        opened = atomic.open()
        handle = cls(opened.id)
        handle._atomic = atomic
        atomic.file = handle
        _open_handles[handle.id.id] = handle
        return handle

    @property
    def target(self) -> Path:
        return self._atomic.target

    def close(self) -> None:
        atomic = self._atomic
        if atomic is None or atomic.committed or atomic.aborted:  # aborted: already closed and discarded
            super().close()
            return
        if self.id.valid:
            try:
                _stamp_updated(self)
                atomic.seal()  # the checksum manifest of everything written, in the same atomic save
            except BaseException:
                atomic.abort()
                raise
            self.flush()
            super().close()
        atomic.commit()

    def abort(self) -> None:
        if self._atomic is not None and not self._atomic.committed:
            self._atomic.abort()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
            return False
        self.close()
        return False


def _stamp_updated(f: h5py.File) -> None:
    if "updated_at" in f.attrs:
        set_h5_attrs(f, {"updated_at": now_iso()})


def _claim_or_locked(path: Path, atomic: AtomicFile) -> RecordingFile:
    try:
        return RecordingFile._adopt(atomic)
    except WriterClaimError as exc:
        raise locked_error(path, exc) from exc


def create_recording_hdf5(
    hdf5_path: str | os.PathLike,
    dataset_id: str,
    config: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> RecordingFile:
    """Create a recording file and return it open for writing.

    Parameters
    ----------
    hdf5_path
        Where the recording goes (should end with ``.h5``; another suffix warns).
    dataset_id
        The recording's identifier.
    config
        Stage-1 configuration; its hash is stored as ``stage1_params_hash``.
    overwrite
        Replace an existing file.  The old file stays intact until the new one
        is complete (on ``close()``).

    Returns
    -------
    RecordingFile
        An ``h5py.File`` with ``/units``, ``/stimulus``, ``/metadata``,
        ``/pipeline/session_info`` and the root attributes; the file appears at
        ``hdf5_path`` when it is closed.

    Raises
    ------
    FileExistsError
        (:class:`RecordingExistsError`) the file exists and ``overwrite`` is False.
    OSError
        (:class:`RecordingLockedError`) another writer holds the file.
    """
    path = Path(hdf5_path)
    check_suffix(path)
    root = recording_root(dataset_id, config)
    if path.exists() and not overwrite:
        raise exists_error(path)
    handle = _claim_or_locked(path, create_atomic(path, overwrite=overwrite, libver=LIBVER, checksums=True))
    try:
        write_root(handle, root)
    except BaseException:
        handle.abort()
        raise
    logger.info("created recording %s (%s)", path, dataset_id)
    return handle


def check_recording_format(f: h5py.File, path: str | os.PathLike | None = None) -> None:
    """Raise :class:`RecordingFormatError` unless ``f`` is a recording of a supported format version."""
    path = f.filename if path is None else path
    name = f.attrs.get("h5stream_format")
    if name is None:
        if "dataset_id" not in f.attrs:
            raise RecordingFormatError("not a recording file", path=path, obj="/@h5stream_format",
                                       expected=repr(FORMAT_NAME), found="no format attribute and no dataset_id")
        return
    if text(name) != FORMAT_NAME:
        raise RecordingFormatError("file was written by another tool or in another format", path=path,
                                   obj="/@h5stream_format", expected=repr(FORMAT_NAME), found=repr(text(name)))
    version = text(f.attrs.get("h5stream_format_version", ""))
    if version not in SUPPORTED_VERSIONS:
        raise RecordingFormatError("unsupported recording format version", path=path,
                                   obj="/@h5stream_format_version",
                                   expected="one of " + ", ".join(SUPPORTED_VERSIONS), found=repr(version),
                                   hint="upgrade h5stream to read newer files")



def open_recording_hdf5(hdf5_path: str | os.PathLike, mode: str = "r", *, verify: bool = True,
                        visit=None) -> h5py.File:
    """Open an existing recording file.

    ``mode="r"`` returns a read-only, lazy ``h5py.File`` after checking the file
    (HDF5 signature, format attributes, no external links, external storage or
    virtual datasets).  With ``verify`` (default) the file's checksum manifest
    is attached: values read through :func:`node_from_h5` are checked against
    their digests (:class:`~h5stream.errors.ChecksumError`); ``verify=False``
    reads them as stored.  ``visit`` (read mode) sees every object of the open-time
    scan and may keep it open (:data:`h5stream.files.validated.ObjectVisitor`).
    ``"r+"`` and ``"a"`` return a :class:`RecordingFile`:
    a copy-on-write handle whose changes replace the file atomically on
    ``close()``, held by a single-writer claim.

    Raises
    ------
    FileNotFoundError
        (:class:`RecordingNotFoundError`) no such file.
    OSError
        (:class:`RecordingLockedError`) another writer holds the file (write modes);
        (:class:`CorruptRecordingError`) the file cannot be read.
    """
    path = Path(hdf5_path)
    if mode not in ("r", "r+", "a"):
        raise ValueError(f"mode must be 'r', 'r+' or 'a' (found {mode!r}); new files come from create_recording_hdf5")
    if not path.exists():
        raise not_found_error(path)
    # A large file's heaps are searched around its datasets' storage, which the scan below maps (reading).
    large = mode == "r" and path.stat().st_size > GLOBAL_HEAP_SCAN_BYTES
    try:
        check_hdf5_signature(path)
        if not large:
            check_global_heaps(path)
    except FormatError as exc:
        raise corrupt_error(path, exc) from exc
    if mode == "r":
        try:
            f = h5py.File(path, "r", locking=False)
        except (OSError, RuntimeError, ValueError) as exc:
            _files.refuse_if_open_here(path, exc)
            if hdf5_lock_held(path):
                raise _files.held_for_reading_error(path, exc) from exc
            raise corrupt_error(path, exc) from exc
        try:
            storage: list | None = [] if large else None
            scan_unsafe_objects(f, path, visit=visit, storage=storage)
            if large:
                try:
                    check_large_global_heaps(path, storage)
                except FormatError as exc:
                    raise corrupt_error(path, exc) from exc
            check_recording_format(f, path)
            checksums.attach(f, verify=verify, path=path)  # reads of the returned file check the file's digests
        except FormatError:
            f.close()
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            f.close()
            raise corrupt_error(path, exc) from exc
        return f
    # Writers never follow what readers refuse: validated like a read, and the copy that
    # receives the writes is scanned for external links, storage and virtual datasets.
    _files.validate_for_update(path, check_recording_format)
    return _claim_or_locked(path, update_atomic(path, checksums=True))


# =========================================================================== immediate-mode writers


def _root_file(root) -> h5py.File:
    if not isinstance(root, (h5py.File, h5py.Group)):
        raise TypeError(f"root must be an open h5py.File (found {type(root).__name__})")
    return root.file


@contextlib.contextmanager
def _released_on_failure(f: h5py.File):
    """A write into ``f`` that fails (a full disk, an interrupt) aborts ``f`` at once when it is a
    :class:`RecordingFile`: its partial file is deleted and its claim released before the error leaves,
    whether or not the caller holds the handle in a ``with`` block (the target stays as it was)."""
    try:
        yield
    except BaseException:
        handle = f if isinstance(f, RecordingFile) else _open_handles.get(f.id.id)
        if handle is not None:
            handle.abort()
        raise


def _replace_children(root, groups: Mapping[str, Mapping[str, Any]]) -> None:
    """In ``root``'s file, each ``{group path: {name: node}}``: the group (created when absent) gets each
    node as its child ``name``, replacing what was there; a failure aborts as :func:`_released_on_failure`."""
    f = _root_file(root)
    with _released_on_failure(f):
        for path, nodes in groups.items():
            group = require_h5_group(f, path)
            for name, node in nodes.items():
                replace_child(group, name, node)


def write_units(root: h5py.File, units_data: Mapping[str, Mapping[str, Any]]) -> None:
    """Write units as ``/units/{unit_id}/`` groups in one batched pass.

    Each unit gets ``spike_times`` (uint64), ``waveform`` (float32) when given,
    attributes ``row``, ``col``, ``global_id`` (and any other scalar field),
    ``spike_count`` and an empty ``features`` group.  A unit already present
    is replaced.
    """
    _replace_children(root, {"units": units_nodes(units_data)})


def write_stimulus(
    root: h5py.File,
    light_reference: Mapping[str, np.ndarray] | None = None,
    frame_times: Mapping[str, np.ndarray] | None = None,
    section_times: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write stimulus arrays: light_reference float32, frame_time uint64, section_time int64 (n, 2).

    Each named array replaces an array of the same name; others stay.
    """
    groups = stimulus_nodes(light_reference, frame_times, section_times)
    _replace_children(root, {f"stimulus/{group_name}": nodes for group_name, nodes in groups.items()})


def write_metadata(root: h5py.File, metadata: Mapping[str, Any]) -> None:
    """Write metadata under ``/metadata``: dicts as groups, scalars as 1-element datasets, text as UTF-8.

    Top-level keys replace what was stored under the same key.
    """
    _replace_children(root, {"metadata": metadata_nodes(metadata)})


def _stored_json(stored, what: str):
    """The value of a JSON-text root attribute, or None when ``stored`` is not text (an earlier file's list)."""
    if isinstance(stored, bytes):
        stored = stored.decode("utf-8")
    if not isinstance(stored, str):
        return None
    try:
        return json.loads(stored)
    except ValueError as exc:
        raise FormatError(f"root attribute {what!r} is not JSON text", expected="JSON, as the original writes it",
                          found=stored[:80], hint="repair the attribute or write the file again") from exc


def features_text(names) -> str:
    """``features_extracted`` as the original stores it: JSON text of the names' list."""
    return json.dumps([str(n) for n in names])


def feature_names(stored) -> list[str]:
    """The names in a stored ``features_extracted``: the original's JSON text, or a list (earlier files of ours)."""
    parsed = _stored_json(stored, "features_extracted")
    if parsed is None:
        parsed = [] if stored is None else np.asarray(stored, dtype=object).ravel().tolist()
    return [text(n) for n in parsed]


def features_after(current, feature_name: str) -> str:
    """``features_extracted`` (JSON text) with ``feature_name`` appended once, in the order computed."""
    names = feature_names(current)
    if feature_name not in names:
        names.append(feature_name)
    return features_text(names)


def write_feature_to_unit(
    root: h5py.File,
    unit_id: str,
    feature_name: str,
    feature_data: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Write ``/units/{unit_id}/features/{feature_name}/`` and record the name in ``features_extracted``.

    Arrays become datasets, scalars attributes of the feature group, nested dicts
    subgroups; ``metadata`` (version, params_hash, extracted_at) become attributes.

    Raises
    ------
    KeyError
        (:class:`UnknownUnitError`) the recording has no such unit.
    """
    check_member_name(unit_id, what="unit id")
    node = feature_node(feature_name, feature_data, metadata)
    f = _root_file(root)
    unit_path = f"units/{unit_id}"
    if unit_path not in f:
        raise UnknownUnitError(f"{f.filename} [/{unit_path}]: no such unit; write the units first")
    with _released_on_failure(f):
        features = require_h5_group(f, f"{unit_path}/features")
        replace_child(features, feature_name, node)
        set_h5_attrs(f, {"features_extracted": features_after(f.attrs.get("features_extracted"), feature_name)})


def mark_stage1_complete(root: h5py.File) -> None:
    """Set ``stage1_completed`` to True and stamp ``updated_at``."""
    f = _root_file(root)
    set_h5_attrs(f, {"stage1_completed": True, "updated_at": now_iso()})


def get_stage1_status(root: h5py.File) -> dict[str, Any]:
    """``{"completed", "params_hash", "created_at", "updated_at"}`` of the recording."""
    attrs, _, _ = read_attrs(_root_file(root))
    return {
        "completed": bool(attrs.get("stage1_completed", False)),
        "params_hash": attrs.get("stage1_params_hash", ""),
        "created_at": attrs.get("created_at"),
        "updated_at": attrs.get("updated_at"),
    }


def _visible_children(f: h5py.File, path: str) -> list[str]:
    """Visible member names of ``f[path]`` ([] when absent); a damaged group is a :class:`FormatError` naming it."""
    with guard_read(f.filename, "/" + path):
        if path not in f:
            return []
        return [name for name in f[path] if not is_hidden(name)]


def list_units(root: h5py.File) -> list[str]:
    """Unit ids in the file (sorted); empty when there are none."""
    return _visible_children(_root_file(root), "units")


def list_features(root: h5py.File, unit_id: str) -> list[str]:
    """Feature names of a unit (sorted); empty when the unit or its features do not exist."""
    f = _root_file(root)
    if not isinstance(unit_id, str) or "\x00" in unit_id or unit_id in ("", ".", "..") or "/" in unit_id:
        return []
    return _visible_children(f, f"units/{unit_id}/features")


def source_files_attrs(cmcr_path, cmtr_path, exists: tuple[bool, bool] | None = None) -> dict[str, Any]:
    """The root attributes naming the source files.

    ``source_files`` as the original writes it: JSON text of ``{"cmcr_path", "cmtr_path", "cmcr_exists",
    "cmtr_exists"}`` (a path null and its ``*_exists`` false when none is given); beside it the root attributes
    ``cmcr_exists`` and ``cmtr_exists``: whether the file was there when recorded (``exists``: the values
    recorded elsewhere, e.g. in an archive being converted, for both).
    """
    cmcr = os.fspath(cmcr_path) if cmcr_path else None
    cmtr = os.fspath(cmtr_path) if cmtr_path else None
    given = (cmcr is not None, cmtr is not None)
    found = exists if exists is not None else tuple(p is not None and Path(p).exists() for p in (cmcr, cmtr))
    return {
        "source_files": json.dumps({"cmcr_path": cmcr, "cmtr_path": cmtr, "cmcr_exists": bool(
            exists[0] if exists else given[0]), "cmtr_exists": bool(exists[1] if exists else given[1])}),
        "cmcr_exists": bool(found[0]),
        "cmtr_exists": bool(found[1]),
    }


def source_paths(stored) -> list[str]:
    """``[cmcr, cmtr]`` ('' where none) of a stored ``source_files``: the original's JSON text, or the
    ``[cmcr, cmtr]`` list of earlier files of ours."""
    parsed = _stored_json(stored, "source_files")
    if isinstance(parsed, Mapping):
        paths = [parsed.get("cmcr_path"), parsed.get("cmtr_path")]
    elif parsed is None and stored is not None and not isinstance(stored, (str, bytes)):
        paths = np.asarray(stored, dtype=object).ravel().tolist()
    else:
        paths = []
    return [text(p) if p else "" for p in (paths + ["", ""])[:2]]


def write_source_files(root: h5py.File, cmcr_path: str | os.PathLike | None,
                       cmtr_path: str | os.PathLike | None) -> None:
    """Record the source paths as strings in ``source_files`` (cmcr, cmtr) with ``cmcr_exists``/``cmtr_exists``."""
    set_h5_attrs(_root_file(root), source_files_attrs(cmcr_path, cmtr_path))


# Former private names, kept for callers written against them.
_read_raw_attrs, _locked_error, _corrupt_error = read_attrs, locked_error, corrupt_error
_check_suffix, _check_recording_format = check_suffix, check_recording_format
