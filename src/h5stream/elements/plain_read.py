"""Whole datasets stored as plain bytes, read with several requests in flight and digested as they land.

h5py reads an unfiltered dataset with one request at a time through the page
cache, and the digest check (:mod:`h5stream.checksums`) then reads the array a
second time from memory.  For a dataset of at least :data:`MIN_BYTES` whose rows
lie in plain runs of bytes (:func:`h5stream.kernels.direct_rows.open_direct_rows`:
contiguous, or unfiltered chunks of whole rows; native byte order; the file open
read-only on the default driver), this module reads the runs in pieces of 16 MiB
on several threads, each straight from the disk where the page cache lacks it
and copied from the cache where it holds it, and digests each piece while the
pieces after it are still being read.  The array it returns views a page-aligned
buffer a few KiB larger than the values.

A reader that knows which large datasets it will read can start them first
(:func:`prefetching`): one background thread reads them in order while the
caller reads the small objects (tables, attributes), and
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

__all__ = ["MIN_BYTES", "prefetching", "read_plain_checked"]

#: below this a single read through h5py costs less than opening the file twice more and a thread pool
MIN_BYTES = 8 * 2**20

# datasets a caller started reading ahead (:func:`prefetching`): (HDF5's number of the open file, name) -> future
_started: dict[tuple, concurrent.futures.Future] = {}
_started_lock = threading.Lock()


def _key(ds) -> tuple:
    return (ds.id.fileno, ds.name)


def _open(ds):
    """The dataset's reader and whether a digest is expected, or None where it does not qualify."""
    if ds.ndim < 1 or ds.dtype.itemsize * ds.size < MIN_BYTES:
        return None
    rows = open_direct_rows(ds)
    return None if rows is None else (rows, checksums.expects_digest(ds))


def _read(rows, shape: tuple[int, ...], dtype: np.dtype, digest: bool) -> tuple[np.ndarray, str | None]:
    """All rows, and their digest as the manifest computes it (``digest``), the reader closed after."""
    with rows:
        n = int(shape[0])
        buffer = rows.buffer(n)
        crc = checksums.digest_start(dtype, shape) if digest else None

        def landed(at: int, size: int) -> None:
            nonlocal crc
            crc = checksums.digest_update(crc, buffer[at : at + size])

        values = rows.read(0, n, buffer, landed=landed if digest else None)
    if not values.flags.aligned:
        values = values.copy()  # a dataset HDF5 placed at an odd byte: numpy computes faster on aligned values
    return values, None if crc is None else checksums.digest_end(crc)


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


@contextlib.contextmanager
def prefetching(datasets: Iterable) -> Iterator[None]:
    """Start reading the qualifying ones of ``datasets`` (h5py datasets the caller will read whole) on
    a background thread, in order; inside the block :func:`read_plain_checked` takes their values
    from there.  Values not taken by the block's end are dropped (the read in progress is waited
    for, those not begun are not read)."""
    keys = []
    pool = None
    try:
        for ds in datasets:
            try:
                opened = _open(ds)
            except (OSError, RuntimeError, ValueError, TypeError, KeyError):
                opened = None  # a damaged dataset: the read that takes it reports what is wrong
            if opened is None:
                continue
            if pool is None:
                pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="plain-prefetch")
            key = _key(ds)
            with _started_lock:
                if key in _started:
                    opened[0].close()
                    continue
                _started[key] = pool.submit(_read, opened[0], ds.shape, ds.dtype, opened[1])
            keys.append((key, opened[0]))
        yield
    finally:
        with _started_lock:
            left = [(_started.pop(key, None), rows) for key, rows in keys]
        for future, rows in left:
            if future is not None and future.cancel():
                rows.close()
        if pool is not None:
            pool.shutdown(wait=True)
