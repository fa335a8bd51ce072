"""The one chunk-filling gzip writer: an array's chunks compressed on several threads and stored whole.

HDF5 runs its filters on one thread.  :class:`GzipChunks` does what HDF5's filter pipeline does to
each chunk (the shuffle filter's byte planes, then a zlib stream, optionally HDF5's Fletcher32
checksum after it; an edge chunk padded with zeros to the full chunk) with the engine's deflate kernel
(:func:`h5stream.compression.deflate_kernel`: the compiled zlib kernel, byte for byte HDF5's own filter, or
libdeflate, whose stream may differ in its bytes and inflates to the same data; both run without
the GIL) on a pool of threads, and stores each chunk with ``write_direct_chunk``.  Every gzip write
of the engine goes through it: :func:`h5stream.writer.write_array` and the NWB export's columns
(:mod:`h5stream.writer.columns`, into a dataset another library created).

Two schedules, one compressor:

* streaming (``eager=False``, :func:`~h5stream.writer.write_array`): :meth:`GzipChunks.store`
  compresses one batch of chunks while the previous one is stored, in two sets of buffers reused
  batch after batch, so memory stays at two batches whatever the array's size;
* eager (``eager=True``, the NWB column): every batch is queued at construction and compressed on
  background threads while the caller does other work (pynwb builds and writes the rest of the
  file); :meth:`~GzipChunks.store` then only stores the chunks.

Each chunk is one task of the pool's queue: a thread the scheduler pauses delays one chunk, not a
batch, and the other threads take the remaining chunks (a task costs microseconds, a chunk
milliseconds).

With libdeflate and shuffle, the leading byte planes that do not compress (the low bytes of
measured values such as spike times: noise that a deflate of any level ends up storing as it is,
after spending most of its time searching them for matches) go into the stream as stored blocks,
and only the planes after them are deflated (:func:`stored_planes` tells them apart on samples of
three chunks; 1-D arrays).  A zlib stream may mix stored and deflated blocks; HDF5's filter
inflates it to the same bytes.  For 20 M spike times (5 of 8 planes stored) the compression takes
0.34 s of CPU instead of 1.2 s, for a file 0.2% larger.
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor

import h5py
import numpy as np

from h5stream import checksums
from h5stream.compression import deflate_kernel
from h5stream.cores import sharing_threads
from h5stream.errors import WriteError
from h5stream.native.libdeflate import RawDeflate, raw_deflate

__all__ = ["GzipChunks", "stored_planes", "chunk_grid", "BATCH_BYTES"]

#: Bytes of raw chunks per batch (the unit of buffers and of storing).
BATCH_BYTES = 32 << 20
#: Bytes at the start of each byte plane that are deflated to tell whether the plane compresses.
PLANE_SAMPLE_BYTES = 64 << 10
#: A plane whose sampled deflate keeps at least this share of its bytes is stored as it is.
STORED_SHARE = 0.995
#: Largest stored (uncompressed) deflate block.
_STORED_BLOCK = 65_535


def chunk_grid(shape: tuple[int, ...], chunks: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Origins of every chunk of an array of ``shape``, in C order of the chunk grid."""
    counts = [math.ceil(s / c) for s, c in zip(shape, chunks)]
    return [tuple(i * c for i, c in zip(idx, chunks)) for idx in np.ndindex(*counts)]


def _gather(array: np.ndarray, offsets: list[tuple[int, ...]], chunks: tuple[int, ...], out: np.ndarray) -> None:
    """Copy chunks of ``array`` at ``offsets`` into rows of ``out`` (edge chunks zero-padded)."""
    for row, origin in enumerate(offsets):
        target = out[row].view(array.dtype).reshape(chunks)
        src = array[tuple(slice(o, o + c) for o, c in zip(origin, chunks))]
        if src.shape != chunks:
            target[...] = 0
            target[tuple(slice(0, s) for s in src.shape)] = src
        else:
            target[...] = src


