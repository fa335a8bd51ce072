"""File lifecycle of the recording face, on top of :mod:`h5stream.files`.

Every durable write of ``hdmea`` goes through the engine's atomic primitives
(:func:`~h5stream.files.create_atomic`, :func:`~h5stream.files.update_atomic`,
:func:`~h5stream.files.adopt_partial`, :func:`~h5stream.files.write_bytes_atomic`),
and every file a writer is about to touch is first checked the way a read
checks it: writers never follow what readers refuse (external links, external
storage, virtual datasets raise the same :class:`~h5stream.errors.UnsafeFileError`
as a read).  This is also the one place where engine errors become the
recording face's errors (:mod:`hdmea.errors`), each built complete, with the
message texts the store's contract prescribes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py

from h5stream.errors import (
    FormatError,
    H5StreamError,
    MissingPluginError,
    OpenInThisProcessError,
    SourceNotFoundError,
    TargetExistsError,
    UnsafeFileError,
    WriterClaimError,
)
from h5stream.files import (
    AtomicFile,
    WriterClaim,
    hdf5_lock_held,
    open_here_error,
    open_in_this_process,
    open_validated,
    refuse_unsafe_target,
    update_atomic,
)
from hdmea.errors import (
    CorruptRecordingError,
    HdmeaError,
    RecordingExistsError,
    RecordingLockedError,
    RecordingNotFoundError,
)

__all__ = [
    "not_found_error",
    "locked_error",
    "corrupt_error",
    "held_for_reading_error",
    "open_here_recording_error",
    "refuse_if_open_here",
    "exists_error",
    "translate_engine_error",
    "recording_errors",
    "validate_for_update",
    "open_update",
    "check_replace_target",
    "probe_output",
]

_REPLACE_HINT = "pass overwrite=True to replace it (the old file stays intact until the new one is complete)"


# --------------------------------------------------------------------------- errors, built complete


def not_found_error(path: str | os.PathLike) -> RecordingNotFoundError:
    """``HDF5 file not found: <path>`` (the store's contract text)."""
    return RecordingNotFoundError(
        f"HDF5 file not found: {os.fspath(path)}", path=path, expected="an existing recording file",
        found="nothing at this path", hint="check the path", composed=True,
    )


def _holder_sentence(cause: BaseException | None) -> str:
    """Who holds the file, as the sentence that follows the contract text (empty when unknown)."""
    if not isinstance(cause, WriterClaimError):
        return ""
    if cause.other_program:
        return " It is held by another program, which has it open for writing (HDF5 file lock)."
    if cause.holder is None:
        return " It is held by a writer whose claim file cannot be read."
    return f" It is held by {WriterClaim.describe(cause.holder)}."


def locked_error(path: str | os.PathLike, cause: BaseException | None = None) -> RecordingLockedError:
    """``File is already open for writing: <path>. ...`` (the store's contract text), then the holder.

    ``cause`` (the engine's :class:`WriterClaimError`) names the holder: its
    pid, thread, host and start time, or "held by another program" when that
    program holds HDF5's own file lock; it is also kept as the ``found`` field
    and its ``holder``/``other_program`` are carried over.
    """
    claim = cause if isinstance(cause, WriterClaimError) else None
    return RecordingLockedError(
        f"File is already open for writing: {os.fspath(path)}. "
        "HDF5 supports single-writer access only. "
        "Close the file in other processes before writing." + _holder_sentence(cause),
        path=path, expected="no other writer", found=str(cause) if cause is not None else None,
        hint="close the file in the other process, then retry", composed=True,
        holder=claim.holder if claim is not None else None,
        other_program=claim.other_program if claim is not None else False,
    )


def held_for_reading_error(path: str | os.PathLike, cause: BaseException | None = None) -> RecordingLockedError:
    """``Cannot read HDF5 file: <path>. It is held by another program ...``: a read refused because another
    program has the file open for writing (HDF5's lock; libhdf5 then refuses the superblock's "open for
    write" flag), which is no damage."""
    return RecordingLockedError(
        f"Cannot read HDF5 file: {os.fspath(path)}. It is held by another program, which has it open for "
        "writing (HDF5 file lock); its content is not complete until that program closes it.",
        path=path, expected="a file no program is writing", found=str(cause) if cause is not None else None,
        hint="close the file in the other program, then retry", composed=True, other_program=True,
    )


def open_here_recording_error(path: str | os.PathLike, cause: OpenInThisProcessError) -> RecordingLockedError:
    """``File is open in this process: <path>. ...``: an HDF5 handle of this very interpreter (an
    ``h5py.File`` not closed) holds the file, which HDF5 reports as a locking mismatch; no damage."""
    why = ("HDF5 will not open it a second time here with other locking settings" if cause.intent == "read-only"
           else "a file open for writing is not complete until it is closed, and has one writer at a time")
    return RecordingLockedError(
        f"File is open in this process: {os.fspath(path)}. An h5py.File (or another HDF5 handle) opened "
        f"{cause.intent} in this interpreter is not closed, and {why}. The file is not damaged: close that "
        "handle (f.close(), or open the file in a `with` block), then retry.",
        path=path, expected="no open handle of the file in this process", found=cause.found,
        hint="close that handle (f.close(), or open the file in a `with` block), then retry", composed=True,
    )


def refuse_if_open_here(path: str | os.PathLike, cause: BaseException | None = None) -> None:
    """Raise :func:`open_here_recording_error` when this process holds ``path`` open through libhdf5."""
    intent = open_in_this_process(path)
    if intent is not None:
        error = open_here_recording_error(path, open_here_error(path, intent))
        if cause is not None:
            raise error from cause
        raise error


def corrupt_error(path: str | os.PathLike, cause: BaseException | None = None) -> CorruptRecordingError:
    """``Cannot read HDF5 file: <path>. The file may be corrupted or incomplete.`` (contract text)."""
    return CorruptRecordingError(
        f"Cannot read HDF5 file: {os.fspath(path)}. The file may be corrupted or incomplete.",
        path=path, expected="a readable HDF5 recording file",
        found=str(cause) if cause is not None else None,
        hint="restore the file from a good copy or write it again", composed=True,
    )


def exists_error(path: str | os.PathLike, message: str = "file already exists",
                 hint: str = _REPLACE_HINT) -> RecordingExistsError:
    return RecordingExistsError(message, path=path, found="an existing file", hint=hint)


def translate_engine_error(exc: H5StreamError, path: str | os.PathLike) -> H5StreamError:
    """The recording face's error for an engine error about ``path``.

    Errors that already belong to ``hdmea`` pass unchanged, and so do the
    refusals a read raises too (unsafe objects, missing filter plugins, format
    errors naming an object), so that a write reports exactly what a read would.
    """
    if isinstance(exc, HdmeaError):
        return exc
    if isinstance(exc, OpenInThisProcessError):
        return open_here_recording_error(path, exc)
    if isinstance(exc, WriterClaimError):
        return locked_error(path, exc)
    if isinstance(exc, TargetExistsError):
        return exists_error(path, hint=exc.hint or _REPLACE_HINT)
    if isinstance(exc, SourceNotFoundError):
        return not_found_error(path)
    return exc


@contextlib.contextmanager
def recording_errors(path: str | os.PathLike) -> Iterator[None]:
    """Engine errors raised inside the block leave as the recording face's errors (see above)."""
    try:
        yield
    except H5StreamError as exc:
        translated = translate_engine_error(exc, path)
        if translated is exc:
            raise
        raise translated from exc


# --------------------------------------------------------------------------- write paths


def validate_for_update(path: str | os.PathLike,
                        check: Callable[[h5py.File, Path], None] | None = None) -> Path:
    """Check the recording ``path`` the way a read does, before it is updated.

    The file is opened through :func:`h5stream.files.open_validated`
    (regular file, HDF5 signature, ``check(f, path)`` for the format).  The unsafe-object
    scan runs once, by :func:`h5stream.files.update_atomic`, on the copy that
    receives the writes.  A missing file is :class:`RecordingNotFoundError`, a
    file that cannot be read :class:`CorruptRecordingError`; format errors from
    ``check`` pass as they are.
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise not_found_error(path)
    if hdf5_lock_held(path):
        refuse_if_open_here(path)  # this process's own handle holds the lock, not another program
        raise locked_error(path, WriterClaimError(
            "file is held by another program, which has it open for writing (HDF5 file lock held)",
            path=path, hint="close the file in the other program and retry", other_program=True,
        ))
    try:
        # locking=False: a file another program holds open for writing is reported by the
        # writer's claim as locked, not here as unreadable.
        open_validated(path, check=None if check is None else (lambda f: check(f, path)), scan=False,
                       locking=False).close()
    except SourceNotFoundError as exc:
        raise not_found_error(path) from exc
    except OpenInThisProcessError as exc:
        raise open_here_recording_error(path, exc) from exc
    except (UnsafeFileError, MissingPluginError, HdmeaError):
        raise
    except FormatError as exc:
        if check is not None and exc.obj not in (None, "/"):
            raise  # the format check named what is wrong
        raise corrupt_error(path, exc) from exc
    return path


def open_update(path: str | os.PathLike,
                check: Callable[[h5py.File, Path], None] | None = None) -> AtomicFile:
    """A copy-on-write update of the recording ``path``, validated, claimed and open.

    See :func:`validate_for_update`; the copy is then scanned before the first
    write, so an external link, external storage or a virtual dataset raises the
    same :class:`UnsafeFileError` as a read and nothing outside the file is touched.
    Another writer is :class:`RecordingLockedError`.
    """
    path = validate_for_update(path, check)
    with recording_errors(path):
        atomic = update_atomic(path, checksums=True)
        atomic.open()
    return atomic


def check_replace_target(path: str | os.PathLike) -> None:
    """Before a write replaces ``path`` whole: refuse it if a read would refuse its links.

    See :func:`h5stream.files.refuse_unsafe_target`; a missing, foreign or
    unreadable file is simply replaced.
    """
    refuse_unsafe_target(path)


@contextlib.contextmanager
def probe_output(path: str | os.PathLike) -> Iterator[h5py.File | None]:
    """Open an existing output file read-only to inspect it, the way a read opens it.

    Yields the open file, or None when it is no HDF5 file or cannot be read (a
    probe answers "not ours").  External links, external storage and virtual
    datasets raise :class:`UnsafeFileError` and missing filters
    :class:`MissingPluginError`, as a read does.
    """
    try:
        f = open_validated(path)
    except (UnsafeFileError, MissingPluginError):
        raise
    except FormatError:
        yield None
        return
    with f:
        yield f
