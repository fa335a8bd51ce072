"""The digests of :mod:`h5stream.checksums`: CRC-32 of values as written, or as h5py reads them back.

What a digest covers (:func:`value_digest`): for numbers, booleans and
fixed-width bytes the text ``"<dtype.str>|<shape>"`` followed by the raw bytes
in C order; for text (a string, or an array of strings) the text
``"text|<shape>"`` followed by, per string, its UTF-8 length (8 bytes, little
endian) and its UTF-8 bytes.  The stored digest is the CRC-32 of that stream,
as 8 lowercase hex digits.

A digest of a short text is the same whatever object holds it, so repeated
texts (feature metadata shared by all units) are digested once per process
(:func:`scalar_text_digest`).  :mod:`h5stream.checksums` re-exports these names.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import h5py
import numpy as np

from h5stream.native import compiled, libdeflate

#: the compiled attribute kernel (strings and numpy scalars written and digested in one call)
_h5attrs = compiled("_h5attrs")
#: the compiled dataset kernel (here: many arrays' digests checked in one call)
_h5dsets = compiled("_h5dsets")
_h5dsets.configure_crc(libdeflate.CRC32_ADDRESS or 0)

__all__ = [
    "LIBDEFLATE_CRC32",
    "array_digest",
    "first_changed",
    "array_digests",
    "parts_digest",
    "digest_start",
    "digest_update",
    "digest_end",
    "utf8_bytes",
    "scalar_text_digest",
    "text_digest",
    "value_digest",
    "is_text_value",
    "is_text_dataset",
    "dataset_digest",
    "read_blocks",
    "stored_digest",
]

#: the array kinds digested as text (str, object and StringDType arrays)
_TEXT_KINDS = "OUT"


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


#: libdeflate's ``crc32(crc, address, size)`` (``zlib.crc32``'s value, over twice as fast here), or None
#: without the library (:mod:`h5stream.native.libdeflate`)
LIBDEFLATE_CRC32 = libdeflate.CRC32


def _crc32_bytes(data: np.ndarray, crc: int) -> int:
    """CRC-32 of a C-contiguous array's bytes, continuing ``crc`` (libdeflate for large arrays)."""
    return libdeflate.crc32(crc, data)


def array_digest(array: np.ndarray) -> str:
    """CRC-32 of ``"<dtype.str>|<shape>"`` and the raw bytes of a fixed-size array in C order."""
    array = np.asarray(array)
    crc = _header_crc(array.dtype.str, array.shape)
    if array.size:
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        crc = _crc32_bytes(array, crc)
    return f"{crc:08x}"


def first_changed(arrays: list, digests: list[str]) -> int:
    """The index of the first of ``arrays`` whose :func:`array_digest` is not ``digests[i]``, or -1 when all
    match: one compiled pass (no copy, no Python call per array) for C-contiguous arrays of native numbers,
    booleans and complex numbers, :func:`array_digest` for any other array."""
    return _h5dsets.first_changed(arrays, digests, array_digest)


def array_digests(arrays: list) -> list[str]:
    """:func:`array_digest` of each of ``arrays``: one compiled pass (no copy, no Python call per array) for
    C-contiguous arrays of native numbers, booleans and complex numbers, :func:`array_digest` for any other."""
    return _h5dsets.digests_of(arrays, array_digest)


def parts_digest(parts) -> str:
    """CRC-32 of byte strings taken one after the other (their concatenation), as 8 hex digits."""
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    return _hex(crc)


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


# The compiled attribute writer and checker digest strings the same way and share the cache.
if _h5attrs is not None:
    _h5attrs.configure_digests(_TEXT_DIGESTS, _CACHED_TEXT_MAX, _TEXT_DIGESTS_MAX, _SCALAR_TEXT)


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


#: the size of the blocks a stored dataset is read in to be digested
BLOCK_BYTES = 16 << 20
#: the array kinds whose blocks are read into one reused buffer (numbers and booleans: h5py reads
#: them back with the dataset's own dtype, as ``ds[()]`` gives them)
_BUFFERED_KINDS = "biufc"


def read_blocks(ds) -> Iterator[np.ndarray]:
    """All of a fixed-size dataset, in C-order row blocks of about :data:`BLOCK_BYTES` (whole chunks).

    Numbers are read into one buffer that every block reuses: a block is valid
    until the next one is read.  The memory used is one block, whatever the
    dataset's size (a whole read of a 1 GB dataset allocates and faults in
    1 GB first).
    """
    if ds.ndim == 0 or ds.size == 0:
        yield np.asarray(ds[()])
        return
    n = ds.shape[0]
    row_bytes = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
    step = max(1, BLOCK_BYTES // row_bytes)
    if ds.chunks is not None:
        step = max(ds.chunks[0], step // ds.chunks[0] * ds.chunks[0])  # whole chunks per block
    if step >= n:
        if ds.dtype.kind in _BUFFERED_KINDS:  # one read into one array, without h5py's selection machinery
            whole = np.empty(ds.shape, dtype=ds.dtype)
            ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, whole)
            yield whole
        else:
            yield np.asarray(ds[()])
        return
    buffer = np.empty((step,) + tuple(ds.shape[1:]), dtype=ds.dtype) if ds.dtype.kind in _BUFFERED_KINDS else None
    for start in range(0, n, step):
        stop = min(n, start + step)
        if buffer is None:
            yield ds[start:stop]
            continue
        block = buffer[:stop - start]
        ds.read_direct(block, np.s_[start:stop], np.s_[0:stop - start])
        yield block


def stored_digest(ds) -> str:
    """:func:`dataset_digest` of all of ``ds`` as stored, reading fixed-size values block by block
    (:func:`read_blocks`); text and object values are read whole."""
    if is_text_dataset(ds) or ds.dtype.hasobject:
        return dataset_digest(ds, ds[()])
    crc = digest_start(ds.dtype, ds.shape)
    for block in read_blocks(ds):
        crc = digest_update(crc, block)
    return digest_end(crc)
