"""Array writes: layout and compression policy, parallel gzip, batched small objects.

* :class:`WriteOptions` holds the codec (none, gzip 0-9, lzf, or an
  ``hdf5plugin`` codec: zstd, lz4, blosc, blosc2, bitshuffle), its level, the
  chunk policy, the shuffle filter and the number of compression threads.
* :func:`write_array` writes one numpy array.  Chunks follow the access
  pattern: row blocks of about 1 MiB spanning whole rows for matrices (one
  sample's row is one chunk read), contiguous layout for small uncompressed
  arrays.  Arrays that are not C-contiguous (Fortran order, strided views) are
  written block by block so no full-size temporary copy is made.
* gzip is compressed in parallel by the engine's one chunk-filling gzip writer
  (:class:`h5stream.writer.gzip.GzipChunks`, which the NWB export's columns use
  too): chunks are gathered in batches (or viewed in place when they span whole
  rows), deflated by the compiled zlib kernel (:func:`h5stream.compression.deflate_kernel`,
  no GIL) on ``n_threads`` Python threads while the previous batch is written with
  ``H5Dwrite_chunk``.  Threads pick up one chunk at a time as they free up, so a
  busy machine slows the work without stalling it at barriers.  The result is an ordinary
  deflate-filtered dataset (shuffle optional) that any HDF5 reader decodes; its
  chunks are byte-identical to those of HDF5's own filter at the same level.
* :func:`write_many` writes many small untyped objects (groups, tiny datasets,
  attributes) in one pass through the primitives of :mod:`h5stream.lowlevel`
  (the typed tree's property lists and layout policy), without per-object flushes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import h5py
import numpy as np

from h5stream import capabilities, checksums
from h5stream.compression import DEFLATE_IMPLEMENTATIONS, get_codec
from h5stream.cores import free_cores, sharing_threads
from h5stream.errors import EncodingError, MissingPluginError, WriteError
from h5stream.names import check_name
from h5stream.native import libc
from h5stream import lowlevel
from h5stream.writer.gzip import GzipChunks

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

__all__ = [
    "WriteOptions",
    "write_array",
    "write_many",
    "choose_chunks",
    "layout_kwargs",
    "set_text_attr",
    "resolve_threads",
    "CHUNK_TARGET_BYTES",
    "SMALL_ARRAY_BYTES",
]

# About 1 MiB per chunk: large enough for codecs to work well, small enough
# that reading one sample's row decompresses little else.
CHUNK_TARGET_BYTES = 1 << 20
# Below this an array is stored contiguously even when compression is asked
# for: a chunk index costs more than compressing a few KiB saves.
SMALL_ARRAY_BYTES = 4 << 10
#: An uncompressed array of at least this many bytes has its digest computed while HDF5 writes it
#: (80 MB: 15-20 ms less of a 0.1 s write)
OVERLAPPED_DIGEST_BYTES = 8 << 20
#: a plain array at least this large goes to the file in blocks of :data:`WRITEBACK_BLOCK_BYTES`, each
#: block's pages handed to the disk as soon as HDF5 wrote them (:func:`h5stream.native.libc.start_writeback`):
#: the disk writes while the next blocks are copied, and the file's closing fsync waits for the last ones only
WRITEBACK_MIN_BYTES = 32 << 20
WRITEBACK_BLOCK_BYTES = 8 << 20
#: Pieces of an array compressed to decide ``only_if_shrinks_to`` (in the first, middle and last but one chunk)
SAMPLE_CHUNKS = 3
#: Bytes of each piece where chunks are row blocks (whole rows, at least one)
SAMPLE_BYTES = 64 << 10
# Rows per block when a non-contiguous array is copied block by block.
BLOCK_TARGET_BYTES = 16 << 20

def resolve_threads(n_threads: int | None) -> int:
    """Threads to use: ``n_threads`` if given, else the cores free now (:func:`h5stream.cores.free_cores`:
    the allowed cores less those other processes keep busy; ``H5STREAM_THREADS`` overrides)."""
    if n_threads is None:
        return free_cores()
    if int(n_threads) < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    return int(n_threads)


@dataclasses.dataclass(frozen=True)
class WriteOptions:
    """How arrays are laid out and compressed.

    Attributes
    ----------
    compression : str or None
        None, "gzip", "lzf", or (with hdf5plugin) "zstd", "lz4", "blosc",
        "blosc2", "bitshuffle".
    level : int or None
        Codec level; None: the codec's default (gzip: 4, as h5py's), also when the options are built
        directly rather than through :meth:`build`.
    chunks : "auto", tuple or None
        Chunk policy (see :func:`choose_chunks`): "auto" and None store
        uncompressed arrays contiguously and compressed ones in row blocks; a
        tuple is used as given (and makes an uncompressed array chunked).
    shuffle : bool
        HDF5's byte-shuffle filter before the codec (standard, readable everywhere).
    n_threads : int or None
        Threads for parallel gzip (None: every allowed core, see :func:`h5stream.cores.sharing_threads`).
    deflate : {"zlib", "libdeflate", "auto"}
        Encoder of gzip chunks (:func:`h5stream.compression.deflate_kernel`): zlib,
        byte-identical to HDF5's filter (default), or libdeflate, the same
        format about twice as fast ("auto": libdeflate when installed).
    only_if_shrinks_to : float or None
        gzip only: an array is compressed only where a sample of its chunks
        (:data:`SAMPLE_CHUNKS`, compressed as the array would be) keeps at most
        this share of their bytes; otherwise it is stored uncompressed (noise
        such as the low bytes of measured values costs more time to deflate
        than its few saved bytes save).  An array (or text column) smaller than
        one chunk (:data:`CHUNK_TARGET_BYTES`) is stored uncompressed: the bytes
        it could save take less time to write than starting the compression.
        Text and streamed columns above that are compressed without a sample.
        None: always compressed.
    extra : dict
        Element-level options (``index`` of a dataframe, ``block_rows`` ...).
    """

    compression: str | None = None
    level: int | None = None
    chunks: Any = "auto"
    shuffle: bool = False
    n_threads: int | None = None
    deflate: str = "zlib"
    only_if_shrinks_to: float | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        # options built directly (not through build) take the codec's default level, as h5py does
        # (gzip: 4); the writers need a number
        if isinstance(self.compression, str) and self.level is None:
            object.__setattr__(self, "level", get_codec(self.compression.lower()).resolve_level(None))

    @classmethod
    def build(
        cls,
        *,
        compression: str | None = None,
        level: Any = None,
        chunks: Any = "auto",
        n_threads: int | None = None,
        shuffle: bool = False,
        deflate: str = "zlib",
        only_if_shrinks_to: float | None = None,
        **extra: Any,
    ) -> WriteOptions:
        """Validate and build options (the keyword form used by ``write_elem``)."""
        if isinstance(compression, str):
            compression = compression.lower()
        if compression is not None:
            codec = get_codec(compression)
            level = codec.resolve_level(level)
            if codec.plugin is not None:
                codec.filter_kwargs(level, shuffle)  # fail early without hdf5plugin
        elif level is not None:
            level = int(level)
        if not (chunks == "auto" or chunks is None or isinstance(chunks, tuple)):
            raise ValueError(f"chunks must be 'auto', None or a tuple, got {chunks!r}")
        if n_threads is not None:
            resolve_threads(n_threads)
        if deflate not in DEFLATE_IMPLEMENTATIONS:
            raise ValueError(f"deflate must be one of {DEFLATE_IMPLEMENTATIONS}, got {deflate!r}")
        if only_if_shrinks_to is not None:
            only_if_shrinks_to = float(only_if_shrinks_to)
            if compression != "gzip" or not 0.0 < only_if_shrinks_to <= 1.0:
                raise ValueError(f"only_if_shrinks_to takes a share in (0, 1] with gzip, got {only_if_shrinks_to!r} "
                                 f"with compression {compression!r}")
        return cls(
            compression=compression,
            level=level,
            chunks=chunks,
            shuffle=bool(shuffle),
            n_threads=n_threads,
            deflate=deflate,
            only_if_shrinks_to=only_if_shrinks_to,
            extra=dict(extra),
        )

    def with_extra(self, **extra: Any) -> WriteOptions:
        return dataclasses.replace(self, extra={**self.extra, **extra})

    @property
    def uncompressed(self) -> WriteOptions:
        return dataclasses.replace(self, compression=None, level=None, shuffle=False, only_if_shrinks_to=None)


def choose_chunks(shape: tuple[int, ...], itemsize: int, requested: Any = "auto") -> tuple[int, ...]:
    """Chunk shape for ``shape``: row blocks of about 1 MiB covering whole rows.

    A matrix row (all trailing dimensions) whose bytes exceed the target is
    split along the last dimension.  ``requested`` as a tuple is returned
    (clipped to the shape) after checking it has one positive entry per axis.
    """
    if isinstance(requested, tuple):
        if len(requested) != len(shape) or any(int(c) < 1 for c in requested):
            raise ValueError(f"chunks {requested!r} do not fit an array of shape {shape}")
        return tuple(min(int(c), max(int(s), 1)) for c, s in zip(requested, shape))
    shape = tuple(max(int(s), 1) for s in shape)
    itemsize = max(int(itemsize), 1)
    if len(shape) == 1:
        return (min(shape[0], max(1, CHUNK_TARGET_BYTES // itemsize)),)
    row_items = math.prod(shape[1:])
    row_bytes = row_items * itemsize
    if row_bytes <= CHUNK_TARGET_BYTES:
        rows = max(1, min(shape[0], CHUNK_TARGET_BYTES // row_bytes))
        return (rows, *shape[1:])
    # One row is too big: one row per chunk, trailing axes shrunk from the left.
    chunk = [1, *shape[1:]]
    for axis in range(1, len(shape)):
        rest = math.prod(chunk[axis + 1 :]) * itemsize
        chunk[axis] = max(1, min(shape[axis], CHUNK_TARGET_BYTES // max(rest, 1)))
        if math.prod(chunk) * itemsize <= CHUNK_TARGET_BYTES:
            break
    return tuple(chunk)


def layout_kwargs(array_shape: tuple[int, ...], itemsize: int, options: WriteOptions) -> dict:
    """h5py ``create_dataset`` keywords for layout and filters.

    Every chunked layout ends its filter pipeline with HDF5's Fletcher32
    checksum (:mod:`h5stream.checksums`), which every HDF5 reader checks.
    """
    size = math.prod(array_shape)
    if len(array_shape) == 0 or size == 0:
        # Scalars cannot be chunked; empty arrays have nothing to compress.
        return {}
    if options.only_if_shrinks_to is not None and size * itemsize < CHUNK_TARGET_BYTES:
        # under one chunk: the bytes compression could save take less time to write than starting it
        options = options.uncompressed
    compressed = options.compression is not None or options.shuffle
    if not isinstance(options.chunks, tuple):
        if not compressed:
            # Uncompressed C-order storage already reads a row block in one seek.
            return {}
        if size * itemsize <= SMALL_ARRAY_BYTES:
            return {}
    kwargs: dict[str, Any] = {
        "chunks": choose_chunks(array_shape, itemsize, options.chunks if options.chunks is not None else "auto"),
        "fletcher32": True,
    }
    if options.compression is not None:
        codec = get_codec(options.compression)
        kwargs.update(codec.filter_kwargs(options.level, options.shuffle))
        if codec.shuffles_inside:
            return kwargs
    if options.shuffle:
        kwargs["shuffle"] = True
    return kwargs


def _row_blocks(n_rows: int, row_bytes: int, target: int = BLOCK_TARGET_BYTES, multiple: int = 1) -> Iterator[slice]:
    """Blocks of about ``target`` bytes of whole rows, each a ``multiple`` of rows (but the last)."""
    step = max(1, target // max(row_bytes, 1))
    step = max(multiple, step // multiple * multiple)
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def write_array(parent: h5py.Group, key: str, array: np.ndarray, options: WriteOptions | None = None) -> h5py.Dataset:
    """Write a numeric, boolean or fixed-width bytes array as dataset ``key``.

    Thin wrapper: validates, chooses layout and filters, then writes through
    the parallel gzip path or h5py.  The dataset keeps the array's dtype and
    logical shape; memory order is the caller's business (the element codecs
    record Fortran order in an attribute).

    Parameters
    ----------
    parent : h5py.Group
    key : str
    array : numpy.ndarray
    options : WriteOptions, optional

    Returns
    -------
    h5py.Dataset
    """
    options = options or WriteOptions()
    if not isinstance(array, np.ndarray):
        raise EncodingError("write_array needs a numpy array", found=type(array).__name__)
    if array.dtype.kind not in "biufcSV" or array.dtype.hasobject:
        raise EncodingError(
            "dtype cannot be stored as a plain HDF5 array",
            path=parent.file.filename,
            obj=key,
            expected="bool, int, uint, float, complex or fixed-width bytes",
            found=str(array.dtype),
        )
    kwargs = layout_kwargs(array.shape, array.dtype.itemsize, options)
    try:
        parallel = "compression" in kwargs and get_codec(options.compression).parallel_kernel == "deflate"
        if (
            parallel
            and array.ndim >= 1
            and array.size > 0
            and array.dtype.kind in "biufc"
        ):
            if options.only_if_shrinks_to is not None and "chunks" in kwargs:
                share = _sampled_share(array, kwargs, options)
                if share > options.only_if_shrinks_to:
                    logger.debug("%s: a sample of its chunks keeps %.2f of its bytes; stored uncompressed", key, share)
                    return _write_plain(parent, key, array, layout_kwargs(array.shape, array.dtype.itemsize,
                                                                          options.uncompressed))
            return _write_gzip_direct(parent, key, array, kwargs, options)
        return _write_plain(parent, key, array, kwargs)
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, (WriteError, MissingPluginError)):
            raise
        raise WriteError(
            f"writing the array failed ({exc})", path=parent.file.filename, obj=key
        ) from exc


def _write_plain(parent: h5py.Group, key: str, array: np.ndarray, kwargs: dict) -> h5py.Dataset:
    # A dataset without Fletcher32 gets its digest in the file's checksum manifest, when it keeps one.
    recorder = None if "fletcher32" in kwargs else checksums.recorder_for(parent)
    # Digests: of the whole array, and of its pieces where it has several (a read of some rows checks those).
    if array.ndim == 0 or array.flags.c_contiguous:
        digests = None
        if array.ndim == 0 or array.size == 0:
            ds = parent.create_dataset(key, data=array, **kwargs)
        else:
            ds = parent.create_dataset(key, shape=array.shape, dtype=array.dtype, **kwargs)
            if recorder is not None and array.nbytes >= OVERLAPPED_DIGEST_BYTES:
                # the digests (libdeflate's CRC-32, outside the GIL) on another thread while HDF5 writes
                with ThreadPoolExecutor(1, thread_name_prefix="digest") as pool:
                    pending = pool.submit(checksums.array_digests, array)
                    try:
                        _write_handing_to_disk(ds, array)
                    finally:
                        digests = pending.result()
            else:
                _write_handing_to_disk(ds, array)
        if recorder is not None:
            recorder.dataset(ds.name, *(digests if digests is not None else checksums.array_digests(array)))
        return ds
    ds = parent.create_dataset(key, shape=array.shape, dtype=array.dtype, **kwargs)
    row_bytes = math.prod(array.shape[1:]) * array.dtype.itemsize
    crc = checksums.digest_start(array.dtype, array.shape)
    piece = checksums.piece_rows(array.shape, array.dtype.itemsize)
    pieces = []
    for rows in _row_blocks(array.shape[0], row_bytes, multiple=piece):
        # Bounded copy of one block; the full array is never copied.
        block = np.ascontiguousarray(array[rows])
        ds[rows] = block
        if recorder is not None:
            crc = checksums.digest_update(crc, block)
            pieces.extend(checksums.array_digest(block[i:i + piece]) for i in range(0, block.shape[0], piece))
    if recorder is not None:
        recorder.dataset(ds.name, checksums.digest_end(crc), f"{piece}/{''.join(pieces)}" if len(pieces) > 1 else None)
    return ds


def _write_handing_to_disk(ds: h5py.Dataset, array: np.ndarray) -> None:
    """``ds.write_direct(array)`` (C-contiguous, all of ``ds``), block by block with each block's pages handed
    to the disk at once where the array is large and the file is an ordinary one (sec2 driver)."""
    fd = None
    if array.nbytes >= WRITEBACK_MIN_BYTES and ds.file.driver == "sec2" and capabilities.early_writeback():
        try:
            fd = ds.file.id.get_vfd_handle()
        except (OSError, RuntimeError, ValueError):
            fd = None
    if not isinstance(fd, int):
        ds.write_direct(array)
        return
    n = array.shape[0]
    row_bytes = math.prod(array.shape[1:]) * array.dtype.itemsize
    step = max(1, WRITEBACK_BLOCK_BYTES // max(row_bytes, 1))
    start = 0
    while start < n:
        rows = np.s_[start : min(n, start + step)]
        ds.write_direct(array, rows, rows)
        # contiguous storage is placed at the first write; chunked storage has no one offset
        offset = ds.id.get_offset()
        if offset is None or not libc.start_writeback(fd, offset + start * row_bytes, (rows.stop - start) * row_bytes):
            if rows.stop < n:  # nothing to hand over early: the rest at once
                ds.write_direct(array, np.s_[rows.stop :], np.s_[rows.stop :])
            return
        start = rows.stop


def _sampled_share(array: np.ndarray, kwargs: dict, options: WriteOptions) -> float:
    """Share of their bytes that :data:`SAMPLE_CHUNKS` pieces of ``array`` (first, middle, last but one chunk)
    keep when compressed as ``kwargs`` say, on this thread.

    Where chunks are row blocks spanning whole rows, each piece is the first :data:`SAMPLE_BYTES` of
    its chunk (whole rows, shuffled on their own): a deflate window is 32 KiB, so the share of 64 KiB
    is that of the chunk within a few percent, for a twentieth of the work.
    """
    chunks = tuple(int(c) for c in kwargs["chunks"])
    row_bytes = math.prod(array.shape[1:]) * array.dtype.itemsize
    rows = max(1, SAMPLE_BYTES // max(row_bytes, 1))
    if array.ndim >= 1 and chunks[1:] == array.shape[1:] and rows < chunks[0]:
        n = -(-array.shape[0] // chunks[0])
        last = n - 1 if n <= SAMPLE_CHUNKS else n - 2
        starts = sorted({round(i * last / max(SAMPLE_CHUNKS - 1, 1)) * chunks[0] for i in range(min(SAMPLE_CHUNKS, n))})
        array = np.concatenate([array[start:start + rows] for start in starts])
        chunks = (rows, *chunks[1:])
    sample = GzipChunks(array, chunks, int(kwargs["compression_opts"]), shuffle=bool(kwargs.get("shuffle")),
                        implementation=options.deflate, threads=1)
    return sample.sampled_share(SAMPLE_CHUNKS)


def _write_gzip_direct(
    parent: h5py.Group, key: str, array: np.ndarray, kwargs: dict, options: WriteOptions
) -> h5py.Dataset:
    """gzip through the engine's one chunk-filling gzip writer (:class:`h5stream.writer.gzip.GzipChunks`)."""
    # threads take one chunk at a time from a queue: every allowed core pays, even on a busy machine
    n_threads = resolve_threads(options.n_threads) if options.n_threads is not None else sharing_threads()
    chunks = GzipChunks(array, tuple(kwargs["chunks"]), int(kwargs["compression_opts"]),
                        shuffle=bool(kwargs.get("shuffle")), fletcher32=bool(kwargs.get("fletcher32")),
                        implementation=options.deflate, threads=n_threads)
    ds = parent.create_dataset(key, shape=array.shape, dtype=array.dtype, **kwargs)
    chunks.store(ds)
    return ds


