"""Paths beside a target (partial files, claim files) and the fsync calls that make files durable."""

from __future__ import annotations

import errno
import itertools
import os
from pathlib import Path

from h5stream import capabilities
from h5stream.files.liveness import hold_liveness_lock

__all__ = ["claim_path", "partial_path", "sibling_path", "fsync_path", "fsync_directory", "LINK_UNSUPPORTED"]

# One counter per process for every name made beside a target (partials, claim temporaries).
_partial_counter = itertools.count()

# Errors of filesystems without hard links; callers fall back to rename or O_EXCL creation.
LINK_UNSUPPORTED = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


def parent_of(path: Path) -> Path:
    """The directory of ``path`` (``.`` for a bare file name)."""
    return path.parent if str(path.parent) else Path(".")


def claim_path(target: str | os.PathLike) -> Path:
    """The claim file that guards ``target``."""
    target = Path(target)
    return target.with_name(target.name + ".claim")


def partial_path(target: str | os.PathLike) -> Path:
    """A fresh partial path beside ``target``, unique to this process and call."""
    target = Path(target)
    return sibling_path(target, ".partial-")


def staged_path(target: str | os.PathLike, suffix: str = ".h5") -> Path:
    """A fresh name beside ``target`` for a complete intermediate file a job builds before ``target`` (``<target>
    .staged-<pid>-<n><suffix>``): one that a kill leaves is a leftover the next writer of ``target`` removes, as it
    does a partial file (:func:`h5stream.files.claims.remove_stale_leftovers`)."""
    target = Path(target)
    staged = sibling_path(target, ".staged-")
    return staged.with_name(staged.name + suffix)


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's data and metadata to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(path: str | os.PathLike) -> None:
    """Make a rename inside ``path`` durable."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on directories
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def sibling_path(target: Path, marker: str) -> Path:
    """A new name beside ``target``: ``<name><marker><pid>-<n>``, unique within this process.

    The pid in the name lets the next writer tell leftovers of dead processes apart (where no
    signal can probe a pid, by this process's liveness lock, taken here: :mod:`h5stream.files.liveness`).
    """
    if not capabilities.pid_signals():
        hold_liveness_lock()
    return target.with_name(f"{target.name}{marker}{os.getpid()}-{next(_partial_counter)}")
