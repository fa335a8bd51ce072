"""The one place that talks to HDF5 below h5py's high-level API.

It owns what every writer of many small objects reuses: the dataset-, group-
and link-creation property lists, the caches of file types and dataspaces, the
UTF-8 text type, and :class:`NativeHDF5`, the writer's direct calls into the
very libhdf5 that h5py loaded (:mod:`h5stream.native.libhdf5`, which also holds
h5py's global lock).  The
layout policy lives here too, once: datasets up to :data:`COMPACT_LIMIT` bytes
are compact, larger ones contiguous.

:func:`store_array` (one dataset), :func:`create_group`, :func:`create_attr`
and :func:`copy_dataset` are the h5py-level primitives built on them; the
node-tree writer (:mod:`h5stream.tree.write`), the staging area and
:func:`h5stream.writer.write_many` all go through them.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading

import h5py
import numpy as np

from h5stream.digests import _h5attrs, digest_end, digest_start, digest_update, value_digest
from h5stream.native import compiled, libdeflate, libhdf5

#: the compiled dataset kernel (a group's small arrays created, written and digested in one call)
_h5dsets = compiled("_h5dsets")

__all__ = [
    "COMPACT_LIMIT", "HEADER_LINKS_MAX", "LIBVER", "TEXT_DTYPE", "NativeHDF5", "create_file", "native_hdf5",
    "library_lock", "plists", "file_type", "dataspace", "TEXT_TYPE", "SCALAR_SPACE", "store_array",
    "store_fixed", "SNAPSHOT_BLOCK", "PAGE", "store_allocated_digested", "write_snapshots", "create_group",
    "create_attr", "copy_dataset", "copy_dataset_at", "take_dataset_nodes", "EVICTING_CACHE_BYTES",
    "EVICTING_META_BLOCK_BYTES"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: Datasets up to this many bytes are stored compact (inside their object header):
#: one metadata write instead of a separate raw-data block, the fastest layout for
#: the many tiny arrays of a recording (short spike trains, waveforms, features).
COMPACT_LIMIT = 16 * 1024

#: A group written with up to this many links keeps them in its object header (compact link storage, the
#: header sized for them at creation: :meth:`PropertyLists.group_sized`); a larger one in dense storage
#: (a fractal heap and a B-tree of names).  Inserting a link into the header scans the links there, so its
#: cost grows with the group: in the lab-sized session's save, groups of 200 trials are faster in the
#: header (the save 0.92 s against 1.05 s dense) and groups of 400 slower (the sectioning's share 2.93 s
#: against 2.80 s; 2.40 s with them dense and the smaller groups in the header).
HEADER_LINKS_MAX = 256

#: The metadata cache of a file written with evict-on-close, fixed (never resized).  What stays cached is
#: the open groups' entries and the global heap collections (variable-length strings), and libhdf5 walks
#: every cached collection at each dataset's close (its flush of tagged entries marks the global ones too):
#: with the default cache, grown to hold them all, that walk grows with the file; held to this size, the
#: least recently used collections leave and the walk stays short (the 240-unit x 400-trial session's save:
#: the walk's share of the samples 3.2% -> 1.6%).  A dense group of 30,000 links costs 13% more to write
#: at this size (10,000: 3%), its heap and B-tree no longer all cached.
EVICTING_CACHE_BYTES = 256 * 1024

#: An evicting file's metadata block (libhdf5's default: 2 KiB): consecutive objects' headers lie side by side,
#: so the writes their closes make join in libhdf5's metadata accumulator, not one pwrite each between the raw
#: data allocated among them (file space only, no memory; at most this much of it may stay unused in the file).
EVICTING_META_BLOCK_BYTES = 256 * 1024

#: File-format bounds of the files the engine creates (new-style groups with
#: compact link storage: faster to create and smaller for many small groups).
LIBVER = ("v110", "latest")

TEXT_DTYPE = h5py.string_dtype("utf-8")

#: ``libver`` names (as h5py takes them) -> libhdf5's format bounds
_LIBVERS = {name: getattr(h5py.h5f, constant) for name, constant in (
    ("earliest", "LIBVER_EARLIEST"), ("v108", "LIBVER_V18"), ("v110", "LIBVER_V110"), ("v112", "LIBVER_V112"),
    ("v114", "LIBVER_V114"), ("v200", "LIBVER_V200"), ("latest", "LIBVER_LATEST")) if hasattr(h5py.h5f, constant)}


def create_file(path, mode: str = "x", *, libver: str | tuple | None = None, userblock_size: int | None = None,
                locking: bool | None = None, evict_on_close: bool = False) -> h5py.File:
    """A new HDF5 file at ``path`` (``mode`` "x": it must not exist), as ``h5py.File(path, "x", libver=...,
    userblock_size=..., locking=...)`` creates it, with libhdf5's evict-on-close when asked for.

    ``evict_on_close``: each object's metadata leaves libhdf5's cache when the object is closed (written
    out then, once) instead of staying until the cache fills or the file closes: a writer of tens of
    thousands of small objects that closes each one for good spends about a fifth less time in libhdf5
    (its cache stays small, held at :data:`EVICTING_CACHE_BYTES`; :data:`EVICTING_META_BLOCK_BYTES`).  What a
    reader sees is the same; where libhdf5 cannot set it (no direct calls), the file is created without it."""
    if mode != "x":
        raise ValueError(f"create_file: mode {mode!r}; only 'x' (a new file) is taken")
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    if libver is not None:
        low, high = (libver, "latest") if isinstance(libver, str) else libver
        fapl.set_libver_bounds(_LIBVERS[low], _LIBVERS[high])
    else:
        fapl.set_libver_bounds(h5py.h5f.LIBVER_EARLIEST, h5py.h5f.LIBVER_LATEST)
    if locking is not None:
        fapl.set_file_locking(bool(locking), False)
    if evict_on_close:
        lib = libhdf5.library()
        if lib is not None:
            (setter,) = libhdf5.functions(lib, ["H5Pset_evict_on_close"]).values()
            if setter(fapl.id, True) < 0:
                raise RuntimeError(f"{path}: libhdf5 refused evict-on-close on a file access list")
            config = fapl.get_mdc_config()  # a fixed size: no adaptive resizing (H5C_incr__off, ...)
            config.set_initial_size, config.incr_mode, config.flash_incr_mode, config.decr_mode = True, 0, 0, 0
            config.initial_size = config.min_size = config.max_size = EVICTING_CACHE_BYTES
            fapl.set_mdc_config(config)
            fapl.set_meta_block_size(EVICTING_META_BLOCK_BYTES)
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    if userblock_size:
        fcpl.set_userblock(userblock_size)
    fid = h5py.h5f.create(os.fsencode(path), h5py.h5f.ACC_EXCL, fapl=fapl, fcpl=fcpl)
    return h5py.File(fid)


#: h5py's global lock: hold it around direct library calls so no other thread enters libhdf5.
library_lock = libhdf5.lock


class PropertyLists:
    """Creation property lists of one thread (h5py property lists are not shared across threads)."""

    __slots__ = ("compact", "contiguous", "allocated", "text", "group", "link", "_sized")

    def __init__(self) -> None:
        self.compact = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        self.compact.set_layout(h5py.h5d.COMPACT)
        self.contiguous = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        self.contiguous.set_layout(h5py.h5d.CONTIGUOUS)
        # contiguous, its space allocated at creation: its offset is known before any byte is written
        self.allocated = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        self.allocated.set_layout(h5py.h5d.CONTIGUOUS)
        self.allocated.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        for dcpl in (self.compact, self.contiguous, self.allocated):
            # Every byte is written right after creation, so fill values would be wasted work;
            # modification times cost an extra header message and update per object.
            dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
            dcpl.set_obj_track_times(False)
        # Variable-length text refuses FILL_TIME_NEVER (HDF5 must be able to free unwritten elements).
        self.text = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        self.text.set_obj_track_times(False)
        self.group = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        # No modification times: one header message and one update less per group, and
        # files whose bytes do not depend on the clock.
        self.group.set_obj_track_times(False)
        self.link = h5py.h5p.create(h5py.h5p.LINK_CREATE)
        self.link.set_create_intermediate_group(False)
        self.link.set_char_encoding(h5py.h5t.CSET_UTF8)
        self._sized: dict[tuple[int, int], h5py.h5p.PropGCID] = {}

    def group_sized(self, n_links: int, name_chars: int, attr_bytes: int = 0) -> int:
        """The id of a group creation list for ``n_links`` links of ``name_chars`` name characters together and
        attributes of about ``attr_bytes`` header bytes (direct library calls only: :func:`native_hdf5`).

        The header is sized at creation (``H5Pset_est_link_info``) for the links and, added to their
        estimated name length, the attributes written after them: it does not grow a continuation chunk
        at a time as they arrive.  A group of up to :data:`HEADER_LINKS_MAX` links keeps them there rather
        than in dense storage (``H5Pset_link_phase_change``: compact up to ``n_links``; removing links down
        to 6 or fewer, as by default, brings a dense group back).  Readers see the same objects either way.
        """
        in_header = n_links <= HEADER_LINKS_MAX
        estimated = max(n_links if in_header else 8, 1)  # the links the header is sized for
        room = -(-attr_bytes // estimated)  # the attributes' room, per estimated link
        key = (n_links if in_header else -1, min(min(-(-name_chars // max(n_links, 1)), 255) + room, 65535))
        gcpl = self._sized.get(key)
        if gcpl is None:
            gcpl = self.group.copy()
            set_phase, set_estimate = libhdf5.functions(
                libhdf5.library(), ["H5Pset_link_phase_change", "H5Pset_est_link_info"]).values()
            # (the default phase change keeps 8 links in the header: a smaller group keeps it; a group of more
            # than HEADER_LINKS_MAX links has its header sized for the 8 it holds before it turns dense)
            if in_header and n_links > 8 and set_phase(gcpl.id, n_links, 6) < 0:
                raise RuntimeError(f"libhdf5 refused a group creation list for {n_links} links in the header")
            if set_estimate(gcpl.id, estimated if n_links or room else 0, max(key[1], 1)) < 0:
                raise RuntimeError(f"libhdf5 refused a group creation list estimating {n_links} links")
            if len(self._sized) >= 512:  # a bounded number of lists (one per link count seen: mostly a few)
                self._sized.clear()
            self._sized[key] = gcpl  # (kept referenced: the id stays open for the caller)
        return gcpl.id

    def dataset(self, nbytes: int):
        """The creation list of a numeric dataset of ``nbytes`` bytes (the layout policy)."""
        return self.compact if 0 < nbytes <= COMPACT_LIMIT else self.contiguous


_per_thread = threading.local()


def plists() -> PropertyLists:
    """This thread's property lists, built on first use and reused."""
    cached = getattr(_per_thread, "value", None)
    if cached is None:
        cached = _per_thread.value = PropertyLists()
    return cached


