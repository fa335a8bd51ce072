"""Native code: the compiled kernels of ``h5stream._ext`` and the C libraries called through ctypes.

One home for both, so that a missing piece is found in one place and said loudly:

* :func:`compiled` is the one import of a compiled kernel (``h5stream._ext.<name>``); a
  missing or stale build raises :class:`ImportError` naming the rebuild command, never a
  silent fallback to slower code.
* :func:`load_library` is the one call of :class:`ctypes.CDLL`; one module per library
  holds that library's bindings: :mod:`h5stream.native.libhdf5` (the libhdf5 h5py
  loaded, and h5py's lock around it), :mod:`h5stream.native.libdeflate` (deflate and
  CRC-32 of the system's libdeflate, optional) and :mod:`h5stream.native.libc` (the
  ``renameat2`` exchange of two paths).
* :func:`portable` reads the switch (``H5STREAM_PORTABLE=1``) that turns every Linux-only mechanism
  off, these libraries' direct calls first; :mod:`h5stream.capabilities`, a layer above, decides
  each mechanism with it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import os
from types import ModuleType

__all__ = ["REBUILD", "PORTABLE_ENV", "compiled", "load_library", "portable"]

#: environment switch forcing every portable path (read at each call: setting it before a worker process
#: starts is enough)
PORTABLE_ENV = "H5STREAM_PORTABLE"


def portable() -> bool:
    """True when :data:`PORTABLE_ENV` is set to ``1``: no Linux-only mechanism is used."""
    return os.environ.get(PORTABLE_ENV, "").strip() == "1"

#: How to build the compiled kernels of a source checkout again.
REBUILD = "`pip install -e . --no-deps --no-build-isolation` (in a checkout: `python setup.py build_ext --inplace`)"


def compiled(name: str) -> ModuleType:
    """The compiled kernel ``h5stream._ext.<name>``; ImportError with the rebuild command when it is missing."""
    try:
        return importlib.import_module(f"h5stream._ext.{name}")
    except ImportError as exc:
        raise ImportError(
            f"the compiled kernel h5stream._ext.{name} cannot be imported ({exc}); the package was installed "
            f"without its compiled kernels or they are stale: rebuild it with {REBUILD}"
        ) from exc


def load_library(name: str, *, path: str | None = None, use_errno: bool = False) -> ctypes.CDLL | None:
    """The C library ``name`` (as :func:`ctypes.util.find_library` names it) or the one at ``path``.

    None when it is not installed or cannot be loaded: the optional libraries are
    optional, and each binding module says what its absence means.
    """
    found = path if path is not None else ctypes.util.find_library(name)
    if found is None:
        return None
    try:
        return ctypes.CDLL(found, use_errno=use_errno)
    except OSError:
        return None


def bind(lib: ctypes.CDLL, signatures: dict[str, tuple]) -> dict[str, object]:
    """``{name: function}`` of ``lib`` with ``restype`` and ``argtypes`` set from ``{name: (restype, argtypes)}``.

    Raises AttributeError when the library lacks one of them (too old a version).
    """
    out = {}
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
        out[name] = function
    return out
