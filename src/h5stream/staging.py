"""Memory-budgeted staging of arrays, spilling into the partial file of the future target.

A :class:`StagingArea` keeps arrays in memory while their total size stays
within ``memory_limit``; an array that would exceed the budget is written at
once into a *spill file* and replaced by a :class:`FileArray`, a lazy reference
that reads the data back on access.  The spill file is created at a partial
path beside the target (``<target>.partial-<pid>-<n>``), so the final save can
finish that very file and rename it over the target: spilled datasets are moved
into place by renaming their links, never copied.

:func:`store_array` is the one dataset writer shared by spilling and final
writes, so a spilled array and an array written directly end up with the same
dtype, shape, layout and values.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path

import h5py
import numpy as np

from h5stream.errors import WriteError
from h5stream.files import partial_path

__all__ = [
    "FileArray",
    "StagingArea",
    "store_array",
    "copy_dataset",
    "parse_size",
    "STAGING_GROUP",
    "COMPACT_LIMIT",
    "LIBVER",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: Group of the spill file that holds spilled arrays until the final save moves them.
STAGING_GROUP = "__h5stream_staging__"

#: Datasets up to this many bytes are stored compact (inside their object header):
#: one metadata write instead of a separate raw-data block, the fastest layout for
#: the many tiny arrays of a recording (short spike trains, waveforms, features).
COMPACT_LIMIT = 16 * 1024

#: File-format bounds of the files written through staging (new-style groups with
#: compact link storage: faster to create and smaller for many small groups).
LIBVER = ("v110", "latest")

_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_size(value: int | float | str | None) -> int | None:
    """Bytes from an int, a float or a text such as ``"512 MB"`` / ``"4GiB"``; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("a size must be a number of bytes or a text like '512 MB', not a bool")
    if isinstance(value, (int, np.integer)):
        size = int(value)
    elif isinstance(value, (float, np.floating)):
        size = int(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        digits = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = text[len(digits):]
        if unit not in _UNITS or not digits:
            raise ValueError(f"cannot read the size {value!r}; expected e.g. 536870912, '512 MB' or '4 GiB'")
        size = int(float(digits) * _UNITS[unit])
    else:
        raise TypeError(f"a size must be a number of bytes or a text, not {type(value).__name__}")
    if size < 0:
        raise ValueError(f"a size cannot be negative (found {value!r})")
    return size


# --------------------------------------------------------------------------- dataset writer

_property_lists = threading.local()


def _plists():
    """Dataset-creation and link-creation property lists, built once per thread and reused."""
    cached = getattr(_property_lists, "value", None)
    if cached is None:
        compact = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        compact.set_layout(h5py.h5d.COMPACT)
        contiguous = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        contiguous.set_layout(h5py.h5d.CONTIGUOUS)
        for dcpl in (compact, contiguous):
            # Every byte is written right after creation, so fill values would be wasted work;
            # modification times cost an extra header message and update per object.
            dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
            dcpl.set_obj_track_times(False)
        lcpl = h5py.h5p.create(h5py.h5p.LINK_CREATE)
        lcpl.set_create_intermediate_group(False)
        lcpl.set_char_encoding(h5py.h5t.CSET_UTF8)
        cached = (compact, contiguous, lcpl)
        _property_lists.value = cached
    return cached


_type_cache: dict[np.dtype, h5py.h5t.TypeID] = {}


def _file_type(dtype: np.dtype) -> h5py.h5t.TypeID:
    tid = _type_cache.get(dtype)
    if tid is None:
        tid = h5py.h5t.py_create(dtype, logical=True)
        _type_cache[dtype] = tid
    return tid


_space_cache: dict[tuple[int, ...], h5py.h5s.SpaceID] = {}


def _space(shape: tuple[int, ...]) -> h5py.h5s.SpaceID:
    space = _space_cache.get(shape)
    if space is None:
        space = h5py.h5s.create(h5py.h5s.SCALAR) if shape == () else h5py.h5s.create_simple(shape)
        if len(_space_cache) < 4096:  # shapes of spike trains vary; keep the cache bounded
            _space_cache[shape] = space
    return space


def store_array(parent, name: str, array: np.ndarray) -> h5py.h5d.DatasetID:
    """Create dataset ``name`` in ``parent`` holding ``array``; returns the low-level dataset id.

    ``parent`` is an ``h5py.Group`` or its low-level ``GroupID``.  Numeric,
    boolean and fixed-size arrays go through h5py's low-level API with reused
    property lists, types and dataspaces (compact layout up to
    :data:`COMPACT_LIMIT` bytes, contiguous beyond); text and object arrays
    through the high-level API, which knows their variable-length conversions.
    ``name`` must already be checked by the caller.
    """
    pid = parent.id if isinstance(parent, h5py.Group) else parent
    array = np.asarray(array)
    if array.dtype.kind in "OUT" or h5py.check_string_dtype(array.dtype) is not None:
        if array.dtype.kind == "U":
            array = array.astype(object)
        ds = h5py.Group(pid).create_dataset(name, data=array, dtype=h5py.string_dtype("utf-8"))
        return ds.id
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    compact, contiguous, lcpl = _plists()
    dcpl = compact if 0 < array.nbytes <= COMPACT_LIMIT else contiguous
    dsid = h5py.h5d.create(pid, name.encode("utf-8"), _file_type(array.dtype), _space(array.shape),
                           dcpl=dcpl, lcpl=lcpl)
    if array.size:
        dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, array)
    return dsid