_type_cache: dict[np.dtype, h5py.h5t.TypeID] = {}


def file_type(dtype: np.dtype) -> h5py.h5t.TypeID:
    """The HDF5 type of a numpy dtype (cached)."""
    tid = _type_cache.get(dtype)
    if tid is None:
        tid = _type_cache[dtype] = h5py.h5t.py_create(dtype, logical=True)
    return tid


#: The variable-length UTF-8 string type (what h5py writes for ``str``).
TEXT_TYPE = h5py.h5t.py_create(TEXT_DTYPE, logical=True)
SCALAR_SPACE = h5py.h5s.create(h5py.h5s.SCALAR)
_space_cache: dict[tuple[int, ...], h5py.h5s.SpaceID] = {}


def dataspace(shape: tuple[int, ...]) -> h5py.h5s.SpaceID:
    """A simple dataspace of ``shape`` (scalar for ``()``), cached for the shapes seen most."""
    if shape == ():
        return SCALAR_SPACE
    space = _space_cache.get(shape)
    if space is None:
        space = h5py.h5s.create_simple(shape)
        if len(_space_cache) < 4096:  # shapes of spike trains vary; keep the cache bounded
            _space_cache[shape] = space
    return space


# --------------------------------------------------------------------------- h5py-level primitives


#: Bytes of an array copied at a time when it is written from private copies (:func:`write_snapshots`).
SNAPSHOT_BLOCK = 8 << 20

