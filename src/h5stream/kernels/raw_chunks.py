"""A raw source's rows streamed in chunks to a kernel, the next chunk read while the kernel works.

The source is any array-like of shape ``(samples, *electrodes)`` that slices along its
first axis (numpy array, memmap, h5py dataset).  An h5py dataset whose rows lie in
plain runs of bytes (or a source offering ``open_direct_rows()``) is read by
:mod:`h5stream.kernels.direct_rows` into aligned buffers, one array per run of the
file (no move to make the chunk one array); other sources are sliced (h5py's
``read_direct`` into a reused buffer where it has one).

Two buffers take turns: a read-ahead thread fills one while the caller works on the
other, so the storage stays busy as long as the work on a chunk is quicker than its
read.  :class:`RawChunks` owns that thread and the direct reader; close it (or use it
as a context manager) to release them.
"""

from __future__ import annotations

import concurrent.futures
import sys
import time

import numpy as np

from h5stream.kernels.direct_rows import open_direct_rows

__all__ = ["RawChunks"]


class RawChunks:
    """Rows ``[first, stop)`` of ``raw`` as ``(start, rows)`` pairs, ``chunk`` rows at a time.

    ``rows``: an array (rows, channels), or a list of them, the chunk's rows in order
    (read directly, one per run of the file the rows lie in).  Each chunk's rows view a
    buffer that the read of the chunk after next reuses: take what you need from them
    before asking for the next but one.

    ``prefetch``: read the next chunk in a background thread while the caller works on
    the current one.  ``direct_io``: read a source stored as plain runs of bytes with
    :mod:`h5stream.kernels.direct_rows` (each piece from the page cache when it holds the
    piece, else directly; ``copy_threads`` pieces copied from the cache at a time, default
    its ``depth``); False slices it.  ``wait``: called with the wall seconds the caller
    waited for each chunk.  :attr:`bytes_read` says how many bytes each path read.
    """

    def __init__(self, raw, n_channels: int, first: int, stop: int, chunk: int, *, prefetch: bool = True,
                 direct_io: bool = True, copy_threads: int | None = None, wait=None) -> None:
        self.raw = raw
        self.n_channels = int(n_channels)
        self.first, self.stop, self.chunk = int(first), int(stop), int(chunk)
        self._wait = wait
        self._sliced = 0
        self.direct = _open_direct(raw) if direct_io else None
        if self.direct is not None and copy_threads is not None:
            self.direct.copy_threads = copy_threads
        self._counted = None
        self._reader = (concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="raw-chunks")
                        if prefetch else None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.shutdown(wait=True, cancel_futures=True)
            self._reader = None
        if self.direct is not None:
            self._counted = self.bytes_read
            self.direct.close()
            self.direct = None

    @property
    def bytes_read(self) -> dict[str, int]:
        """Bytes read so far by each path: ``cached`` (copied from the page cache), ``direct``
        (``O_DIRECT``), ``sliced`` (the source's own reads: h5py, numpy)."""
        if self.direct is None and self._counted is not None:
            return dict(self._counted, sliced=self._sliced)
        cached, direct = (0, 0) if self.direct is None else (self.direct.bytes_cached, self.direct.bytes_direct)
        return {"cached": cached, "direct": direct, "sliced": self._sliced}

    def __iter__(self):
        first, stop, chunk = self.first, self.stop, self.chunk
        rows = min(chunk, max(stop - first, 1))
        if self.direct is not None:
            spare = [self.direct.buffer(rows) for _ in range(2)]  # aligned, for reads past the page cache
            read = self._read_runs
        else:
            spare = ([np.empty((rows, self.n_channels), dtype=self.raw.dtype) for _ in range(2)]
                     if hasattr(self.raw, "read_direct") else [None, None])
            read = self._read_sliced
        pos = first
        pending = self._submit(read, pos, min(pos + chunk, stop), spare[0])
        n_read = 1
        while pos < stop:
            t0 = time.perf_counter()
            block = pending.result()
            if self._wait is not None:
                self._wait(time.perf_counter() - t0)
            nxt = min(pos + chunk, stop)
            if nxt < stop:
                pending = self._submit(read, nxt, min(nxt + chunk, stop), spare[n_read % 2])
                n_read += 1
            yield pos, block
            pos = nxt

    def _read_runs(self, a: int, b: int, out: np.ndarray) -> list[np.ndarray]:
        """The rows of each run of the file where they were read (no move)."""
        return [piece.reshape(-1, self.n_channels) for piece in self.direct.read_runs(a, b, out)]

    def _read_sliced(self, a: int, b: int, out: np.ndarray | None) -> np.ndarray:
        rows = _read_rows(self.raw, a, b, self.n_channels, out)
        self._sliced += rows.nbytes
        return rows

    def _submit(self, read, a, b, out):
        if b <= a:
            return _Ready(None)
        if self._reader is None:
            return _Ready(read(a, b, out))
        return self._reader.submit(read, a, b, out)


def _read_rows(raw, a: int, b: int, n_channels: int, out: np.ndarray | None = None) -> np.ndarray:
    if out is not None and hasattr(raw, "read_direct"):
        # h5py: read straight into a reused buffer (no fresh allocation and page faults per chunk)
        view = out[: b - a]
        raw.read_direct(view.reshape((b - a, *raw.shape[1:])), source_sel=np.s_[a:b])
        return view
    block = np.asarray(raw[a:b])
    return np.ascontiguousarray(block.reshape(b - a, n_channels))


def _open_direct(raw):
    """A direct row reader for an h5py dataset stored as plain runs of bytes (or for a source
    offering ``open_direct_rows()``), else None: the source is then sliced."""
    h5py = sys.modules.get("h5py")
    if h5py is not None and isinstance(raw, h5py.Dataset):
        return open_direct_rows(raw)
    opener = getattr(raw, "open_direct_rows", None)
    return opener() if callable(opener) else None


class _Ready:
    """A finished read for the no-prefetch path (same ``result()`` as a future)."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value
