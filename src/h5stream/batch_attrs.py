"""Batched attribute reads: plain scalar attributes read by direct calls into the libhdf5 that h5py loaded.

A recording's units carry tens of thousands of small attributes; through h5py each
read creates several wrapper objects (attribute, type, dataspace), which costs three
times what the library itself does.  :func:`read_plain` reads a whole object's
attributes in one compiled call with raw ids and returns them as h5py reads them (the
values :func:`h5stream.tree.read_attrs` decodes and checks), or says which it left (arrays,
enums such as booleans, anything unusual) so the caller reads those through h5py.
:func:`dataset_shape_and_dtype` gives a dataset's shape and plain number type the same
way (h5py's ``DatasetID.shape`` and type objects cost several microseconds each).
The library is :func:`h5stream.native.libhdf5.library`; without it (or with
``H5STREAM_NO_NATIVE=1``) :func:`bindings` returns None and callers use h5py.
The caller holds :data:`library_lock` (h5py's global lock) around the calls.
"""

from __future__ import annotations

import ctypes

import h5py
import numpy as np

from h5stream.native import compiled, libhdf5

__all__ = ["bindings", "read_plain", "read_values", "dataset_shape_and_dtype", "LEFT", "library_lock"]

#: Hold it around the calls of this module (h5py's global lock: no other thread enters libhdf5).
library_lock = libhdf5.lock

#: Marks an attribute :func:`read_plain` left for h5py.
LEFT = object()

_H5S_NULL = 2
_H5T_CSET_UTF8 = 1


class _Bindings:
    def __init__(self, lib: ctypes.CDLL) -> None:
        names = ("H5Aget_num_attrs", "H5Aopen_by_idx", "H5Aget_name", "H5Aget_type", "H5Aget_space", "H5Aread",
                 "H5Aclose", "H5Sget_simple_extent_type", "H5Sclose", "H5Tget_class", "H5Tget_size", "H5Tget_sign",
                 "H5Tget_cset", "H5Tis_variable_str", "H5Tclose", "H5Tequal", "H5Dget_type", "H5Dget_space",
                 "H5Sget_simple_extent_ndims", "H5Sget_simple_extent_dims", "H5free_memory", "H5Aiterate2", "H5Aopen")
        for name, function in libhdf5.functions(lib, names).items():
            setattr(self, name, function)
        # Memory types (h5py's, kept alive here): native numbers by numpy kind and size, vlen text by charset.
        self._keep = {}
        self.numbers = {}
        # One reused one-element buffer per number type (and its address): a value is read into it
        # and taken out as a numpy scalar, as h5py's 0-d read gives it.
        self.buffers = {}
        for kind, sizes in (("i", (1, 2, 4, 8)), ("u", (1, 2, 4, 8)), ("f", (4, 8))):
            for size in sizes:
                dtype = np.dtype(f"={kind}{size}")
                tid = self._keep[dtype] = h5py.h5t.py_create(dtype)
                self.numbers[(kind, size)] = (dtype, tid.id)
                buffer = np.zeros(1, dtype)
                self.buffers[(kind, size)] = (buffer, buffer.ctypes.data, tid.id)
        # Dataset element types, most recently matched first: (memory type id, numpy dtype).
        self.dataset_types = [(tid.id, dtype) for dtype, tid in self._keep.items() if isinstance(dtype, np.dtype)]
        self.dims = (ctypes.c_uint64 * 32)()
        for cset, encoding in ((_H5T_CSET_UTF8, "utf-8"), (0, "ascii")):
            tid = self._keep[cset] = h5py.h5t.py_create(h5py.string_dtype(encoding), logical=True)
            self._keep[("text", cset)] = tid.id
        self.text_types = {cset: self._keep[("text", cset)] for cset in (_H5T_CSET_UTF8, 0)}
        kernel = compiled("_h5aread")
        addresses = [libhdf5.address_of(getattr(self, name)) for name in kernel.FUNCTIONS]
        kernel.configure(addresses, self.buffers, self.text_types, LEFT)
        self.read_plain = kernel.read_plain


_bindings: _Bindings | None | bool = False


def bindings() -> _Bindings | None:
    """The direct calls, or None when libhdf5 cannot be reached (then read through h5py)."""
    global _bindings
    if _bindings is False:
        lib = libhdf5.library()
        try:
            _bindings = _Bindings(lib) if lib is not None else None
        except AttributeError:  # a library without one of the functions
            _bindings = None
    return _bindings


def read_plain(lib: _Bindings, oid: int, internal: frozenset[str]) -> dict | None:
    """``{name: value or LEFT}`` of every attribute of the object ``oid`` (a raw id); None when one is ``internal``
    or a name is not UTF-8 text.

    Values are h5py's: numbers as numpy scalars of the stored kind and size,
    variable-length text as ``str``; read in one compiled call (:mod:`h5stream._ext._h5aread`).
    """
    return lib.read_plain(oid, internal)


def read_values(objs, read_left) -> list[dict | None]:
    """Every attribute of each h5py object of ``objs`` as h5py reads it, in one pass: :func:`read_plain`'s
    values, and ``read_left(obj, name)`` for each one it left; None for an object when the direct calls
    are unavailable or one of its names is not UTF-8 text (the caller then reads through h5py, which
    reports it)."""
    lib = bindings()
    if lib is None:
        return [None] * len(objs)
    none = frozenset()
    with library_lock:
        found = [read_plain(lib, obj.id.id, none) for obj in objs]
    for obj, values in zip(objs, found):
        if values is None:
            continue
        for name, value in values.items():
            if value is LEFT:
                values[name] = read_left(obj, name)
    return found


def dataset_shape_and_dtype(lib: _Bindings, did: int) -> tuple[tuple[int, ...] | None, np.dtype | None]:
    """The shape of dataset ``did`` (a raw id) and its numpy dtype when its type is a plain number, else None.

    The shape is h5py's ``DatasetID.shape`` (``()`` for a scalar dataspace, None for an empty one); the dtype
    is what h5py gives for a stored type equal (``H5Tequal``) to the native number types.
    """
    sid = lib.H5Dget_space(did)
    if sid < 0:
        raise OSError("libhdf5 failed to get a dataset's dataspace")
    try:
        ndims = lib.H5Sget_simple_extent_ndims(sid)
        if ndims < 0 or ndims > len(lib.dims):
            raise OSError("libhdf5 failed to get a dataset's rank")
        if ndims:
            if lib.H5Sget_simple_extent_dims(sid, lib.dims, None) < 0:
                raise OSError("libhdf5 failed to get a dataset's shape")
            shape = tuple(lib.dims[:ndims])
        else:
            shape = None if lib.H5Sget_simple_extent_type(sid) == _H5S_NULL else ()
    finally:
        lib.H5Sclose(sid)
    tid = lib.H5Dget_type(did)
    if tid < 0:
        raise OSError("libhdf5 failed to get a dataset's type")
    try:
        types = lib.dataset_types
        for position, (memtype, dtype) in enumerate(types):
            if lib.H5Tequal(tid, memtype) > 0:
                if position:
                    types.insert(0, types.pop(position))
                return shape, dtype
    finally:
        lib.H5Tclose(tid)
    return shape, None
