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
from collections.abc import Iterator, Mapping
from typing import Any

import h5py
import numpy as np

from h5stream.errors import ChecksumError, FormatError

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
    "check_file",
    "check_summary",
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


def _utf8(item) -> bytes:
    if isinstance(item, (bytes, np.bytes_)):
        return bytes(item)
    return str(item).encode("utf-8", "surrogatepass")


_SCALAR_TEXT = zlib.crc32(b"text|()")


def text_digest(values, shape: tuple[int, ...] | None = None) -> str:
    """CRC-32 of ``"text|<shape>"`` and each string's UTF-8 length (8 bytes LE) and bytes."""
    if isinstance(values, (str, bytes)) and shape is None:
        raw = values if isinstance(values, bytes) else values.encode("utf-8", "surrogatepass")
        crc = zlib.crc32(raw, zlib.crc32(len(raw).to_bytes(8, "little"), _SCALAR_TEXT))
        return f"{crc:08x}"
    if isinstance(values, (str, bytes, np.str_, np.bytes_)):
        items, shape = [values], () if shape is None else shape
    else:
        array = np.asarray(values, dtype=object)
        items, shape = array.ravel().tolist(), array.shape
    crc = _header_crc("text", tuple(shape))
    for item in items:
        raw = _utf8(item)
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


# --------------------------------------------------------------------------- Fletcher32 (HDF5's filter)

_WEIGHTS = np.arange(1 << 20, dtype=np.int64)


def _fold(total: int) -> int:
    # HDF5 reduces its sums with end-around carry: 0 only for all-zero data, else 1..65535.
    return 0 if total == 0 else (total - 1) % 65535 + 1


_library_fletcher32: Any = False


def _library_checksum():
    """``H5_checksum_fletcher32`` of the libhdf5 h5py loaded (C speed, the GIL released), or None."""
    global _library_fletcher32
    if _library_fletcher32 is False:
        _library_fletcher32 = None
        from h5stream.tree.lowlevel import native_hdf5

        native = native_hdf5()
        if native is not None:
            import ctypes

            try:
                function = ctypes.CDLL(native.path).H5_checksum_fletcher32
            except (OSError, AttributeError):
                function = None
            if function is not None:
                function.restype = ctypes.c_uint32
                function.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
                _library_fletcher32 = function
    return _library_fletcher32


def fletcher32(data) -> int:
    """HDF5's Fletcher32 checksum (``H5_checksum_fletcher32``) of ``data`` (bytes-like).

    Big-endian 16-bit words; an odd last byte counts as the high byte of a word.
    Computed by libhdf5's own function when it can be called directly, else by
    the same arithmetic in numpy.
    """
    raw = np.frombuffer(memoryview(data).cast("B"), np.uint8)
    library = _library_checksum()
    if library is not None:
        return int(library(raw.ctypes.data, raw.size)) if raw.size else 0
    return _fletcher32_numpy(raw)


def _fletcher32_numpy(raw: np.ndarray) -> int:
    n = raw.size // 2
    words = raw[: 2 * n].view(">u2").astype(np.int64)
    if raw.size % 2:
        words = np.append(words, np.int64(raw[-1]) << 8)
        n += 1
    if n == 0:
        return 0
    weights = _WEIGHTS[:n] if n <= _WEIGHTS.size else np.arange(n, dtype=np.int64)
    sum1 = int(words.sum())
    # sum2 = sum over i of (sum of words[0..i]) = n * sum1 - sum(j * words[j])
    sum2 = n * sum1 - int(np.dot(weights, words))
    return (_fold(sum2) << 16) | _fold(sum1)


def append_fletcher32(chunk) -> bytes:
    """A filtered chunk followed by its Fletcher32 checksum, as HDF5's filter stores it."""
    return bytes(chunk) + fletcher32(chunk).to_bytes(4, "little")