#: The alignment of unbuffered writes (O_DIRECT): file offsets, lengths and memory in multiples of it.
PAGE = 4096

#: Blocks of at least this many bytes are copied into the thread's reused block buffer (:func:`_snapshot`);
#: smaller ones into a fresh array (cheaper than a buffer view for the many tiny values of a recording).
_REUSED_FROM = 256 << 10

_snapshot_buffers = threading.local()


def _snapshot(part: np.ndarray) -> np.ndarray:
    """A private C-ordered copy of ``part``.

    A block of :data:`_REUSED_FROM` to :data:`SNAPSHOT_BLOCK` bytes is copied into this thread's one
    buffer, allocated once and reused: a fresh array of megabytes would be new memory each time, its
    pages faulted in and zeroed by the system before the copy (more than twice the processor time of
    copying, digesting and writing the block together; the whole cost of a spill of gigabytes on a
    busy machine).  The copy is valid until this thread's next call."""
    nbytes = part.nbytes
    if not _REUSED_FROM <= nbytes <= SNAPSHOT_BLOCK:
        return np.array(part, order="C", copy=True)
    buffer = getattr(_snapshot_buffers, "value", None)
    if buffer is None:
        # page-aligned, so a block can go to the disk from it unbuffered (O_DIRECT, see h5stream.staging)
        spare = np.empty(SNAPSHOT_BLOCK + PAGE, dtype=np.uint8)
        start = -spare.ctypes.data % PAGE
        buffer = _snapshot_buffers.value = spare[start:start + SNAPSHOT_BLOCK]
    block = buffer[:nbytes].view(part.dtype).reshape(part.shape)
    np.copyto(block, part, casting="no")
    return block


