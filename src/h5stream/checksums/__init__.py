"""End-to-end checksums of the files the engine writes.

Every dataset a writer of the engine produces carries a checksum that readers
check when they read it:

* **Chunked datasets** use HDF5's built-in Fletcher32 filter (the last filter
  of the pipeline, over each stored chunk).  HDF5 checks it on every read, so
  h5py, AnnData and MuData keep reading these files without plugins; the
  parallel gzip writer and reader of the engine compute and check the same
  checksum themselves (:func:`fletcher32`).
* **Contiguous and compact datasets, and attributes**, carry a CRC-32
  (``zlib.crc32``) in the file's *manifest*: the root attribute
  ``h5stream_checksums`` (:data:`MANIFEST_ATTR`), UTF-8 JSON text written in
  the same atomic save as the data.  A contiguous dataset larger than one
  piece has its pieces' digests there too, so a read of some of its rows
  checks what it reads (:func:`read_runs_checked`, :mod:`h5stream.checksums._pieces`).
  Its format (versions 1 to 3) and its
  reading are in :mod:`h5stream.checksums._manifest`; what a digest covers, and the
  digest functions, in :mod:`h5stream.digests`.  Both are re-exported here.

This module writes the manifest and checks what readers read against it; the
digests recorded while writing are kept by :mod:`h5stream.checksums._recording`
(re-exported here).

Writers record digests while they write (:class:`Recorder`, attached to the
open partial file by :class:`h5stream.files.AtomicFile` with
``checksums=True``); the manifest is written when the file is committed
(:func:`seal`), so a file never carries digests of data it does not hold.
``seal(..., walk=True)`` also digests, by reading them back, the objects a
writer created through plain h5py (the few small objects of the container
formats); the recording store records everything while writing and never reads back.

Readers attach the manifest to the open file (:func:`attach`) and check each
object when they read it, in full (:func:`check_dataset`, :func:`check_attrs`),
or, for some rows of a contiguous dataset, the pieces holding them
(:func:`read_runs_checked`; the whole dataset where the file has no piece digests).  A mismatch is a
:class:`~h5stream.errors.ChecksumError` naming the file, the object, the
expected and the found digest; HDF5's own Fletcher32 failure becomes the same
error (:func:`fletcher32_failure`).  A file without manifest (written before
checksums existed, or by another tool) is read without verification, with one
INFO log record per file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from h5stream import batch_attrs, lowlevel
from h5stream.digests import (  # the digests, re-exported
    LIBDEFLATE_CRC32,  # noqa: F401  (re-exported)
    _is_text,
    array_digest,
    dataset_digest,
    first_changed,
    parts_digest,
    digest_end,
    digest_start,
    digest_update,
    is_text_dataset,
    is_text_value,
    read_blocks,
    scalar_text_digest,
    stored_digest,
    text_digest,
    utf8_bytes,
    value_digest,
)
from h5stream.checksums._manifest import (  # the manifest's format, reading and value checks, re-exported
    ALGORITHM,
    ALL_ATTRS,
    MANIFEST_ATTR,
    MANIFEST_FORMAT,
    MANIFEST_VERSION,
    READABLE_VERSIONS,
    SETS_COMPLETE,
    TEXT_ATTRS,
    Manifest,
    _all_attr_values,
    _attr_at,
    _check_legacy_attrs,
    attr_name_text,
    check_attribute_set,
    check_value,
    encode_manifest,
    mismatch_error,
    read_manifest,
    read_attr,
    refuse_sequence_attr,
    refuse_unrecorded_attrs,
)
from h5stream.checksums._names import check_names, names_digest, object_names
from h5stream.checksums._pieces import (PIECE_BYTES, array_digests, piece_rows, read_runs_checked,
                                         read_whole_checked, stored_digests)
from h5stream.checksums._recording import (  # recording while writing, re-exported
    Recorder,
    _file_key,
    _registry_lock,
    headers_checksummed,
    record_sets,  # noqa: F401  (re-exported)
    recorder_for,
    start_recording,
    stop_recording,
)
from h5stream.checksums._fletcher32 import (
    append_fletcher32,
    checked_read,
    fletcher32,
    fletcher32_failure,
    has_fletcher32,
    read_failure,
    strip_fletcher32,
)

__all__ = [
    "ALGORITHM",
    "MANIFEST_ATTR",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "READABLE_VERSIONS",
    "SETS_COMPLETE",
    "TEXT_ATTRS",
    "ALL_ATTRS",
    "Manifest",
    "Recorder",
    "value_digest",
    "array_digests",
    "stored_digests",
    "read_runs_checked",
    "read_whole_checked",
    "piece_rows",
    "PIECE_BYTES",
    "parts_digest",
    "dataset_digest",
    "stored_digest",
    "read_blocks",
    "is_text_dataset",
    "is_text_value",
    "array_digest",
    "first_changed",
    "text_digest",
    "scalar_text_digest",
    "digest_start",
    "digest_update",
    "digest_end",
    "fletcher32",
    "append_fletcher32",
    "strip_fletcher32",
    "recorder_for",
    "start_recording",
    "headers_checksummed",
    "stop_recording",
    "seal",
    "attach",
    "detach",
    "manifest_for",
    "read_manifest",
    "check_dataset",
    "expects_digest",
    "check_attrs",
    "check_attribute_set",
    "check_names",
    "read_attr",
    "refuse_sequence_attr",
    "refuse_unrecorded_attrs",
    "read_attr_values",
    "read_attr_values_each",
    "attr_name_text",
    "check_value",
    "attr_value",
    "fletcher32_failure",
    "checked_read",
    "read_failure",
    "has_fletcher32",
    "mismatch_error",
    "utf8_bytes",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())




def _write_text_attr(oid, name: str, value: str) -> None:
    key = name.encode("utf-8")
    if h5py.h5a.exists(oid, key):
        h5py.h5a.delete(oid, key)
    native = lowlevel.native_hdf5()
    if native is not None:  # the compiled writer: no object-array copy of a text of megabytes
        with lowlevel.library_lock:
            _done, status = native.write_attrs(oid.id, [name], [value], 0, None, False, len(value) * 4 + 1)
        if status == native.ATTRS_DONE:
            return
        if status != native.ATTR_YOURS:
            raise OSError(f"writing the attribute {name!r} failed inside the HDF5 library")
    tid = h5py.h5t.py_create(h5py.string_dtype("utf-8"), logical=True)
    attr = h5py.h5a.create(oid, key, tid, h5py.h5s.create(h5py.h5s.SCALAR))
    attr.write(np.array(value, dtype=h5py.string_dtype("utf-8")))


def seal(f: h5py.File, recorder: Recorder) -> dict:
    """Write the manifest of ``f``: the recorded digests, plus (``recorder.walk``) read-back ones.

    Called by the atomic writer just before the file is flushed and renamed into place.
    Returns the manifest written.
    """
    if recorder.walk:
        _walk_digests(f, recorder)
    datasets, sets, attributes = recorder.current()
    root = attributes.get("/")
    if root is not None:
        root.pop(MANIFEST_ATTR, None)
    manifest = {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "algorithm": ALGORITHM,
        "datasets": datasets,
        "attribute_digests": sets,
        "attributes": {p: a for p, a in attributes.items() if a},
        "name_digests": dict(recorder.name_digests),
    }
    if recorder.sets_complete:
        manifest[SETS_COMPLETE] = True
    pieces = recorder.current_pieces(datasets)
    if pieces:
        manifest["pieces"] = pieces
    _write_text_attr(f.id, MANIFEST_ATTR, encode_manifest(manifest))
    return manifest


def _own_attr_names(path: str, obj) -> list[str]:
    names = list(obj.attrs)
    if path == "/" and MANIFEST_ATTR in names:
        names.remove(MANIFEST_ATTR)
    return names


def _walk_digests(f: h5py.File, recorder: Recorder) -> None:
    """Digest, by reading them back, every attribute and every non-Fletcher32 dataset not recorded yet."""
    datasets = recorder.current()[0]
    names: list[tuple[str, int]] = []
    h5py.h5o.visit(f.id, lambda name, info: names.append((name, info.type)), info=True)
    objects = [("/", f)] + [("/" + name.decode("utf-8") if isinstance(name, bytes) else "/" + name, t)
                            for name, t in names]
    # Names live in headers and heaps HDF5 does not checksum unless the headers are version 2.
    name_digests: dict[str, str] | None = None if recorder.headers_checksummed else {}
    for path, kind in objects:
        obj = f if path == "/" else f[path]
        if name_digests is not None:
            attr_names, members = object_names(obj.id, root=path == "/", manifest_attr=MANIFEST_ATTR)
            if attr_names or members:
                name_digests[path] = names_digest(attr_names, members)
        if path != "/" and kind == h5py.h5o.TYPE_DATASET and path not in datasets:
            # Fletcher32 covers the stored chunks; variable-length strings live outside them (global heap).
            covered = obj.chunks is not None and has_fletcher32(obj.id) and not is_text_dataset(obj)
            if obj.shape is not None and not covered:
                plain = obj.ndim >= 1 and not (is_text_dataset(obj) or obj.dtype.hasobject)
                recorder.dataset(path, *(stored_digests(obj) if plain else (stored_digest(obj),)))
        # every attribute of an object other than the root (whose manifest text may be large) in one pass
        # of direct calls: its names and values, each read once
        _walk_attrs(recorder, path, obj, None if path == "/" else read_attr_values(obj, path))
    recorder.name_digests = name_digests or {}


def _walk_attrs(recorder: Recorder, path: str, obj, snapshot: dict[str, Any] | None = None) -> None:
    """Bring the recorded attribute digests of ``obj`` up to date with what it holds, reading what is new.

    ``snapshot``: all of ``obj``'s attributes already read (:func:`read_attr_values`), or None to read
    them here as needed."""
    present = list(snapshot) if snapshot is not None else _own_attr_names(path, obj)

    def value_of(name: str):
        return snapshot[name] if snapshot is not None else obj.attrs[name]

    legacy = recorder.attributes.get(path)
    if legacy is not None and recorder._alive(path, legacy[0]):
        known = legacy[1]
        for name in present:
            if name not in known:
                recorder.legacy_attribute(path, name, value_digest(value_of(name)))
        return
    packed = recorder.attribute_sets.get(path)
    entry = packed is not None and recorder._alive(path, recorder._set_seq.get(path, 0))
    if not entry:
        kind, digests = recorder.attribute_kind, {}
    else:
        kind, recorded = recorder.set_kind(path), recorder._set_names.get(path)
        if recorded is None:  # seeded from the file: keep the stored digests while the set is unchanged
            values = {n: value_of(n) for n in present}
            covered = [n for n in present if kind == ALL_ATTRS or _is_text(values[n])]
            if len(covered) * 8 == len(packed):
                return
            recorder.attribute_set(path, {n: value_digest(values[n]) for n in covered}, kind)
            return
        digests = {n: packed[8 * i:8 * i + 8] for i, n in enumerate(recorded)}
        if set(recorded) <= set(present) and len(present) == len(recorded):
            return  # nothing added or removed since it was recorded
        digests = {n: d for n, d in digests.items() if n in present}
    missing = [name for name in present if name not in digests]
    for name in missing:
        value = value_of(name)
        if kind == ALL_ATTRS or _is_text(value):
            digests[name] = value_digest(value)
    if digests or entry:
        recorder.attribute_set(path, digests, kind)


def read_attr_values(obj, where: str | None = None) -> dict[str, Any] | None:
    """Every attribute of ``obj`` as h5py reads it, in one pass of direct libhdf5 calls.

    Scalar numbers and variable-length text come from :func:`h5stream.batch_attrs.read_plain`
    (a few microseconds each, against tens through h5py's objects); the others (arrays, fixed-size
    text, enums) by :func:`read_attr`, each opened once.  ``where``: ``obj.name``
    when the caller has it; the root group's (``"/"``) manifest attribute is left out.  None when the
    direct calls are unavailable or a name is not UTF-8 text: the caller then reads through h5py,
    which reports it.
    """
    return read_attr_values_each((obj,), (where,))[0]


def read_attr_values_each(objs, wheres) -> list[dict[str, Any] | None]:
    """:func:`read_attr_values` of each object of ``objs`` (``wheres``: their names, or None each), in one
    pass."""
    found = batch_attrs.read_values(objs, read_attr)
    for values, where in zip(found, wheres):
        if values is not None and where == "/":
            values.pop(MANIFEST_ATTR, None)
    return found


# --------------------------------------------------------------------------- reading

_attached: dict[Any, tuple[weakref.ref, Manifest | None]] = {}
_noted: set[str] = set()


def attach(f: h5py.File, *, verify: bool = True, path=None, names: Mapping | None = None) -> Manifest | None:
    """Load ``f``'s manifest so reads of ``f`` check their digests; returns it (None: nothing to check).

    ``verify=False`` detaches any manifest (reads are not checked).  A file
    without manifest is read unchecked; one INFO record per file says so.
    ``names``: the attribute and member names the open-time scan listed
    (``open_validated(names=...)``), checked without opening those objects again.
    """
    key = _file_key(f.id)
    if not verify:
        with _registry_lock:
            _attached[key] = (weakref.ref(f.id), None)
        return None
    path = os.fspath(path) if path is not None else f.filename
    manifest = read_manifest(f, path)
    if manifest is not None and manifest.name_digests:
        # Checked once, up front: a damaged name reads as an absent attribute or member, which no
        # later read of a value would notice (see h5stream.checksums._names).
        check_names(f, manifest, MANIFEST_ATTR, names)
    if manifest is None and path not in _noted:
        _noted.add(path)
        logger.info("%s: no checksum manifest (written before checksums or by another tool); "
                    "its data are read without verification", path)
    with _registry_lock:
        _attached[key] = (weakref.ref(f.id), manifest)
    return manifest


def detach(f: h5py.File) -> None:
    with _registry_lock, contextlib.suppress(Exception):
        _attached.pop(_file_key(f.id), None)


def manifest_for(obj) -> Manifest | None:
    """The manifest attached to the file of ``obj`` (h5py object or low-level id), or None."""
    if not _attached:
        return None
    oid = obj.id if isinstance(obj, h5py.HLObject) else obj
    try:
        key = _file_key(oid)
    except (ValueError, RuntimeError, TypeError):
        return None
    entry = _attached.get(key)
    if entry is None:
        return None
    fid = entry[0]()
    if fid is None or not fid.valid:
        with _registry_lock:
            _attached.pop(key, None)
        return None
    return entry[1]


def check_dataset(ds, data, manifest: Manifest | None | bool = True, *, found: str | None = None) -> Any:
    """Check ``data``, all of ``ds`` as read, against the manifest; returns ``data``.

    ``manifest=True`` looks the manifest up from ``ds``'s file.  ``found``: the digest of
    ``data`` when the reader computed it as the bytes came in (:func:`expects_digest`).
    """
    if manifest is True:
        manifest = manifest_for(ds)
    if manifest is None or manifest is False:
        return data
    name = ds.name
    expected = manifest.datasets.get(name)
    if expected is not None:
        check_value(manifest, name, expected, data, text=is_text_dataset(ds), found=found)
    return data


def expects_digest(ds) -> bool:
    """True when the manifest attached to ``ds``'s file holds a digest of ``ds``'s values (a reader that
    digests the bytes as they arrive hands :func:`check_dataset` the result)."""
    manifest = manifest_for(ds)
    return manifest is not None and manifest.datasets.get(ds.name) is not None


def check_attrs(obj, values: Mapping[str, Any] | None = None, manifest: Manifest | None | bool = True, *,
                complete: bool = False, where: str | None = None) -> None:
    """Check the attributes of ``obj`` that have digests.

    ``values``: those already read, as h5py reads them (``complete``: all of
    them, and then an object the manifest records no attributes for must have
    none of the kind its writer covers: :func:`refuse_unrecorded_attrs`); the others are read here when
    the check needs them.  ``where``:
    ``obj.name`` when the caller has it (asking HDF5 for it costs more than the check).
    """
    if manifest is True:
        manifest = manifest_for(obj)
    if manifest is None or manifest is False:
        return
    if where is None:
        where = obj.name
    expected = manifest.attributes.get(where)
    if expected:
        _check_legacy_attrs(manifest, obj, where, expected, values)
    kind, packed = manifest.attribute_set(where)
    if packed is not None:
        check_attribute_set(manifest, where, kind, packed, _all_attr_values(obj, values, complete))
    elif complete and values and not expected:  # none recorded: any found was added since
        refuse_unrecorded_attrs(manifest, obj, where, values)


def attr_value(obj, name: str, default=None):
    """``obj.attrs.get(name, default)``, checked against its digest when the file's manifest is attached.

    Under a version-2 manifest the attribute is checked with the others of its
    object's set (they are read too: a few small values); in a file open
    read-only the set's values are then kept with the manifest, and later
    lookups of that object's attributes take them from there.
    """
    manifest = manifest_for(obj)
    where = obj.name if manifest is not None else None
    if manifest is not None and name != MANIFEST_ATTR:
        known = manifest.checked_values.get(where)
        if known is None and not manifest.attributes.get(where) and _read_only(obj):
            known = _checked_set(obj, where, manifest)
        if known is not None:
            return known.get(name, default)
    attrs = obj.attrs
    if name not in attrs:
        return default
    value = attrs[name]
    if manifest is not None:
        legacy = manifest.attributes.get(where)
        if legacy:
            check_value(manifest, _attr_at(where, name), legacy.get(name), value)
        kind, packed = manifest.attribute_set(where)
        if packed is not None and (kind == ALL_ATTRS or _is_text(value)):
            values = _all_attr_values(obj, {name: value})
            check_attribute_set(manifest, where, kind, packed, values)
            if not legacy and obj.file.mode == "r":
                manifest.checked_values[where] = dict(values)
    return value


def _read_only(obj) -> bool:
    """Whether the file of ``obj`` is open read-only (h5py's ``obj.file.mode == "r"``, asked of its low-level id)."""
    intent = h5py.h5i.get_file_id(obj.id).get_intent()
    return not intent & (h5py.h5f.ACC_RDWR | h5py.h5f.ACC_SWMR_WRITE)


def _checked_set(obj, where: str, manifest: Manifest) -> dict[str, Any] | None:
    """Every attribute of ``obj`` (a file open read-only) read in one pass of direct calls and checked against the
    set the manifest records, kept with the manifest for :func:`attr_value`'s later lookups; None where the
    manifest records no set for it or the direct calls cannot read them (then read as before)."""
    kind, packed = manifest.attribute_set(where)
    if packed is None:
        return None
    values = read_attr_values(obj, where)
    if values is None:
        return None
    check_attribute_set(manifest, where, kind, packed, values)
    manifest.checked_values[where] = values
    return values