def strip_fletcher32(stored, *, path=None, obj: str | None = None, where: str = "") -> memoryview:
    """The chunk bytes before the Fletcher32 checksum, after checking it.

    HDF5 accepts the checksum in either byte order (old libraries wrote it swapped).
    """
    view = memoryview(stored).cast("B")
    if len(view) < 4:
        raise ChecksumError("a stored chunk is shorter than its checksum", path=path, obj=obj,
                            expected="at least 4 bytes", found=f"{len(view)} bytes{where}")
    body = view[:-4]
    expected = int.from_bytes(view[-4:], "little")
    found = fletcher32(body)
    swapped = int.from_bytes(found.to_bytes(4, "little"), "big")
    if expected not in (found, swapped):
        raise ChecksumError("a stored chunk does not match its Fletcher32 checksum", path=path, obj=obj,
                            expected=f"fletcher32 {expected:08x}", found=f"fletcher32 {found:08x}{where}",
                            hint="the file is damaged; restore it from a copy")
    return body


def has_fletcher32(dsid) -> bool:
    """True when the dataset's filter pipeline ends with Fletcher32."""
    dcpl = dsid.get_create_plist()
    n = dcpl.get_nfilters()
    return any(dcpl.get_filter(i)[0] == h5py.h5z.FILTER_FLETCHER32 for i in range(n))


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


def _mismatch(manifest: Manifest, obj: str, expected: str, found: str) -> ChecksumError:
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
        raise _mismatch(manifest, obj, expected, found)


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


_FLETCHER_WORDS = ("checksum", "fletcher", "data error detected by")


def fletcher32_failure(exc: BaseException, path, obj: str | None) -> ChecksumError | None:
    """HDF5's checksum failure (a chunk's Fletcher32, a header's checksum) as a ChecksumError; else None."""
    if isinstance(exc, ChecksumError):
        return exc
    text = str(exc)
    lowered = text.lower()
    if not any(word in lowered for word in _FLETCHER_WORDS):
        return None
    what = "the object header" if "metadata" in lowered else "a stored chunk"
    return ChecksumError(f"HDF5 found that {what} does not match its checksum ({text[:200]})", path=path, obj=obj,
                         expected="the checksum stored with the data", found="different data",
                         hint="the file is damaged; restore it from a copy")


@contextlib.contextmanager
def checked_read(path, obj: str | None, *, dataset=None) -> Iterator[None]:
    """Turn HDF5's checksum failures inside the block into :class:`ChecksumError` naming ``obj``.

    ``path`` is the file's path, or an h5py object of the file (its name is then
    looked up only when something fails).  With ``dataset`` (the h5py dataset
    being read), a filter failure of a dataset whose pipeline ends with
    Fletcher32 is a ChecksumError too: HDF5 undoes Fletcher32 first, so a
    damaged stored chunk fails there (HDF5 reports it as a filter failure).
    """
    try:
        yield
    except (OSError, RuntimeError) as exc:
        if isinstance(path, (h5py.HLObject, h5py._objects.ObjectID)):
            try:
                path = (path if isinstance(path, h5py.HLObject) else h5py.Group(path)).file.filename
            except Exception:  # noqa: BLE001 - the name is only for the message
                path = None
        mapped = fletcher32_failure(exc, path, obj)
        if mapped is None and dataset is not None and "filter" in str(exc).lower():
            with contextlib.suppress(Exception):
                if dataset.chunks is not None and has_fletcher32(dataset.id):
                    mapped = ChecksumError(
                        f"a stored chunk fails its Fletcher32 checksum ({str(exc)[:200]})", path=path, obj=obj,
                        expected="the Fletcher32 checksum stored with each chunk", found="a chunk that differs",
                        hint="the file is damaged; restore it from a copy")
        if mapped is None or mapped is exc:
            raise
        raise mapped from exc


# --------------------------------------------------------------------------- whole-file check

_BLOCK_BYTES = 16 << 20