def write_snapshots(array: np.ndarray, write_block, *, digest: bool = True) -> str | None:
    """Write a fixed-size array from private copies of it, block by block; returns the digest
    (:func:`h5stream.checksums.array_digest`) of exactly what was written.

    Another thread may change ``array`` while it is written (the caller's own thread pool, a
    progress callback): a digest taken from ``array`` itself, before or after, could then differ from
    the bytes HDF5 took, and the file would fail its own check.  Each block is copied once (at most
    :data:`SNAPSHOT_BLOCK` bytes, whole rows along the first axis; :func:`_snapshot`), digested and
    written from the copy, so the digest and the file always agree.  ``write_block(rows, block)``
    writes ``block`` as rows ``rows = (start, stop)`` of the dataset, or as all of it when ``rows`` is
    None, before it returns (the block's memory is reused afterwards).  Without ``digest`` nothing
    needs to agree with the bytes: the array is written as it is, in one call.
    """
    if not digest:
        if array.size:
            write_block(None, np.ascontiguousarray(array))
        return None
    crc = digest_start(array.dtype, array.shape)
    if array.size == 0:
        return digest_end(crc)
    if array.ndim == 0 or array.nbytes <= SNAPSHOT_BLOCK:
        block = _snapshot(array)
        write_block(None, block)
        return digest_end(digest_update(crc, block))
    rows = max(1, SNAPSHOT_BLOCK // max(1, array[0].nbytes))
    for start in range(0, array.shape[0], rows):
        stop = min(start + rows, array.shape[0])
        block = _snapshot(array[start:stop])
        crc = digest_update(crc, block)
        write_block((start, stop), block)
    return digest_end(crc)


def store_allocated_digested(pid, name: str, array: np.ndarray, write_at) -> tuple[h5py.h5d.DatasetID, str] | None:
    """Create dataset ``name`` under ``pid`` with its space allocated at once (contiguous) and write
    ``array``'s bytes there through ``write_at(block, file_offset)`` (a block: C-ordered bytes, at most
    :data:`SNAPSHOT_BLOCK`, a private copy as in :func:`write_snapshots`, page-aligned in memory when it is
    a whole block), outside the library; returns the dataset and the digest of what was written.

    For plain numbers only (a numpy dtype whose bytes are the file's: ``biuf``) in one C-ordered piece;
    None (nothing created) for any other array.  If ``write_at`` raises, the dataset's link is removed.
    """
    tid = file_type(array.dtype)
    if array.dtype.kind not in "biuf" or not array.flags.c_contiguous or tid.get_size() != array.dtype.itemsize:
        return None
    dsid = h5py.h5d.create(pid, name.encode("utf-8"), tid, dataspace(array.shape), dcpl=plists().allocated,
                           lcpl=plists().link)
    try:
        offset = dsid.get_offset()
        if offset is None:
            raise OSError(f"the library did not allocate the dataset {name!r} of {array.nbytes} bytes at creation")
        flat = array.reshape(-1).view(np.uint8)
        crc = digest_start(array.dtype, array.shape)
        for at in range(0, flat.size, SNAPSHOT_BLOCK):
            block = _snapshot(flat[at:at + SNAPSHOT_BLOCK])
            crc = digest_update(crc, block)
            write_at(block, offset + at)
    except BaseException:
        with contextlib.suppress(Exception):
            pid.unlink(name.encode("utf-8"))
        raise
    return dsid, digest_end(crc)


def row_spaces(shape: tuple[int, ...], rows: tuple[int, int]) -> tuple[h5py.h5s.SpaceID, h5py.h5s.SpaceID]:
    """(memory space, file space) selecting rows ``rows`` of a dataset of ``shape`` (fresh, never cached)."""
    count = (rows[1] - rows[0], *shape[1:])
    file_space = h5py.h5s.create_simple(shape)
    file_space.select_hyperslab((rows[0],) + (0,) * (len(shape) - 1), count)
    return h5py.h5s.create_simple(count), file_space


def store_array(parent, name: str, array: np.ndarray) -> h5py.h5d.DatasetID:
    """Create dataset ``name`` in ``parent`` holding ``array``; returns the low-level dataset id.

    ``parent`` is an ``h5py.Group`` or its low-level ``GroupID``.  Numeric,
    boolean and fixed-size arrays go through the low-level API with the reused
    property lists, types and dataspaces (compact up to :data:`COMPACT_LIMIT`
    bytes, contiguous beyond); text and object arrays through the high-level
    API, which knows their variable-length conversions.  ``name`` must already
    be checked by the caller.
    """
    return store_array_digested(parent, name, array)[0]


def store_array_digested(parent, name: str, array: np.ndarray) -> tuple[h5py.h5d.DatasetID, str]:
    """:func:`store_array`, also returning the digest (:func:`h5stream.checksums.value_digest`) of
    exactly what was written: the array is written from private copies (:func:`write_snapshots`), so
    a thread changing it meanwhile cannot make the digest and the file disagree."""
    pid = parent.id if isinstance(parent, h5py.Group) else parent
    array = np.asarray(array)
    # fixed-width bytes (S) are fixed-size values, stored as they are (as a session's writer stores them): stored
    # as text they read back as bytes objects, whose digest is not the array's
    if array.dtype.kind in "OUT" or (h5py.check_string_dtype(array.dtype) is not None and array.dtype.kind != "S"):
        # a copy of the references: the strings themselves cannot change
        array = array.astype(object) if array.dtype.kind == "U" else array.copy()
        dsid = h5py.Group(pid).create_dataset(name, data=array, dtype=TEXT_DTYPE).id
        return dsid, value_digest(array)
    return store_fixed_digested(pid, name, array)


def store_fixed(pid, name: str, array: np.ndarray) -> h5py.h5d.DatasetID:
    """Create dataset ``name`` under the low-level id ``pid`` holding a fixed-size array as it is.

    Numbers, booleans, fixed-width bytes (``S``) and structured arrays keep
    their dtype; the layout follows :data:`COMPACT_LIMIT`.
    """
    return store_fixed_digested(pid, name, array, digest=False)[0]


def store_fixed_digested(pid, name: str, array: np.ndarray, *,
                         digest: bool = True) -> tuple[h5py.h5d.DatasetID, str | None]:
    """:func:`store_fixed`, also returning the digest of what was written (see :func:`write_snapshots`)."""
    lists = plists()
    dsid = h5py.h5d.create(pid, name.encode("utf-8"), file_type(array.dtype), dataspace(array.shape),
                           dcpl=lists.dataset(array.nbytes), lcpl=lists.link)

    def write_block(rows, block) -> None:
        if rows is None:
            dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, block)
        else:
            memory_space, file_space = row_spaces(array.shape, rows)
            dsid.write(memory_space, file_space, block)

    return dsid, write_snapshots(array, write_block, digest=digest)


