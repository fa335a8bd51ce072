"""Memory-budgeted staging of arrays, spilling into the partial file of the future target.

A :class:`StagingArea` keeps arrays in memory while their total size stays
within ``memory_limit``; an array that would exceed the budget is written at
once into a *spill file* and replaced by a :class:`FileArray`, a lazy reference
that reads the data back on access.  The spill file is created at a partial
path beside the target (``<target>.partial-<pid>-<n>``), so the final save can
finish that very file and rename it over the target: spilled datasets are moved
into place by renaming their links, never copied.

:func:`store_array` (from :mod:`h5stream.lowlevel`, re-exported here) is the
one dataset writer shared by spilling and final writes, so a spilled array and an
array written directly end up with the same dtype, shape, layout and values; a large
array of plain numbers is spilled into a contiguous dataset allocated at creation
whose bytes are written straight to the disk (:data:`DIRECT_FROM`,
:meth:`StagingArea._spill_direct`): the same values, dtype, shape and digest.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path

import h5py
import numpy as np

from h5stream.errors import WriteError
from h5stream.files import fsync_directory, partial_path
from h5stream.tree.filearray import FileArray
from h5stream.lowlevel import (COMPACT_LIMIT, LIBVER, PAGE, copy_dataset, store_allocated_digested, store_array,
                                store_array_digested)

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

#: Arrays of plain numbers of at least this many bytes are spilled by writing their bytes straight into the space
#: the library allocated for them (:meth:`StagingArea._spill_direct`); their datasets start on a page.
DIRECT_FROM = 1 << 20

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


# --------------------------------------------------------------------------- staging


def _discard_created(f: h5py.File | None, path: Path, exc: BaseException) -> None:
    """Close and delete a spill file whose creation failed; a file that was there before ("x" refused it)
    is left alone."""
    if f is not None:
        with contextlib.suppress(Exception):
            f.close()
    elif isinstance(exc, FileExistsError) or getattr(exc, "errno", None) == errno.EEXIST:
        return
    with contextlib.suppress(OSError):
        os.unlink(path)


def _pwrite_all(fd: int, data: memoryview, offset: int, path: Path) -> None:
    """Write all of ``data`` at ``offset`` (a short write goes on; none at all is a full disk)."""
    while data.nbytes:
        n = os.pwrite(fd, data, offset)
        if n <= 0:
            raise OSError(errno.ENOSPC, f"no byte written at offset {offset} of {path}")
        data, offset = data[n:], offset + n


class StagingArea:
    """Hold arrays in memory up to ``memory_limit`` bytes and spill the rest to disk.

    Parameters
    ----------
    target
        The file the staged data will finally be saved to, or ``None`` when not
        known yet (the spill file then lives in the system's temporary directory;
        a save moves it beside its target when both are on one filesystem,
        :meth:`move_spill_file`, and copies the spilled data otherwise).
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
            self._spill_file = None
            created = None
            try:
                created = h5py.File(path, "x", libver=LIBVER, alignment_threshold=DIRECT_FROM,
                                    alignment_interval=PAGE)
                created.create_group(STAGING_GROUP)
            except BaseException as exc:
                # A full disk fails after the file exists (libhdf5 creates it, then cannot write its
                # superblock): what this call made goes now, not at the end of the process.
                _discard_created(created, path, exc)
                if isinstance(exc, (OSError, RuntimeError, ValueError)):
                    raise WriteError(
                        f"cannot create the spill file ({exc})", path=path,
                        hint="free disk space beside the target or raise memory_limit",
                    ) from exc
                raise
            self._spill_file = created
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

    def fits(self, nbytes: int) -> bool:
        """True when ``nbytes`` more fit the memory budget beside what is counted now."""
        return self.memory_limit is None or self.resident_bytes + nbytes <= self.memory_limit

    def admit_many(self, arrays) -> list:
        """:meth:`admit` of each of ``arrays``, in order; arrays that all fit the budget together are
        counted at once (many small values at the cost of one)."""
        arrays = [a if isinstance(a, FileArray) else np.asarray(a) for a in arrays]
        nbytes = sum(a.nbytes for a in arrays if not isinstance(a, FileArray))
        if self.fits(nbytes):
            self.resident_bytes += nbytes
            return arrays
        return [self.admit(a) for a in arrays]

    def _spill(self, array: np.ndarray) -> FileArray:
        f = self.spill_file()
        name = f"{STAGING_GROUP}/{self._counter}"
        self._counter += 1
        # The digest travels with the array into the saved file's checksum manifest: it is taken from the
        # very copies written, so a thread changing the array meanwhile cannot make the two disagree.
        try:
            stored = self._spill_direct(f[STAGING_GROUP], str(self._counter - 1), array)
            digest = (stored or store_array_digested(f[STAGING_GROUP], str(self._counter - 1), array))[1]
        except OSError as exc:
            raise WriteError(f"spilling an array failed ({exc})", path=self.spill_path,
                             hint="free disk space beside the target") from exc
        self.spilled_bytes += array.nbytes
        return FileArray(self.spill_file, "/" + name, array.shape, array.dtype, spilled=True, digest=digest)

    def _spill_direct(self, group: h5py.Group, name: str, array: np.ndarray):
        """Spill a large array of plain numbers by writing its bytes at its dataset's offset in the spill file,
        unbuffered (``O_DIRECT``) where the system allows, whole pages from the page-aligned block copies,
        the rest through the page cache; None (nothing written) for any other array.

        Through the library (and the page cache) the spill of tens of gigabytes cost the kernel about
        2 s of processor time a gigabyte on a busy two-core machine, copying into the cache, reclaiming it
        and throttling the writer: more than the disk's own time.  Unbuffered, the bytes go from the
        block copy to the disk.  The digest is taken from the same copies (as
        :func:`~h5stream.lowlevel.write_snapshots`); the spill file is fsynced by the save as before."""
        if array.nbytes < DIRECT_FROM or self.spill_path is None:
            return None
        flags = os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
        plain = os.open(self.spill_path, flags)
        direct = None
        try:
            if hasattr(os, "O_DIRECT"):
                with contextlib.suppress(OSError):  # a file system without unbuffered writes (tmpfs)
                    direct = os.open(self.spill_path, flags | os.O_DIRECT)

            def write_at(block: np.ndarray, offset: int) -> None:
                view, size = memoryview(block).cast("B"), block.nbytes
                whole = size - size % PAGE if direct is not None and offset % PAGE == 0 and \
                    block.ctypes.data % PAGE == 0 else 0
                if whole:
                    _pwrite_all(direct, view[:whole], offset, self.spill_path)
                if whole < size:
                    _pwrite_all(plain, view[whole:], offset + whole, self.spill_path)

            return store_allocated_digested(group.id, name, array, write_at)
        finally:
            os.close(plain)
            if direct is not None:
                os.close(direct)

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

    def move_spill_file(self, target: str | os.PathLike) -> bool:
        """Move the spill file beside ``target`` (a save there then finishes it in place instead of copying
        its arrays) when it lives in another directory of the same filesystem; True when it is beside
        ``target`` now.  The open file moves with its name: what it holds and who reads it stay."""
        if not self.has_spill_file or self.spill_path is None:
            return False
        folder = Path(target).parent
        if self.spill_path.parent.resolve() == folder.resolve():
            return True
        try:
            if os.stat(self.spill_path).st_dev != os.stat(folder).st_dev:
                return False
            moved = partial_path(target)
            os.rename(self.spill_path, moved)
        except OSError as exc:  # another filesystem after all, or a system that refuses to move an open file
            logger.info("the spill file %s stays where it is (%s); the save copies it", self.spill_path, exc)
            return False
        with contextlib.suppress(OSError):
            fsync_directory(moved.parent)
            fsync_directory(self.spill_path.parent)
        logger.info("spill file moved beside %s: %s", target, moved)
        self.spill_path = moved
        return True

    def detach_spill_file(self) -> tuple[h5py.File, Path] | None:
        """Hand the spill file over to a final save; the area starts afresh."""
        if not self.has_spill_file:
            return None
        handed = (self._spill_file, self.spill_path)
        self._spill_file = None
        self.spill_path = None
        self.spilled_bytes = 0
        return handed

    def clear(self) -> None:
        """Forget every staged array: the spill file is deleted (:meth:`discard`) and no byte is counted in
        memory any more (the caller lets go of the arrays it held)."""
        self.discard()
        self.resident_bytes = 0

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
