"""Digests of a plain dataset's pieces, so that a read of some of its rows checks exactly what it reads.

A contiguous dataset's digest in the manifest covers all of its values: a read of some rows could
check it only by reading every row.  So writers record, beside that digest, the digests of its
*pieces* for a fixed-size dataset larger than one piece: runs of :data:`PIECE_BYTES` of whole rows
along the first axis (at least one row; the last piece shorter), each digested as the array it is
(:func:`h5stream.checksums.array_digest`: the header ``"<dtype.str>|<piece shape>"``, then its
bytes).  The manifest keeps them under ``pieces`` (path -> ``"<rows per piece>/<digests>"``, 8 hex
digits per piece, in order; see :mod:`h5stream.checksums._manifest`).

:func:`read_runs_checked` reads runs of rows of such a dataset and checks every piece it touches
(the pieces holding the runs are read whole: 256 KiB at most beside each run).  A dataset whose
manifest holds only the whole digest (written before pieces existed) is read whole, in blocks, and
that digest checked: a partial read never returns a byte that was not checked.  Chunked datasets
carry HDF5's Fletcher32 per chunk, which HDF5 checks on every read; they have no digest here.

:func:`read_whole_checked` reads all of a dataset stored as one plain run of bytes and checks every
byte: one compiled call on the calling thread (``pread`` straight into the array the caller gets, on the
descriptor HDF5 has open, each request's bytes digested as they land, no GIL).  A dataset with only its
whole digest is checked as one piece.
"""

from __future__ import annotations

import math

import h5py
import numpy as np

from h5stream.digests import array_digest, digest_end, digest_start, digest_update, read_blocks
from h5stream.checksums._fletcher32 import checked_read
from h5stream.checksums._manifest import Manifest, mismatch_error
from h5stream.errors import ChecksumError, FormatError
from h5stream.native import compiled

_h5dsets = compiled("_h5dsets")

__all__ = ["PIECE_BYTES", "piece_rows", "array_digests", "stored_digests", "read_runs_checked",
           "read_whole_checked"]

#: bytes of one piece (whole rows, at least one): a row read checks at most this much beside it, and a
#: 1 GB dataset's digests take 32 KB of manifest text
PIECE_BYTES = 256 << 10
#: bytes of rows read at a time by :func:`read_runs_checked`
_BLOCK_BYTES = 16 << 20


def _row_bytes(shape: tuple[int, ...], itemsize: int) -> int:
    return max(1, math.prod(shape[1:]) * itemsize)