def create_group(pid, name: str) -> h5py.h5g.GroupID:
    """Create group ``name`` under the low-level id ``pid`` (no modification times)."""
    lists = plists()
    return h5py.h5g.create(pid, name.encode("utf-8"), lcpl=lists.link, gcpl=lists.group)


def create_attr(oid, name: str, stored) -> None:
    """Create attribute ``name`` on the low-level id ``oid``.

    ``stored`` is ``str`` (a UTF-8 string), an object array of ``str`` (UTF-8
    strings) or anything ``numpy.asarray`` turns into a plain array.  The
    attribute must not exist.  h5py's high-level path costs twice as much.
    """
    key = name.encode("utf-8")
    if isinstance(stored, str):
        attr = h5py.h5a.create(oid, key, TEXT_TYPE, SCALAR_SPACE)
        attr.write(np.array(stored, dtype=TEXT_DTYPE))
        return
    if isinstance(stored, np.ndarray) and stored.dtype.kind == "O":
        attr = h5py.h5a.create(oid, key, TEXT_TYPE, dataspace(stored.shape))
        attr.write(np.asarray(stored, dtype=TEXT_DTYPE))
        return
    data = np.asarray(stored)
    if not data.flags.c_contiguous:
        data = np.ascontiguousarray(data)
    attr = h5py.h5a.create(oid, key, file_type(data.dtype), dataspace(data.shape))
    attr.write(data)


