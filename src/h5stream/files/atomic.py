"""Atomic files: a new or updated file appears at its target only when complete.

A file is built at ``<target>.partial-<pid>-<n>`` in the target's directory,
flushed, fsynced, renamed over the target with ``os.replace`` and the
directory fsynced.  The target path itself is never opened for writing, so a
crash at any moment leaves either no target or the previous complete one.
Updates work on a byte copy that is scanned like a read first: a writer never
follows what a reader refuses.  How the target is checked and the finished file put in its place, for
these HDF5 files and for small files of bytes, is :mod:`h5stream.files.publish`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import weakref
from collections.abc import Callable
from pathlib import Path

import h5py

from h5stream import checksums as _checksums
from h5stream.errors import H5StreamError, SourceNotFoundError, WriteError
from h5stream.lowlevel import create_file
from h5stream.files.claims import WriterClaim, remove_stale_leftovers
from h5stream.files.copying import copy_descriptor
from h5stream.files.write_errors import as_write_error, bytes_in, full_disk_cause
from h5stream.files.paths import fsync_directory, fsync_path, parent_of, partial_path
from h5stream.files.writeback import Writeback
from h5stream.files.publish import check_target, publish, refuse_existing
from h5stream.files.self_contained import mark_self_contained
from h5stream.files.validated import (
    open_without_unsupported_locks,
    check_hdf5_signature,
    check_regular_file,
    guard_read,
    scan_unsafe_objects,
)

__all__ = ["AtomicFile", "create_atomic", "update_atomic", "adopt_partial", "copy_atomic", "copy_descriptor"]

logger = logging.getLogger("h5stream.files")


def _close_file(fid) -> bool:
    """Close the HDF5 file ``fid`` and every object open in it; True when it is closed.

    Goes through ``h5py.File.close`` itself, never a subclass's committing ``close``.
    """
    for _attempt in range(2):
        if not fid.valid:
            return True
        with contextlib.suppress(Exception):
            h5py.File.close(h5py.File(fid))
    return not fid.valid


def _discard(fid, partial: Path) -> None:
    """Close and delete a partial file so that its space is free when this returns.

    A file that cannot be closed (libhdf5 failing to flush on a full disk) is
    truncated first, which frees its space and lets the retried close flush.
    """
    if fid is not None and not _close_file(fid):
        with contextlib.suppress(OSError):
            os.truncate(partial, 0)
        if not _close_file(fid):
            logger.warning("could not close the partial file %s; its space was freed by truncating it", partial)
    with contextlib.suppress(OSError):
        os.unlink(partial)


class _Pending:
    """What an unfinished :class:`AtomicFile` holds, released by its finalizer.

    Kept apart from the AtomicFile so that the finalizer keeps no reference to it.
    """

    __slots__ = ("fid", "partial", "claim", "writeback")

    def __init__(self, partial: Path, claim: WriterClaim | None) -> None:
        self.fid = None
        self.partial = partial
        self.claim = claim
        self.writeback: Writeback | None = None  # the watcher of the partial file, while it is written

    def stop_writeback(self) -> None:
        if self.writeback is not None:
            self.writeback.stop()
            self.writeback = None

    def release(self) -> None:
        self.stop_writeback()
        if self.fid is not None:
            _discard(self.fid, self.partial)
            self.fid = None
        if self.claim is not None:
            self.claim.release()


def _abandoned(pending: _Pending, target: Path) -> None:
    """Finalizer of an AtomicFile dropped, or alive at interpreter exit, without commit or abort."""
    if pending.fid is None and (pending.claim is None or not pending.claim.held):
        return
    logger.warning("discarding the unfinished write of %s (neither committed nor aborted)", target)
    pending.release()


class AtomicFile:
    """Write a new HDF5 file for ``target`` that appears there only when complete.

    Use as a context manager; the body receives an ``h5py.File`` open on the
    partial path.  A clean exit commits (flush, close, fsync, rename onto the
    target, directory fsync); an exception aborts (the partial file is removed,
    the target is untouched).  ``open()``, ``commit()`` and ``abort()`` may also
    be called directly.

    With ``overwrite=False`` the rename is a hard link that fails when a target
    appeared meanwhile, so a file that exists is never replaced.  With ``source``
    the partial file starts as a byte copy of ``source`` opened ``r+``
    (copy-on-write update of an existing file).

    With ``checksums`` the engine's writers record a digest of everything they
    write into the file and :meth:`seal` (called by ``commit``) stores them as
    the file's checksum manifest (:mod:`h5stream.checksums`); an update starts
    from the source's manifest.  ``checksums="walk"`` also digests, by reading
    them back at commit, the objects written through plain h5py.

    Setting :attr:`self_contained` before the commit vouches that the file holds no external link,
    external storage or virtual dataset: the commit marks it so (:mod:`h5stream.files.self_contained`),
    and a later writer replacing it checks the mark instead of walking every object.
    """

    #: The writer vouches that the file reads nothing outside itself (see the class's text).
    self_contained: bool = False
    #: With ``copy_of``: ``watch(offset, block)`` sees each block copied (:func:`copy_descriptor`).
    copy_watch: Callable[[int, memoryview], None] | None = None

    def __init__(
        self,
        target: str | os.PathLike,
        *,
        overwrite: bool = False,
        source: str | os.PathLike | None = None,
        userblock_size: int = 0,
        libver: str | tuple | None = None,
        claim: bool = True,
        on_commit: Callable[[Path], None] | None = None,
        checksums: bool | str = False,
        evict_on_close: bool = False,
        early_writeback: bool = False,
        copy_of: int | None = None,
    ) -> None:
        if checksums not in (False, True, "walk"):
            raise ValueError(f"checksums must be False, True or 'walk', got {checksums!r}")
        self.checksums = checksums
        self._recorder: _checksums.Recorder | None = None
        self.target = Path(target)
        self.overwrite = overwrite
        self.source = Path(source) if source is not None else None
        self.userblock_size = userblock_size
        self.libver = libver
        self.evict_on_close = evict_on_close
        self.early_writeback = early_writeback
        self.copy_of = copy_of
        self.claim = WriterClaim(self.target) if claim else None
        # Released when this object is collected, or at interpreter exit, while unfinished:
        # a write without ``with`` never leaves its claim and partial file behind.
        self._pending = _Pending(partial_path(self.target), self.claim)
        self._finalizer = weakref.finalize(self, _abandoned, self._pending, self.target)
        self._file: h5py.File | None = None
        self.committed = False
        self.aborted = False
        self._on_commit = on_commit

    @property
    def partial(self) -> Path:
        """The path the file is built at."""
        return self._pending.partial

    @partial.setter
    def partial(self, path: str | os.PathLike) -> None:
        self._pending.partial = Path(path)

    @property
    def file(self) -> h5py.File | None:
        """The open partial file (None before ``open()``)."""
        return self._file

    @file.setter
    def file(self, handle: h5py.File | None) -> None:
        self._file = handle
        self._pending.fid = handle.id if handle is not None else None
        if handle is not None and self.checksums and self._recorder is None and handle.id.valid:
            recorder = _checksums.Recorder(walk=self.checksums == "walk")
            if self.source is not None or self.copy_of is not None:
                manifest = _checksums.read_manifest(handle, self.target)
                if manifest is not None:
                    recorder.seed(manifest)
            self._recorder = _checksums.start_recording(handle, recorder)
        if handle is not None:
            # The handle keeps its AtomicFile alive: the finalizer runs only once both are unreachable.
            with contextlib.suppress(AttributeError):
                handle._h5stream_atomic = self

    # -- lifecycle
    def _refuse_existing_target(self) -> None:
        refuse_existing(self.target, overwrite=self.overwrite or self.source is not None)

    def _check_target(self) -> None:
        """Refuse a missing or read-only directory, a directory target and (without overwrite) a file."""
        check_target(self.target, overwrite=self.overwrite or self.source is not None)

    def open(self) -> h5py.File:
        """Claim the target and open the partial file for writing."""
        if self.file is not None or self.committed or self.aborted:
            raise WriteError(
                "this AtomicFile was already opened", path=self.target,
                hint="create a new one with create_atomic() or update_atomic()",
            )
        target = self.target
        self._check_target()
        if self.claim is not None:
            self.claim.acquire()
        else:
            remove_stale_leftovers(target)
        try:
            # Checked again under the claim: another writer may have finished meanwhile.
            self._refuse_existing_target()
            if self.source is not None:
                try:
                    shutil.copyfile(self.source, self.partial)
                    shutil.copymode(self.source, self.partial)
                except OSError as exc:
                    raise as_write_error(exc, target, "copying the file for update") from exc
                self.file = open_without_unsupported_locks(h5py.File, self.partial, "r+", {})
                # The copy is what gets written: refuse it as a read would, before any write
                # could follow an external link or external storage into another file.
                with guard_read(target, "/"):
                    scan_unsafe_objects(self.file, target)
            elif self.copy_of is not None:
                try:
                    copy_descriptor(self.copy_of, self.partial, watch=self.copy_watch)
                except OSError as exc:
                    raise as_write_error(exc, target, "copying the file") from exc
                # (no scan: the caller checked the descriptor's file as a read checks it, see copy_atomic)
                self.file = open_without_unsupported_locks(h5py.File, self.partial, "r+",
                                                           {"libver": self.libver} if self.libver else {})
            else:
                kwargs = {}
                if self.userblock_size:
                    kwargs["userblock_size"] = self.userblock_size
                if self.libver is not None:
                    kwargs["libver"] = self.libver
                opener = h5py.File
                if self.evict_on_close:
                    opener, kwargs["evict_on_close"] = create_file, True
                self.file = open_without_unsupported_locks(opener, self.partial, "x", kwargs)
                if self.early_writeback:
                    self._pending.writeback = Writeback.start(self.partial)
        except H5StreamError:
            self._cleanup()
            raise
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            self._cleanup()
            raise as_write_error(exc, target, "creating the file") from exc
        except BaseException:
            self._cleanup()
            raise
        return self.file

    def seal(self) -> None:
        """Write the checksum manifest into the open partial file (once; nothing without ``checksums``).

        ``commit`` calls it; call it yourself before closing the file by other means.
        """
        recorder = self._recorder
        if recorder is None or self.file is None or not self.file.id.valid:
            return
        try:
            _checksums.seal(self.file, recorder)
        finally:
            _checksums.stop_recording(self.file)
            self._recorder = None

    def commit(self) -> Path:
        """Make the partial file the target; returns the target path."""
        if self.committed:
            return self.target
        if self.aborted:
            raise WriteError("commit() after abort()", path=self.target, hint="write the file again")
        if self.file is None:
            raise WriteError("commit() before open()", path=self.target)
        try:
            if self.file.id.valid:
                self.seal()
                self.file.flush()
                self.file.close()
            self._pending.stop_writeback()
            if self.self_contained:
                mark_self_contained(self.partial)  # (metadata, made durable by the fsync below)
            fsync_path(self.partial)
            self._publish()
        except H5StreamError:
            self._cleanup()
            raise
        except (OSError, RuntimeError, ValueError) as exc:
            error = as_write_error(exc, self.target, "finishing the file", written=bytes_in(self.partial))
            self._cleanup()
            raise error from exc
        except BaseException:
            self._cleanup()
            raise
        self.committed = True
        self._pending.fid = None
        # The new file is in place; a directory that refuses fsync cannot undo that.
        try:
            fsync_directory(parent_of(self.target))
        except OSError as exc:
            logger.warning("directory fsync after committing %s failed: %s", self.target, exc)
        if self.claim is not None:
            self.claim.release()
        self._finalizer.detach()
        logger.debug("committed %s", self.target)
        if self._on_commit is not None:
            self._on_commit(self.target)
        return self.target

    def _publish(self) -> None:
        """Put the finished partial file at the target path in one atomic step."""
        publish(self.partial, self.target, replace=self.overwrite or self.source is not None)

    def abort(self) -> None:
        """Discard the partial file; the target is left as it was."""
        if not self.committed:
            self.aborted = True
        self._cleanup()

    def _cleanup(self) -> None:
        """Close and delete the partial file (its space is free on return) and release the claim."""
        self._pending.stop_writeback()
        if not self.committed:
            fid = self.file.id if self.file is not None else None
            if self._recorder is not None and fid is not None:
                with contextlib.suppress(Exception):
                    _checksums.stop_recording(fid)
            self._recorder = None
            _discard(fid, self.partial)
        self._pending.fid = None
        if self.claim is not None:
            self.claim.release()
        if self.committed or self.aborted:
            self._finalizer.detach()

    def __enter__(self) -> h5py.File:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
            return False
        written = bytes_in(self.partial)
        self.abort()
        full = full_disk_cause(exc)
        if full is not None:  # named for the target, whatever layer reported it for the partial file
            raise as_write_error(full, self.target, "writing", written=written) from exc
        if isinstance(exc, OSError) and not isinstance(exc, H5StreamError):
            raise as_write_error(exc, self.target, "writing", written=written) from exc
        return False


def create_atomic(
    target: str | os.PathLike,
    overwrite: bool = False,
    *,
    userblock_size: int = 0,
    libver: str | tuple | None = None,
    claim: bool = True,
    on_commit: Callable[[Path], None] | None = None,
    checksums: bool | str = False,
    evict_on_close: bool = False,
    early_writeback: bool = False,
) -> AtomicFile:
    """A new HDF5 file for ``target`` that appears there only once complete.

    Parameters
    ----------
    target : path
        The final path.  It is never opened for writing.
    overwrite : bool, default False
        Replace an existing target on commit.  Without it an existing target
        raises :class:`TargetExistsError` before any work, and a target that
        appears while writing is never replaced.
    userblock_size, libver
        Passed to ``h5py.File``.
    claim : bool, default True
        Hold ``<target>.claim`` while writing (one writer per target).
    on_commit : callable, optional
        Called with the target path after a successful commit.
    checksums : bool or "walk", default False
        Store the checksum manifest of what the engine's writers wrote
        (see :class:`AtomicFile`).
    evict_on_close : bool, default False
        Create the file with libhdf5's evict-on-close
        (:func:`h5stream.lowlevel.create_file`): faster for a writer that closes each of
        many small objects for good, as the tree writer does; the same file for a reader.
    early_writeback : bool, default False
        While the file is written, hand its pages to the disk each time it has grown by
        :data:`h5stream.files.writeback.STEP_BYTES` (:class:`~h5stream.files.writeback.Writeback`):
        the commit's fsync then waits for the tail only.  The same bytes, and the same fsync.

    Returns
    -------
    AtomicFile
        Use ``with create_atomic(p) as f:`` (``f`` is an ``h5py.File`` on the
        partial path), or ``open()``/``commit()``/``abort()``.
    """
    return AtomicFile(
        target, overwrite=overwrite, userblock_size=userblock_size, libver=libver, claim=claim,
        on_commit=on_commit, checksums=checksums, evict_on_close=evict_on_close,
        early_writeback=early_writeback,
    )


def update_atomic(
    target: str | os.PathLike,
    *,
    claim: bool = True,
    on_commit: Callable[[Path], None] | None = None,
    checksums: bool | str = False,
) -> AtomicFile:
    """Copy-on-write update of an existing HDF5 file.

    The body works on a byte copy of ``target`` (opened ``r+``); the changes
    become visible all at once on commit, and a crash or an exception leaves the
    old file as it was.

    Parameters
    ----------
    target : path
        An existing HDF5 file.
    claim, on_commit, checksums
        As for :func:`create_atomic`; the update keeps the digests of the
        source's manifest for what it does not change.

    Raises
    ------
    SourceNotFoundError
        ``target`` does not exist.
    FormatError
        ``target`` is not a regular HDF5 file.
    UnsafeFileError, MissingPluginError
        Raised by ``open()``: the file holds an external link, external storage,
        a virtual dataset or an unavailable filter, which a read refuses too; the
        file and whatever it points to are left untouched.
    """
    target = Path(target)
    if not os.path.lexists(target):
        raise SourceNotFoundError("file does not exist", path=target, hint="create it first")
    check_regular_file(target)
    check_hdf5_signature(target)
    return AtomicFile(target, source=target, overwrite=True, claim=claim, on_commit=on_commit,
                      checksums=checksums)


def adopt_partial(
    target: str | os.PathLike,
    partial: str | os.PathLike,
    *,
    file: h5py.File | None = None,
    overwrite: bool = True,
    claim: bool = True,
    on_commit: Callable[[Path], None] | None = None,
    checksums: bool | str = False,
) -> AtomicFile:
    """Take over a partial file that is already being written, to finish it as ``target``.

    For a file built beside the target before it was known to be saved (a
    session's spill file): the returned :class:`AtomicFile` holds the target's
    claim, and ``commit()`` flushes, closes, fsyncs and renames ``partial``
    onto ``target`` like any other atomic write; ``abort()`` removes it.

    Parameters
    ----------
    target : path
        The final path.
    partial : path
        The file to adopt; it must be in ``target``'s directory (the rename
        must not cross filesystems).
    file : h5py.File, optional
        ``partial`` open for writing; it may also be assigned to ``.file``
        after this call (for example once the claim is held).
    overwrite, claim, on_commit, checksums
        As for :func:`create_atomic` (with ``checksums``, recording starts when
        the file is handed over: arrays already in it bring their own digests).

    Raises
    ------
    WriteError
        The directory is missing or not writable, the target is a directory, or
        ``partial`` is not a file in the target's directory.
    TargetExistsError, WriterClaimError
        As for :func:`create_atomic`.
    """
    atomic = AtomicFile(target, overwrite=overwrite, claim=claim, on_commit=on_commit, checksums=checksums)
    partial = Path(partial)
    atomic._check_target()
    if not partial.is_file() or partial.parent.resolve() != parent_of(atomic.target).resolve():
        raise WriteError(
            "the partial file to adopt is not a file beside the target", path=atomic.target,
            expected=f"a file in {parent_of(atomic.target)}", found=os.fspath(partial),
            hint="write the partial file in the target's directory",
        )
    atomic.partial = partial
    if atomic.claim is not None:
        atomic.claim.acquire()
    try:
        atomic._refuse_existing_target()
    except BaseException:
        if atomic.claim is not None:
            atomic.claim.release()
        raise
    atomic.file = file
    return atomic


def copy_atomic(
    target: str | os.PathLike,
    fd: int,
    *,
    overwrite: bool = False,
    libver: str | tuple | None = None,
    claim: bool = True,
    checksums: bool | str = False,
) -> AtomicFile:
    """A new HDF5 file for ``target`` that starts as a byte copy of the file open as ``fd`` (opened ``r+``,
    with ``libver`` for what is written into it), and appears at ``target`` only once complete.

    Unlike :func:`update_atomic` the copy is not scanned: the caller vouches that the descriptor's file was
    checked as a read checks it (it was opened through :func:`h5stream.files.open_validated` and has not
    changed since).  ``overwrite`` and ``checksums`` as for :func:`create_atomic` (the digests of the
    copied file's manifest are kept for what the body does not change).
    """
    return AtomicFile(target, overwrite=overwrite, libver=libver, claim=claim, checksums=checksums, copy_of=fd)
