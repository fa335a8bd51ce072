"""How a finished partial file takes its target's place, and a small file of bytes written whole that way.

Every atomic write of the engine ends the same way.  Before any work the target is checked
(:func:`check_target`: its directory exists and is writable, it is not a directory, and without
``overwrite`` it does not exist yet, :func:`refuse_existing`); the file is built at
``<target>.partial-<pid>-<n>`` beside it and fsynced; then :func:`publish` puts it at the target path in
one step (``os.replace``, or without ``overwrite`` a hard link that fails when a target appeared
meanwhile, so a file that exists is never replaced) and the directory is fsynced.
:class:`~h5stream.files.atomic.AtomicFile` does this for HDF5 files; :func:`write_bytes_atomic` for a
small file of bytes (a marker, a JSON summary).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from h5stream.errors import H5StreamError, TargetExistsError, WriteError
from h5stream.files.claims import WriterClaim
from h5stream.files.paths import LINK_UNSUPPORTED, fsync_directory, parent_of, partial_path
from h5stream.files.write_errors import as_write_error

__all__ = ["check_target", "refuse_existing", "publish", "write_bytes_atomic"]

logger = logging.getLogger("h5stream.files")


def refuse_existing(target: Path, *, overwrite: bool) -> None:
    """Raise :class:`TargetExistsError` when ``target`` exists and may not be replaced."""
    if not overwrite and os.path.lexists(target):
        raise TargetExistsError(
            "file already exists",
            path=target,
            hint="pass overwrite=True to replace it (the old file stays intact until the new one is complete)",
        )


def check_target(target: Path, *, overwrite: bool) -> None:
    """Refuse a missing or read-only directory, a directory target and (without ``overwrite``) a file."""
    refuse_existing(target, overwrite=overwrite)
    parent = parent_of(target)
    if not parent.is_dir():
        raise WriteError(
            "the directory does not exist", path=target, expected="an existing directory",
            found=f"no directory {parent}", hint="create the directory first",
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise WriteError(
            "the directory is not writable", path=target,
            hint=f"check the permissions of {parent}",
        )
    if target.is_dir():
        raise WriteError(
            "the target is a directory", path=target, expected="a file path",
            found="a directory", hint="choose a file name",
        )


def publish(partial: Path, target: Path, *, replace: bool) -> None:
    """Put the finished ``partial`` file at ``target`` in one atomic step (``replace``: over a file there)."""
    if replace:
        os.replace(partial, target)
        return
    try:
        os.link(partial, target)  # fails rather than replace a file that exists
    except FileExistsError:
        raise TargetExistsError(
            "file appeared while it was being written",
            path=target,
            hint="pass overwrite=True to replace it; the new data was discarded",
        ) from None
    except OSError as exc:
        if exc.errno not in LINK_UNSUPPORTED:
            raise
        refuse_existing(target, overwrite=False)
        os.replace(partial, target)
        return
    os.unlink(partial)


def write_bytes_atomic(
    target: str | os.PathLike,
    data: bytes,
    *,
    overwrite: bool = True,
    claim: bool = False,
    durable: bool = True,
) -> Path:
    """Durably write a small file (a marker, a JSON summary) that appears whole or not at all.

    ``data`` goes to ``<target>.partial-<pid>-<n>`` beside the target, is
    fsynced, renamed onto ``target`` and the directory fsynced: a crash at any
    moment leaves the previous content or the new one, never a part of it.
    With ``durable=False`` both fsyncs are left out: readers still see the old
    content or the new one, never a part of it (the rename is atomic), but a
    crash of the machine soon after may lose the file or leave it empty, as
    the kernel had not yet written it.  For files whose loss only costs work
    done again (a job's done-marker that its reader takes as "not done" when
    missing, empty or unparsable); each fsync costs milliseconds.

    Parameters
    ----------
    target : path
        The final path; it is never opened for writing.
    data : bytes
        The complete content (encode text first, for example ``text.encode()``).
    overwrite : bool, default True
        Replace an existing target.  With False an existing target raises
        :class:`TargetExistsError` and one appearing meanwhile is never replaced.
    claim : bool, default False
        Hold ``<target>.claim`` while writing (one writer per target).
    durable : bool, default True
        Fsync the file before the rename and the directory after it.  False:
        atomic for readers, not durable across a machine crash.

    Returns
    -------
    Path
        The target path.

    Raises
    ------
    WriteError
        The directory is missing or not writable, the target is a directory, or
        writing failed (full disk, I/O error); any earlier file is intact.
    TargetExistsError
        ``overwrite=False`` and the target exists.
    WriterClaimError
        ``claim=True`` and another writer holds the target.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    target = Path(target)
    writer = WriterClaim(target) if claim else None
    partial = partial_path(target)
    check_target(target, overwrite=overwrite)
    if writer is not None:
        writer.acquire()
    try:
        refuse_existing(target, overwrite=overwrite)
        try:
            fd = os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            publish(partial, target, replace=overwrite)
        except H5StreamError:
            raise
        except OSError as exc:
            raise as_write_error(exc, target, "writing the file") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        if writer is not None:
            writer.release()
    if durable:
        try:
            fsync_directory(parent_of(target))
        except OSError as exc:
            logger.warning("directory fsync after writing %s failed: %s", target, exc)
    return target