def copy_dataset(source: h5py.Dataset, parent: h5py.Group, name: str) -> None:
    """Copy a dataset's values (not its attributes) into ``parent`` inside the HDF5 library.

    The copy streams through the library, so memory stays flat whatever the size.
    """
    copy_dataset_at(source.file.id, source.name, parent.id, name)


def copy_dataset_at(source_file, source_name: str, loc, name: str) -> None:
    """:func:`copy_dataset` between low-level ids: ``source_file``'s ``source_name`` (its full name) to
    ``name`` under ``loc`` (a group's or a file's id; ``name`` may be a path below it), so a writer that knows
    both names opens neither object nor parent group through h5py's wrappers."""
    ocpypl = h5py.h5p.create(h5py.h5p.OBJECT_COPY)
    ocpypl.set_copy_object(h5py.h5o.COPY_WITHOUT_ATTR_FLAG)
    h5py.h5o.copy(source_file, source_name.encode("utf-8"), loc, name.encode("utf-8"),
                  copypl=ocpypl, lcpl=plists().link)


# --------------------------------------------------------------------------- direct library calls


class NativeHDF5:
    """Direct calls into the very libhdf5 that h5py loaded, for writers of many small objects.

    h5py's low-level wrappers cost more than the library itself for a tiny
    object (an object-id registry entry, a lock and an error-stack guard per
    call); creating a group, a small dataset or an attribute through these
    bindings takes less than half the time.  The functions take and return raw
    ``hid_t`` integers (``h5py_object.id.id``); the caller closes what it
    creates, checks for negative results, and holds :data:`library_lock` so no
    other thread enters the library meanwhile.
    """

    H5P_DEFAULT = 0
    H5S_ALL = 0

    def __init__(self, lib: ctypes.CDLL) -> None:
        names = ("H5Gcreate2", "H5Gclose", "H5Dcreate2", "H5Dwrite", "H5Dclose", "H5Acreate2", "H5Awrite", "H5Aclose")
        for name, function in libhdf5.functions(lib, names).items():
            setattr(self, name, function)
        self.lib = lib
        # Whole lists of small attributes in one compiled call (h5stream._ext._h5attrs), through the same
        # library functions; strings are digested there with the digest cache of h5stream.digests.
        self.ATTRS_DONE, self.ATTR_YOURS, self.ATTR_CREATE_FAILED = ATTRS_DONE, ATTR_YOURS, ATTR_CREATE_FAILED
        for scalar in _SCALAR_TYPES:
            _scalar_type_ids[scalar] = file_type(np.dtype(scalar)).id
        _h5attrs.configure(libhdf5.address_of(self.H5Acreate2), libhdf5.address_of(self.H5Awrite),
                           libhdf5.address_of(self.H5Aclose),
                           TEXT_TYPE.id, SCALAR_SPACE.id, _scalar_type_ids)
        self.write_attrs = _h5attrs.write_attrs
        # A group's small arrays in one compiled call (h5stream._ext._h5dsets), created with the same types,
        # dataspaces and property lists as one by one; None when this libhdf5 lacks a function it needs.
        self.DATASETS_DONE, self.DATASET_YOURS = DATASETS_DONE, DATASET_YOURS
        self.write_datasets = _configure_datasets()
        # Whole trees of groups in one compiled walk (h5stream._ext._h5dsets.GroupWalk), the same calls.
        _h5dsets.configure_groups(libhdf5.address_of(self.H5Gcreate2), libhdf5.address_of(self.H5Gclose))

    @staticmethod
    def text_buffer(values: list[str]):
        """A ``char *[]`` holding UTF-8 copies of ``values`` (the variable-length string memory layout)."""
        return (ctypes.c_char_p * len(values))(*[v.encode("utf-8") for v in values])


