"""Rows of an HDF5 dataset stored in plain runs of bytes: read straight from the disk (``O_DIRECT``)
where the page cache lacks them, from the page cache where it holds them, several requests in flight.

A streamed pass over a large raw file reads every byte exactly once.  Through
the page cache the kernel copies each page into the caller's buffer, which costs
about one core for the whole read (and much more when the machine is busy),
CPU that the filter and the averaging then lack; pages the cache lacks cost a disk
read besides.  With ``O_DIRECT`` the device writes into the buffer itself, but a page
the cache holds is read from the disk again.  So the path is chosen per piece of
:data:`DEFAULT_PIECE_BYTES`, by asking the system which of the piece's pages the cache
holds (:mod:`h5stream.pagecache`, ``mincore``): a piece of which less than
:data:`CACHED_SHARE` is held is read directly (``depth`` pieces in flight, so the disk
stays busy); a held piece is copied from the cache (``copy_threads`` pieces at a time: a
memory copy scales with threads), unless the caller asks for held pieces to be read
directly too (``held="direct"``: a streamed pass does while that keeps its cycle per
chunk the faster, :class:`h5stream.kernels.raw_chunks.HeldPath`).  Both paths land in the same
aligned buffer at the same place, so the rows are the same bytes whichever path each
piece took; the bytes each path read are counted (:attr:`DirectRows.bytes_cached`,
:attr:`DirectRows.bytes_direct`).  Where the system cannot say which pages the cache
holds, every piece is read directly.

Only a dataset whose rows lie in plain runs of bytes qualifies: contiguous layout
(one run), or chunked without filters in chunks of whole rows (each chunk a run;
chunks back to back in row order, as a raw stream written block by block lies in
the file, merge into one; a read spanning runs moves the later ones next to the
first); allocated, no external storage, native byte order, the file opened
read-only (not SWMR) with the default ``sec2`` driver.  Anything else, and any
system without ``O_DIRECT`` (or a file system refusing it), returns ``None`` from
:func:`open_direct_rows` and the caller reads through h5py as before.  Linux
writes back dirty cached pages of the range before a direct read, so a file
written just before is read correctly.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import mmap
import os
import threading

import numpy as np

from h5stream import capabilities
from h5stream.pagecache import open_residency

ALIGN = 4096
#: bytes of one read request: on this project's benchmark machine (a virtual machine, its disk behind
#: virtio), reading the lab-shaped recording's 20.3 GB of raw rows in requests of 16 MiB took 0.03-0.06 s
#: user and 0.11-0.13 s system time against 0.07-0.11 s and 0.21-0.81 s in requests of 4 MiB, at the
#: same or better speed (5.73-5.84 s against 5.77-6.05 s, interleaved, page cache dropped)
DEFAULT_PIECE_BYTES = 16 * 2**20
DEFAULT_DEPTH = 16
#: a piece of which the page cache holds at least this share is copied from the cache, others are read
#: directly: copying the held pages saves reading them from the disk again, which outweighs the missing
#: pages' cost through the cache (read-ahead, the cache's bookkeeping and the copy) while they are the lesser part
CACHED_SHARE = 0.5
#: a streamed chunk of which the page cache holds at least this share of each run's pages is viewed there
#: (:meth:`DirectRows.map_runs`): a file the cache held whole may have lost a few pages to other processes
MAPPED_SHARE = 0.95


class DirectRows:
    """Reads rows ``[a, b)`` of one dataset into page-aligned buffers: ``depth`` pieces in flight, each
    read directly or, when the page cache holds it, copied from the cache (``copy_threads`` at a time).

    ``offset`` is the file offset of row 0 when the rows are one plain run; ``runs``
    (``(first_row, file_offset)`` pairs, the first at row 0, rows ascending), when
    given, replaces it and describes rows stored as several plain runs, each holding
    the rows up to the next run's first.  Use :func:`open_direct_rows` to build one; close it (or use it as a
    context manager) to release the file descriptor and the reader threads.
    """

    def __init__(self, path: str, offset: int, n_rows: int, row_shape: tuple[int, ...], dtype: np.dtype, *,
                 piece_bytes: int = DEFAULT_PIECE_BYTES, depth: int = DEFAULT_DEPTH,
                 runs: list[tuple[int, int]] | None = None, copy_threads: int | None = None):
        self.path = path
        self.n_rows = int(n_rows)
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(row_shape, dtype=np.int64)) * self.dtype.itemsize
        self.piece_bytes = max(ALIGN, int(piece_bytes) // ALIGN * ALIGN)
        self.depth = max(1, int(depth))
        runs = [(0, int(offset))] if runs is None else [(int(r), int(o)) for r, o in runs]
        if not runs or runs[0][0] != 0 or any(b[0] <= a[0] for a, b in zip(runs, runs[1:])):
            raise ValueError(f"runs: expected first rows ascending from 0 (found {runs[:3]}...)")
        self._run_rows = np.array([r for r, _ in runs], dtype=np.int64)
        self._run_offsets = [o for _, o in runs]
        # rows of the shortest run but the last: a read of n rows spans at most n // that + 2 runs
        lengths = np.diff(np.append(self._run_rows, max(self.n_rows, int(self._run_rows[-1]) + 1)))
        self._min_run_rows = int(lengths[:-1].min()) if lengths.size > 1 else None
        self._fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        self._pool = None
        self._cached_fd = os.open(path, os.O_RDONLY)
        self._residency = open_residency(self._cached_fd)
        self.copy_threads = copy_threads
        self._count_lock = threading.Lock()
        self._abandoned = False  # close() or abandon(): pieces not read yet are skipped
        #: bytes read so far from the page cache and directly (whole pages, as requested)
        self.bytes_cached = 0
        self.bytes_direct = 0

    @property
    def copy_threads(self) -> int:
        """Pieces copied from the page cache at a time (at most ``depth``)."""
        return self._copy_threads

    @copy_threads.setter
    def copy_threads(self, value: int | None) -> None:
        self._copy_threads = self.depth if value is None else max(1, min(self.depth, int(value)))
        self._copiers = threading.BoundedSemaphore(self._copy_threads)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def abandon(self) -> None:
        """End the reads in flight soon (another thread's, a prefetch whose rows nobody will take: a pass
        stopped by Ctrl-C): each piece not read yet is skipped, and the read raises :class:`ReadAbandoned`
        once the pieces being read now are done.  Under load a chunk's pieces waiting for a copier took
        seconds, and a stopped pass's close waited for all of them.  Every read after it raises too."""
        self._abandoned = True

    def close(self) -> None:
        self._abandoned = True  # a read still in flight ends at its next piece
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._residency is not None:
            self._residency.close()
            self._residency = None
        if self._cached_fd is not None:
            os.close(self._cached_fd)
            self._cached_fd = None

    def cached_share(self, offset: int, length: int) -> float | None:
        """The share of the file's bytes ``[offset, offset + length)`` the page cache holds now; None
        where the system cannot say."""
        return None if self._residency is None else self._residency.fraction(offset, length)

    def _max_segments(self, n_rows: int) -> int:
        return 1 if self._min_run_rows is None else n_rows // self._min_run_rows + 2

    def buffer(self, max_rows: int) -> np.ndarray:
        """A byte buffer able to take any ``max_rows`` consecutive rows (aligned at both ends)."""
        pad = self._max_segments(int(max_rows)) * 2 * ALIGN
        n = (int(max_rows) * self.row_bytes + pad + ALIGN - 1) // ALIGN * ALIGN
        raw = np.empty(n + ALIGN, dtype=np.uint8)
        skip = (-raw.ctypes.data) % ALIGN
        return raw[skip : skip + n]

    def _segments(self, a: int, b: int) -> list[tuple[int, int, int]]:
        """``(first_row, end_row, file_offset_of_first_row)`` of each run's share of rows ``[a, b)``."""
        k = int(np.searchsorted(self._run_rows, a, side="right")) - 1
        out = []
        row = a
        while row < b:
            end = b if k + 1 >= self._run_rows.size else min(b, int(self._run_rows[k + 1]))
            out.append((row, end, self._run_offsets[k] + (row - int(self._run_rows[k])) * self.row_bytes))
            row = end
            k += 1
        return out

    def read(self, a: int, b: int, buffer: np.ndarray, held: str = "cached", fresh: bool = False) -> np.ndarray:
        """Rows ``[a, b)`` as an array of shape ``(b - a, *row_shape)`` viewing ``buffer``.

        The rows keep their place within a disk page: where the file stores them at an
        offset that is not a multiple of the item size (HDF5 places chunks at any byte),
        the view is unaligned (``flags.aligned`` False), which numpy and numba read as
        they are rather than paying a copy of every chunk.  Rows stored in several runs
        are moved to follow each other (:meth:`read_runs` leaves them where they are).
        ``held``: how the pieces the page cache holds are read, ``"cached"`` (copied from it)
        or ``"direct"`` (from the disk again, at almost no CPU cost).  ``fresh``: ``buffer`` was just
        allocated and no page of it was written yet; each piece's reader thread then writes its pages
        before the direct read (see :meth:`_read_piece`).
        """
        return self._joined(self._read_jobs(a, b, buffer, held, fresh), a, b, buffer)

    def map_runs(self, a: int, b: int) -> list[np.ndarray] | None:
        """Rows ``[a, b)`` as one read-only array per run of the file they lie in (as :meth:`read_runs`),
        viewing the page cache's own pages through a mapping of the file, when the cache holds at least
        :data:`MAPPED_SHARE` of each run's share (the pages it lacks are asked of the disk ahead, then read as
        they are met); None otherwise (or where the system cannot say), and the rows are to be read.

        Nothing is copied and no fresh memory is written: a read into a buffer zero-fills each of its pages
        the first time (on a virtual machine, backed by the host besides) and copies every byte.  Measured
        on this project's 2-core machine, the lab-sized steps recording (1 s of the full chip, 169 MB, 3
        chunks): the electrical-image pass took 0.155-0.158 CPU s mapped against 0.175-0.45 s read into
        two fresh 69 MB buffers, whose huge pages cost from 0.03 to 0.3 s of system time by the hour.
        Each array holds its mapping, unmapped once no array views it.  A file truncated while its rows
        are mapped ends the process (``SIGBUS``) where a read would raise: the files read so are opened
        read-only, as :func:`open_direct_rows` requires.
        """
        segments = self._segments(a, b)
        shares = [self.cached_share(lo, (r1 - r0) * self.row_bytes) for r0, r1, lo in segments]
        if any(share is None or share < MAPPED_SHARE for share in shares):
            return None
        pieces = []
        for (r0, r1, lo), share in zip(segments, shares):
            first = lo - lo % mmap.ALLOCATIONGRANULARITY
            n = (r1 - r0) * self.row_bytes
            mapping = mmap.mmap(self._cached_fd, lo + n - first, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ,
                                offset=first)
            if share < 1.0:  # the few pages the cache lacks read ahead, not one fault's read at a time
                mapping.madvise(mmap.MADV_WILLNEED)
            rows = np.frombuffer(mapping, dtype=self.dtype, count=n // self.dtype.itemsize, offset=lo - first)
            pieces.append(rows.reshape((r1 - r0, *self.row_shape)))
        return pieces

    def _joined(self, jobs: list[tuple[int, int]], a: int, b: int, buffer: np.ndarray) -> np.ndarray:
        """Rows ``[a, b)`` viewing ``buffer``, where ``jobs`` (each run's share: its place, its bytes) were read."""
        # each run's share was read at its own page alignment, one after the other: moved
        # left so the rows follow each other (a single run needs no move)
        start, n = jobs[0]
        dest = start + n
        base = buffer.ctypes.data
        for source, n in jobs[1:]:
            ctypes.memmove(base + dest, base + source, n)  # leftwards, possibly overlapping
            dest += n
        rows = buffer[start : start + (b - a) * self.row_bytes].view(self.dtype)
        return rows.reshape((b - a, *self.row_shape))

    def read_runs(self, a: int, b: int, buffer: np.ndarray, held: str = "cached") -> list[np.ndarray]:
        """Rows ``[a, b)`` as one array per run of the file they lie in, in order, each viewing ``buffer``.

        As :meth:`read`, without moving the runs' rows to follow each other: for a
        reader that takes the rows in pieces (a 277 MB chunk of a recording whose
        chunks lie in runs of 140 MB would otherwise move about three quarters of its
        bytes after reading them).
        """
        return [buffer[source : source + n].view(self.dtype).reshape((-1, *self.row_shape))
                for source, n in self._read_jobs(a, b, buffer, held)]

    def _read_jobs(self, a: int, b: int, buffer: np.ndarray, held: str = "cached",
                   fresh: bool = False) -> list[tuple[int, int]]:
        """Read rows ``[a, b)`` into ``buffer``, each run's share at its own page alignment, one after the
        other; ``(offset in buffer, bytes)`` of each share's rows.  ``held``: the path of the pieces the
        page cache holds (``"cached"``: copied from it; ``"direct"``: every piece read directly)."""
        if held not in ("cached", "direct"):
            raise ValueError(f"held: expected 'cached' or 'direct' (found {held!r})")
        jobs, pieces = self._plan(a, b, buffer)
        view = memoryview(buffer)
        direct = None if held == "cached" else True  # None: asked per piece
        touch = buffer.ctypes.data if fresh else None
        if len(pieces) == 1:
            self._read_piece(view, *pieces[0][:4], direct=direct, touch=touch)
            futures = [None]
        else:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(self.depth, thread_name_prefix="direct-rows")
            futures = [self._pool.submit(self._read_piece, view, *piece[:4], direct=direct, touch=touch)
                       for piece in pieces]
        try:
            for future in futures:
                if future is not None:
                    future.result()
        finally:
            for future in futures:
                if future is not None:
                    future.cancel()
        if self._abandoned:  # some pieces were skipped: the buffer does not hold the rows
            raise ReadAbandoned(f"{self.path}: the read of rows [{a}, {b}) was abandoned")
        return [(source, n) for _, _, _, _, source, n in jobs]

    def _plan(self, a: int, b: int, buffer: np.ndarray) -> tuple[list[tuple], list[tuple]]:
        """The jobs of rows ``[a, b)`` (each run's share, at its own page alignment, one after the other in
        ``buffer``) and the pieces of at most :attr:`piece_bytes` they are read in."""
        jobs = []
        pos = 0
        for r0, r1, lo in self._segments(a, b):
            hi = lo + (r1 - r0) * self.row_bytes
            first = lo - lo % ALIGN
            end = -(-hi // ALIGN) * ALIGN
            jobs.append((pos, first, end, hi, pos + lo - first, (r1 - r0) * self.row_bytes))
            pos += end - first
        if pos > buffer.size:
            raise ValueError(f"buffer: expected at least {pos} bytes (found {buffer.size})")
        # (place in the buffer, file range [p0, p1), the run's rows' end, the run's rows' start)
        pieces = [(at + p0 - first, p0, min(end, p0 + self.piece_bytes), hi, lo_at - at + first)
                  for at, first, end, hi, lo_at, _ in jobs for p0 in range(first, end, self.piece_bytes)]
        return jobs, pieces

    def _read_piece(self, view: memoryview, at: int, p0: int, p1: int, needed_end: int, *,
                    direct: bool | None = None, touch: int | None = None) -> None:
        # Reads [p0, p1) of the file into view[at : at + p1 - p0], from the page cache when it holds
        # enough of the piece (``direct`` None: asked now), else directly; a short read is only
        # acceptable past ``needed_end`` (the end of the file lies inside the last page).
        # ``touch``: the address of ``view``'s memory when none of its pages was written yet.  A direct
        # read into pages not yet present faults them in while it pins them, holding the process's
        # memory map lock, and every other thread's allocation (an mmap) waits behind it, with Python's
        # lock held: measured, a thread reading tables beside an 80 MB read stalled 30-70 ms.  Written
        # first here (GIL released; a page fault locks only its own mapping), they are pinned without it.
        if self._abandoned:
            return
        if direct is None:
            held = self.cached_share(p0, p1 - p0)
            direct = held is None or held < CACHED_SHARE
        if direct:
            if touch is not None:
                ctypes.memset(touch + at, 0, p1 - p0)
            n = self._read_span(self._fd, view, at, p0, p1, needed_end)
        else:
            with self._copiers:
                if self._abandoned:  # abandoned while it waited for a copier
                    return
                n = self._read_span(self._cached_fd, view, at, p0, p1, needed_end)
        with self._count_lock:
            if direct:
                self.bytes_direct += n
            else:
                self.bytes_cached += n

    def _read_span(self, fd: int, view: memoryview, at: int, p0: int, p1: int, needed_end: int) -> int:
        pos = p0
        while pos < p1:
            n = os.preadv(fd, [view[at + pos - p0 : at + p1 - p0]], pos)
            if n <= 0:
                if pos >= needed_end:
                    break
                raise OSError(f"{self.path}: the file ends at byte {pos}, expected data up to byte {needed_end}")
            pos += n
            if pos % 512 and pos < p1:  # not a sector boundary: the end of the file
                if pos >= needed_end:
                    break
                raise OSError(f"{self.path}: short read at byte {pos}, expected data up to byte {needed_end}")
        return pos - p0


class ReadAbandoned(RuntimeError):
    """A read of :class:`DirectRows` that :meth:`DirectRows.abandon` (or its close) ended before all its pieces
    were read: its buffer does not hold the rows."""


#: a run shorter than this (but the last) makes a chunked dataset too scattered to read directly
MIN_RUN_BYTES = 64 * 2**10


def _plain_runs(dsid, plist, shape: tuple[int, ...], itemsize: int) -> list[tuple[int, int]] | None:
    """``(first_row, file_offset)`` of the plain runs of a chunked dataset's rows, else None.

    A chunked dataset is read directly when no filter is set, each chunk spans whole
    rows (``chunk[1:] == shape[1:]``), and every chunk is allocated: each chunk is
    then a plain run of rows, and chunks lying back to back in row order (how a raw
    stream written block by block lies in the file) merge into one run.  Runs
    shorter than :data:`MIN_RUN_BYTES` (but the last) refuse it.
    """
    if plist.get_nfilters() or not hasattr(dsid, "chunk_iter"):
        return None
    chunk = tuple(plist.get_chunk())
    if len(chunk) != len(shape) or chunk[1:] != tuple(shape[1:]) or chunk[0] < 1:
        return None
    row_bytes = int(np.prod(chunk[1:], dtype=np.int64)) * itemsize
    chunk_bytes = chunk[0] * row_bytes
    n_chunks = -(-int(shape[0]) // chunk[0])
    if dsid.get_num_chunks() != n_chunks:
        return None
    found: list[tuple[int, int, int, int]] = []
    dsid.chunk_iter(lambda info: found.append((info.chunk_offset[0], info.byte_offset, info.size,
                                               info.filter_mask)))
    found.sort()
    if len(found) != n_chunks:
        return None
    runs: list[tuple[int, int]] = []
    for i, (row, byte_offset, size, mask) in enumerate(found):
        if row != i * chunk[0] or size != chunk_bytes or mask or byte_offset is None:
            return None
        if not runs or byte_offset != runs[-1][1] + (row - runs[-1][0]) * row_bytes:
            if runs and (row - runs[-1][0]) * row_bytes < MIN_RUN_BYTES:
                return None
            runs.append((row, int(byte_offset)))
    return runs


def open_direct_rows(dataset, **kwargs) -> DirectRows | None:
    """A :class:`DirectRows` for an h5py dataset whose rows lie in plain runs of bytes, else ``None``."""
    if not capabilities.direct_io():
        return None  # read through the page cache instead
    try:
        dsid = dataset.id
        file = dataset.file
        import h5py

        if not isinstance(dsid, h5py.h5d.DatasetID) or dataset.is_virtual:
            return None
        plist = dsid.get_create_plist()
        layout = plist.get_layout()
        if layout not in (h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED) or plist.get_external_count():
            return None
        if file.driver != "sec2" or file.mode != "r" or file.swmr_mode:
            return None
        dtype = dataset.dtype
        if dtype.hasobject or dtype.fields is not None or not dtype.isnative or len(dataset.shape) < 1:
            return None
        n_bytes = int(np.prod(dataset.shape, dtype=np.int64)) * dtype.itemsize
        if layout == h5py.h5d.CONTIGUOUS:
            offset = dsid.get_offset() if dsid.get_storage_size() == n_bytes else None
            runs = None if offset is None else [(0, offset)]
        else:
            runs = _plain_runs(dsid, plist, dataset.shape, dtype.itemsize)
        path = file.filename
        if runs is None or n_bytes == 0:
            return None
        row_bytes = n_bytes // dataset.shape[0]
        ends = [(r1 - r0) * row_bytes + o for (r0, o), (r1, _) in zip(runs, runs[1:] + [(dataset.shape[0], 0)])]
        if max(ends) > os.path.getsize(path):
            return None
    except (AttributeError, TypeError, ValueError, OSError, RuntimeError):
        return None
    try:
        reader = DirectRows(path, 0, dataset.shape[0], dataset.shape[1:], dtype, runs=runs, **kwargs)
    except OSError:  # the file system refuses O_DIRECT
        return None
    try:  # the name must still lead to the file h5py has open (not moved or replaced since)
        ours, theirs = os.fstat(reader._fd), os.fstat(file.id.get_vfd_handle())
        same = (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)
    except (OSError, TypeError, ValueError):
        same = False
    if not same:
        reader.close()
        return None
    try:  # some file systems accept the flag but refuse the reads (read directly, whatever the cache holds)
        lo = reader._segments(0, 1)[0][2]
        first = lo - lo % ALIGN
        reader._read_piece(memoryview(reader.buffer(1)), 0, first, first + ALIGN, lo + 1,
                           direct=True)
        reader.bytes_direct = 0
    except OSError:
        reader.close()
        return None
    return reader