def copy_dataset(source: h5py.Dataset, parent: h5py.Group, name: str) -> None:
    """Copy a dataset's values (not its attributes) into ``parent`` inside the HDF5 library.

    The copy streams through the library, so memory stays flat whatever the size.
    """
    ocpypl = h5py.h5p.create(h5py.h5p.OBJECT_COPY)
    ocpypl.set_copy_object(h5py.h5o.COPY_WITHOUT_ATTR_FLAG)
    _, _, lcpl = _plists()
    h5py.h5o.copy(source.file.id, source.name.encode("utf-8"), parent.id, name.encode("utf-8"),
                  copypl=ocpypl, lcpl=lcpl)


# --------------------------------------------------------------------------- lazy arrays


class FileArray:
    """A dataset in a file, read on access.

    ``np.asarray(file_array)`` (or :meth:`read`) loads the values; ``shape``,
    ``dtype`` and ``nbytes`` are known without reading.  ``opener`` returns the
    open ``h5py.File`` holding the dataset (shared with other references to
    the same file).
    """

    __slots__ = ("_opener", "name", "shape", "dtype", "spilled")

    def __init__(self, opener, name: str, shape: tuple[int, ...], dtype: np.dtype, *, spilled: bool = False):
        self._opener = opener
        self.name = name
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.spilled = spilled

    @property
    def file(self) -> h5py.File:
        return self._opener()

    @property
    def dataset(self) -> h5py.Dataset:
        return self._opener()[self.name]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def read(self) -> np.ndarray:
        ds = self.dataset
        if ds.shape is None:  # an empty (null-dataspace) dataset
            return np.empty((0,), dtype=self.dtype)
        out = np.empty(self.shape, dtype=self.dtype)
        if out.size:
            ds.read_direct(out)
        return out

    def __array__(self, dtype=None, copy=None):
        values = self.read()
        return values if dtype is None else values.astype(dtype, copy=False)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        where = "spilled" if self.spilled else "on disk"
        return f"FileArray({self.name!r}, shape={self.shape}, dtype={self.dtype}, {where})"


# --------------------------------------------------------------------------- staging


class StagingArea:
    """Hold arrays in memory up to ``memory_limit`` bytes and spill the rest to disk.

    Parameters
    ----------
    target
        The file the staged data will finally be saved to, or ``None`` when not
        known yet (the spill file then lives in the system's temporary directory
        and the final save copies spilled data instead of renaming).
    memory_limit
        Bytes of array data kept in memory; ``None`` never spills.
    """

    def __init__(self, target: str | os.PathLike | None, memory_limit: int | None) -> None:
        self.target = Path(target) if target is not None else None
        self.memory_limit = memory_limit
        self.resident_bytes = 0
        self.spilled_bytes = 0
        self.spill_path: Path | None = None
        self._spill_file: h5py.File | None = None
        self._counter = 0

    # -- the spill file
    def _spill_location(self) -> Path:
        if self.target is not None:
            return partial_path(self.target)
        import tempfile

        return partial_path(Path(tempfile.gettempdir()) / f"h5stream-session-{os.getpid()}.h5")

    def spill_file(self) -> h5py.File:
        """The open spill file, created on first use."""
        if self._spill_file is None or not self._spill_file.id.valid:
            path = self._spill_location()
            try:
                self._spill_file = h5py.File(path, "x", libver=LIBVER)
            except OSError as exc:
                raise WriteError(
                    f"cannot create the spill file ({exc})", path=path,
                    hint="free disk space beside the target or raise memory_limit",
                ) from exc
            self._spill_file.create_group(STAGING_GROUP)
            self.spill_path = path
            logger.info("staging spills into %s", path)
        return self._spill_file

    @property
    def has_spill_file(self) -> bool:
        return self._spill_file is not None and self._spill_file.id.valid

    # -- admission
    def admit(self, array) -> np.ndarray | FileArray:
        """Stage ``array``: kept in memory when it fits the budget, else written to the spill file."""
        if isinstance(array, FileArray):
            return array
        array = np.asarray(array)
        nbytes = array.nbytes
        if self.memory_limit is None or self.resident_bytes + nbytes <= self.memory_limit:
            self.resident_bytes += nbytes
            return array
        return self._spill(array)

    def _spill(self, array: np.ndarray) -> FileArray:
        f = self.spill_file()
        name = f"{STAGING_GROUP}/{self._counter}"
        self._counter += 1
        try:
            store_array(f[STAGING_GROUP], str(self._counter - 1), array)
        except OSError as exc:
            raise WriteError(f"spilling an array failed ({exc})", path=self.spill_path,
                             hint="free disk space beside the target") from exc
        self.spilled_bytes += array.nbytes
        return FileArray(self.spill_file, "/" + name, array.shape, array.dtype, spilled=True)

    def release(self, value) -> None:
        """Forget a staged value that was replaced or removed (its bytes leave the budget)."""
        if isinstance(value, FileArray):
            if value.spilled and self.has_spill_file and value._opener == self.spill_file:
                self.spilled_bytes -= value.nbytes
                with contextlib.suppress(KeyError):
                    del self._spill_file[value.name]
        elif isinstance(value, np.ndarray):
            self.resident_bytes -= value.nbytes

    def owns(self, value) -> bool:
        """True when ``value`` lives in this area's spill file."""
        return isinstance(value, FileArray) and value.spilled and self.has_spill_file and (
            value._opener == self.spill_file
        )

    def detach_spill_file(self) -> tuple[h5py.File, Path] | None:
        """Hand the spill file over to a final save; the area starts afresh."""
        if not self.has_spill_file:
            return None
        handed = (self._spill_file, self.spill_path)
        self._spill_file = None
        self.spill_path = None
        self.spilled_bytes = 0
        return handed

    def discard(self) -> None:
        """Close and delete the spill file (nothing refers to it any more)."""
        if self._spill_file is not None:
            with contextlib.suppress(Exception):
                if self._spill_file.id.valid:
                    self._spill_file.close()
        if self.spill_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.spill_path)
        self._spill_file = None
        self.spill_path = None
        self.spilled_bytes = 0