_native: NativeHDF5 | None | bool = False


#: the statuses ``write_attrs`` returns (those of ``h5stream._ext._h5attrs``)
ATTRS_DONE, ATTR_YOURS, ATTR_CREATE_FAILED = 0, 1, 2


def _hand_back(oid, names, values, start, digests, numbers, limit) -> tuple[int, int]:
    """``write_attrs`` handing every value back to the caller, who writes it through h5py (the tests'
    reference for the compiled writer)."""
    return (start, ATTR_YOURS) if start < len(names) else (len(names), ATTRS_DONE)


#: numpy scalar types whose attributes the compiled attribute writer takes (-> their HDF5 type ids)
_SCALAR_TYPES = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
                 np.float16, np.float32, np.float64, np.complex64, np.complex128)
_scalar_type_ids: dict[type, int] = {}


#: the statuses ``write_datasets`` returns (those of ``h5stream._ext._h5dsets``)
DATASETS_DONE, DATASET_YOURS, DATASET_WRITE_FAILED, DATASET_TAG_FAILED = 0, 1, 3, 5
#: what ``write_datasets`` failed at, by its status (any other failure: creating the dataset)
DATASET_FAILURES = {DATASET_WRITE_FAILED: "writing the dataset", DATASET_TAG_FAILED: "writing the dataset's type tag"}

#: numpy types whose arrays the compiled dataset writer takes (those of :func:`store_fixed` without a
#: conversion: numbers, booleans and complex numbers in native byte order)
_DATASET_TYPES = "?bBhHiIlLqQefdFD"


#: the name of the attribute holding a dataset node's type tag, once :func:`take_dataset_nodes` named it
_tag_attr: str | None = None