def stored_planes(raw: RawDeflate, array: np.ndarray, chunk: int, level: int) -> int:
    """How many leading byte planes of the shuffled chunks of a 1-D ``array`` do not compress.

    Sampled on the first, middle and last whole chunk: the first :data:`PLANE_SAMPLE_BYTES`
    of each plane deflated on their own; a plane whose deflate keeps :data:`STORED_SHARE` of
    its bytes or more in every sample does not compress.  Only a prefix of planes can be
    stored (the deflated rest must end the stream); 0 when there is no whole chunk.
    """
    item = array.dtype.itemsize
    whole = array.shape[0] // chunk
    if whole < 1 or item < 2:
        return 0
    sample = min(chunk, PLANE_SAMPLE_BYTES)
    out = np.empty(raw.bound(sample), np.uint8)
    incompressible = [True] * item
    compressor = raw.alloc(level)
    if not compressor:
        return 0
    try:
        for k in sorted({0, whole // 2, whole - 1}):
            rows = array[k * chunk:k * chunk + sample].view(np.uint8).reshape(sample, item)
            for plane in range(item):
                if not incompressible[plane]:
                    continue
                data = np.ascontiguousarray(rows[:, plane])
                written = raw.compress(compressor, data.ctypes.data, sample, out.ctypes.data, out.size)
                if not written or written < STORED_SHARE * sample:
                    incompressible[plane] = False
    finally:
        raw.free(compressor)
    prefix = 0
    while prefix < item and incompressible[prefix]:
        prefix += 1
    return prefix


class _Buffers:
    """Packed and size rows of one batch, and (``raw``) rows for chunks gathered or shuffled here.

    Without ``raw`` (the eager schedule, whose batches all live at once) a chunk that needs a copy
    gets a row of its own for the time of its compression.
    """

    def __init__(self, n: int, nbytes: int, bound: int, *, raw: bool) -> None:
        self.raw = np.empty((n, nbytes), np.uint8) if raw else None
        self.packed = np.empty((n, bound), np.uint8)
        self.sizes = np.empty(n, np.int64)

    def scratch(self, row: int, nbytes: int) -> np.ndarray:
        return self.raw[row:row + 1] if self.raw is not None else np.empty((1, nbytes), np.uint8)


class GzipChunks:
    """The chunks of ``array`` (``chunks`` shape), shuffled when ``shuffle``, deflated at ``level``, with
    HDF5's Fletcher32 after each when ``fletcher32``; compressed on ``threads`` (default every allowed
    core, :func:`h5stream.cores.sharing_threads`) by the deflate kernel ``implementation`` (``"zlib"``,
    ``"libdeflate"``, ``"auto"``).  ``eager`` starts the compression at once in the background (see the
    module's text); :meth:`store` writes the chunks into a dataset; :meth:`close` stops what has not
    started.
    """

    def __init__(self, array: np.ndarray, chunks: tuple[int, ...], level: int, *, shuffle: bool = True,
                 fletcher32: bool = False, implementation: str = "zlib", threads: int | None = None,
                 eager: bool = False) -> None:
        chunks = tuple(int(c) for c in chunks)
        if array.ndim < 1 or array.ndim != len(chunks) or min(chunks) < 1 or array.size == 0:
            raise ValueError(f"a non-empty array and a positive chunk shape of its rank are needed (found shape "
                             f"{array.shape}, chunks {chunks})")
        self.array = array if array.ndim > 1 else np.ascontiguousarray(array)
        self.chunks, self.level = chunks, int(level)
        self.shuffle, self.fletcher32, self.eager = bool(shuffle), bool(fletcher32), bool(eager)
        self._kernel = deflate_kernel(implementation)
        item = self.array.dtype.itemsize
        self._nbytes = nbytes = math.prod(chunks) * item
        self._offsets = chunk_grid(self.array.shape, chunks)
        # The compiled zlib kernel shuffles in C without the GIL; libdeflate gets each chunk shuffled here,
        # in one copy, and then only deflates.
        self._shuffle_here = self.shuffle and item > 1 and getattr(self._kernel, "name", None) == "libdeflate"
        self._kernel_shuffle = item if self.shuffle and not self._shuffle_here else 0
        bound = int(self._kernel.deflate_bound(nbytes))
        # With libdeflate, the leading byte planes that do not compress are stored, not handed to the
        # compressor only for it to store them in the end.
        self._raw_deflate = raw_deflate() if self._shuffle_here and self.array.ndim == 1 else None
        #: leading byte planes of each chunk stored as they are (libdeflate, shuffle, 1-D; else 0)
        self.n_stored_planes = 0
        if self._raw_deflate is not None:
            self.n_stored_planes = stored_planes(self._raw_deflate, self.array, chunks[0], self.level)
        self._stored = self.n_stored_planes * chunks[0]
        if self._stored:
            blocks = -(-self._stored // _STORED_BLOCK)
            bound = max(bound, 2 + self._stored + 5 * blocks + self._raw_deflate.bound(nbytes - self._stored) + 4)
        self._bound = bound + (4 if self.fletcher32 else 0)
        self.threads = int(threads) if threads else sharing_threads()
        n = len(self._offsets)
        per_batch = min(n, max(self.threads, BATCH_BYTES // max(nbytes, 1)))
        if self.eager:
            # enough batches to keep every thread busy from the start
            per_batch = max(1, min(per_batch, -(-n // self.threads)))
        self._per_batch = per_batch
        self._batches = [(first, min(per_batch, n - first)) for first in range(0, n, per_batch)]
        # Chunks spanning whole rows of a C array are consecutive bytes: the kernel reads a view of them.
        whole_rows = self.array.flags.c_contiguous and chunks[1:] == self.array.shape[1:]
        self._flat = self.array.reshape(-1).view(np.uint8) if whole_rows else None
        self._pool: ThreadPoolExecutor | None = None
        self._queued: list[tuple[_Buffers, list[Future]]] = []
        if self.eager:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="gzip-chunks")
            self._queued = [self._submit(number, _Buffers(count, nbytes, self._bound, raw=False))
                            for number, (_first, count) in enumerate(self._batches)]

    # -- compression

    def _submit(self, number: int, buffers: _Buffers) -> tuple[_Buffers, list[Future]]:
        first, count = self._batches[number]
        return buffers, [self._pool.submit(self._compress, first + i, buffers, i) for i in range(count)]

    def _source(self, index: int, buffers: _Buffers, row: int) -> np.ndarray:
        """The raw bytes of chunk ``index`` as one row (a view where the chunk is whole rows of the array)."""
        origin = self._offsets[index]
        if self._flat is not None and origin[0] + self.chunks[0] <= self.array.shape[0]:
            start = origin[0] * (self._nbytes // self.chunks[0])
            return self._flat[start:start + self._nbytes].reshape(1, self._nbytes)
        out = buffers.scratch(row, self._nbytes)
        _gather(self.array, [origin], self.chunks, out)
        return out

    def _compress(self, index: int, buffers: _Buffers, row: int) -> int:
        """Compress chunk ``index`` into row ``row`` of the batch's buffers: 0, or 1 when the kernel failed."""
        source = self._source(index, buffers, row)
        if self._shuffle_here:
            # HDF5's shuffle in one copy: byte j of every element to plane j of the chunk
            item = self.array.dtype.itemsize
            gathered = buffers.raw is not None and source.base is buffers.raw
            planes = np.empty_like(source) if gathered else buffers.scratch(row, self._nbytes)
            np.copyto(planes.reshape(item, -1), source.reshape(-1, item).T)
            source = planes
        packed, sizes = buffers.packed[row:row + 1], buffers.sizes[row:row + 1]
        if self._stored:
            failures = self._deflate_after_stored(source[0], packed[0], sizes)
        else:
            # the kernel releases the GIL
            failures = self._kernel._deflate_chunks(source, packed, sizes, 1, self.level, self._kernel_shuffle, 1)
        if self.fletcher32 and not failures:
            n = int(sizes[0])
            packed[0, n:n + 4] = np.frombuffer(checksums.fletcher32(packed[0, :n]).to_bytes(4, "little"), np.uint8)
            sizes[0] = n + 4
        return int(failures)

    def _deflate_after_stored(self, row: np.ndarray, out: np.ndarray, sizes: np.ndarray) -> int:
        """The zlib stream of one shuffled chunk: the zlib header, the first ``self._stored`` bytes (the
        planes that do not compress) as stored blocks, the rest deflated by libdeflate (its last block
        ends the stream), and the Adler-32 of the whole chunk."""
        raw, stored = self._raw_deflate, self._stored
        nbytes = row.size
        tail = nbytes - stored
        capacity = out.size - (4 if self.fletcher32 else 0)
        compressor = raw.alloc(self.level)
        if not compressor:
            sizes[0] = -1
            return 1
        try:
            out[0], out[1] = 0x78, 0x01  # deflate, 32 KiB window, fastest level
            position = 2
            for start in range(0, stored, _STORED_BLOCK):
                n = min(_STORED_BLOCK, stored - start)
                final = 1 if (start + n == stored and not tail) else 0
                out[position:position + 5] = (final, n & 0xFF, n >> 8, ~n & 0xFF, (~n >> 8) & 0xFF)
                out[position + 5:position + 5 + n] = row[start:start + n]
                position += 5 + n
            if tail:
                written = raw.compress(compressor, row.ctypes.data + stored, tail, out.ctypes.data + position,
                                       capacity - position - 4)
                if not written:
                    sizes[0] = -1
                    return 1
                position += written
            check = raw.adler32(1, row.ctypes.data, nbytes)
            out[position:position + 4] = (check >> 24, (check >> 16) & 0xFF, (check >> 8) & 0xFF, check & 0xFF)
            sizes[0] = position + 4
        finally:
            raw.free(compressor)
        return 0

    def sampled_share(self, count: int) -> float:
        """The share of their bytes that up to ``count`` chunks keep once compressed as :meth:`store` would,
        compressed on this thread: the first, the last but one (an edge chunk's zero padding would flatter
        the sample) and evenly between; every chunk of an array of ``count`` chunks or fewer."""
        n = len(self._offsets)
        last = n - 1 if n <= count else n - 2
        picks = sorted({round(i * last / max(count - 1, 1)) for i in range(min(count, n))})
        buffers = _Buffers(len(picks), self._nbytes, self._bound, raw=True)
        failures = sum(self._compress(index, buffers, row) for row, index in enumerate(picks))
        if failures:
            raise WriteError(f"the deflate kernel failed on {failures} sampled chunk(s)",
                             hint="the machine may be out of memory")
        return float(buffers.sizes.sum()) / (len(picks) * self._nbytes)

    # -- storing

    def filters_match(self, dset: h5py.Dataset) -> bool:
        """Whether ``dset`` has this writer's chunk shape and exactly its filters (shuffle when asked, gzip
        ``level``, Fletcher32 when asked): only then are the compressed chunks what HDF5 would store."""
        item = self.array.dtype.itemsize
        expected = ([(h5py.h5z.FILTER_SHUFFLE, (item,))] if self.shuffle else []) + \
            [(h5py.h5z.FILTER_DEFLATE, (self.level,))] + ([(h5py.h5z.FILTER_FLETCHER32, ())] if self.fletcher32 else [])
        plist = dset.id.get_create_plist()
        found = [(code, tuple(values)) for code, _flags, values, _name in
                 (plist.get_filter(i) for i in range(plist.get_nfilters()))]
        return dset.chunks == self.chunks and dset.dtype == self.array.dtype and found == expected

    def store(self, dset: h5py.Dataset) -> None:
        """Store every chunk in ``dset`` (shape, dtype, chunks and filters those of this writer), in order."""
        if dset.shape != self.array.shape:
            self.close()
            raise ValueError(f"{dset.name}: shape {dset.shape} does not fit the array of shape {self.array.shape}")
        try:
            if self.eager:
                for number, queued in enumerate(self._queued):
                    self._store_batch(dset, number, queued)
                return
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="gzip-chunks")
            # two sets of buffers: one is compressed while the other is stored
            slots = [_Buffers(self._per_batch, self._nbytes, self._bound, raw=True) for _ in range(2)]
            previous = None
            for number in range(len(self._batches)):
                queued = self._submit(number, slots[number % 2])
                if previous is not None:
                    self._store_batch(dset, number - 1, previous)
                previous = queued
            if previous is not None:
                self._store_batch(dset, len(self._batches) - 1, previous)
        finally:
            self.close()

    def _store_batch(self, dset: h5py.Dataset, number: int, queued: tuple[_Buffers, list[Future]]) -> None:
        buffers, futures = queued
        failures = sum(future.result() for future in futures)
        if failures:
            raise WriteError(f"the deflate kernel failed on {failures} chunk(s)", path=dset.file.filename,
                             obj=dset.name, hint="the machine may be out of memory")
        first, count = self._batches[number]
        dsid = dset.id
        for i in range(count):
            dsid.write_direct_chunk(self._offsets[first + i], buffers.packed[i, :int(buffers.sizes[i])], 0)

    def close(self) -> None:
        """Cancel the chunks not started and wait for the running ones (a stop waits for one chunk per thread,
        not for the batches queued: up to 64 chunks of 1 MiB, seconds of deflate on a busy machine)."""
        for _buffers, futures in self._queued:
            for future in futures:
                future.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
