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
    time, default its ``depth``); False slices it.  ``map_held``: a chunk of such a source whose every
    page the cache holds, when its held pieces take the ``"cached"`` path, is viewed where the cache holds
    it (mapped: no copy, no fresh buffer pages; its arrays hold the mapping) rather than copied.  ``wait``:
    called with the wall seconds the caller waited for each chunk.  :attr:`bytes_read` says how many bytes
    each path read.
    """

    def __init__(self, raw, n_channels: int, first: int, stop: int, chunk: int, *, prefetch: bool = True,
                 direct_io: bool = True, copy_threads: int | None = None, wait=None, map_held: bool = True) -> None:
        self.raw = raw
        self.map_held = map_held
        self._mapped = 0
        self._written: set[int] = set()  # the buffers a read landed in
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
            if self.direct is not None:
                # a chunk read ahead that nobody will take (a pass stopped, or an error, before its end) ends at
                # its next piece, not after all of them: a stop waited here for up to a second under load
                self.direct.abandon()
            self._reader.shutdown(wait=True, cancel_futures=True)
            self._reader = None
        if self.direct is not None:
            self._counted = self.bytes_read
            self.direct.close()
            self.direct = None

    @property
    def bytes_read(self) -> dict[str, int]:
        """Bytes read so far by each path: ``cached`` (copied from the page cache), ``direct``
        (``O_DIRECT``), ``sliced`` (the source's own reads: h5py, numpy), ``mapped`` (viewed in the page
        cache, not copied)."""
        if self.direct is None and self._counted is not None:
            return dict(self._counted, sliced=self._sliced, mapped=self._mapped)
        cached, direct = (0, 0) if self.direct is None else (self.direct.bytes_cached, self.direct.bytes_direct)
        return {"cached": cached, "direct": direct, "sliced": self._sliced, "mapped": self._mapped}

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
            block, held, fresh = pending.result()
            now = time.perf_counter()
            if self._wait is not None:
                self._wait(now - t0)
            nxt = min(pos + chunk, stop)
            if handed is not None and not fresh:  # a fresh buffer's read also backs its pages: no measure
                # the pass's cycle: the caller's work on the chunk before (slowed by this chunk's read,
                # running beside it) and the wait for this one
                self.held_path.record(held, nxt - pos, now - handed)
            if nxt < stop:
                out = spare[n_read % 2]  # fresh until a read lands in it (a mapped chunk's does not)
                unwritten = n_read < 2 if out is None or self.direct is None else out.ctypes.data not in self._written
                pending = self._submit(read, nxt, min(nxt + chunk, stop), out, fresh=unwritten)
                n_read += 1
            handed = time.perf_counter()
            yield pos, block
            pos = nxt

    def _read_runs(self, a: int, b: int, out: np.ndarray, held: str) -> list[np.ndarray]:
        """The rows of each run of the file where they were read (no move), or where the page cache holds
        them (:meth:`h5stream.kernels.direct_rows.DirectRows.map_runs`) when ``map_held`` and it holds them all."""
        mapped = self.direct.map_runs(a, b) if self.map_held and held == "cached" else None
        if mapped is not None:
            self._mapped += sum(piece.nbytes for piece in mapped)
            return [piece.reshape(-1, self.n_channels) for piece in mapped]
        self._written.add(out.ctypes.data)
        return [piece.reshape(-1, self.n_channels) for piece in self.direct.read_runs(a, b, out, held)]

    def _read_sliced(self, a: int, b: int, out: np.ndarray | None, held: str) -> np.ndarray:
        rows = _read_rows(self.raw, a, b, self.n_channels, out)
        self._sliced += rows.nbytes
        return rows

    def _submit(self, read, a, b, out, fresh=False):
        if b <= a:
            return _Ready((None, "none", fresh))
        # a fresh buffer's held pieces take the path the pass starts on (a read into it measures no path;
        # see HeldPath); a sliced source has no choice of path to measure
        left = -(-(self.stop - b) // self.chunk)  # chunks after this one
        held = ("sliced" if self.direct is None else self.held_path.path if fresh else self.held_path.next(left))
        if self._reader is None:
            return _Ready((read(a, b, out, held), held, fresh))
        return self._reader.submit(lambda: (read(a, b, out, held), held, fresh))


class HeldPath:
    """Where a streamed pass reads the pieces of a chunk that the page cache holds: copied from the
    cache (``"cached"``) or read directly (``"direct"``), whichever keeps the pass going faster.

    A copy from the cache costs CPU that the work on the rows then lacks; a direct read of a page
    the cache holds costs almost no CPU but reads the disk again.  Which is right depends on the
    machine and its load: on a 16-core node whose disk reads 1.5 GB/s, direct reads cannot feed 16
    threads of the electrical-image kernel (up to 15 GB/s) while copies from several threads can; on
    this project's 2-core virtual machine, whose disk reads come from the host's cache at 1-4 GB/s,
    either may win, by the hour.

    So a pass starts where the pages are, copying them from the cache (the fresh buffers' first two
    chunks too), and measures its cycle: per chunk, the wall time from handing the chunk before to
    the caller to handing this one (the caller's work on the chunk before, slowed by the reads
    running beside it, plus its wait for this one), in seconds per row.  The fresh buffers' chunks
    are no measure (backing their pages costs about as much as the read on a virtual machine).
    After :data:`SETTLE` measured cycles on the path it is on, the pass tries the other path for one
    chunk, and every :data:`REVISIT` chunks after; it leaves the path it is on only when the other's
    cost is below it by :data:`MARGIN` (hysteresis), each path's cost being the least of its last
    :data:`KEEP` cycles: other processes only ever add time, so the least is the measure least
    polluted by them, and the incumbent, measured :data:`SETTLE` times before the one trial, is not
    left for one lucky cycle of the other or kept for one slow cycle of its own.  A trial costs a
    chunk on what may be the slower path (direct reads ran 1.5x the copies' cycle on the 2-core
    machine) and a switch gains at least :data:`MARGIN` on each chunk after it, so no trial starts
    with fewer than :data:`AFTER_TRIAL` chunks left after it: a pass of 8 chunks keeps the copies.

    Earlier passes began with direct reads and calibrated one chunk of each path: on the 2-core
    machine, with 8 chunks to a pass, one cycle slowed by another process decided the pass, and the
    pass's own choice ran at 0.67x of copying forced (cached 2.1 GB file, 1 thread, min of 3
    interleaved rounds: 0.85 s against 0.58 s), while a node with a slow disk read the first chunks
    of a cached file from the disk.  Pieces the cache lacks are always read directly, whichever path.
    """

    MARGIN = 1.1
    SETTLE = 2
    AFTER_TRIAL = 4
    REVISIT = 8
    KEEP = 3

    def __init__(self) -> None:
        self.cycles: dict[str, list[float]] = {"direct": [], "cached": []}
        self.chosen = "cached"
        self.switches = 0
        self._since_trial = 0  # cycles measured on the chosen path since the last trial of the other
        self._trial_pending = False

    def cost(self, path: str) -> float | None:
        """The least of ``path``'s last :data:`KEEP` cycles in seconds per row, None before any."""
        seen = self.cycles[path]
        return min(seen) if seen else None

    @property
    def path(self) -> str:
        """The path the pass keeps now (held pieces of the chunks that are no trial of the other)."""
        return self.chosen

    @property
    def other(self) -> str:
        return "direct" if self.chosen == "cached" else "cached"

    def next(self, left: int | None = None) -> str:
        """The path of the held pieces of the next chunk: :attr:`path`, or a trial of the other once
        the chosen path has :data:`SETTLE` measured cycles (the first trial) or :data:`REVISIT` more,
        and at least :data:`AFTER_TRIAL` chunks remain after it (``left``: the chunks after this one,
        None if unknown) for a gain to repay the trial."""
        if self._trial_pending or (left is not None and left < self.AFTER_TRIAL):
            return self.path
        due = self.SETTLE if not self.cycles[self.other] else self.REVISIT
        if self._since_trial >= due:
            self._trial_pending = True
            return self.other
        return self.path

    def record(self, path: str, rows: int, seconds: float) -> None:
        """A cycle of the pass over a chunk of ``rows`` whose held pieces took ``path`` lasted ``seconds``."""
        if path not in self.cycles or seconds <= 0 or rows <= 0:
            return
        seen = self.cycles[path]
        seen.append(seconds / rows)
        del seen[: -self.KEEP]
        if path == self.chosen:
            self._since_trial += 1
        else:
            self._trial_pending, self._since_trial = False, 0
        here, there = self.cost(self.chosen), self.cost(self.other)
        if here is not None and there is not None and there * self.MARGIN < here:
            self.chosen, self._since_trial = self.other, 0
            self.switches += 1


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
