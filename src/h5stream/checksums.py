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
  the same atomic save as the data::

      {"format": "h5stream-checksums", "version": 2, "algorithm": "crc32",
       "datasets": {"/units/u1/spike_times": "3a1f09c2", ...},
       "attribute_digests": {
           "text": {"/units/u1/features/f": "0b5e77d19c0e11a4...", ...},
           "all": {"/obs": "77e0a2c4...", ...}},
       "attributes": {}}

What a digest covers (:func:`value_digest`): for numbers, booleans and
fixed-width bytes the text ``"<dtype.str>|<shape>"`` followed by the raw bytes
in C order; for text (a string, or an array of strings) the text
``"text|<shape>"`` followed by, per string, its UTF-8 length (8 bytes, little
endian) and its UTF-8 bytes.  The stored digest is the CRC-32 of that stream,
as 8 lowercase hex digits.

Attributes are listed per object (version 2 of the manifest): the value under
``attribute_digests[kind][path]`` is the concatenation of the digests of the
object's *covered* attributes, in the order of their names (Unicode code
points, the same as the order of their UTF-8 bytes), 8 hex digits each.  Under
``"all"`` every attribute of the object is covered (the manifest attribute of
the root aside); under ``"text"`` only its text attributes (a value h5py reads
back as ``str`` or as an array of strings), which is what a writer records when
the file's object headers are version 2: HDF5 checksums those headers, and so
the numbers stored in them, itself, while the bytes of variable-length text
live in the global heap, which has no checksum.  The reader lists the
object's attributes, keeps the covered ones, sorts their names and pairs them
with the digests, so a mismatch names the attribute; attributes added to or
removed from an object since it was written are a mismatch of the object's
set, naming the object and the attributes found.  No names are stored, which
keeps the manifest small: one short string per object whose attributes carry
digests (a 4,000-unit recording: 3.0 MB instead of 5.3 MB in version 1).

Version 1 (files written before version 2) listed every attribute by name,
``"attributes": {"/units/u1": {"name": "0b5e77d1", ...}}``; such files are
read and verified as before, and an update of one keeps the digests of the
objects it does not rewrite in that form (the ``attributes`` member of a
version-2 manifest, usually empty).  A digest of a short text is the same
whatever object holds it, so repeated texts (feature metadata shared by all
units) are digested once per process (:func:`scalar_text_digest`).

Writers record digests while they write (:class:`Recorder`, attached to the
open partial file by :class:`h5stream.files.AtomicFile` with
``checksums=True``); the manifest is written when the file is committed
(:func:`seal`), so a file never carries digests of data it does not hold.
``seal(..., walk=True)`` also digests, by reading them back, the objects a
writer created through plain h5py (the few small objects of the container
formats); the recording store records everything while writing and never reads back.

Readers attach the manifest to the open file (:func:`attach`) and check each
object when they read it, in full (:func:`check_dataset`, :func:`check_attrs`):
a partial read checks only what it reads.  A mismatch is a
:class:`~h5stream.errors.ChecksumError` naming the file, the object, the
expected and the found digest; HDF5's own Fletcher32 failure becomes the same
error (:func:`fletcher32_failure`).  A file without manifest (written before
checksums existed, or by another tool) is read without verification, with one
INFO log record per file.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import operator
import os
import threading
import weakref
import zlib
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from h5stream.errors import ChecksumError, FormatError
from h5stream.fletcher32 import (
    append_fletcher32,
    checked_read,
    fletcher32,
    fletcher32_failure,
    has_fletcher32,
    strip_fletcher32,
)

