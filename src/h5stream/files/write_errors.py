"""Failed writes as typed errors: a full disk named as such, every other failure as a WriteError.

libhdf5 reports a failed ``write(2)`` through h5py as OSError, RuntimeError or ValueError, naming the
system's errno only inside its message; :func:`as_write_error` turns each into the engine's
:class:`~h5stream.errors.WriteError` with the reason and what to do.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from h5stream.errors import WriteError

__all__ = ["disk_full", "full_disk_cause", "as_write_error", "bytes_in"]


def disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (Python's or libhdf5's, raised through h5py) reports a full disk or quota.

    libhdf5 names the system's errno inside its message (``errno = 28, error message = 'No space
    left on device'``); h5py raises it as OSError or RuntimeError without setting ``errno``.
    """
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return any(f"errno = {code}," in text for code in (errno.ENOSPC, errno.EDQUOT)) or (
        "No space left on device" in text or "Disk quota exceeded" in text)


def full_disk_cause(exc: BaseException | None) -> BaseException | None:
    """The innermost error in ``exc``'s chain (itself, then its causes and contexts) that reports a full disk,
    or None: a writer's typed error wraps the system's, and names the partial file rather than the target."""
    found, seen = None, set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if disk_full(exc):
            found = exc
        exc = exc.__cause__ or exc.__context__
    return found


def bytes_in(path: str | os.PathLike) -> int:
    """The bytes a partial file or folder holds (0 when it is gone): what a save had written when it failed."""
    path = Path(path)
    try:
        if not path.is_dir():
            return path.stat().st_size
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    except OSError:
        return 0


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _free_in(path: str | os.PathLike) -> str:
    folder = Path(path).parent
    try:
        return f"{_size(shutil.disk_usage(folder).free)} free in {folder}"
    except OSError:
        return f"the free space of {folder} unknown"


def as_write_error(exc: BaseException, path: str | os.PathLike, action: str, *, written: int = 0) -> WriteError:
    """The typed error of a write of ``path`` that failed with ``exc`` (an OSError, or h5py's RuntimeError
    or ValueError from libhdf5, or another library's error that names a full disk): a full disk says so, with
    the space free now and the space the save needs (more than ``written``, the bytes it had written when the
    disk filled); nothing already saved is harmed by the failure."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if disk_full(exc):
        needs = (f"the save needs more than {_size(written)} (written before the disk filled)" if written
                 else "the save needs more than that")
        return WriteError(f"{action} failed: the disk is full (no space left on device: {reason}); any "
                          "earlier file is intact and the partial file was removed", path=path,
                          found=f"no space left on the device: {_free_in(path)}; {needs}",
                          hint="free disk space, then save again")
    return WriteError(f"{action} failed ({reason}); any earlier file is intact", path=path,
                      hint="check permissions and free space of the directory")
