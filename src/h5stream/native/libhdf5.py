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

from h5stream import capabilities
from h5stream.native import bind, load_library

__all__ = ["lock", "ObjectID", "library", "library_path", "bind", "address_of", "function_address"]

logger = logging.getLogger(__name__)

#: h5py's global lock: hold it around direct library calls so no other thread enters libhdf5.
lock = phil

_library: ctypes.CDLL | None | bool = False


def library_path() -> str | None:
    """The path of the libhdf5 this process loaded for h5py, or None when it is not exactly one file."""
    if not capabilities.linux_proc():
        return None  # found through /proc/self/maps only; h5py's own wrappers serve elsewhere
    try:
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