__all__ = [
    "ALGORITHM",
    "MANIFEST_ATTR",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "READABLE_VERSIONS",
    "TEXT_ATTRS",
    "ALL_ATTRS",
    "Manifest",
    "Recorder",
    "value_digest",
    "dataset_digest",
    "is_text_dataset",
    "is_text_value",
    "array_digest",
    "text_digest",
    "scalar_text_digest",
    "known_text_digest",
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
    "check_attrs",
    "check_attribute_set",
    "refuse_sequence_attr",
    "check_value",
    "attr_value",
    "fletcher32_failure",
    "checked_read",
    "has_fletcher32",
    "mismatch_error",
    "utf8_bytes",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

ALGORITHM = "crc32"
MANIFEST_ATTR = "h5stream_checksums"
MANIFEST_FORMAT = "h5stream-checksums"
MANIFEST_VERSION = 2
#: manifest versions this module reads (1: digests of attributes by name)
READABLE_VERSIONS = (1, 2)
#: the kinds of attribute sets of a version-2 manifest (see the module text)
TEXT_ATTRS = "text"
ALL_ATTRS = "all"
_TEXT_KINDS = "OUT"

# --------------------------------------------------------------------------- digests


def _hex(value: int) -> str:
    return f"{value & 0xFFFFFFFF:08x}"


_HEADERS: dict[tuple[str, tuple[int, ...]], int] = {}


def _header_crc(kind: str, shape: tuple[int, ...]) -> int:
    """CRC-32 of the header ``"<kind>|<shape>"`` (cached: the same few shapes recur)."""
    key = (kind, shape)
    crc = _HEADERS.get(key)
    if crc is None:
        crc = zlib.crc32(f"{kind}|{tuple(int(s) for s in shape)}".encode("ascii"))
        if len(_HEADERS) < 65536:
            _HEADERS[key] = crc
    return crc


def _libdeflate_crc32():
    """libdeflate's CRC-32 (``zlib.crc32``'s value, over twice as fast here); None without the library."""
    name = ctypes.util.find_library("deflate")
    if name is None:
        return None
    try:
        func = ctypes.CDLL(name).libdeflate_crc32
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t]
    func.restype = ctypes.c_uint32
    return func


#: libdeflate's ``crc32(crc, address, size)`` through ctypes, or None without the library
#: (the one lookup of it: the Parquet manifest uses it too)
LIBDEFLATE_CRC32 = _libdeflate_crc32()
_FAST_CRC32 = LIBDEFLATE_CRC32
_FAST_CRC32_MIN = 16384  # below this the foreign call costs more than it saves


def _crc32_bytes(data: np.ndarray, crc: int) -> int:
    """CRC-32 of a C-contiguous array's bytes, continuing ``crc`` (libdeflate for large arrays)."""
    if _FAST_CRC32 is not None and data.nbytes >= _FAST_CRC32_MIN:
        return _FAST_CRC32(crc, data.ctypes.data, data.nbytes)
    return zlib.crc32(data.reshape(-1).view(np.uint8), crc)


def array_digest(array: np.ndarray) -> str:
    """CRC-32 of ``"<dtype.str>|<shape>"`` and the raw bytes of a fixed-size array in C order."""
    array = np.asarray(array)
    crc = _header_crc(array.dtype.str, array.shape)
    if array.size:
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        crc = _crc32_bytes(array, crc)
    return f"{crc:08x}"


def digest_start(dtype: np.dtype, shape: tuple[int, ...]) -> int:
    """The running CRC of an array digest after its header (feed C-order blocks to :func:`digest_update`)."""
    return _header_crc(np.dtype(dtype).str, tuple(shape))


def digest_update(crc: int, block: np.ndarray) -> int:
    block = np.ascontiguousarray(block)
    return _crc32_bytes(block, crc) if block.size else crc


def digest_end(crc: int) -> str:
    return _hex(crc)


def utf8_bytes(item) -> bytes:
    if isinstance(item, (bytes, np.bytes_)):
        return bytes(item)
    return str(item).encode("utf-8", "surrogatepass")


_SCALAR_TEXT = zlib.crc32(b"text|()")
# Digests of short texts already seen: attribute texts repeat (the same feature metadata on every
# unit, a handful of names), and a lookup costs a fraction of encoding and digesting again.
_TEXT_DIGESTS: dict[str, str] = {}
_TEXT_DIGESTS_MAX = 1 << 16
_CACHED_TEXT_MAX = 256


#: the digest of a text seen before, or None: ``known_text_digest(value)`` (a lookup, for hot loops)
known_text_digest = _TEXT_DIGESTS.get


