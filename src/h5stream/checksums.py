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

      {"format": "h5stream-checksums", "version": 1, "algorithm": "crc32",
       "datasets": {"/units/u1/spike_times": "3a1f09c2", ...},
       "attributes": {"/units/u1": {"name": "0b5e77d1", ...}, ...}}

What a digest covers (:func:`value_digest`): for numbers, booleans and
fixed-width bytes the text ``"<dtype.str>|<shape>"`` followed by the raw bytes
in C order; for text (a string, or an array of strings) the text
``"text|<shape>"`` followed by, per string, its UTF-8 length (8 bytes, little
endian) and its UTF-8 bytes.  The stored digest is the CRC-32 of that stream,
as 8 lowercase hex digits.

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
import json
import logging
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
    "Manifest",
    "Recorder",
    "value_digest",
    "dataset_digest",
    "is_text_dataset",
    "array_digest",
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
    "check_attrs",
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
MANIFEST_VERSION = 1
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


def array_digest(array: np.ndarray) -> str:
    """CRC-32 of ``"<dtype.str>|<shape>"`` and the raw bytes of a fixed-size array in C order."""
    array = np.asarray(array)
    crc = _header_crc(array.dtype.str, array.shape)
    if array.size:
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        crc = zlib.crc32(array.reshape(-1).view(np.uint8), crc)
    return f"{crc:08x}"


def digest_start(dtype: np.dtype, shape: tuple[int, ...]) -> int:
    """The running CRC of an array digest after its header (feed C-order blocks to :func:`digest_update`)."""
    return _header_crc(np.dtype(dtype).str, tuple(shape))


def digest_update(crc: int, block: np.ndarray) -> int:
    block = np.ascontiguousarray(block)
    return zlib.crc32(block.reshape(-1).view(np.uint8), crc) if block.size else crc


def digest_end(crc: int) -> str:
    return _hex(crc)


def utf8_bytes(item) -> bytes:
    if isinstance(item, (bytes, np.bytes_)):
        return bytes(item)
    return str(item).encode("utf-8", "surrogatepass")


_SCALAR_TEXT = zlib.crc32(b"text|()")


