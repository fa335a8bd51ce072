"""Reads of a folder dataset that a concurrent save may replace while they run.

A folder dataset (:mod:`h5stream.files.folders`) is replaced by swapping the whole
folder in one step.  A reader that opened the manifest of the old folder and then a
member of the new one (or met a member the old one's writer was deleting) would see
a mismatch and call a good dataset damaged.  :func:`read_folder` runs a read with
the folder pinned: it holds a descriptor of the folder it started on, and when the
read fails, or ends, while the path no longer names that folder, the read met a save
and is run again on the new folder, a bounded number of times.  A failure while the
path still names the pinned folder is the read's own (damage, a format error) and is
raised as it is.  When every try met a save, :class:`~h5stream.errors.SaveInProgressError`
says so (nothing is damaged).

The pinned folder cannot come back to the path once a save moved it away (the
writer deletes it, and a deleted folder's number is not reused while a descriptor of
it is open), so "the path names the pinned folder at the end" proves every file read
came from that one folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from h5stream.errors import SaveInProgressError
from h5stream.files.paths import claim_path

__all__ = ["read_folder", "ATTEMPTS", "PAUSE"]

T = TypeVar("T")

#: Tries of a read that meets a save, and the pause before the n-th retry (``PAUSE * n`` seconds).
ATTEMPTS = 8
PAUSE = 0.05


def _pin(target: Path) -> int | None:
    """A descriptor of the folder at ``target`` (None where folders cannot be opened, or nothing is there)."""
    try:
        return os.open(target, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None


def _still_there(fd: int, target: Path) -> bool:
    pinned = os.fstat(fd)
    try:
        now = os.stat(target)
    except OSError:
        return False
    return (pinned.st_dev, pinned.st_ino) == (now.st_dev, now.st_ino)


def read_folder(path: str | os.PathLike, read: Callable[[], T], *, attempts: int = ATTEMPTS,
                pause: float = PAUSE, what: str = "dataset") -> T:
    """``read()`` of the folder at ``path``, run again (up to ``attempts`` times) when a save replaced it meanwhile.

    ``read`` reads through the path (it need not know the descriptor).  Errors it
    raises while the folder stayed in place are raised unchanged.
    """
    target = Path(path)
    met: BaseException | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(pause * attempt)
        fd = _pin(target)
        if fd is None:
            if attempt + 1 < attempts and claim_path(target).exists() and not target.exists():
                continue  # a writer between its two renames (systems without the one-step exchange)
            return read()  # nothing there, or a system without folder descriptors: the read's own errors
        try:
            try:
                result = read()
            except Exception as exc:
                if _still_there(fd, target):
                    raise
                met = exc
                continue
            if _still_there(fd, target):
                return result
        finally:
            os.close(fd)
    raise SaveInProgressError(
        f"a save replaced the {what} while it was read, on each of {attempts} tries; it is not damaged",
        path=target, expected="a folder that stays in place while it is read",
        found=f"another folder at the path after each try ({type(met).__name__ if met else 'no error'} on the last)",
        hint="read it again when the save is done (its claim file, "
             f"{claim_path(target).name}, is present while a save runs)",
    ) from met
