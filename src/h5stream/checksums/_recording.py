"""Digests recorded while a file is written (:class:`Recorder`), and the registry that finds the
recorder of an open file (:func:`start_recording`, :func:`recorder_for`).

The engine's writers look their file's recorder up and record each dataset's
digest and each object's attribute set as they write; :func:`h5stream.checksums.seal`
writes what was recorded as the file's manifest.  Everything here is re-exported
by :mod:`h5stream.checksums`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

import h5py

from h5stream.digests import _h5attrs
from h5stream.checksums._manifest import ALL_ATTRS, TEXT_ATTRS, Manifest

__all__ = [
    "Recorder",
    "headers_checksummed",
    "recorder_for",
    "record_sets",
    "start_recording",
    "stop_recording",
]


def _record_sets(pending, sets, seqs, seq, kinds, names, legacy) -> None:
    """``h5stream._ext._h5attrs.record_sets`` in Python (a source tree without compiled kernels)."""
    i = 0
    while i < len(pending):
        path, k = pending[i], pending[i + 1]
        pairs = pending[i + 2:i + 2 + 2 * k]
        i += 2 + 2 * k
        if not pairs and names is None and path not in sets:
            continue
        order = sorted(range(0, len(pairs), 2), key=pairs.__getitem__)
        sets[path] = "".join(pairs[j + 1] for j in order)
        if seqs is not None:
            seqs[path] = seq
        kinds.pop(path, None)
        if names is not None:
            names[path] = sorted(pairs[0::2])
        legacy.pop(path, None)
    del pending[:]


record_sets = _record_sets if _h5attrs is None else _h5attrs.record_sets


def _file_key(oid) -> Any:
    """The identity of the open file an HDF5 object id belongs to."""
    return oid.fileno


class Recorder:
    """Digests recorded while a file is written, keyed by object path.

    ``headers_checksummed``: the file writes version-2 object headers, which
    HDF5 checksums itself; compact datasets and numeric attributes, which live
    in the header, then need no digest of their own (text attributes do: their
    bytes live in the global heap, which has no checksum), so attribute sets are
    recorded as ``"text"`` sets, else as ``"all"`` sets.  Removals are
    remembered with a sequence number so an object written again after its
    removal keeps its new digests.
    """

    def __init__(self, *, walk: bool = False, headers_checksummed: bool = False) -> None:
        self.datasets: dict[str, str] = {}
        self._dataset_seq: dict[str, int] = {}
        #: path -> the digests of the dataset's pieces (:mod:`h5stream.checksums._pieces`), valid while
        #: its digest in :attr:`datasets` is the one recorded with them
        self.pieces: dict[str, str] = {}
        # Attribute sets, one entry per object in dicts of plain values (hundreds of thousands of
        # objects: no container per object): the packed digests, the sequence number, the kind when
        # given explicitly (else :attr:`attribute_kind`), and (walking recorders only) the covered
        # names in order.  An object with nothing covered has no entry unless it had one before.
        self.attribute_sets: dict[str, str] = {}
        # Sequence numbers are kept only once something was removed: anything recorded before the first
        # removal counts as 0, older than every removal.
        self._set_seq: dict[str, int] = {}
        self._set_kind: dict[str, str] = {}
        self._set_names: dict[str, list[str]] = {}
        # path -> (sequence, {name: digest}): version-1 digests kept from the file an update started from
        self.attributes: dict[str, tuple[int, dict[str, str]]] = {}
        self.removed_objects: dict[str, int] = {}
        self.walk = walk
        self.headers_checksummed = headers_checksummed
        self._seq = 0
        #: attribute sets of the default kind queued by the tree writer, in one flat list (no container
        #: per object outlives its write, so writing sets off no garbage collection): per object its
        #: path, the number of pairs k, then k pairs name, digest; moved into the dicts above in one
        #: compiled pass (``h5stream._ext._h5attrs.record_sets``)
        self.pending: list = []
        #: the tree writer's list for one object's pairs while its attributes are written
        self.scratch: list = []
        #: path -> digest of the object's attribute and member names (walking recorders of files whose
        #: headers HDF5 does not checksum; made afresh by each walk, see :mod:`h5stream.checksums._names`)
        self.name_digests: dict[str, str] = {}
        #: True when every object written with attributes gets a set, an empty one where none of its
        #: attributes is covered (set by a writer that records all of its file's objects, never by an update
        #: seeded from a manifest, whose other writers may not): the manifest then says that an object
        #: without a set had no attributes at all (see :mod:`h5stream.checksums._manifest`)
        self.sets_complete = False

    @property
    def attribute_kind(self) -> str:
        """The kind of attribute set this file records (see :mod:`h5stream.checksums._manifest`)."""
        return TEXT_ATTRS if self.headers_checksummed else ALL_ATTRS

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def flush(self) -> None:
        """Record the queued attribute sets (before anything that reads or orders the recorded ones)."""
        if self.pending:
            record_sets(self.pending, self.attribute_sets, self._set_seq if self.removed_objects else None,
                        self._next(), self._set_kind,
                        self._set_names if self.walk else None, self.attributes)

    def dataset(self, path: str, digest: str, pieces: str | None = None) -> None:
        """The digest of the dataset at ``path``, and of its pieces where it has several."""
        self._seq += 1
        self.datasets[path] = digest
        if pieces is None:
            self.pieces.pop(path, None)
        else:
            self.pieces[path] = pieces
        if self.removed_objects:
            self._dataset_seq[path] = self._seq

    def attribute_set(self, path: str, digests: Mapping[str, str], kind: str | None = None) -> None:
        """The digests of every attribute of the object at ``path`` that a set of ``kind`` covers.

        ``kind`` defaults to :attr:`attribute_kind`; the set replaces whatever
        was recorded for the object before.
        """
        pairs = [x for item in dict(digests).items() for x in item]
        if not pairs:
            self.empty_set(path)
        self.pending += (path, len(pairs) // 2, *pairs)
        self.flush()
        if kind is not None and path in self.attribute_sets:
            self._set_kind[path] = kind

    def empty_set(self, path: str) -> None:
        """The object at ``path`` has attributes of which none is covered: with :attr:`sets_complete` it keeps
        an empty set (queued after this call, as every set is: an older set of the object is replaced by the
        queued one); otherwise it gets no entry unless it had one."""
        if self.sets_complete:
            self.attribute_sets.setdefault(path, "")

    def set_kind(self, path: str) -> str:
        """The kind of the attribute set recorded for ``path``."""
        return self._set_kind.get(path) or self.attribute_kind

    def legacy_attribute(self, path: str, name: str, digest: str) -> None:
        """One more version-1 digest of an object whose digests came from a version-1 manifest."""
        self.flush()
        entry = self.attributes.get(path)
        if entry is None or not self._alive(path, entry[0]):
            self.attributes[path] = (self._next(), {name: digest})
        else:
            entry[1][name] = digest

    def removed(self, path: str) -> None:
        """The object at ``path`` and everything below it were removed."""
        self.flush()
        self.removed_objects[path] = self._next()

    def seed(self, manifest: Manifest) -> None:
        """Start from the digests of an existing file (an update keeps what it does not change)."""
        self.flush()
        for path, digest in manifest.datasets.items():
            self.datasets[path] = digest
            self._dataset_seq[path] = 0
        self.pieces.update((p, t) for p, t in manifest.pieces.items() if p in manifest.datasets)
        for path, names in manifest.attributes.items():
            self.attributes[path] = (0, dict(names))
        for kind, sets in ((TEXT_ATTRS, manifest.text_sets), (ALL_ATTRS, manifest.all_sets)):
            for path, packed in sets.items():
                self.attribute_sets[path] = packed
                self._set_seq[path] = 0
                self._set_kind[path] = kind
                self._set_names.pop(path, None)

    def _alive(self, path: str, seq: int) -> bool:
        removed = self.removed_objects
        if not removed:
            return True
        probe = path
        while True:
            if removed.get(probe, -1) > seq:
                return False
            if probe in ("/", ""):
                return True
            probe = probe.rpartition("/")[0] or "/"

    def current(self) -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, dict[str, str]]]:
        """(datasets, attribute sets by kind, version-1 attribute digests) of the objects still present."""
        self.flush()
        check, alive = bool(self.removed_objects), self._alive
        seqs = self._dataset_seq
        datasets = {p: d for p, d in self.datasets.items() if not check or alive(p, seqs.get(p, 0))}
        sets: dict[str, dict[str, str]] = {TEXT_ATTRS: {}, ALL_ATTRS: {}}
        seqs, kinds, default = self._set_seq, self._set_kind, self.attribute_kind
        # empty sets are kept where the manifest says that every object with attributes has one
        every = self.sets_complete
        if not check and not kinds:  # the common case of a new file: one kind, nothing removed
            sets[default] = {path: packed for path, packed in self.attribute_sets.items() if packed or every}
        else:
            for path, packed in self.attribute_sets.items():
                if (packed or every) and (not check or alive(path, seqs.get(path, 0))):
                    sets[kinds.get(path) or default][path] = packed
        attributes = {p: a for p, (s, a) in self.attributes.items() if a and (not check or alive(p, s))}
        return datasets, sets, attributes

    def current_pieces(self, datasets: Mapping[str, str]) -> dict[str, str]:
        """The piece digests of the datasets of ``datasets`` (those of :meth:`current`)."""
        return {p: t for p, t in self.pieces.items() if p in datasets}


# The file id is held strongly: h5py hands out new id objects for the same open file
# (``h5py.File(fid)``), and closing the file invalidates every one of them.
_recorders: dict[Any, tuple[Any, Recorder]] = {}
_registry_lock = threading.Lock()


def headers_checksummed(f: h5py.File) -> bool:
    """True when new objects of the open file get version-2 headers (libver low bound v1.8 or later)."""
    try:
        low = f.id.get_access_plist().get_libver_bounds()[0]
    except (AttributeError, ValueError, RuntimeError):
        return False
    return low >= h5py.h5f.LIBVER_V18


def start_recording(f: h5py.File, recorder: Recorder | None = None) -> Recorder:
    """Record the digests of what the engine's writers put into ``f`` (an open, writable file)."""
    recorder = recorder or Recorder()
    recorder.headers_checksummed = headers_checksummed(f)
    with _registry_lock:
        for key in [k for k, (fid, _r) in _recorders.items() if not fid.valid]:
            del _recorders[key]
        _recorders[_file_key(f.id)] = (f.id, recorder)
    return recorder


def stop_recording(f_or_id) -> None:
    oid = f_or_id.id if isinstance(f_or_id, h5py.HLObject) else f_or_id
    with _registry_lock, contextlib.suppress(Exception):
        _recorders.pop(_file_key(oid), None)


def recorder_for(obj) -> Recorder | None:
    """The recorder of the file ``obj`` (an h5py object or low-level id) belongs to, if any."""
    if not _recorders:
        return None
    oid = obj.id if isinstance(obj, h5py.HLObject) else obj
    try:
        entry = _recorders.get(_file_key(oid))
    except (ValueError, RuntimeError, TypeError):
        return None
    if entry is None:
        return None
    if not entry[0].valid:
        with _registry_lock:
            _recorders.pop(_file_key(oid), None)
        return None
    return entry[1]
