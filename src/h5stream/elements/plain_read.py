"""Whole datasets stored as plain bytes, read with several requests in flight and digested as they land.

h5py reads an unfiltered dataset with one request at a time through the page
cache, and the digest check (:mod:`h5stream.checksums`) then reads the array a
second time from memory.  For a dataset of at least :data:`MIN_BYTES` whose rows
lie in plain runs of bytes (:func:`h5stream.kernels.direct_rows.open_direct_rows`:
contiguous, or unfiltered chunks of whole rows; native byte order; the file open
read-only on the default driver), this module reads the runs in pieces of 4 MiB
on several threads, each straight from the disk where the page cache lacks it
and copied from the cache where it holds it, and digests each piece while the
pieces after it are still being read.  The array it returns views a page-aligned
buffer a few KiB larger than the values.

A reader that knows which large datasets it will read can start them first
(:class:`ReadAhead`, or :func:`prefetching` for a block): they are read in
order while the caller reads the small objects (tables, attributes), and
:func:`read_plain_checked` then takes each one's values from there.

Anything else returns None from :func:`read_plain_checked`, and the caller reads
through h5py as before.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Iterable, Iterator

import numpy as np

from h5stream import checksums
from h5stream.kernels.direct_rows import open_direct_rows

__all__ = ["MIN_BYTES", "ReadAhead", "prefetching", "read_plain_checked"]

#: below this a single read through h5py costs less than opening the file twice more and a thread pool
MIN_BYTES = 8 * 2**20
#: bytes of one read request of a whole dataset: smaller than a streamed pass's (16 MiB, see
#: :data:`h5stream.kernels.direct_rows.DEFAULT_PIECE_BYTES`), as the pages of a fresh array are written
#: before each piece's read and the first reads start sooner.  Measured on the benchmark machine (2
#: cores), whole loads of a container with an 80 MB layer, page cache dropped, 14-24 shuffled rounds:
#: median 67-69 ms in pieces of 4 MiB against 65-83 ms in pieces of 16 MiB, and the slowest quarter of
#: the loads over 72-76 ms against 82-101 ms
PIECE_BYTES = 4 * 2**20

# datasets a caller started reading ahead (:class:`ReadAhead`): (HDF5's number of the open file, name) -> future
_started: dict[tuple, concurrent.futures.Future] = {}
_started_lock = threading.Lock()


def _key(ds) -> tuple:
    return (ds.id.fileno, ds.name)


def _open(ds, digest: bool | None = None):
    """The dataset's reader and whether to digest its bytes as they land (``digest``; None: when the
    attached manifest holds a digest of it), or None where it does not qualify."""
    if ds.ndim < 1 or ds.dtype.itemsize * ds.size < MIN_BYTES:
        return None
    rows = open_direct_rows(ds, piece_bytes=PIECE_BYTES)
    if rows is None:
        return None
    return rows, checksums.expects_digest(ds) if digest is None else digest


def _read(rows, shape: tuple[int, ...], dtype: np.dtype, digest: bool) -> tuple[np.ndarray, str | None]:
    """All rows, and their digest as the manifest computes it (``digest``), the reader closed after."""
    with rows:
        n = int(shape[0])
        values, crc = rows.read_fresh(0, n, rows.buffer(n), checksums.digest_start(dtype, shape) if digest else None)
    return _values(values, crc)


def _values(values: np.ndarray, crc: int | None) -> tuple[np.ndarray, str | None]:
    if not values.flags.aligned:
        values = values.copy()  # a dataset HDF5 placed at an odd byte: numpy computes faster on aligned values
    return values, None if crc is None else checksums.digest_end(crc)


class _Begun:
    """A whole read begun on the compiled reader's own threads (:meth:`DirectRows.start_fresh`), with the
    interface :class:`ReadAhead` keeps for a future: :meth:`result`, and :meth:`cancel` (which cannot stop
    the read: it waits for it and releases the reader)."""

    def __init__(self, rows, fresh) -> None:
        self._rows, self._fresh = rows, fresh

    def wait(self) -> None:
        self._fresh.wait()

    def result(self) -> tuple[np.ndarray, str | None]:
        try:
            return _values(*self._fresh.result())
        finally:
            self._rows.close()

    def cancel(self) -> bool:
        self._rows.close()  # waits for the read in flight
        return True


def _read_after(begun: _Begun | None, rows, shape, dtype, digest: bool):
    """:func:`_read` once ``begun`` (the read started before this one, if any) is in: one read at a time."""
    if begun is not None:
        begun.wait()
    return _read(rows, shape, dtype, digest)


def read_plain_checked(ds) -> np.ndarray | None:
    """All of ``ds`` (C order), checked against the attached manifest's digest; None where the dataset
    does not qualify (read it through h5py)."""
    with _started_lock:
        future = _started.pop(_key(ds), None) if _started else None
    if future is not None:
        values, found = future.result()
    else:
        opened = _open(ds)
        if opened is None:
            return None
        values, found = _read(opened[0], ds.shape, ds.dtype, opened[1])
    return checksums.check_dataset(ds, values, found=found)


class ReadAhead:
    """Whole datasets read in the order they are started, one at a time, until closed;
    :func:`read_plain_checked` takes each one's values from there.

    The first begins at once on the compiled reader's own threads (:meth:`DirectRows.start_fresh`: no
    thread of Python's has to be scheduled while the caller computes), the others on one background
    thread once the read before them is in (or all on that thread where the kernels were built without
    OpenMP).

    Values not taken when it closes are dropped: the read in progress is waited for, those not begun
    are not read.  A dataset that does not qualify, one already started (here or by another
    read-ahead of the same open file) and one whose layout cannot be read are left to the reader.
    """

    def __init__(self) -> None:
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._keys: list[tuple] = []
        self._first: _Begun | None = None  # the first read, begun on the compiled reader's threads

    def start(self, ds, *, digest: bool | None = None) -> bool:
        """Start reading all of ``ds`` (an h5py dataset); ``digest``: digest the bytes as they land
        (None: when the manifest attached to the file holds a digest of ``ds``; True where it is not
        attached yet).  True when the read was started."""
        key = _key(ds)
        with _started_lock:
            if key in _started:
                return False
        try:
            opened = _open(ds, digest)
        except (OSError, RuntimeError, ValueError, TypeError, KeyError):
            opened = None  # a damaged dataset: the read that takes it reports what is wrong
        if opened is None:
            return False
        rows, digested = opened
        begun = None
        if not self._keys:  # the first: begun at once on the compiled reader's threads where it can be
            n = int(ds.shape[0])
            fresh = rows.start_fresh(0, n, rows.buffer(n),
                                     checksums.digest_start(ds.dtype, ds.shape) if digested else None)
            begun = None if fresh is None else _Begun(rows, fresh)
        if begun is None and self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="plain-prefetch")
        with _started_lock:
            if key in _started:
                if begun is not None:
                    begun.cancel()
                else:
                    rows.close()
                return False
            _started[key] = begun if begun is not None else self._pool.submit(
                _read_after, self._first, rows, ds.shape, ds.dtype, digested)
        if begun is not None:
            self._first = begun
        self._keys.append((key, rows))
        return True

    def close(self) -> None:
        """Drop the values not taken, after the read in progress ends."""
        with _started_lock:
            left = [(_started.pop(key, None), rows) for key, rows in self._keys]
        self._keys = []
        for future, rows in left:
            if future is not None and future.cancel():
                rows.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._first = None

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def prefetching(datasets: Iterable) -> Iterator[None]:
    """Start reading the qualifying ones of ``datasets`` (h5py datasets the caller will read whole) on
    a background thread, in order (a :class:`ReadAhead` open for the block); inside the block
    :func:`read_plain_checked` takes their values from there."""
    with ReadAhead() as ahead:
        for ds in datasets:
            ahead.start(ds)
        yield