def scalar_text_digest(value: str | bytes) -> str:
    """:func:`text_digest` of one string (the common case of attributes, kept cheap)."""
    if isinstance(value, bytes):
        raw = value
    else:
        digest = _TEXT_DIGESTS.get(value)
        if digest is not None:
            return digest
        raw = value.encode("utf-8", "surrogatepass")
    digest = f"{zlib.crc32(raw, zlib.crc32(len(raw).to_bytes(8, 'little'), _SCALAR_TEXT)):08x}"
    if not isinstance(value, bytes) and len(value) <= _CACHED_TEXT_MAX and len(_TEXT_DIGESTS) < _TEXT_DIGESTS_MAX:
        _TEXT_DIGESTS[str(value)] = digest
    return digest


def text_digest(values, shape: tuple[int, ...] | None = None) -> str:
    """CRC-32 of ``"text|<shape>"`` and each string's UTF-8 length (8 bytes LE) and bytes."""
    if isinstance(values, (str, bytes)) and shape is None:
        return scalar_text_digest(values)
    if isinstance(values, (str, bytes, np.str_, np.bytes_)):
        items, shape = [values], () if shape is None else shape
    else:
        array = np.asarray(values, dtype=object)
        items, shape = array.ravel().tolist(), array.shape
    crc = _header_crc("text", tuple(shape))
    for item in items:
        raw = utf8_bytes(item)
        crc = zlib.crc32(len(raw).to_bytes(8, "little"), crc)
        crc = zlib.crc32(raw, crc)
    return f"{crc:08x}"


def _is_text(value) -> bool:
    if isinstance(value, (str, np.str_)):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in _TEXT_KINDS
    return False


def value_digest(value) -> str:
    """The digest of a value as written, or of an attribute as h5py reads it back.

    ``str`` and arrays of strings (object, ``U`` or StringDType) are text;
    anything else (``np.bytes_`` from fixed-width strings included) is an array.
    """
    if isinstance(value, str):
        return scalar_text_digest(value)
    if _is_text(value):
        return text_digest(value)
    return array_digest(np.asarray(value))


def is_text_value(value) -> bool:
    """True for a value :func:`value_digest` digests as text (what a ``"text"`` attribute set covers)."""
    return _is_text(value)


def is_text_dataset(ds) -> bool:
    """True for a variable-length string dataset (its values are digested as text)."""
    info = h5py.check_string_dtype(ds.dtype)
    return info is not None and info.length is None


def dataset_digest(ds, data) -> str:
    """The digest of ``data``, all of ``ds`` however it was read (bytes, str or StringDType for text)."""
    if is_text_dataset(ds):
        return text_digest(data)
    return array_digest(np.asarray(data))


# --------------------------------------------------------------------------- recording while writing


def _file_key(oid) -> Any:
    """The identity of the open file an HDF5 object id belongs to."""
    return oid.fileno


