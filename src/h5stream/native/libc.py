"""The C library's calls the engine needs beyond Python's ``os`` module: exchanging two paths in one step."""

from __future__ import annotations

import ctypes
import errno
import os

from h5stream.native import bind, load_library

__all__ = ["exchange", "exchange_supported"]

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2():
    lib = load_library("c", use_errno=True)
    if lib is None:
        return None
    try:
        return bind(lib, {"renameat2": (ctypes.c_int, [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                                         ctypes.c_char_p, ctypes.c_uint])})["renameat2"]
    except AttributeError:  # a C library without renameat2 (not glibc >= 2.28)
        return None


_RENAMEAT2 = _renameat2()


def exchange_supported() -> bool:
    """The C library has ``renameat2`` (whether a filesystem allows the exchange is known only by trying)."""
    return _RENAMEAT2 is not None


def exchange(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two existing paths atomically (``renameat2(RENAME_EXCHANGE)``, Linux).

    False where the system or the filesystem cannot; an OSError for any other failure.
    """
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), os.fspath(b))