def piece_rows(shape: tuple[int, ...], itemsize: int) -> int:
    """Rows of one piece of an array of ``shape`` and ``itemsize`` (at least one)."""
    return max(1, PIECE_BYTES // _row_bytes(shape, itemsize))


def _has_pieces(shape: tuple[int, ...], itemsize: int) -> bool:
    return len(shape) >= 1 and shape[0] > piece_rows(shape, itemsize)


def _encode(rows: int, packed: list[str]) -> str:
    return f"{rows}/{''.join(packed)}"


def array_digests(array: np.ndarray) -> tuple[str, str | None]:
    """The digest of all of ``array`` and its pieces' digests as the manifest keeps them (None: one piece).

    One pass over the values: each piece's bytes are digested twice while they are in the cache.
    """
    array = np.asarray(array)
    if not _has_pieces(array.shape, array.dtype.itemsize):
        return array_digest(array), None
    k = piece_rows(array.shape, array.dtype.itemsize)
    crc = digest_start(array.dtype, array.shape)
    packed = []
    for start in range(0, array.shape[0], k):
        piece = np.ascontiguousarray(array[start:start + k])
        crc = digest_update(crc, piece)
        packed.append(array_digest(piece))
    return digest_end(crc), _encode(k, packed)


def stored_digests(ds) -> tuple[str, str | None]:
    """:func:`array_digests` of all of a fixed-size dataset as stored, read block by block."""
    if not _has_pieces(tuple(ds.shape), ds.dtype.itemsize):
        crc = digest_start(ds.dtype, ds.shape)
        for block in read_blocks(ds):
            crc = digest_update(crc, block)
        return digest_end(crc), None
    k = piece_rows(tuple(ds.shape), ds.dtype.itemsize)
    n = ds.shape[0]
    step = max(1, _BLOCK_BYTES // (k * _row_bytes(tuple(ds.shape), ds.dtype.itemsize))) * k
    crc = digest_start(ds.dtype, ds.shape)
    packed = []
    for start in range(0, n, step):
        block = ds[start:min(n, start + step)]
        crc = digest_update(crc, block)
        packed.extend(array_digest(block[i:i + k]) for i in range(0, block.shape[0], k))
    return digest_end(crc), _encode(k, packed)


def _damaged(manifest: Manifest, name: str, found: str) -> ChecksumError:
    return ChecksumError("the checksum manifest's piece digests are not in the expected form",
                         path=manifest.path, obj=name, expected="'<rows per piece>/<8 hex digits per piece>'",
                         found=found, hint="the file is damaged; restore it from a copy or load with verify=False")


def _pieces_of(manifest: Manifest, ds) -> tuple[int, str] | None:
    """(rows per piece, packed digests) the manifest holds for ``ds``, checked for form; None without."""
    text = manifest.pieces.get(ds.name)
    if text is None:
        return None
    rows, _, packed = text.partition("/")
    n = int(ds.shape[0])
    k = int(rows) if rows.isdigit() else 0
    if k < 1 or len(packed) != 8 * -(-n // k):
        raise _damaged(manifest, ds.name, f"{text[:40]!r} for {n} rows")
    return k, packed


def _merged_pieces(runs: list[tuple[int, int]], k: int) -> list[tuple[int, int]]:
    """The pieces (half-open ranges of piece numbers) holding the rows of ``runs``, merged where they touch."""
    out: list[list[int]] = []
    for a, b in runs:
        first, last = a // k, (b - 1) // k + 1
        if out and first <= out[-1][1]:
            out[-1][1] = max(out[-1][1], last)
        else:
            out.append([first, last])
    return [(a, b) for a, b in out]


class _Gather:
    """Copies the parts of sorted runs that a block of rows holds into the output, in run order."""

    def __init__(self, runs: list[tuple[int, int]], out: np.ndarray, cols: np.ndarray | None) -> None:
        self.runs, self.out, self.cols = runs, out, cols
        self.at = np.concatenate([[0], np.cumsum([b - a for a, b in runs])]).astype(np.int64)
        self.i = 0  # the first run not wholly copied yet

    def take(self, start: int, block: np.ndarray) -> None:
        stop = start + block.shape[0]
        while self.i < len(self.runs):
            a, b = self.runs[self.i]
            if a >= stop:
                return
            lo, hi = max(a, start), min(b, stop)
            if hi > lo:
                part = block[lo - start:hi - start]
                at = int(self.at[self.i]) + lo - a
                self.out[at:at + hi - lo] = part if self.cols is None else part[:, self.cols]
            if b > stop:
                return
            self.i += 1


def read_runs_checked(ds, runs: list[tuple[int, int]], cols: np.ndarray | None = None,
                      manifest: Manifest | None = None) -> np.ndarray | None:
    """The rows of the sorted, disjoint half-open ``runs`` of a fixed-size dataset's first axis, one after
    the other, and of a 2-D one only the columns ``cols`` (None: all), every byte checked against the
    ``manifest`` attached to its file; None when it holds no digest of ``ds`` (chunked: HDF5 checks
    each chunk's Fletcher32 as it reads; or a file without checksums): read it as usual.

    The pieces holding the runs are read and checked (:data:`PIECE_BYTES` each); a dataset with only
    its whole digest (written before pieces existed) is read whole, block by block, and that checked.
    A mismatch is a :class:`~h5stream.errors.ChecksumError` naming the dataset and the rows of the piece.
    """
    if manifest is None:
        return None
    expected = manifest.datasets.get(ds.name)
    if expected is None:
        return None
    runs = [(a, b) for a, b in runs if b > a]
    shape = tuple(int(s) for s in ds.shape)
    tail = shape[1:] if cols is None else (len(cols), *shape[2:])
    out = np.empty((sum(b - a for a, b in runs), *tail), dtype=ds.dtype)
    if not runs:
        return out
    gather = _Gather(runs, out, cols)
    pieces = _pieces_of(manifest, ds)
    with checked_read(manifest.path, ds.name, dataset=ds):
        if pieces is None:
            _read_whole(ds, manifest, expected, gather)
        else:
            _read_pieces(ds, manifest, pieces, runs, gather)
    return out


def _read_whole(ds, manifest: Manifest, expected: str, gather: _Gather) -> None:
    crc, start = digest_start(ds.dtype, ds.shape), 0
    for block in read_blocks(ds):
        crc = digest_update(crc, block)
        gather.take(start, block)
        start += block.shape[0]
    found = digest_end(crc)
    if found != expected:
        raise mismatch_error(manifest, ds.name, expected, found)


def _read_pieces(ds, manifest: Manifest, pieces: tuple[int, str], runs, gather: _Gather) -> None:
    k, packed = pieces
    n = int(ds.shape[0])
    per_block = max(1, _BLOCK_BYTES // (k * _row_bytes(tuple(ds.shape), ds.dtype.itemsize)))
    buffer = None
    for first, last in _merged_pieces(runs, k):
        for p0 in range(first, last, per_block):
            p1 = min(last, p0 + per_block)
            a, b = p0 * k, min(n, p1 * k)
            if buffer is None:
                buffer = np.empty((min(n, per_block * k), *ds.shape[1:]), dtype=ds.dtype)
            block = buffer[:b - a]
            ds.read_direct(block, np.s_[a:b], np.s_[0:b - a])
            for p in range(p0, p1):
                want = packed[8 * p:8 * p + 8]
                found = array_digest(block[(p - p0) * k:min(b, (p + 1) * k) - a])
                if found != want:
                    unit = "rows" if ds.ndim > 1 else "entries"
                    raise mismatch_error(manifest, f"{ds.name} ({unit} {p * k}:{min(n, (p + 1) * k)})", want, found)
            gather.take(a, block)


def _plain_run(ds, manifest: Manifest) -> tuple[int, int] | None:
    """(descriptor, file offset) of a dataset whose values lie in one plain run of bytes, exactly as numpy
    holds them, in a file open read-only with the default driver (:func:`_read_handle`); None for any other."""
    try:
        dsid = ds.id
        dtype = ds.dtype
        shape = dsid.shape
        if (not shape or dtype.kind not in "biufc" or dtype.hasobject or not dtype.isnative
                or dsid.get_type().get_size() != dtype.itemsize):
            return None
        plist = dsid.get_create_plist()  # (a virtual dataset's layout is not CONTIGUOUS)
        if plist.get_layout() != h5py.h5d.CONTIGUOUS or plist.get_external_count() or plist.get_nfilters():
            return None
        fd = _read_handle(dsid, manifest)
        if fd is None:
            return None
        offset = dsid.get_offset()
        if offset is None or dsid.get_storage_size() != math.prod(shape) * dtype.itemsize:
            return None
        return fd, int(offset)
    except (AttributeError, TypeError, ValueError, OSError, RuntimeError):
        return None


def _read_handle(dsid, manifest: Manifest) -> int | None:
    """The descriptor of the file of ``dsid`` where it is open read-only (no SWMR) with the POSIX driver, else
    None; asked of the library once per open file and kept on its ``manifest`` (one per open file: the driver's
    property list is copied to be asked, which cost as much as the rest of a dataset's checks)."""
    fileno = dsid.fileno
    kept = manifest.read_handle
    if kept is not None and kept[0] == fileno:
        return kept[1]
    fid = h5py.h5i.get_file_id(dsid)
    fd = None
    if fid.get_intent() == h5py.h5f.ACC_RDONLY and fid.get_access_plist().get_driver() == h5py.h5fd.SEC2:
        handle = fid.get_vfd_handle()
        fd = handle if isinstance(handle, int) and handle >= 0 else None
    manifest.read_handle = (fileno, fd)
    return fd


#: bytes of one ``pread`` of :func:`read_whole_checked`: each request's bytes are digested while the CPU's cache
#: still holds them.  The three large datasets of a 5,000 x 2,000 container (140 MB), one thread, CPU time:
#: 28.3 ms in 1 MiB requests, 28.5 in 256 KiB, 29.9 in 16 MiB, against 25.3 ms for ``pread`` alone (load 10
#: on 2 cores, 11 rounds, minima)
REQUEST_BYTES = 1 << 20
# The array is numpy's whether the page cache holds the bytes or not.  An array on small pages where the cache
# lacked most of them (the page cache asked about 16 sampled windows: 0.1 ms a dataset, 0.33 ms a load) with
# 16 MiB requests lost cold and gained nothing warm (small pages chosen wrongly, warm, cost 2-4x).  Measured on
# 2 cores at load 4-6 (numpy's array against small pages, min/median): 5,000 x 2,000 dense+sparse (92 MB), 5
# fresh processes, a cold load after memory of the file's size was used and freed (as the benchmark does)
# 55/70 ms against 77/98, warm 24.1/24.6 against 24.4/26.5; a fresh process's first load cold 76/101 against
# 93/132 (92 MB) and 119/158 against 142/192 (140 MB, 6 rounds); the same started 20 s after the last process
# ended 143/234 against 165/226 (140 MB, 5 rounds); 20,000 x 5,000 (1.4 GB, 4 rounds in one process) cold
# 0.90-1.31 s (one round 5.7 s) against 1.54-2.52 s.
# One thread reads a cached dataset: shared between two threads (runs of 4 MiB of whole pieces taken in file
# order from one queue, each copied and digested without the GIL) the load of a 5,000 x 2,000 container was no
# faster, the copy into new memory being what bounds it, not the digest: 38.0/44.0 ms (min/median) against
# 37.2/38.1 ms on one thread (140 MB file), 29.2/33.6 against 29.2/31.3 (92 MB; 15 alternated rounds on 2
# cores, load 4, the process's session weighted as nice -15).  An earlier measurement had numpy's array ahead
# cold in a process whose memory was just used and freed (107/137 against 133/153 ms, 140 MB) but behind in a
# fresh process (324/354 against 126/188 ms; 92 MB: 108/190 against 87/120; 6 rounds), which chose small pages
# for cold reads; the fresh-process rounds above did not reproduce the loss.


def read_whole_checked(ds, manifest: Manifest | None) -> np.ndarray | None:
    """All of a fixed-size dataset stored as one plain run of bytes, every byte checked against the
    ``manifest``'s digests as it lands; None when it does not qualify (no digest, not one plain run of
    bytes, another driver, opened for writing): read it as usual.

    One compiled call (``h5stream._ext._h5dsets.read_checked``: ``pread`` on the descriptor HDF5 has open,
    straight into the array returned, each request's bytes digested as they land, no GIL), on the calling
    thread, in requests of :data:`REQUEST_BYTES`, into numpy's array.  The pieces are those of the manifest's
    piece digests; a dataset with only its whole digest (written before pieces existed, or one piece) is one
    piece.  A piece that differs is a :class:`~h5stream.errors.ChecksumError` naming the dataset (and its
    rows, for a piece); a file that ends inside the values a :class:`~h5stream.errors.FormatError`.
    """
    expected = None if manifest is None else manifest.datasets.get(ds.name)
    if expected is None:
        return None
    run = _plain_run(ds, manifest)
    if run is None:
        return None
    fd, offset = run
    shape = tuple(int(s) for s in ds.shape)
    n, tail, kind = shape[0], shape[1:], ds.dtype.str
    pieces = _pieces_of(manifest, ds)
    k, packed = pieces if pieces is not None else (n, expected)
    try:
        want = np.frombuffer(bytes.fromhex(packed), dtype=">u4").astype(np.uint32)
    except ValueError:
        raise _damaged(manifest, ds.name, f"{packed[:40]!r}") from None
    n_pieces, piece_bytes = len(want), k * _row_bytes(shape, ds.dtype.itemsize)
    full, last = digest_start(kind, (k, *tail)), digest_start(kind, (n - (n_pieces - 1) * k, *tail))
    out = np.empty(shape, ds.dtype)
    flat = out.reshape(-1).view(np.uint8)
    bad, got = _h5dsets.read_checked(fd, offset, flat, piece_bytes, want, full, last, REQUEST_BYTES)
    if bad >= 0:
        found = array_digest(out[bad * k:min(n, (bad + 1) * k)])
        where = ds.name if pieces is None else f"{ds.name} ({'rows' if ds.ndim > 1 else 'entries'} " \
                                                 f"{bad * k}:{min(n, (bad + 1) * k)})"
        raise mismatch_error(manifest, where, packed[8 * bad:8 * bad + 8], found)
    if got < flat.size:
        raise FormatError("the file ends inside a dataset's values", path=manifest.path, obj=ds.name,
                          expected=f"{flat.size} bytes from offset {offset}", found=f"{got} bytes",
                          hint="the file is truncated; restore it from a copy")
    return out