# The digests of an object's attributes in name order, by the order the writer gave them in: objects
# written by the same code carry the same names (every feature of every unit), so the sort is done once.
_NAME_ORDERS: dict[tuple[str, ...], Any] = {}
_NAME_ORDERS_MAX = 4096


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
        # Attribute sets, one entry per object in dicts of plain values (hundreds of thousands of
        # objects: no container per object): the packed digests, the sequence number, the kind, and
        # (walking recorders only) the covered names in order.
        self.attribute_sets: dict[str, str] = {}
        self._set_seq: dict[str, int] = {}
        self._set_kind: dict[str, str] = {}
        self._set_names: dict[str, list[str]] = {}
        # path -> (sequence, {name: digest}): version-1 digests kept from the file an update started from
        self.attributes: dict[str, tuple[int, dict[str, str]]] = {}
        self.removed_objects: dict[str, int] = {}
        self.walk = walk
        self.headers_checksummed = headers_checksummed
        self._seq = 0

    @property
    def attribute_kind(self) -> str:
        """The kind of attribute set this file records (see the module text)."""
        return TEXT_ATTRS if self.headers_checksummed else ALL_ATTRS

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def dataset(self, path: str, digest: str) -> None:
        self._seq += 1
        self.datasets[path] = digest
        self._dataset_seq[path] = self._seq

    def attribute_set(self, path: str, digests: Mapping[str, str], kind: str | None = None) -> None:
        """The digests of every attribute of the object at ``path`` that a set of ``kind`` covers.

        ``kind`` defaults to :attr:`attribute_kind`; the set replaces whatever
        was recorded for the object before.
        """
        self._seq += 1
        if len(digests) > 1:
            order = tuple(digests)
            pick = _NAME_ORDERS.get(order)
            if pick is None:
                pick = operator.itemgetter(*sorted(order))
                if len(_NAME_ORDERS) < _NAME_ORDERS_MAX:
                    _NAME_ORDERS[order] = pick
            packed = "".join(pick(digests))
        else:
            packed = "".join(digests.values())
        self.attribute_sets[path] = packed
        self._set_seq[path] = self._seq
        self._set_kind[path] = kind or self.attribute_kind
        if self.walk:
            self._set_names[path] = sorted(digests)
        if self.attributes:
            self.attributes.pop(path, None)

    def legacy_attribute(self, path: str, name: str, digest: str) -> None:
        """One more version-1 digest of an object whose digests came from a version-1 manifest."""
        entry = self.attributes.get(path)
        if entry is None or not self._alive(path, entry[0]):
            self.attributes[path] = (self._next(), {name: digest})
        else:
            entry[1][name] = digest

    def removed(self, path: str) -> None:
        """The object at ``path`` and everything below it were removed."""
        self.removed_objects[path] = self._next()

    def seed(self, manifest: Manifest) -> None:
        """Start from the digests of an existing file (an update keeps what it does not change)."""
        for path, digest in manifest.datasets.items():
            self.datasets[path] = digest
            self._dataset_seq[path] = 0
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
        check, alive = bool(self.removed_objects), self._alive
        seqs = self._dataset_seq
        datasets = {p: d for p, d in self.datasets.items() if not check or alive(p, seqs[p])}
        sets: dict[str, dict[str, str]] = {TEXT_ATTRS: {}, ALL_ATTRS: {}}
        seqs, kinds = self._set_seq, self._set_kind
        for path, packed in self.attribute_sets.items():
            if packed and (not check or alive(path, seqs[path])):
                sets[kinds[path]][path] = packed
        attributes = {p: a for p, (s, a) in self.attributes.items() if a and (not check or alive(p, s))}
        return datasets, sets, attributes


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


def _write_text_attr(oid, name: str, value: str) -> None:
    key = name.encode("utf-8")
    if h5py.h5a.exists(oid, key):
        h5py.h5a.delete(oid, key)
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
    }
    _write_text_attr(f.id, MANIFEST_ATTR, json.dumps(manifest, separators=(",", ":"), ensure_ascii=True))
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
    for path, kind in objects:
        obj = f if path == "/" else f[path]
        if path != "/" and kind == h5py.h5o.TYPE_DATASET and path not in datasets:
            # Fletcher32 covers the stored chunks; variable-length strings live outside them (global heap).
            covered = obj.chunks is not None and has_fletcher32(obj.id) and not is_text_dataset(obj)
            if obj.shape is not None and not covered:
                recorder.dataset(path, dataset_digest(obj, obj[()]))
        _walk_attrs(recorder, path, obj)


def _walk_attrs(recorder: Recorder, path: str, obj) -> None:
    """Bring the recorded attribute digests of ``obj`` up to date with what it holds, reading what is new."""
    legacy = recorder.attributes.get(path)
    if legacy is not None and recorder._alive(path, legacy[0]):
        known = legacy[1]
        for name in _own_attr_names(path, obj):
            if name not in known:
                recorder.legacy_attribute(path, name, value_digest(obj.attrs[name]))
        return
    present = _own_attr_names(path, obj)
    packed = recorder.attribute_sets.get(path)
    entry = packed is not None and recorder._alive(path, recorder._set_seq[path])
    if not entry:
        kind, digests = recorder.attribute_kind, {}
    else:
        kind, recorded = recorder._set_kind[path], recorder._set_names.get(path)
        if recorded is None:  # seeded from the file: keep the stored digests while the set is unchanged
            values = {n: obj.attrs[n] for n in present}
            covered = [n for n in present if kind == ALL_ATTRS or _is_text(values[n])]
            if len(covered) * 8 == len(packed):
                return
            recorder.attribute_set(path, {n: value_digest(values[n]) for n in covered}, kind)
            return
        digests = {n: packed[8 * i:8 * i + 8] for i, n in enumerate(recorded)}
        if set(recorded) <= set(present) and len(present) == len(recorded):
            return  # nothing added or removed since it was recorded
        digests = {n: d for n, d in digests.items() if n in present}
    for name in present:
        if name not in digests:
            value = obj.attrs[name]
            if kind == ALL_ATTRS or _is_text(value):
                digests[name] = value_digest(value)
    if digests or entry:
        recorder.attribute_set(path, digests, kind)


