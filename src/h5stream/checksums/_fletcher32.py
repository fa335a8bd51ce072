"""HDF5's Fletcher32 checksum, as its filter stores it after each chunk.

The engine's parallel gzip writer and reader write and read chunks directly,
so they compute and check the same checksum HDF5's filter does
(:func:`fletcher32`) with the compiled kernel (``h5stream._ext._compress``: AVX2 when
the CPU has it, about ten times libhdf5's scalar loop), else libhdf5's own
function, else numpy;
HDF5's own checksum failures become :class:`ChecksumError` (:func:`checked_read`).
:mod:`h5stream.checksums` re-exports these names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import h5py
import numpy as np

from h5stream.errors import ChecksumError
from h5stream.native import compiled, libhdf5

__all__ = ["fletcher32", "append_fletcher32", "strip_fletcher32", "has_fletcher32", "fletcher32_failure", "checked_read", "read_failure"]

_WEIGHTS = np.arange(1 << 20, dtype=np.int64)


def _fold(total: int) -> int:
    # HDF5 reduces its sums with end-around carry: 0 only for all-zero data, else 1..65535.
    return 0 if total == 0 else (total - 1) % 65535 + 1


#: the compiled kernel (AVX2 where available); a build without it is refused with the rebuild command
_compiled = compiled("_compress").fletcher32


def fletcher32(data) -> int:
    """HDF5's Fletcher32 checksum (``H5_checksum_fletcher32``) of ``data`` (bytes-like).

    Big-endian 16-bit words; an odd last byte counts as the high byte of a word.
    Computed by the compiled kernel without the GIL (:func:`_fletcher32_numpy` is
    the same arithmetic in numpy, the tests' reference).
    """
    return _compiled(np.frombuffer(memoryview(data).cast("B"), np.uint8))


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
    being read, or its low-level id), a filter failure of a dataset whose pipeline ends with
    Fletcher32 is a ChecksumError too: HDF5 undoes Fletcher32 first, so a
    damaged stored chunk fails there (HDF5 reports it as a filter failure).
    """
    try:
        yield
    except (OSError, RuntimeError) as exc:
        mapped = read_failure(exc, path, obj, dataset=dataset)
        if mapped is None:
            raise
        raise mapped from exc


def read_failure(exc: BaseException, path, obj: str | None, *, dataset=None) -> ChecksumError | None:
    """The :class:`ChecksumError` naming ``obj`` that the read failure ``exc`` stands for, or None (``exc`` is
    to be raised as it is); the arguments are :func:`checked_read`'s, for a reader that catches the failure
    itself."""
    if isinstance(path, (h5py.HLObject, libhdf5.ObjectID)):
        try:
            path = (path if isinstance(path, h5py.HLObject) else h5py.Group(path)).file.filename
        except Exception:  # noqa: BLE001 - the name is only for the message
            path = None
    mapped = fletcher32_failure(exc, path, obj)
    if mapped is None and dataset is not None and "filter" in str(exc).lower():
        with contextlib.suppress(Exception):
            if isinstance(dataset, h5py.h5d.DatasetID):
                dataset = h5py.Dataset(dataset)
            if dataset.chunks is not None and has_fletcher32(dataset.id):
                mapped = ChecksumError(
                    f"a stored chunk fails its Fletcher32 checksum ({str(exc)[:200]})", path=path, obj=obj,
                    expected="the Fletcher32 checksum stored with each chunk", found="a chunk that differs",
                    hint="the file is damaged; restore it from a copy")
    return None if mapped is exc else mapped
