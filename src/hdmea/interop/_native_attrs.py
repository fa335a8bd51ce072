"""Plain scalar attributes read by direct calls into the libhdf5 that h5py loaded.

A recording's units carry tens of thousands of small attributes; through h5py each
read creates several wrapper objects (attribute, type, dataspace), which costs three
times what the library itself does.  :func:`read_plain` reads a whole object's
attributes through ``ctypes`` with raw ids and returns them as h5py reads them (the
values :func:`h5stream.tree.read_attrs` decodes and checks), or says which it left (arrays,
enums such as booleans, anything unusual) so the caller reads those through h5py.
The library is found by :func:`h5stream.tree.lowlevel.native_hdf5`; without it (or
with ``H5STREAM_NO_NATIVE=1``) :func:`bindings` returns None and callers use h5py.
The caller holds h5py's global lock (:data:`h5py._objects.phil`) around the calls.
"""

from __future__ import annotations

import ctypes

import h5py
import numpy as np

from h5stream.tree.lowlevel import native_hdf5

__all__ = ["bindings", "read_plain", "LEFT"]

#: Marks an attribute :func:`read_plain` left for h5py.
LEFT = object()

_H5T_INTEGER, _H5T_FLOAT, _H5T_STRING = 0, 1, 3
_H5S_SCALAR = 0
_H5T_SGN_NONE = 0
_H5T_CSET_UTF8 = 1


class _Bindings:
    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        hid, size_t = ctypes.c_int64, ctypes.c_size_t
        signatures = {
            "H5Aget_num_attrs": (ctypes.c_int, [hid]),
            "H5Aopen_by_idx": (hid, [hid, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_uint64, hid, hid]),
            "H5Aget_name": (ctypes.c_ssize_t, [hid, size_t, ctypes.c_char_p]),
            "H5Aget_type": (hid, [hid]),
            "H5Aget_space": (hid, [hid]),
            "H5Aread": (ctypes.c_int, [hid, hid, ctypes.c_void_p]),
            "H5Aclose": (ctypes.c_int, [hid]),
            "H5Sget_simple_extent_type": (ctypes.c_int, [hid]),
            "H5Sclose": (ctypes.c_int, [hid]),
            "H5Tget_class": (ctypes.c_int, [hid]),
            "H5Tget_size": (size_t, [hid]),
            "H5Tget_sign": (ctypes.c_int, [hid]),
            "H5Tget_cset": (ctypes.c_int, [hid]),
            "H5Tis_variable_str": (ctypes.c_int, [hid]),
            "H5Tclose": (ctypes.c_int, [hid]),
            "H5free_memory": (ctypes.c_int, [ctypes.c_void_p]),
        }
        for name, (restype, argtypes) in signatures.items():
            function = getattr(lib, name)
            function.restype, function.argtypes = restype, argtypes
            setattr(self, name, function)
        self.name_buffer = ctypes.create_string_buffer(1024)
        # Memory types (h5py's, kept alive here): native numbers by numpy kind and size, vlen text by charset.
        self._keep = {}
        self.numbers = {}
        for kind, sizes in (("i", (1, 2, 4, 8)), ("u", (1, 2, 4, 8)), ("f", (4, 8))):
            for size in sizes:
                dtype = np.dtype(f"={kind}{size}")
                tid = self._keep[dtype] = h5py.h5t.py_create(dtype)
                self.numbers[(kind, size)] = (dtype, tid.id)
        for cset, encoding in ((_H5T_CSET_UTF8, "utf-8"), (0, "ascii")):
            tid = self._keep[cset] = h5py.h5t.py_create(h5py.string_dtype(encoding), logical=True)
            self._keep[("text", cset)] = tid.id
        self.text_types = {cset: self._keep[("text", cset)] for cset in (_H5T_CSET_UTF8, 0)}


_bindings: _Bindings | None | bool = False


def bindings() -> _Bindings | None:
    """The direct calls, or None when libhdf5 cannot be reached (then read through h5py)."""
    global _bindings
    if _bindings is False:
        native = native_hdf5()
        try:
            _bindings = _Bindings(native.path) if native is not None else None
        except (OSError, AttributeError):
            _bindings = None
    return _bindings


def _check(value: int, what: str) -> int:
    if value < 0:
        raise OSError(f"libhdf5 failed to {what}")
    return value


def _value(lib: _Bindings, aid: int):
    """The value of attribute ``aid`` as h5py reads it (a numpy scalar, or ``str``), or :data:`LEFT`."""
    sid = _check(lib.H5Aget_space(aid), "get an attribute's dataspace")
    try:
        scalar = lib.H5Sget_simple_extent_type(sid) == _H5S_SCALAR
    finally:
        lib.H5Sclose(sid)
    if not scalar:
        return LEFT
    tid = _check(lib.H5Aget_type(aid), "get an attribute's type")
    try:
        cls = lib.H5Tget_class(tid)
        if cls == _H5T_INTEGER:
            key = ("u" if lib.H5Tget_sign(tid) == _H5T_SGN_NONE else "i", lib.H5Tget_size(tid))
        elif cls == _H5T_FLOAT:
            key = ("f", lib.H5Tget_size(tid))
        elif cls == _H5T_STRING and lib.H5Tis_variable_str(tid) > 0:
            key = ("text", lib.H5Tget_cset(tid))
        else:
            return LEFT
    finally:
        lib.H5Tclose(tid)
    if key[0] == "text":
        memtype = lib.text_types.get(key[1])
        if memtype is None:
            return LEFT
        pointer = ctypes.c_void_p()
        _check(lib.H5Aread(aid, memtype, ctypes.byref(pointer)), "read an attribute")
        try:
            raw = ctypes.string_at(pointer.value) if pointer.value else b""
        finally:
            if pointer.value:
                lib.H5free_memory(pointer)
        try:
            return raw.decode("utf-8")  # h5py decodes every variable-length text as UTF-8
        except UnicodeDecodeError:
            return LEFT  # h5py and the tree reader name the damage
    known = lib.numbers.get(key)
    if known is None:
        return LEFT
    dtype, memtype = known
    value = np.empty((), dtype=dtype)
    _check(lib.H5Aread(aid, memtype, value.ctypes.data), "read an attribute")
    return value[()]


def read_plain(lib: _Bindings, oid: int, internal: frozenset[str]) -> dict | None:
    """``{name: value or LEFT}`` of every attribute of the object ``oid`` (a raw id); None when one is ``internal``.

    Values are h5py's: numbers as numpy scalars of the stored kind and size,
    variable-length text as ``str``.
    """
    count = _check(lib.H5Aget_num_attrs(oid), "count the attributes")
    out = {}
    buffer = lib.name_buffer
    for index in range(count):
        aid = _check(lib.H5Aopen_by_idx(oid, b".", 0, 0, index, 0, 0), "open an attribute")
        try:
            length = _check(lib.H5Aget_name(aid, len(buffer), buffer), "name an attribute")
            if length >= len(buffer):
                buffer = ctypes.create_string_buffer(length + 1)
                lib.H5Aget_name(aid, len(buffer), buffer)
            raw = buffer.value
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                return None
            if name in internal:
                return None
            out[name] = _value(lib, aid)
        finally:
            lib.H5Aclose(aid)
    return out