# --------------------------------------------------------------------------- reading


class Manifest:
    """The digests stored in a file (see the module text).

    ``datasets``: path -> digest; ``text_sets`` and ``all_sets``: path -> the
    packed digests of the object's covered attributes (version 2);
    ``attributes``: path -> {name: digest} (version 1, and objects an update of
    a version-1 file did not rewrite).
    """

    __slots__ = ("path", "version", "datasets", "attributes", "text_sets", "all_sets", "__weakref__")

    def __init__(self, path, datasets: dict[str, str], attributes: dict[str, dict[str, str]],
                 text_sets: dict[str, str] | None = None, all_sets: dict[str, str] | None = None,
                 version: int = MANIFEST_VERSION) -> None:
        self.path = path
        self.version = version
        self.datasets = datasets
        self.attributes = attributes
        self.text_sets = text_sets if text_sets is not None else {}
        self.all_sets = all_sets if all_sets is not None else {}

    def attribute_set(self, where: str) -> tuple[str | None, str | None]:
        """(kind, packed digests) of the attributes of the object at ``where``; (None, None) without."""
        packed = self.text_sets.get(where)
        if packed is not None:
            return TEXT_ATTRS, packed
        packed = self.all_sets.get(where)
        if packed is not None:
            return ALL_ATTRS, packed
        return None, None

    def covers_attrs(self, where: str) -> bool:
        """True when attributes of the object at ``where`` carry digests."""
        return where in self.text_sets or where in self.all_sets or bool(self.attributes.get(where))

    def __len__(self) -> int:
        return (len(self.datasets) + sum(len(a) for a in self.attributes.values())
                + sum(len(p) // 8 for sets in (self.text_sets, self.all_sets) for p in sets.values()))


def _damaged_manifest(path, where: str, found: str) -> ChecksumError:
    return ChecksumError("the checksum manifest is not in the expected form", path=path, obj=where,
                         expected=f"a {MANIFEST_FORMAT!r} document", found=found,
                         hint="the file is damaged; restore it from a copy or load with verify=False")


def _string_map(value) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def read_manifest(f: h5py.File, path=None) -> Manifest | None:
    """The manifest of an open file; None when it has none.  A damaged manifest is a ChecksumError.

    Reads every version of :data:`READABLE_VERSIONS`; a newer version is a
    :class:`~h5stream.errors.FormatError` asking for a newer h5stream.
    """
    path = f.filename if path is None else path
    where = f"/@{MANIFEST_ATTR}"
    try:
        if MANIFEST_ATTR not in f.attrs:  # a damaged attribute header fails here already
            return None
        stored = f.attrs[MANIFEST_ATTR]
        if isinstance(stored, bytes):
            stored = stored.decode("utf-8")
        document = json.loads(str(stored))
    except (OSError, RuntimeError, ValueError, TypeError, UnicodeError) as exc:
        raise ChecksumError(f"the checksum manifest cannot be read ({type(exc).__name__})", path=path, obj=where,
                            expected="the JSON manifest of the file's digests", found="damaged text",
                            hint="the file is damaged; restore it from a copy or load with verify=False") from exc
    ok = (isinstance(document, dict) and document.get("format") == MANIFEST_FORMAT
          and isinstance(document.get("datasets"), dict))
    if not ok:
        raise _damaged_manifest(path, where, repr(str(document)[:80]))
    version = document.get("version")
    if version not in READABLE_VERSIONS or document.get("algorithm") != ALGORITHM:
        raise FormatError("unsupported checksum manifest", path=path, obj=where,
                          expected=f"version {' or '.join(map(str, READABLE_VERSIONS))}, algorithm {ALGORITHM}",
                          found=f"version {version!r}, algorithm {document.get('algorithm')!r}",
                          hint="upgrade h5stream")
    attributes = document.get("attributes", {} if version >= 2 else None)
    if not isinstance(attributes, dict):
        raise _damaged_manifest(path, where, "no attribute digests")
    if version == 1:
        return Manifest(path, document["datasets"], attributes, version=1)
    sets = document.get("attribute_digests")
    if not (isinstance(sets, dict) and _string_map(sets.get(TEXT_ATTRS, {})) and _string_map(sets.get(ALL_ATTRS, {}))):
        raise _damaged_manifest(path, where, "attribute digests that are not per-object strings")
    return Manifest(path, document["datasets"], attributes, sets.get(TEXT_ATTRS, {}), sets.get(ALL_ATTRS, {}),
                    version=version)


_attached: dict[Any, tuple[weakref.ref, Manifest | None]] = {}
_noted: set[str] = set()


def attach(f: h5py.File, *, verify: bool = True, path=None) -> Manifest | None:
    """Load ``f``'s manifest so reads of ``f`` check their digests; returns it (None: nothing to check).

    ``verify=False`` detaches any manifest (reads are not checked).  A file
    without manifest is read unchecked; one INFO record per file says so.
    """
    key = _file_key(f.id)
    if not verify:
        with _registry_lock:
            _attached[key] = (weakref.ref(f.id), None)
        return None
    path = os.fspath(path) if path is not None else f.filename
    manifest = read_manifest(f, path)
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


def mismatch_error(manifest: Manifest, obj: str, expected: str, found: str) -> ChecksumError:
    return ChecksumError("checksum mismatch: the stored value differs from what was written",
                         path=manifest.path, obj=obj, expected=f"{ALGORITHM} {expected}",
                         found=f"{ALGORITHM} {found}",
                         hint="the file is damaged; restore it from a copy, or load with verify=False "
                              "to get the data as stored")


def check_value(manifest: Manifest | None, obj: str, expected: str | None, value, *, text: bool | None = None) -> None:
    """Raise ChecksumError when ``value`` (as read) does not have the ``expected`` digest.

    ``text`` says whether the value is text (None: decided by its type, see :func:`value_digest`).
    """
    if manifest is None or expected is None:
        return
    if text is None:
        found = value_digest(value)
    else:
        found = text_digest(value) if text else array_digest(np.asarray(value))
    if found != expected:
        raise mismatch_error(manifest, obj, expected, found)


def check_dataset(ds, data, manifest: Manifest | None | bool = True) -> Any:
    """Check ``data``, all of ``ds`` as read, against the manifest; returns ``data``.

    ``manifest=True`` looks the manifest up from ``ds``'s file.
    """
    if manifest is True:
        manifest = manifest_for(ds)
    if manifest is None or manifest is False:
        return data
    name = ds.name
    expected = manifest.datasets.get(name)
    if expected is not None:
        check_value(manifest, name, expected, data, text=is_text_dataset(ds))
    return data


def refuse_sequence_attr(obj, name: str) -> None:
    """Raise FormatError when attribute ``name`` of ``obj`` holds variable-length sequences (not text).

    No writer of the engine stores one, and reading one whose type was damaged
    (a variable-length string turned into a sequence, in an object header
    HDF5 does not checksum) makes libhdf5 follow heap addresses that are not
    ones and crash the process; the error names the attribute instead.
    """
    try:
        tid = h5py.h5a.open(obj.id, name.encode("utf-8")).get_type()
    except (KeyError, OSError, RuntimeError, ValueError):
        return  # missing or unreadable: the read that follows says so
    if tid.get_class() == h5py.h5t.VLEN:  # variable-length strings are class STRING
        raise FormatError("an attribute holds variable-length sequences, which these files never hold",
                          path=obj.file.filename, obj=_attr_at(obj.name, name),
                          expected="a number, a string or an array of them", found="a variable-length sequence type",
                          hint="the file is damaged or was written by another tool")


def _attr_at(where: str, name: str) -> str:
    return f"{where.rstrip('/')}/@{name}"


def _missing_attr(manifest: Manifest, where: str, name: str) -> ChecksumError:
    return ChecksumError("an attribute listed in the checksum manifest is missing",
                         path=manifest.path, obj=_attr_at(where, name),
                         expected="the attribute", found="nothing",
                         hint="the file is damaged or was edited by another tool")


def _check_legacy_attrs(manifest: Manifest, obj, where: str, expected: Mapping[str, str],
                        values: Mapping[str, Any] | None) -> None:
    """Version-1 digests: each listed attribute by name."""
    for name, digest in expected.items():
        if where == "/" and name == MANIFEST_ATTR:
            continue
        if values is not None and name in values:
            value = values[name]
        else:
            refuse_sequence_attr(obj, name)
            try:
                value = obj.attrs[name]
            except KeyError:
                raise _missing_attr(manifest, where, name) from None
        check_value(manifest, _attr_at(where, name), digest, value)


def _all_attr_values(obj, values: Mapping[str, Any] | None, complete: bool = False) -> Mapping[str, Any]:
    """Every attribute of ``obj`` as h5py reads it, starting from those already read (``values``)."""
    if values is not None and (complete or len(values) == h5py.h5a.get_num_attrs(obj.id)):
        return values  # already all of them
    out = dict(values) if values is not None else {}
    attrs = obj.attrs
    root = obj.name == "/"
    for name in attrs:
        if name not in out and not (root and name == MANIFEST_ATTR):
            refuse_sequence_attr(obj, name)
            out[name] = attrs[name]
    return out


def check_attribute_set(manifest: Manifest, where: str, kind: str, packed: str, values: Mapping[str, Any]) -> int:
    """Check the attributes of the object at ``where`` against its ``kind`` set ``packed``; returns their count.

    ``values``: the object's attributes as h5py reads them, all of them (for a
    ``"text"`` set, those that cannot be text may be left out).  An attribute
    whose value differs is a ChecksumError naming it; a covered attribute
    added or removed is a ChecksumError naming the object and the attributes found.
    """
    names = [n for n in values if not (n == MANIFEST_ATTR and where == "/")]
    if kind == TEXT_ATTRS:
        names = [n for n in names if _is_text(values[n])]
    names.sort()
    if len(packed) != 8 * len(names):
        what = "text attributes" if kind == TEXT_ATTRS else "attributes"
        raise ChecksumError(f"checksum mismatch: the object's {what} are not those written",
                            path=manifest.path, obj=where,
                            expected=f"{len(packed) / 8:g} {what} (their digests: {packed[:80]})",
                            found=f"{len(names)}: {', '.join(names)[:200] or 'none'}",
                            hint="the file is damaged or was edited by another tool; load with verify=False "
                                 "to read it as stored")
    for i, name in enumerate(names):
        expected = packed[8 * i:8 * i + 8]
        value = values[name]
        found = scalar_text_digest(value) if isinstance(value, str) else value_digest(value)
        if found != expected:
            raise mismatch_error(manifest, _attr_at(where, name), expected, found)
    return len(names)


def check_attrs(obj, values: Mapping[str, Any] | None = None, manifest: Manifest | None | bool = True, *,
                complete: bool = False) -> None:
    """Check the attributes of ``obj`` that have digests.

    ``values``: those already read, as h5py reads them (``complete``: all of
    them); the others are read here when the check needs them.
    """
    if manifest is True:
        manifest = manifest_for(obj)
    if manifest is None or manifest is False:
        return
    where = obj.name
    expected = manifest.attributes.get(where)
    if expected:
        _check_legacy_attrs(manifest, obj, where, expected, values)
    kind, packed = manifest.attribute_set(where)
    if packed is not None:
        check_attribute_set(manifest, where, kind, packed, _all_attr_values(obj, values, complete))


def attr_value(obj, name: str, default=None):
    """``obj.attrs.get(name, default)``, checked against its digest when the file's manifest is attached.

    Under a version-2 manifest the attribute is checked with the others of its
    object's set (they are read too: a few small values).
    """
    attrs = obj.attrs
    if name not in attrs:
        return default
    value = attrs[name]
    manifest = manifest_for(obj)
    if manifest is not None:
        where = obj.name
        legacy = manifest.attributes.get(where)
        if legacy:
            check_value(manifest, _attr_at(where, name), legacy.get(name), value)
        kind, packed = manifest.attribute_set(where)
        if packed is not None and (kind == ALL_ATTRS or _is_text(value)):
            check_attribute_set(manifest, where, kind, packed, _all_attr_values(obj, {name: value}))
    return value