def scalar_text_digest(value: str | bytes) -> str:
    """:func:`text_digest` of one string (the common case of attributes, kept cheap)."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return f"{zlib.crc32(raw, zlib.crc32(len(raw).to_bytes(8, 'little'), _SCALAR_TEXT)):08x}"


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
    if _is_text(value):
        return text_digest(value)
    return array_digest(np.asarray(value))


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


class Recorder:
    """Digests recorded while a file is written, keyed by object path (and attribute name).

    ``headers_checksummed``: the file writes version-2 object headers, which
    HDF5 checksums itself; compact datasets and numeric attributes, which live
    in the header, then need no digest of their own (text attributes do: their
    bytes live in the global heap, which has no checksum).  Removals are
    remembered with a sequence number so an object written again after its
    removal keeps its new digests.
    """

    def __init__(self, *, walk: bool = False, headers_checksummed: bool = False) -> None:
        self.datasets: dict[str, tuple[str, int]] = {}
        self.attributes: dict[str, tuple[int, dict[str, str]]] = {}
        self.removed_objects: dict[str, int] = {}
        self.walk = walk
        self.headers_checksummed = headers_checksummed
        self._seq = 0

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def dataset(self, path: str, digest: str) -> None:
        self._seq += 1
        self.datasets[path] = (digest, self._seq)

    def object_attrs(self, path: str, digests: dict[str, str], *, fresh: bool) -> None:
        """The attribute digests of the object at ``path``: all of them (``fresh``) or some more."""
        self._seq += 1
        entry = self.attributes.get(path)
        if fresh or entry is None or not self._alive(path, entry[0]):
            self.attributes[path] = (self._seq, digests)
        else:
            entry[1].update(digests)

    def attribute(self, path: str, name: str, digest: str) -> None:
        self.object_attrs(path, {name: digest}, fresh=False)

    def removed(self, path: str) -> None:
        """The object at ``path`` and everything below it were removed."""
        self.removed_objects[path] = self._next()

    def attribute_removed(self, path: str, name: str) -> None:
        entry = self.attributes.get(path)
        if entry is not None:
            entry[1].pop(name, None)

    def seed(self, manifest: Manifest) -> None:
        """Start from the digests of an existing file (an update keeps what it does not change)."""
        for path, digest in manifest.datasets.items():
            self.datasets[path] = (digest, 0)
        for path, names in manifest.attributes.items():
            self.attributes[path] = (0, dict(names))

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

    def current(self) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
        """The digests of the objects still present, as stored in the manifest."""
        if not self.removed_objects:
            datasets = {p: d for p, (d, _s) in self.datasets.items()}
            attributes = {p: a for p, (_s, a) in self.attributes.items() if a}
        else:
            datasets = {p: d for p, (d, s) in self.datasets.items() if self._alive(p, s)}
            attributes = {p: a for p, (s, a) in self.attributes.items() if a and self._alive(p, s)}
        return datasets, attributes


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
    datasets, attributes = recorder.current()
    attributes.get("/", {}).pop(MANIFEST_ATTR, None)
    manifest = {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "algorithm": ALGORITHM,
        "datasets": datasets,
        "attributes": {p: a for p, a in attributes.items() if a},
    }
    _write_text_attr(f.id, MANIFEST_ATTR, json.dumps(manifest, separators=(",", ":"), ensure_ascii=True))
    return manifest


def _walk_digests(f: h5py.File, recorder: Recorder) -> None:
    """Digest, by reading them back, every attribute and every non-Fletcher32 dataset not recorded yet."""
    datasets, attributes = recorder.current()
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
        known = attributes.get(path, {})
        for name in obj.attrs:
            if path == "/" and name == MANIFEST_ATTR:
                continue
            if name not in known:
                recorder.attribute(path, name, value_digest(obj.attrs[name]))


# --------------------------------------------------------------------------- reading


class Manifest:
    """The digests stored in a file (see the module text)."""

    __slots__ = ("path", "datasets", "attributes", "__weakref__")

    def __init__(self, path, datasets: dict[str, str], attributes: dict[str, dict[str, str]]) -> None:
        self.path = path
        self.datasets = datasets
        self.attributes = attributes

    def __len__(self) -> int:
        return len(self.datasets) + sum(len(a) for a in self.attributes.values())


def read_manifest(f: h5py.File, path=None) -> Manifest | None:
    """The manifest of an open file; None when it has none.  A damaged manifest is a ChecksumError."""
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
          and isinstance(document.get("datasets"), dict) and isinstance(document.get("attributes"), dict))
    if not ok:
        raise ChecksumError("the checksum manifest is not in the expected form", path=path, obj=where,
                            expected=f"a {MANIFEST_FORMAT!r} document", found=repr(str(document)[:80]),
                            hint="the file is damaged; restore it from a copy or load with verify=False")
    if document.get("version") != MANIFEST_VERSION or document.get("algorithm") != ALGORITHM:
        raise FormatError("unsupported checksum manifest", path=path, obj=where,
                          expected=f"version {MANIFEST_VERSION}, algorithm {ALGORITHM}",
                          found=f"version {document.get('version')!r}, algorithm {document.get('algorithm')!r}",
                          hint="upgrade h5stream")
    return Manifest(path, document["datasets"], document["attributes"])


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


def check_attrs(obj, values: Mapping[str, Any] | None = None, manifest: Manifest | None | bool = True) -> None:
    """Check the attributes of ``obj`` that have digests (``values``: those already read)."""
    if manifest is True:
        manifest = manifest_for(obj)
    if manifest is None or manifest is False:
        return
    where = obj.name
    expected = manifest.attributes.get(where)
    if not expected:
        return
    for name, digest in expected.items():
        if where == "/" and name == MANIFEST_ATTR:
            continue
        if values is not None and name in values:
            value = values[name]
        else:
            try:
                value = obj.attrs[name]
            except KeyError:
                raise ChecksumError("an attribute listed in the checksum manifest is missing",
                                    path=manifest.path, obj=f"{where.rstrip('/')}/@{name}",
                                    expected="the attribute", found="nothing",
                                    hint="the file is damaged or was edited by another tool") from None
        check_value(manifest, f"{where.rstrip('/')}/@{name}", digest, value)


def attr_value(obj, name: str, default=None):
    """``obj.attrs.get(name, default)``, checked against its digest when the file's manifest is attached."""
    attrs = obj.attrs
    if name not in attrs:
        return default
    value = attrs[name]
    manifest = manifest_for(obj)
    if manifest is not None:
        expected = manifest.attributes.get(obj.name, {}).get(name)
        check_value(manifest, f"{obj.name.rstrip('/')}/@{name}", expected, value)
    return value
