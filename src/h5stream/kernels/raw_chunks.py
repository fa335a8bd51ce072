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

__all__ = ["HeldPath", "RawChunks"]


class RawChunks:
    """Rows ``[first, stop)`` of ``raw`` as ``(start, rows)`` pairs, ``chunk`` rows at a time.

    ``rows``: an array (rows, channels), or a list of them, the chunk's rows in order
    (read directly, one per run of the file the rows lie in).  Each chunk's rows view a
    buffer that the read of the chunk after next reuses: take what you need from them
    before asking for the next but one.

    ``prefetch``: read the next chunk in a background thread while the caller works on
    the current one.  ``direct_io``: read a source stored as plain runs of bytes with
    :mod:`h5stream.kernels.direct_rows` (pieces the page cache lacks directly, the ones it
    holds as :class:`HeldPath` decides; ``copy_threads`` pieces copied from the cache at a
    time, default its ``depth``); False slices it.  ``wait``: called with the wall seconds the caller
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
        self.held_path = HeldPath()
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
        pending = self._submit(read, pos, min(pos + chunk, stop), spare[0], fresh=True)
        n_read = 1
        handed = None  # when the last chunk was handed to the caller
        while pos < stop:
            t0 = time.perf_counter()
            if handed is not None:  # the caller's work on the chunk before
                self.held_path.record_work(last_rows, t0 - handed)
            block, path, seconds, fresh = pending.result()
            if self._wait is not None:
                self._wait(time.perf_counter() - t0)
            if not fresh:  # a fresh buffer's reads also pay for backing its pages: no measure of a path
                self.held_path.record_read(path, min(pos + chunk, stop) - pos, seconds)
            nxt = min(pos + chunk, stop)
            if nxt < stop:
                pending = self._submit(read, nxt, min(nxt + chunk, stop), spare[n_read % 2], fresh=n_read < 2)
                n_read += 1
            last_rows, handed = nxt - pos, time.perf_counter()
            yield pos, block
            pos = nxt

    def _read_runs(self, a: int, b: int, out: np.ndarray, held: str) -> tuple[list[np.ndarray], str, float]:
        """The rows of each run of the file where they were read (no move), the path every piece took
        (``"direct"``, ``"cached"``, or ``"mixed"``) and the seconds it took."""
        cached, t0 = self.direct.bytes_cached, time.perf_counter()
        rows = [piece.reshape(-1, self.n_channels) for piece in self.direct.read_runs(a, b, out, held)]
        seconds = time.perf_counter() - t0
        copied = self.direct.bytes_cached - cached  # only this thread reads while the pass runs
        path = "direct" if not copied else "cached" if copied >= (b - a) * self.direct.row_bytes else "mixed"
        return rows, path, seconds

    def _read_sliced(self, a: int, b: int, out: np.ndarray | None, held: str) -> tuple[np.ndarray, str, float]:
        t0 = time.perf_counter()
        rows = _read_rows(self.raw, a, b, self.n_channels, out)
        self._sliced += rows.nbytes
        return rows, "sliced", time.perf_counter() - t0

    def _submit(self, read, a, b, out, fresh=False):
        if b <= a:
            return _Ready((None, "none", 0.0, fresh))
        # a fresh buffer's held pieces are read directly (a read into it measures no path; see HeldPath)
        held = "direct" if fresh else self.held_path.next()
        if self._reader is None:
            return _Ready((*read(a, b, out, held), fresh))
        return self._reader.submit(lambda: (*read(a, b, out, held), fresh))


class HeldPath:
    """Where a streamed pass reads the pieces of a chunk that the page cache holds: directly while
    direct reads outpace the caller's work on the rows, else copied from the cache.

    A direct read of a page the cache holds reads it from the disk again, but costs almost no CPU;
    a copy from the cache costs CPU that the work on the rows then lacks.  Which is right depends
    on the machine and its load: on a 16-core node whose disk reads 1.5 GB/s, direct reads cannot
    feed 16 threads of the electrical-image kernel (up to 15 GB/s) while copies from several
    threads can; on this project's 2-core virtual machine, whose disk reads come from the host's
    cache at 3.5 GB/s, direct reads outpace the kernel, and copying slowed the step (a cached
    2.1 GB file, median of 6 interleaved rounds under load: 2.24 s copying, 1.61 s reading directly).

    The rates are measured as the pass goes, in rows per second: reads (the wall time of each chunk
    read, in the read-ahead thread; ``direct`` when every piece was read directly, ``cached`` when
    the held pieces were copied) and the caller's work (the time from handing it a chunk to its
    asking for the next).  The reads into each of the two buffers' fresh pages (the first two
    chunks) are not measures of a path (backing the pages costs about as much as the read on a
    virtual machine), and their held pieces are read directly: copying into fresh pages cost this
    project's machine (shared, loaded) 0.3-0.6 s of system time more per pass than reading directly
    into them.  The third chunk is read directly, as a measure.  From then on held pieces are read
    directly while direct reads are at least :data:`MARGIN` times as fast as
    the work (the read then hides behind the work at no CPU cost) or copies have proved no faster
    than direct reads, else copied.  Each rate is a running mean (the last reading and the mean
    before it weigh alike), so the choice follows the load; while held pieces are copied, every
    :data:`REVISIT` chunks one is read directly again when the call was close (direct reads at least
    a third as fast as needed), so that one slow reading on a busy machine does not settle the rest
    of the pass.  Pieces the cache lacks are always read directly.
    """

    MARGIN = 1.2
    REVISIT = 8

    def __init__(self) -> None:
        self.rates: dict[str, float | None] = {"direct": None, "cached": None}
        self.work_rate: float | None = None
        self._copied = 0

    @property
    def direct_rate(self) -> float | None:
        return self.rates["direct"]

    @property
    def path(self) -> str:
        """The path held pieces take now: ``"direct"`` or ``"cached"``."""
        direct, cached, work = self.rates["direct"], self.rates["cached"], self.work_rate
        if direct is None or work is None or direct >= self.MARGIN * work:
            return "direct"
        return "cached" if cached is None or cached > direct else "direct"

    def next(self) -> str:
        """The path of the held pieces of the next chunk (:attr:`path`, or a direct read to measure again)."""
        path = self.path
        if path == "direct":
            self._copied = 0
            return path
        self._copied += 1
        if self._copied % self.REVISIT == 0 and 3 * self.rates["direct"] >= self.MARGIN * self.work_rate:
            return "direct"
        return path

    def record_read(self, path: str, rows: int, seconds: float) -> None:
        """A chunk of ``rows`` was read along ``path`` (``"direct"``, ``"cached"``) in ``seconds``."""
        if path in self.rates and seconds > 0 and rows > 0:
            self.rates[path] = _running_mean(self.rates[path], rows / seconds)

    def record_work(self, rows: int, seconds: float) -> None:
        """The caller worked ``seconds`` on a chunk of ``rows``."""
        if seconds > 0 and rows > 0:
            self.work_rate = _running_mean(self.work_rate, rows / seconds)


def _running_mean(old: float | None, new: float) -> float:
    return new if old is None else 0.5 * (old + new)


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