def _read_blocks(ds) -> Iterator[np.ndarray]:
    """All of a fixed-size dataset in C-order row blocks of about 16 MiB."""
    if ds.ndim == 0:
        yield np.asarray(ds[()])
        return
    row_bytes = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
    step = max(1, _BLOCK_BYTES // row_bytes)
    if ds.chunks is not None:
        step = max(ds.chunks[0], step // ds.chunks[0] * ds.chunks[0])  # whole chunks per block
    for start in range(0, ds.shape[0], step):
        yield ds[start:start + step]


def _in_checksummed_header(layout: int, header_version: int) -> bool:
    """True for a compact dataset in a version-2 object header (HDF5 checksums the header and its data)."""
    return layout == h5py.h5d.COMPACT and header_version >= 2


_VLEN_READ_TYPES: dict[int, Any] = {}


def _vlen_read_type(cset: int):
    """The memory type h5py reads a variable-length string attribute of character set ``cset`` with."""
    entry = _VLEN_READ_TYPES.get(cset)
    if entry is None:
        dtype = h5py.string_dtype("utf-8" if cset == h5py.h5t.CSET_UTF8 else "ascii")
        entry = _VLEN_READ_TYPES[cset] = (dtype, h5py.h5t.py_create(dtype))
    return entry


def _read_attr(oid, name: str):
    """Attribute ``name`` of the object ``oid`` as ``obj.attrs[name]`` returns it (KeyError: missing).

    A scalar variable-length string (most digested attributes) is read directly
    through the low-level API, as h5py reads it (a ``str``, undecodable bytes
    kept by ``surrogateescape``); any other attribute through h5py itself.
    """
    aid = h5py.h5a.open(oid, name.encode("utf-8"))
    tid = aid.get_type()
    if (isinstance(tid, h5py.h5t.TypeStringID) and tid.is_variable_str()
            and aid.get_space().get_simple_extent_type() == h5py.h5s.SCALAR):
        dtype, mtype = _vlen_read_type(tid.get_cset())
        buffer = np.zeros((), dtype=dtype)
        aid.read(buffer, mtype=mtype)
        item = buffer[()]
        return item.decode("utf-8", "surrogateescape") if isinstance(item, bytes) else item
    holder = h5py.Group(oid) if isinstance(oid, h5py.h5g.GroupID) else h5py.Dataset(oid)
    return holder.attrs[name]


def _check_object_attrs(manifest: Manifest, oid, where: str, expected: Mapping[str, str]) -> None:
    """:func:`check_attrs` of the object ``oid`` at ``where``, reading each attribute once by its id."""
    for name, digest in expected.items():
        if where == "/" and name == MANIFEST_ATTR:
            continue
        at = f"{where.rstrip('/')}/@{name}"
        try:
            value = _read_attr(oid, name)
        except KeyError:
            raise ChecksumError("an attribute listed in the checksum manifest is missing",
                                path=manifest.path, obj=at, expected="the attribute", found="nothing",
                                hint="the file is damaged or was edited by another tool") from None
        check_value(manifest, at, digest, value)


def check_file(path: str | os.PathLike, *, f: h5py.File | None = None) -> dict:
    """Check a whole file: every digest of its manifest, and every Fletcher32 chunk by reading it.

    Datasets are read in blocks, so memory stays bounded.  Returns
    ``{"manifest": bool, "datasets": n, "fletcher32": n, "header": n,
    "attributes": n, "unchecked": n, "bytes": n}`` (``header``: compact
    datasets inside version-2 object headers, which HDF5 checksums;
    ``unchecked``: datasets with no checksum at all).  Raises :class:`ChecksumError` at the first mismatch, naming the object.

    Objects are opened once each through the low-level API (a group only when
    the manifest lists attributes of it); the h5py dataset is made only for the
    datasets whose values are read.
    """
    own = f is None
    if own:
        from h5stream.files.validated import open_validated

        f = open_validated(path)
    label = os.fspath(path)
    try:
        manifest = read_manifest(f, label)
        stats = {"manifest": manifest is not None, "datasets": 0, "fletcher32": 0, "header": 0, "attributes": 0,
                 "unchecked": 0, "bytes": 0}
        attributes = manifest.attributes if manifest is not None else {}
        digests = manifest.datasets if manifest is not None else {}
        # (name, object type, object header version) of every object, from one visit of the file.
        names: list[tuple[bytes, int, int]] = []
        h5py.h5o.visit(f.id, lambda name, info: names.append((name, info.type, info.hdr.version)), info=True)
        is_dataset = h5py.h5o.TYPE_DATASET
        for raw, kind, header_version in [(b".", h5py.h5o.TYPE_GROUP, 0)] + names:
            name = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            where = "/" if name == "." else "/" + name
            expected_attrs = attributes.get(where)
            if kind != is_dataset and not expected_attrs:
                continue  # nothing of this object to check
            oid = None
            try:
                oid = h5py.h5o.open(f.id, raw)
                if expected_attrs:
                    _check_object_attrs(manifest, oid, where, expected_attrs)
                    stats["attributes"] += len(expected_attrs)
                if kind != is_dataset or not isinstance(oid, h5py.h5d.DatasetID):
                    continue
                if oid.get_space().get_simple_extent_type() == h5py.h5s.NULL:
                    continue  # no value (h5py's shape None)
                dcpl = oid.get_create_plist()
                layout = dcpl.get_layout()
                fletcher = layout == h5py.h5d.CHUNKED and any(
                    dcpl.get_filter(i)[0] == h5py.h5z.FILTER_FLETCHER32 for i in range(dcpl.get_nfilters()))
                expected = digests.get(where)
                if not fletcher and expected is None:
                    if _in_checksummed_header(layout, header_version):
                        # HDF5 checked the header holding the data when the object was opened.
                        stats["header"] += 1
                        stats["bytes"] += oid.get_storage_size()
                    else:
                        stats["unchecked"] += 1
                    continue
                obj = h5py.Dataset(oid)
                if is_text_dataset(obj) or obj.dtype.hasobject:
                    data = obj[()]
                    stats["bytes"] += sum(len(_utf8(v)) for v in np.asarray(data, dtype=object).ravel().tolist())
                    if expected is not None:
                        check_value(manifest, where, expected, data, text=is_text_dataset(obj))
                else:
                    crc = digest_start(obj.dtype, obj.shape)
                    for block in _read_blocks(obj):
                        crc = digest_update(crc, block)
                        stats["bytes"] += block.nbytes
                    if expected is not None and digest_end(crc) != expected:
                        raise _mismatch(manifest, where, expected, digest_end(crc))
                stats["fletcher32" if fletcher else "datasets"] += 1
            except (OSError, RuntimeError) as exc:
                dataset = h5py.Dataset(oid) if isinstance(oid, h5py.h5d.DatasetID) else None
                with checked_read(label, where, dataset=dataset):
                    raise
        return stats
    finally:
        if own:
            f.close()


def check_summary(path, stats: dict, seconds: float) -> str:
    """One line saying what :func:`check_file` checked (for the ``verify`` commands)."""
    checked = stats["datasets"] + stats["fletcher32"] + stats["header"]
    mb = stats["bytes"] / 1e6
    text = (f"{os.fspath(path)}: OK, {checked} datasets ({stats['datasets']} by digest, "
            f"{stats['fletcher32']} by Fletcher32, {stats['header']} in checksummed headers) and "
            f"{stats['attributes']} attributes checked, "
            f"{mb:.1f} MB read in {seconds:.2f} s")
    if stats["unchecked"]:
        text += f"; {stats['unchecked']} datasets carry no checksum"
    if not stats["manifest"]:
        text += "; no checksum manifest (written before checksums or by another tool)"
    return text