def take_dataset_nodes(node_class: type, tag_attr: str | None = None) -> None:
    """Name the class of the dataset nodes the compiled dataset writer takes (the tree writer's
    :class:`~h5stream.tree.nodes.Dataset`, a layer above, names it when imported), and the attribute that
    holds a node's type tag (:data:`~h5stream.tree.nodes.TYPE_ATTR`): a node whose only attribute is its tag
    is then written by the compiled writer too."""
    global _tag_attr
    _h5dsets.take_nodes(node_class)
    _tag_attr = tag_attr
    if isinstance(_native, NativeHDF5) and _native.write_datasets is not None:
        _configure_tags()


def _configure_tags() -> None:
    """Bind the compiled dataset writer's tag attribute to this libhdf5 (nothing without a tag name)."""
    addresses = [libhdf5.function_address(name) for name in ("H5Acreate2", "H5Awrite", "H5Aclose")]
    if _tag_attr is not None and None not in addresses:
        _h5dsets.configure_tags(*addresses, TEXT_TYPE.id, _tag_attr)


def _configure_datasets():
    """Bind the compiled dataset writer to this libhdf5; returns its ``write_datasets`` or None."""
    addresses = [libhdf5.function_address(name) for name in
                 ("H5Dcreate2", "H5Dwrite", "H5Dclose", "H5Screate_simple", "H5Sset_extent_simple")]
    if None in addresses:
        return None
    types = {}
    for char in _DATASET_TYPES:
        dtype = np.dtype(char)
        types[dtype.num] = (file_type(dtype).id, dtype.str)
    _h5dsets.configure(*addresses, SCALAR_SPACE.id, types, COMPACT_LIMIT, SNAPSHOT_BLOCK, libdeflate.CRC32_ADDRESS)
    _h5attrs.configure_arrays(*addresses[3:])  # (the attribute writer takes arrays of its types too)
    _h5dsets.configure_raw(libhdf5.function_address("H5Dget_offset") or 0)
    _configure_tags()
    return _h5dsets.write_datasets


def raw_writer(file: h5py.File) -> _h5dsets.RawWriter | None:
    """A :class:`h5stream._ext._h5dsets.RawWriter` on ``file`` (its own descriptor, which it closes when its
    thread ends: the caller finishes it), or None where the bytes of ``file``'s contiguous
    datasets cannot be written outside the library: no compiled dataset writer, no ``H5Dget_offset``, a
    driver other than sec2 (one file, its addresses the file's offsets, no user block), or a file that
    cannot be opened for writing."""
    native = native_hdf5()
    if native is None or native.write_datasets is None or libhdf5.function_address("H5Dget_offset") is None:
        return None
    if file.driver != "sec2" or file.userblock_size:
        return None
    try:
        fd = os.open(file.filename, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        return _h5dsets.RawWriter(fd)
    except BaseException:
        os.close(fd)
        raise


def _hand_back_datasets(gid, names, nodes, start, lcpl, compact, contiguous, written, recorded,
                        record_compact, tagged=None, raw=None, allocated=-1, deferred=None, text_dcpl=-1,
                        text_digest=None) -> tuple[int, int]:
    """``write_datasets`` handing every node back to the caller, who writes it one by one (the tests'
    reference for the compiled writer)."""
    return (start, DATASET_YOURS) if start < len(names) else (len(names), DATASETS_DONE)


def native_hdf5() -> NativeHDF5 | None:
    """The direct bindings, or ``None`` when h5py's libhdf5 cannot be located (then callers use h5py).

    ``H5STREAM_NO_NATIVE=1`` in the environment turns them off.
    """
    global _native
    if _native is False:
        lib = libhdf5.library()
        try:
            _native = NativeHDF5(lib) if lib is not None else None
        except AttributeError as exc:  # a library without one of the functions
            logger.debug("direct libhdf5 calls unavailable (%s); using h5py's wrappers", exc)
            _native = None
    return _native