# --------------------------------------------------------------------------- direct library calls


class NativeHDF5:
    """Direct calls into the very libhdf5 that h5py loaded, for writers of many small objects.

    h5py's low-level wrappers cost more than the library itself for a tiny
    object (an object-id registry entry, a lock and an error-stack guard per
    call); creating a group, a small dataset or an attribute through these
    bindings takes less than half the time.  The functions take and return raw
    ``hid_t`` integers (``h5py_object.id.id``); the caller closes what it
    creates, checks for negative results, and holds h5py's global lock
    (``h5py._objects.phil``) so no other thread enters the library meanwhile.
    """

    H5P_DEFAULT = 0
    H5S_ALL = 0

    def __init__(self, path: str) -> None:
        import ctypes

        lib = ctypes.CDLL(path)
        hid, char_p, void_p = ctypes.c_int64, ctypes.c_char_p, ctypes.c_void_p
        signatures = {
            "H5Gcreate2": (hid, [hid, char_p, hid, hid, hid]),
            "H5Gclose": (ctypes.c_int, [hid]),
            "H5Dcreate2": (hid, [hid, char_p, hid, hid, hid, hid, hid]),
            "H5Dwrite": (ctypes.c_int, [hid, hid, hid, hid, hid, void_p]),
            "H5Dclose": (ctypes.c_int, [hid]),
            "H5Acreate2": (hid, [hid, char_p, hid, hid, hid, hid]),
            "H5Awrite": (ctypes.c_int, [hid, hid, void_p]),
            "H5Aclose": (ctypes.c_int, [hid]),
        }
        for name, (restype, argtypes) in signatures.items():
            function = getattr(lib, name)
            function.restype = restype
            function.argtypes = argtypes
            setattr(self, name, function)
        self.path = path
        self.c_char_p = ctypes.c_char_p

    def text_buffer(self, values: list[str]):
        """A ``char *[]`` holding UTF-8 copies of ``values`` (the variable-length string memory layout)."""
        return (self.c_char_p * len(values))(*[v.encode("utf-8") for v in values])


_native: NativeHDF5 | None | bool = False


def native_hdf5() -> NativeHDF5 | None:
    """The direct bindings, or ``None`` when h5py's libhdf5 cannot be located (then callers use h5py)."""
    global _native
    if _native is False:
        _native = None
        if os.environ.get("H5STREAM_NO_NATIVE") != "1":
            try:
                with open("/proc/self/maps", encoding="utf-8") as maps:
                    paths = {line.split()[-1] for line in maps if "/libhdf5" in line and "_hl" not in line}
                paths = [p for p in paths if os.path.basename(p).startswith("libhdf5")]
                if len(paths) == 1:
                    _native = NativeHDF5(paths[0])
            except (OSError, AttributeError) as exc:
                logger.debug("direct libhdf5 calls unavailable (%s); using h5py's wrappers", exc)
                _native = None
    return _native
