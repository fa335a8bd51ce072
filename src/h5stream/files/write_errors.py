"""Failed writes as typed errors: a full disk named as such, every other failure as a WriteError.

libhdf5 reports a failed ``write(2)`` through h5py as OSError, RuntimeError or ValueError, naming the
system's errno only inside its message; :func:`as_write_error` turns each into the engine's
:class:`~h5stream.errors.WriteError` with the reason and what to do.
"""

from __future__ import annotations

import errno
import os

from h5stream.errors import WriteError

__all__ = ["disk_full", "as_write_error"]


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


def as_write_error(exc: BaseException, path: str | os.PathLike, action: str) -> WriteError:
    """The typed error of a write of ``path`` that failed with ``exc`` (an OSError, or h5py's RuntimeError
    or ValueError from libhdf5): a full disk says so; nothing already saved is harmed by the failure."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if disk_full(exc):
        return WriteError(f"{action} failed: the disk is full (no space left on device: {reason}); any "
                          "earlier file is intact and the partial file was removed", path=path,
                          found="no space left on the device", hint="free disk space, then save again")
    return WriteError(f"{action} failed ({reason}); any earlier file is intact", path=path,
                      hint="check permissions and free space of the directory")


