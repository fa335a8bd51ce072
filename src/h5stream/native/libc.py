"""The C library's calls the engine needs beyond Python's ``os`` module: exchanging two paths in one step;
mapping a file without reading it and asking which of its pages the page cache holds (``mincore``); handing
a range of dirty pages to the disk early (``sync_file_range``)."""

from __future__ import annotations

import ctypes
import errno
import os

from h5stream.native import bind, load_library

__all__ = ["exchange", "exchange_supported", "map_file", "mincore_supported", "resident_pages", "start_writeback",
           "unmap", "writeback_supported"]

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _optional_calls(signatures: dict) -> dict | None:
    """The C library's calls of ``signatures`` bound (:func:`h5stream.native.bind`), or None where the
    library or any of them is missing (renameat2 before glibc 2.28; mincore, sync_file_range off Linux)."""
    lib = load_library("c", use_errno=True)
    if lib is None:
        return None
    try:
        return bind(lib, signatures)
    except AttributeError:
        return None


_RENAMEAT2 = (_optional_calls({"renameat2": (ctypes.c_int, [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                                           ctypes.c_char_p, ctypes.c_uint])}) or {}).get("renameat2")


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


_MEMORY = _optional_calls({
    "mmap": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                               ctypes.c_int64]),
    "munmap": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t]),
    "mincore": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]),
})
_PROT_READ = 1
_MAP_SHARED = 1
_MAP_FAILED = ctypes.c_void_p(-1).value


def mincore_supported() -> bool:
    """The C library has ``mmap`` and ``mincore`` (whether a file system answers is known only by trying)."""
    return _MEMORY is not None


def map_file(fd: int, size: int) -> int | None:
    """The address of a read-only shared mapping of the file's first ``size`` bytes (nothing is read:
    no page is faulted in), or None where the system refuses it."""
    if _MEMORY is None or size <= 0:
        return None
    address = _MEMORY["mmap"](None, int(size), _PROT_READ, _MAP_SHARED, int(fd), 0)
    return None if address in (None, _MAP_FAILED) else int(address)


def unmap(address: int, size: int) -> None:
    if _MEMORY["munmap"](ctypes.c_void_p(address), int(size)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), "munmap")


def resident_pages(address: int, length: int, out) -> bool:
    """Fill ``out`` (a writable uint8 buffer of one byte per page of ``[address, address + length)``,
    ``address`` page-aligned) with the page cache's answer: bit 0 set for a page it holds now.
    False where the system does not answer (the mapping's file shrank, or no ``mincore``)."""
    if _MEMORY is None:
        return False
    buffer = (ctypes.c_ubyte * len(out)).from_buffer(out)
    return _MEMORY["mincore"](ctypes.c_void_p(address), int(length), buffer) == 0


_SYNC_FILE_RANGE = (_optional_calls({"sync_file_range": (ctypes.c_int, [ctypes.c_int, ctypes.c_int64, ctypes.c_int64,
                                                                       ctypes.c_uint])}) or {}).get("sync_file_range")
_SYNC_FILE_RANGE_WRITE = 2


def writeback_supported() -> bool:
    """The C library has ``sync_file_range`` (Linux)."""
    return _SYNC_FILE_RANGE is not None


def start_writeback(fd: int, offset: int, nbytes: int) -> bool:
    """Hand the dirty pages of ``[offset, offset + nbytes)`` of the file to the disk now, without waiting
    (``sync_file_range(SYNC_FILE_RANGE_WRITE)``, Linux): a later fsync then waits only for what is
    still in flight.  It makes nothing durable by itself.  False where the system cannot."""
    if _SYNC_FILE_RANGE is None or nbytes <= 0:
        return False
    return _SYNC_FILE_RANGE(int(fd), int(offset), int(nbytes), _SYNC_FILE_RANGE_WRITE) == 0
