"""The libhdf5 that h5py loaded, called directly, and h5py's lock around it.

h5py's wrappers cost more than the library itself for tiny objects (an object-id
registry entry, a lock and an error-stack guard per call), so the tree's writer
and its batched attribute reader call a few libhdf5 functions with raw ``hid_t``
integers.  They must call the very library h5py loaded (the one whose ids h5py
hands out), found in ``/proc/self/maps``; :func:`library` is None where it cannot
be found (not Linux, several copies loaded) or ``H5STREAM_NO_NATIVE=1`` turns it
off, and callers then go through h5py.  Whoever calls into the library holds
:data:`lock`, h5py's own global lock, so no other thread enters libhdf5 meanwhile:
this module is the one place that imports it from h5py's private ``_objects``.
"""

from __future__ import annotations

import ctypes
import logging
import os

from h5py._objects import ObjectID, phil

from h5stream.native import bind, load_library, portable

__all__ = ["lock", "ObjectID", "library", "library_path", "bind", "address_of", "function_address", "SIGNATURES",
           "functions"]

logger = logging.getLogger(__name__)

_hid, _herr, _size_t = ctypes.c_int64, ctypes.c_int, ctypes.c_size_t
_char_p, _void_p = ctypes.c_char_p, ctypes.c_void_p
#: Every libhdf5 function the engine calls through ctypes, with its C signature ``(restype, argtypes)``:
#: the one declaration (``hid_t`` is 64-bit since HDF5 1.10).  Bind a selection with :func:`functions`.
SIGNATURES: dict[str, tuple] = {
    # attributes
    "H5Acreate2": (_hid, [_hid, _char_p, _hid, _hid, _hid, _hid]),
    "H5Awrite": (_herr, [_hid, _hid, _void_p]),
    "H5Aread": (_herr, [_hid, _hid, _void_p]),
    "H5Aclose": (_herr, [_hid]),
    "H5Aget_num_attrs": (ctypes.c_int, [_hid]),
    "H5Aopen_by_idx": (_hid, [_hid, _char_p, ctypes.c_int, ctypes.c_int, ctypes.c_uint64, _hid, _hid]),
    "H5Aget_name": (ctypes.c_ssize_t, [_hid, _size_t, _char_p]),
    "H5Aget_type": (_hid, [_hid]),
    "H5Aget_space": (_hid, [_hid]),
    "H5Aopen": (_hid, [_hid, _char_p, _hid]),
    "H5Aiterate2": (_herr, [_hid, ctypes.c_int, ctypes.c_int, _void_p, _void_p, _void_p]),
    # groups and datasets
    "H5Gcreate2": (_hid, [_hid, _char_p, _hid, _hid, _hid]),
    "H5Gclose": (_herr, [_hid]),
    "H5Dcreate2": (_hid, [_hid, _char_p, _hid, _hid, _hid, _hid, _hid]),
    "H5Dwrite": (_herr, [_hid, _hid, _hid, _hid, _hid, _void_p]),
    "H5Dclose": (_herr, [_hid]),
    "H5Dget_type": (_hid, [_hid]),
    "H5Dget_space": (_hid, [_hid]),
    "H5Dget_create_plist": (_hid, [_hid]),
    # property lists
    "H5Pget_layout": (ctypes.c_int, [_hid]),
    "H5Pget_external_count": (ctypes.c_int, [_hid]),
    "H5Pget_nfilters": (ctypes.c_int, [_hid]),
    "H5Pclose": (_herr, [_hid]),
    "H5Pset_evict_on_close": (_herr, [_hid, ctypes.c_bool]),
    "H5Pset_link_phase_change": (_herr, [_hid, ctypes.c_uint, ctypes.c_uint]),
    "H5Pset_est_link_info": (_herr, [_hid, ctypes.c_uint, ctypes.c_uint]),
    # dataspaces
    "H5Sget_simple_extent_type": (ctypes.c_int, [_hid]),
    "H5Sget_simple_extent_ndims": (ctypes.c_int, [_hid]),
    "H5Sget_simple_extent_dims": (ctypes.c_int, [_hid, _void_p, _void_p]),
    "H5Sclose": (_herr, [_hid]),
    # datatypes
    "H5Tget_class": (ctypes.c_int, [_hid]),
    "H5Tget_size": (_size_t, [_hid]),
    "H5Tget_sign": (ctypes.c_int, [_hid]),
    "H5Tget_cset": (ctypes.c_int, [_hid]),
    "H5Tis_variable_str": (ctypes.c_int, [_hid]),
    "H5Tequal": (ctypes.c_int, [_hid, _hid]),
    "H5Tclose": (_herr, [_hid]),
    # memory the library allocated
    "H5free_memory": (_herr, [_void_p]),
}


def functions(lib: ctypes.CDLL, names) -> dict[str, object]:
    """``{name: function}`` of ``lib`` (:func:`library`) with the signatures of :data:`SIGNATURES`.

    Raises AttributeError when the library lacks one of them (too old a version).
    """
    return bind(lib, {name: SIGNATURES[name] for name in names})


#: h5py's global lock: hold it around direct library calls so no other thread enters libhdf5.
lock = phil

_library: ctypes.CDLL | None | bool = False


def library_path() -> str | None:
    """The path of the libhdf5 this process loaded for h5py, or None when it is not exactly one file."""
    if portable():
        return None  # the portable path (capabilities.linux_proc): h5py's own wrappers
    try:  # found through /proc/self/maps only (Linux); h5py's own wrappers serve elsewhere
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "/libhdf5" in line and "_hl" not in line}
    except OSError:
        return None
    paths = [p for p in paths if os.path.basename(p).startswith("libhdf5")]
    return paths[0] if len(paths) == 1 else None


def library() -> ctypes.CDLL | None:
    """h5py's libhdf5 as a ctypes library (loaded once), or None (see the module text)."""
    global _library
    if _library is False:
        _library = None
        if os.environ.get("H5STREAM_NO_NATIVE") != "1":
            path = library_path()
            _library = load_library("hdf5", path=path) if path is not None else None
            if _library is None:
                logger.debug("direct libhdf5 calls unavailable; using h5py's wrappers")
    return _library


def address_of(function) -> int:
    """The address of a bound library function (a ctypes function of :func:`library`), for a compiled kernel
    to call."""
    return ctypes.cast(function, ctypes.c_void_p).value


def function_address(name: str) -> int | None:
    """The address of libhdf5's function ``name`` in the library h5py loaded, for a compiled kernel to call
    (None without the direct calls, see :func:`library`, or when this libhdf5 lacks it)."""
    lib = library()
    function = getattr(lib, name, None) if lib is not None else None
    return address_of(function) if function is not None else None