# --------------------------------------------------------------------------- many small objects


def set_text_attr(obj, name: str, value: str) -> None:
    """Set a UTF-8 string attribute (the same variable-length string h5py writes).

    ``obj`` is an h5py object or a low-level object id.  Goes through the
    low-level API: about four times faster than ``obj.attrs[name] = value``,
    which matters when thousands of small elements are stamped.
    """
    oid = obj.id if isinstance(obj, h5py.HLObject) else obj
    bname = name.encode("utf-8")
    if h5py.h5a.exists(oid, bname):
        h5py.h5a.delete(oid, bname)
    lowlevel.create_attr(oid, name, value)


def write_many(
    parent: h5py.Group,
    objects: Mapping[str, Any],
    *,
    attrs: Mapping[str, Mapping[str, Any]] | None = None,
) -> int:
    """Write a tree of many small objects in one pass.

    ``objects`` maps relative paths to values: a numpy array (or anything
    ``numpy.asarray`` turns into a numeric, boolean or bytes array; ``str``
    becomes UTF-8 bytes) becomes a plain dataset, ``None`` or a mapping
    becomes a group (a mapping's items are written inside it, recursively).
    ``attrs`` maps relative paths (``""`` for ``parent``) to attribute
    dictionaries (``str`` values become UTF-8 string attributes, others numpy
    scalars or arrays).  Intermediate groups are created as needed; existing
    groups are reused.  Nothing here is stamped with an encoding: this is for
    fixed layouts such as one group per recorded unit.  Use
    :func:`h5stream.elements.write_elem` for self-describing elements, and the
    typed tree (:mod:`h5stream.tree`) for exact Python values.

    Groups, datasets and attributes are created by the primitives of
    :mod:`h5stream.lowlevel`, with the same property lists and layout
    policy as the typed tree (compact up to ``COMPACT_LIMIT`` bytes,
    contiguous above) and no per-object flush or reopen.

    Returns
    -------
    int
        Number of objects (groups and datasets) created.

    Examples
    --------
    >>> write_many(f["/units"], {f"unit_{i}/spikes": spikes[i] for i in range(5000)},
    ...            attrs={f"unit_{i}": {"row": r, "col": c} for i, (r, c) in enumerate(pos)})
    """
    path_label = parent.file.filename
    created = 0
    groups: dict[str, h5py.h5g.GroupID] = {"": parent.id}

    def group_id(path: str) -> h5py.h5g.GroupID:
        nonlocal created
        gid = groups.get(path)
        if gid is not None:
            return gid
        head, _, name = path.rpartition("/")
        owner = group_id(head)
        check_name(name, what="object name", path=path_label)
        bname = name.encode("utf-8")
        if owner.links.exists(bname):
            gid = h5py.h5g.open(owner, bname)
        else:
            gid = lowlevel.create_group(owner, name)
            created += 1
        groups[path] = gid
        return gid

    def as_array(path: str, value: Any) -> np.ndarray:
        array = np.asarray(value)
        if array.dtype.kind == "U":
            array = np.char.encode(array, "utf-8")
        if array.dtype.kind not in "biufcS" or array.dtype.hasobject:
            raise EncodingError(
                "write_many stores numeric, boolean or bytes arrays only",
                path=path_label, obj=path, found=str(array.dtype),
                hint="write other values with write_elem",
            )
        return np.ascontiguousarray(array)  # at least 1-D: a scalar is stored as one element

    def put(path: str, value: Any) -> None:
        nonlocal created
        if value is None or isinstance(value, Mapping):
            group_id(path)
            for name, item in (value or {}).items():
                put(f"{path}/{name}", item)
            return
        array = as_array(path, value)
        head, _, name = path.rpartition("/")
        owner = group_id(head)
        check_name(name, what="object name", path=path_label)
        lowlevel.store_fixed(owner, name, array).close()
        created += 1

    def put_attr(oid, path: str, name: str, value: Any) -> None:
        if isinstance(value, str):
            set_text_attr(oid, name, value)
            return
        array = as_array(f"{path}@{name}", value)
        if h5py.h5a.exists(oid, name.encode("utf-8")):
            h5py.h5a.delete(oid, name.encode("utf-8"))
        lowlevel.create_attr(oid, name, array)

    try:
        for path, value in objects.items():
            put(path.strip("/"), value)
        for path, attributes in (attrs or {}).items():
            path = path.strip("/")
            oid = groups[path] if path in groups else (parent[path] if path else parent).id
            for name, value in attributes.items():
                put_attr(oid, path, name, value)
    finally:
        for path, gid in groups.items():
            if path:
                gid.close()
    return created
