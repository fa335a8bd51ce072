"""File lifecycle: atomic creation and replacement, single-writer claims, validated reads.

The rules this module enforces:

* A new file is built at ``<target>.partial-<pid>-<n>`` in the target's
  directory, flushed, fsynced, renamed over the target with ``os.replace`` and
  the directory fsynced.  The target path itself is never opened for writing,
  so a crash at any moment leaves either no target or the previous complete one.
* One writer per target.  A claim file ``<target>.claim`` (host, pid, thread,
  time) is created with ``O_EXCL`` before any work; HDF5's own file lock guards
  the partial file.  A claim left by a dead process on this host is cleared with
  a :class:`~h5stream.errors.StaleClaimWarning`; one from another host is
  reported with the way to clear it.
* Readers distrust files: the HDF5 signature is checked before h5py touches the
  file, external links, external storage, virtual datasets and unavailable
  filters are refused, and every failure leaves as a typed error naming the path
  and the object.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import itertools
import json
import logging
import os
import re
import shutil
import socket
import stat
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py

from h5stream.errors import (
    FormatError,
    H5StreamError,
    MissingPluginError,
    SourceNotFoundError,
    StaleClaimWarning,
    TargetExistsError,
    UnsafeFileError,
    WriteError,
    WriterClaimError,
)

__all__ = [
    "AtomicFile",
    "WriterClaim",
    "create_atomic",
    "update_atomic",
    "write_bytes_atomic",
    "open_validated",
    "guard_read",
    "check_hdf5_signature",
    "scan_unsafe_objects",
    "require_attr_format",
    "partial_path",
    "claim_path",
    "fsync_path",
    "fsync_directory",
    "ALLOWED_FILTERS",
    "verify_file",
    "verify_files",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# Filters a reader accepts.  Standard HDF5 filters are always present; the rest
# come with hdf5plugin (imported on demand so their filters register).
ALLOWED_FILTERS = {
    1: "deflate (gzip)",
    2: "shuffle",
    3: "fletcher32",
    4: "szip",
    5: "nbit",
    6: "scaleoffset",
    32000: "lzf",
    32001: "blosc",
    32004: "lz4",
    32008: "bitshuffle",
    32015: "zstd",
    32026: "blosc2",
}
PLUGIN_FILTERS = {32001, 32004, 32008, 32015, 32026}

_partial_counter = itertools.count()
_claims_lock = threading.Lock()


# --------------------------------------------------------------------------- paths


def claim_path(target: str | os.PathLike) -> Path:
    """The claim file that guards ``target``."""
    target = Path(target)
    return target.with_name(target.name + ".claim")


def partial_path(target: str | os.PathLike) -> Path:
    """A fresh partial path beside ``target``, unique to this process and call."""
    target = Path(target)
    return target.with_name(f"{target.name}.partial-{os.getpid()}-{next(_partial_counter)}")


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


# --------------------------------------------------------------------------- claims

# A claim younger than this whose content cannot be read may still be in the
# middle of being written by its creator (only on filesystems without hard links).
_UNREADABLE_CLAIM_GRACE_SECONDS = 30.0
_LINK_UNSUPPORTED = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


def _process_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:  # 0 and negatives address process groups, never one writer
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists but belongs to someone else
        return True
    return True


def _holder_pid(holder: dict) -> int:
    try:
        return int(holder.get("pid", -1))
    except (TypeError, ValueError):
        return -1


def _hdf5_lock_holder(target: Path) -> bool:
    """True when another program holds HDF5's exclusive lock on ``target`` (open for writing).

    HDF5 takes ``flock(LOCK_EX)`` on files it opens for writing and ``LOCK_SH``
    for reading, so a shared non-blocking probe fails only against a writer.
    Filesystems without working locks (some NFS/Lustre mounts) answer
    ENOLCK/ENOSYS, in which case the claim file alone guards the target.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        return False
    try:
        fd = os.open(target, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class WriterClaim:
    """Exclusive right to write ``target``, held through ``<target>.claim``.

    The claim file appears with its full content in one step (hard link of a
    fully written temporary file, which fails if the claim exists; ``O_EXCL``
    where hard links are unsupported), so exactly one thread or process of any
    host sharing the directory wins.  It holds JSON with the holder's host, pid,
    process start time, thread, start time and a unique token, which the loser's
    error reports.  When ``target`` exists and another program holds HDF5's write
    lock on it, the claim is refused as well.
    """

    def __init__(self, target: str | os.PathLike) -> None:
        self.target = Path(target)
        self.path = claim_path(self.target)
        self.held = False
        self._payload: dict | None = None

    @staticmethod
    def describe(holder: dict | None) -> str:
        """The holder as error messages name it."""
        if not holder:
            return "an unknown writer (the claim file is unreadable)"
        return (
            f"pid {holder.get('pid')} (thread {holder.get('thread')}) on host "
            f"{holder.get('host')!s} since {holder.get('time')}"
        )

    def read_holder(self, path: Path | None = None) -> dict | None:
        """The claim's content, or None when it is missing or unreadable."""
        try:
            with open(path or self.path, encoding="utf-8") as fh:
                holder = json.load(fh)
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def acquire(self) -> WriterClaim:
        """Take the claim or raise :class:`WriterClaimError` naming the holder."""
        if self.held:
            raise WriterClaimError(
                "this claim is already held", path=self.target, hint="release it before acquiring again"
            )
        pid = os.getpid()
        payload = {
            "host": socket.gethostname(),
            "pid": pid,
            "pid_start": _process_start_ticks(pid),
            "thread": threading.get_ident(),
            "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "token": uuid.uuid4().hex,
        }
        data = json.dumps(payload).encode()
        for _attempt in range(5):
            try:
                self._create(data)
            except FileExistsError:
                holder = self.read_holder()
                if self._clear_if_stale(holder):
                    continue
                raise WriterClaimError(
                    "file is already open for writing by " + self.describe(holder),
                    path=self.target,
                    found=f"claim file {self.path}",
                    hint=self._clear_hint(holder),
                ) from None
            except OSError as exc:
                raise WriteError(
                    f"cannot create the writer claim {self.path.name} ({exc.strerror or exc})",
                    path=self.target,
                    hint="check that the directory exists and is writable",
                ) from exc
            self.held = True
            self._payload = payload
            if self.target.exists() and _hdf5_lock_holder(self.target):
                self.release()
                raise WriterClaimError(
                    "file is open for writing by another program (HDF5 file lock held)",
                    path=self.target,
                    hint="close the file in the other program and retry",
                )
            return self
        raise WriterClaimError(
            "could not claim the file: its claim kept changing while stale claims were cleared",
            path=self.target,
            hint="another writer is starting at the same moment; retry",
        )

    def _create(self, data: bytes) -> None:
        """Create the claim file with ``data`` or raise FileExistsError."""
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}-{next(_partial_counter)}")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, self.path)
                return
            except FileExistsError:
                raise
            except OSError as exc:
                if exc.errno not in _LINK_UNSUPPORTED:
                    raise
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        # No hard links here: O_EXCL creation, content written right after.
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _is_stale(self, holder: dict | None) -> bool:
        if holder is None:
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return True
            return age >= _UNREADABLE_CLAIM_GRACE_SECONDS
        if holder.get("host") != socket.gethostname():
            return False
        pid = _holder_pid(holder)
        if not _pid_alive(pid):
            return True
        recorded = holder.get("pid_start")
        # A live pid with another start time is a new process that reused the number.
        return recorded is not None and _process_start_ticks(pid) not in (None, recorded)

    def _clear_if_stale(self, holder: dict | None) -> bool:
        """Remove a stale claim; True when the caller should retry."""
        if not self._is_stale(holder):
            return False
        # Move the claim aside before deleting it, and check that what moved is the
        # claim judged stale: another process may have replaced it meanwhile.
        tomb = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}-{next(_partial_counter)}")
        try:
            os.rename(self.path, tomb)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        moved = self.read_holder(tomb)
        if holder is not None and (moved is None or moved.get("token") != holder.get("token")):
            with contextlib.suppress(OSError):
                os.link(tomb, self.path)  # put the live claim back
            with contextlib.suppress(OSError):
                os.unlink(tomb)
            return True
        with contextlib.suppress(OSError):
            os.unlink(tomb)
        warnings.warn(
            f"{self.target}: cleared a stale writer claim left by {self.describe(holder)}, "
            "which no longer runs",
            StaleClaimWarning,
            stacklevel=5,
        )
        logger.warning("cleared stale writer claim %s (%s)", self.path, self.describe(holder))
        if holder is not None:
            _remove_partials_of(self.target, _holder_pid(holder))
        return True

    def _clear_hint(self, holder: dict | None) -> str:
        if holder and holder.get("host") != socket.gethostname():
            return (
                f"wait for that writer to finish; if no writer runs on host {holder.get('host')}, "
                f"delete {self.path}"
            )
        if holder is None:
            return (
                f"wait for that writer to finish; if none runs, delete {self.path} "
                f"(it is cleared automatically after {_UNREADABLE_CLAIM_GRACE_SECONDS:.0f} s)"
            )
        return "wait for that writer to finish, or close the file in the other thread or process"

    def release(self) -> None:
        """Give the claim up (only removes the claim file if it is still ours)."""
        if not self.held:
            return
        holder = self.read_holder()
        if holder is not None and holder.get("token") == self._payload["token"]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self.held = False

    def __enter__(self) -> WriterClaim:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _remove_partials_of(target: Path, pid: int) -> None:
    """Delete the partial files (and half-made claim files) a dead writer ``pid`` left beside ``target``."""
    if pid <= 0:
        return
    prefixes = tuple(
        f"{target.name}.{kind}-{pid}-" for kind in ("partial", "claim.tmp", "claim.stale")
    )
    parent = target.parent if str(target.parent) else Path(".")
    with contextlib.suppress(OSError):
        for entry in os.scandir(parent):
            prefix = next((p for p in prefixes if entry.name.startswith(p)), None)
            if prefix is not None and entry.name[len(prefix) :].isdigit():
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    logger.info("removed %s left by dead writer pid %d", entry.path, pid)


# --------------------------------------------------------------------------- atomic writes


def _as_write_error(exc: BaseException, path: Path, action: str) -> WriteError:
    reason = getattr(exc, "strerror", None) or str(exc)
    hint = "free disk space" if getattr(exc, "errno", None) == errno.ENOSPC else (
        "check permissions and free space of the directory"
    )
    return WriteError(f"{action} failed ({reason}); any earlier file is intact", path=path, hint=hint)


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
    """

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
    ) -> None:
        self.target = Path(target)
        self.overwrite = overwrite
        self.source = Path(source) if source is not None else None
        self.userblock_size = userblock_size
        self.libver = libver
        self.claim = WriterClaim(self.target) if claim else None
        self.partial = partial_path(self.target)
        self.file: h5py.File | None = None
        self.committed = False
        self.aborted = False
        self._on_commit = on_commit

    # -- lifecycle
    def _refuse_existing_target(self) -> None:
        if self.source is None and not self.overwrite and os.path.lexists(self.target):
            raise TargetExistsError(
                "file already exists",
                path=self.target,
                hint="pass overwrite=True to replace it (the old file stays intact until the new one is complete)",
            )

    def _check_target(self) -> None:
        """Refuse a missing or read-only directory, a directory target and (without overwrite) a file."""
        target = self.target
        self._refuse_existing_target()
        parent = target.parent if str(target.parent) else Path(".")
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
        try:
            # Checked again under the claim: another writer may have finished meanwhile.
            self._refuse_existing_target()
            if self.source is not None:
                try:
                    shutil.copyfile(self.source, self.partial)
                    shutil.copymode(self.source, self.partial)
                except OSError as exc:
                    raise _as_write_error(exc, target, "copying the file for update") from exc
                self.file = _open_without_unsupported_locks(h5py.File, self.partial, "r+", {})
            else:
                kwargs = {}
                if self.userblock_size:
                    kwargs["userblock_size"] = self.userblock_size
                if self.libver is not None:
                    kwargs["libver"] = self.libver
                self.file = _open_without_unsupported_locks(h5py.File, self.partial, "x", kwargs)
        except H5StreamError:
            self._cleanup()
            raise
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            self._cleanup()
            raise _as_write_error(exc, target, "creating the file") from exc
        except BaseException:
            self._cleanup()
            raise
        return self.file

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
                self.file.flush()
                self.file.close()
            fsync_path(self.partial)
            self._publish()
        except H5StreamError:
            self._cleanup()
            raise
        except (OSError, RuntimeError, ValueError) as exc:
            self._cleanup()
            raise _as_write_error(exc, self.target, "finishing the file") from exc
        except BaseException:
            self._cleanup()
            raise
        self.committed = True
        # The new file is in place; a directory that refuses fsync cannot undo that.
        try:
            fsync_directory(self.target.parent if str(self.target.parent) else ".")
        except OSError as exc:
            logger.warning("directory fsync after committing %s failed: %s", self.target, exc)
        if self.claim is not None:
            self.claim.release()
        logger.debug("committed %s", self.target)
        if self._on_commit is not None:
            self._on_commit(self.target)
        return self.target

    def _publish(self) -> None:
        """Put the finished partial file at the target path in one atomic step."""
        if self.overwrite or self.source is not None:
            os.replace(self.partial, self.target)
            return
        try:
            os.link(self.partial, self.target)  # fails rather than replace a file that exists
        except FileExistsError:
            raise TargetExistsError(
                "file appeared while it was being written",
                path=self.target,
                hint="pass overwrite=True to replace it; the new data was discarded",
            ) from None
        except OSError as exc:
            if exc.errno not in _LINK_UNSUPPORTED:
                raise
            self._refuse_existing_target()
            os.replace(self.partial, self.target)
            return
        os.unlink(self.partial)

    def abort(self) -> None:
        """Discard the partial file; the target is left as it was."""
        if not self.committed:
            self.aborted = True
        self._cleanup()

    def _cleanup(self) -> None:
        if self.file is not None:
            with contextlib.suppress(Exception):
                if self.file.id.valid:
                    self.file.close()
        if not self.committed:
            with contextlib.suppress(OSError):
                os.unlink(self.partial)
        if self.claim is not None:
            self.claim.release()

    def __enter__(self) -> h5py.File:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
            return False
        self.abort()
        if isinstance(exc, OSError) and not isinstance(exc, H5StreamError):
            raise _as_write_error(exc, self.target, "writing") from exc
        return False


def create_atomic(
    target: str | os.PathLike,
    overwrite: bool = False,
    *,
    userblock_size: int = 0,
    libver: str | tuple | None = None,
    claim: bool = True,
    on_commit: Callable[[Path], None] | None = None,
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

    Returns
    -------
    AtomicFile
        Use ``with create_atomic(p) as f:`` (``f`` is an ``h5py.File`` on the
        partial path), or ``open()``/``commit()``/``abort()``.
    """
    return AtomicFile(
        target, overwrite=overwrite, userblock_size=userblock_size, libver=libver, claim=claim,
        on_commit=on_commit,
    )


def update_atomic(
    target: str | os.PathLike,
    *,
    claim: bool = True,
    on_commit: Callable[[Path], None] | None = None,
) -> AtomicFile:
    """Copy-on-write update of an existing HDF5 file.

    The body works on a byte copy of ``target`` (opened ``r+``); the changes
    become visible all at once on commit, and a crash or an exception leaves the
    old file as it was.

    Parameters
    ----------
    target : path
        An existing HDF5 file.
    claim, on_commit
        As for :func:`create_atomic`.

    Raises
    ------
    SourceNotFoundError
        ``target`` does not exist.
    FormatError
        ``target`` is not an HDF5 file.
    """
    target = Path(target)
    if not target.exists():
        raise SourceNotFoundError("file does not exist", path=target, hint="create it first")
    check_hdf5_signature(target)
    return AtomicFile(target, source=target, overwrite=True, claim=claim, on_commit=on_commit)


def write_bytes_atomic(
    target: str | os.PathLike,
    data: bytes,
    *,
    overwrite: bool = True,
    claim: bool = False,
) -> Path:
    """Durably write a small file (a marker, a JSON summary) that appears whole or not at all.

    ``data`` goes to ``<target>.partial-<pid>-<n>`` beside the target, is
    fsynced, renamed onto ``target`` and the directory fsynced: a crash at any
    moment leaves the previous content or the new one, never a part of it.

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
    atomic = AtomicFile(target, overwrite=overwrite, claim=claim)
    atomic._check_target()
    if atomic.claim is not None:
        atomic.claim.acquire()
    try:
        atomic._refuse_existing_target()
        try:
            fd = os.open(atomic.partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            atomic._publish()
        except H5StreamError:
            raise
        except OSError as exc:
            raise _as_write_error(exc, atomic.target, "writing the file") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(atomic.partial)
        if atomic.claim is not None:
            atomic.claim.release()
    try:
        fsync_directory(atomic.target.parent if str(atomic.target.parent) else ".")
    except OSError as exc:
        logger.warning("directory fsync after writing %s failed: %s", atomic.target, exc)
    return atomic.target


# --------------------------------------------------------------------------- validated reads


def check_hdf5_signature(path: str | os.PathLike) -> int:
    """Return the superblock offset of an HDF5 file, or raise :class:`FormatError`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            offset = 0
            while offset + len(HDF5_SIGNATURE) <= size:
                fh.seek(offset)
                if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                    return offset
                offset = 512 if offset == 0 else offset * 2
    except FileNotFoundError:
        raise SourceNotFoundError("file does not exist", path=path) from None
    except OSError as exc:
        raise FormatError(f"cannot read the file ({exc.strerror})", path=path) from exc
    raise FormatError(
        "not an HDF5 file",
        path=path,
        expected="the HDF5 signature at offset 0, 512, 1024, ...",
        found=f"no signature in {size} bytes",
        hint="check that the path names an HDF5 file",
    )


def _plugin_filters_loaded() -> None:
    with contextlib.suppress(ImportError):
        import hdf5plugin  # noqa: F401  (registers its filters with HDF5)


def _link_names(f: h5py.File) -> list[bytes]:
    """Every link name below the root, each visited once (soft and external links not followed)."""
    names: list[bytes] = []
    # The callback only collects: an exception raised inside h5py's visit callback
    # surfaces as a SystemError, so every check runs after the walk.
    f.id.links.visit(names.append)
    return names


def scan_unsafe_objects(f: h5py.File, path: str | os.PathLike) -> None:
    """Refuse external links, external storage, virtual datasets and unavailable filters.

    Raises :class:`UnsafeFileError`, :class:`MissingPluginError` or
    :class:`FormatError` naming the offending object.
    """
    plugins_checked = False
    for raw_name in _link_names(f):
        name = "/" + raw_name.decode("utf-8", errors="replace")
        info = f.id.links.get_info(raw_name)
        if info.type == h5py.h5l.TYPE_EXTERNAL:
            target_file, target_obj = _external_link_target(f, raw_name)
            raise UnsafeFileError(
                "external link to another file",
                path=path,
                obj=name,
                found=f"link to {target_file}:{target_obj}",
                hint="external links are refused; copy the data into the file",
            )
        if info.type != h5py.h5l.TYPE_HARD:
            continue  # soft links name objects of this file, visited through their hard link
        oid = h5py.h5o.open(f.id, raw_name)
        try:
            if not isinstance(oid, h5py.h5d.DatasetID):
                continue
            plist = oid.get_create_plist()
            if plist.get_layout() == h5py.h5d.VIRTUAL:
                raise UnsafeFileError(
                    "virtual dataset", path=path, obj=name,
                    found="a dataset mapped onto other files",
                    hint="virtual datasets read other files and are refused",
                )
            if plist.get_external_count() > 0:
                raise UnsafeFileError(
                    "dataset with external storage", path=path, obj=name,
                    found=f"raw data in {plist.get_external(0)[0].decode(errors='replace')}",
                    hint="external raw storage reads other files and is refused",
                )
            for i in range(plist.get_nfilters()):
                code, _flags, _vals, fname = plist.get_filter(i)
                if code not in ALLOWED_FILTERS:
                    raise FormatError(
                        "dataset uses a filter that is not allowed",
                        path=path, obj=name,
                        expected="one of " + ", ".join(sorted(ALLOWED_FILTERS.values())),
                        found=f"filter {code} ({fname.decode(errors='replace')})",
                        hint="rewrite the data with an allowed filter",
                    )
                if code in PLUGIN_FILTERS and not plugins_checked:
                    _plugin_filters_loaded()
                    plugins_checked = True
                if not h5py.h5z.filter_avail(code):
                    raise MissingPluginError(
                        f"dataset is compressed with {ALLOWED_FILTERS[code]} (filter {code}), "
                        "which is not available here",
                        path=path, obj=name,
                        hint="install the plugin: pip install 'h5stream[fast]' (hdf5plugin)",
                    )
        finally:
            oid.close()


def _external_link_target(f: h5py.File, raw_name: bytes) -> tuple[str, str]:
    try:
        link = f.get(raw_name.decode("utf-8", errors="replace"), getlink=True)
    except Exception:  # noqa: BLE001 - the link is refused either way; its target is only for the message
        return "?", "?"
    return getattr(link, "filename", "?"), getattr(link, "path", "?")


# Exceptions h5py, numpy and the OS raise for corrupt or truncated content.
# SystemError appears when libhdf5 fails inside an h5py callback; MemoryError
# and OverflowError when a corrupted shape or size asks for an impossible array.
_READ_FAILURES = (
    OSError,
    RuntimeError,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    AttributeError,
    SystemError,
    ArithmeticError,
    MemoryError,
)


@contextlib.contextmanager
def guard_read(path: str | os.PathLike, obj: str | None = None) -> Iterator[None]:
    """Turn any low-level failure inside the block into a :class:`FormatError`.

    Our own typed errors pass through unchanged.  A missing decompression
    filter becomes :class:`MissingPluginError`.
    """
    try:
        yield
    except H5StreamError:
        raise
    except _READ_FAILURES as exc:
        text = str(exc) or type(exc).__name__
        if "filter" in text and ("not registered" in text or "can't open" in text or "available" in text):
            raise MissingPluginError(
                f"cannot decompress data ({text})", path=path, obj=obj,
                hint="install the plugin: pip install 'h5stream[fast]' (hdf5plugin)",
            ) from exc
        if isinstance(exc, MemoryError):
            raise FormatError(
                "the object asks for more memory than is available (corrupted size?)",
                path=path, obj=obj, hint="the file may be corrupted",
            ) from exc
        raise FormatError(
            f"cannot read the object ({type(exc).__name__}: {text})",
            path=path, obj=obj,
            hint="the file may be corrupted or incomplete",
        ) from exc


def open_validated(
    path: str | os.PathLike,
    *,
    check: Callable[[h5py.File], None] | None = None,
    scan: bool = True,
    verify_timeout: float | None = None,
    **h5py_kwargs,
) -> h5py.File:
    """Open an HDF5 file for reading after checking it can be trusted.

    Parameters
    ----------
    path : path
        A regular file; pipes and devices are refused before anything is read.
    check : callable, optional
        ``check(f)`` validates the format name and version (see
        :func:`require_attr_format`) and raises :class:`FormatError`; any raw
        exception it lets through becomes a :class:`FormatError` too.
    scan : bool, default True
        Refuse external links, external storage, virtual datasets and filters
        that are not allowed or not installed (see :func:`scan_unsafe_objects`).
        The scan opens every object once (about 0.1 ms each).
    verify_timeout : float, optional
        First read the whole file in a separate process with
        :func:`verify_file` (``check`` must then be a module-level function):
        a file that would make libhdf5 loop or crash becomes a typed error
        within this many seconds instead of hanging this process.
    **h5py_kwargs
        Passed to ``h5py.File`` (for example ``rdcc_nbytes``).

    Returns
    -------
    h5py.File
        Open read-only; read objects inside :func:`guard_read`.

    Raises
    ------
    SourceNotFoundError, FormatError, UnsafeFileError, MissingPluginError
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SourceNotFoundError("file does not exist", path=path, hint="check the path") from None
    except OSError as exc:
        raise FormatError(f"cannot inspect the file ({exc.strerror or exc})", path=path) from exc
    if stat.S_ISDIR(mode):
        raise FormatError("is a directory", path=path, expected="an HDF5 file", found="a directory")
    if not stat.S_ISREG(mode):
        # A FIFO or device would block the reader or stream endless bytes.
        raise FormatError(
            "is not a regular file", path=path, expected="an HDF5 file",
            found="a pipe, socket or device", hint="copy the data into a file first",
        )
    check_hdf5_signature(path)
    if verify_timeout is not None:
        verify_file(path, check=check, timeout=verify_timeout)
    try:
        f = _open_read_only(path, h5py_kwargs)
    except _READ_FAILURES as exc:
        if _lock_errno(exc) in (errno.EAGAIN, errno.EWOULDBLOCK):
            raise FormatError(
                "file is open for writing by another program (HDF5 file lock held)", path=path,
                hint="wait until the writer has closed it",
            ) from exc
        raise FormatError(
            f"cannot open the HDF5 file ({exc})", path=path,
            hint="the file may be corrupted, truncated or still being written",
        ) from exc
    try:
        with guard_read(path, "/"):
            if scan:
                scan_unsafe_objects(f, path)
            if check is not None:
                check(f)
    except BaseException:
        f.close()
        raise
    return f


def _lock_errno(exc: BaseException) -> int | None:
    """The errno of an HDF5 file-locking failure, or None for any other error."""
    match = re.search(r"unable to lock file, errno = (\d+)", str(exc))
    return int(match.group(1)) if match else None


# Errors of filesystems that do not support locks (NFS, Lustre): ENOLCK, ENOSYS, ENOTSUP, ENOTSUPP.
_LOCKS_UNSUPPORTED = {errno.ENOLCK, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, 524}


def _open_without_unsupported_locks(opener: Callable[..., h5py.File], path: Path, mode: str,
                                    kwargs: dict) -> h5py.File:
    """Open with HDF5's file lock, or without it where the filesystem has no locks.

    On such filesystems the claim file is the single-writer guard.
    """
    try:
        return opener(path, mode, **kwargs)
    except OSError as exc:
        if "locking" in kwargs or _lock_errno(exc) not in _LOCKS_UNSUPPORTED:
            raise
    logger.info("%s: the filesystem refuses HDF5 file locks; opening without them", path)
    if mode == "x":  # our own fresh partial path: drop what the failed attempt created
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return opener(path, mode, locking=False, **kwargs)


def _open_read_only(path: Path, kwargs: dict) -> h5py.File:
    return _open_without_unsupported_locks(h5py.File, path, "r", kwargs)


def require_attr_format(
    f: h5py.File,
    path: str | os.PathLike,
    *,
    name_attr: str | None,
    expected_name: str | None,
    version_attr: str,
    supported: tuple[str, ...] | set[str],
) -> str:
    """Check a root format-name/version attribute pair and return the version found."""
    if name_attr is not None:
        found = f.attrs.get(name_attr)
        if isinstance(found, bytes):
            found = found.decode(errors="replace")
        if found != expected_name:
            raise FormatError(
                "file was written by another tool or in another format",
                path=path, obj=f"/@{name_attr}",
                expected=repr(expected_name), found=repr(found),
            )
    version = f.attrs.get(version_attr)
    if isinstance(version, bytes):
        version = version.decode(errors="replace")
    if version is None:
        raise FormatError(
            "format version attribute is missing", path=path, obj=f"/@{version_attr}",
            expected="one of " + ", ".join(sorted(supported)), found="nothing",
        )
    version = str(version)
    if version not in supported:
        raise FormatError(
            "unsupported format version", path=path, obj=f"/@{version_attr}",
            expected="one of " + ", ".join(sorted(supported)), found=repr(version),
            hint="upgrade h5stream to read newer files",
        )
    return version


# --------------------------------------------------------------------------- isolated verification

_VERIFY_CHILD = "from h5stream.files import _verify_child; _verify_child()"
_CHILD_START_SECONDS = 60.0


def _read_everything(f: h5py.File, path: str) -> None:
    """Read every attribute and every dataset of ``f`` in full, each under :func:`guard_read`."""
    with guard_read(path, "/"):
        names = [n.decode("utf-8", errors="replace") for n in _link_names(f)]
    with guard_read(path, "/@"):
        for key in f.attrs:
            f.attrs[key]
    for name in names:
        obj_name = "/" + name
        with guard_read(path, obj_name):
            if f.id.links.get_info(name.encode()).type != h5py.h5l.TYPE_HARD:
                continue
            obj = f[name]
            for key in obj.attrs:
                obj.attrs[key]
            if isinstance(obj, h5py.Dataset):
                obj[()]


def _check_reference(check: Callable | None) -> str | None:
    if check is None:
        return None
    module = getattr(check, "__module__", None)
    qualname = getattr(check, "__qualname__", "")
    if not module or "<" in qualname:
        raise TypeError(
            "check must be a module-level function so that a separate process can import it, "
            f"got {check!r}"
        )
    return f"{module}:{qualname}"


def _resolve_check(reference: str | None) -> Callable | None:
    if reference is None:
        return None
    import importlib

    module_name, qualname = reference.split(":", 1)
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _verify_child() -> None:
    """Child side of :func:`verify_files`: one JSON line per file on stdout."""
    import sys

    request = json.loads(sys.stdin.readline())
    check = _resolve_check(request["check"])
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")  # the clock of the first file starts now
    out.flush()
    for p in request["paths"]:
        result: dict = {"path": p, "error": None}
        try:
            with open_validated(p, check=check) as f:
                _read_everything(f, p)
        except H5StreamError as exc:
            result["error"] = type(exc).__name__
            result["message"] = str(exc)
            result.update(obj=exc.obj, expected=exc.expected, found=exc.found, hint=exc.hint)
        except Exception as exc:  # noqa: BLE001 - reported as an untyped failure to the parent
            result["error"] = "untyped:" + type(exc).__name__
            result["message"] = str(exc)
        out.write(json.dumps(result) + "\n")
        out.flush()


def _error_class(name: str) -> type[H5StreamError]:
    from h5stream import errors

    cls = getattr(errors, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, H5StreamError) else FormatError


def verify_files(
    paths: list[str | os.PathLike],
    *,
    check: Callable[[h5py.File], None] | None = None,
    timeout: float = 10.0,
) -> list[H5StreamError | None]:
    """Open and read every object of each file in a separate process; return one result per file.

    Each result is None (the file opened with :func:`open_validated` and every
    attribute and dataset read in full) or the typed error reading raised: a
    :class:`FormatError` (subclass), or :class:`SourceNotFoundError` for a
    missing file.  A file whose reading does not finish within
    ``timeout`` seconds (some corrupted objects make libhdf5 loop) or that makes
    libhdf5 crash is reported as a :class:`FormatError` saying so, and the
    caller's process is never affected.  Use it before trusting a file of
    unknown origin; ``check`` must be a module-level function (it is imported
    by the child process).
    """
    import select
    import subprocess
    import sys

    reference = _check_reference(check)
    pending = [os.fspath(p) for p in paths]
    results: dict[str, H5StreamError | None] = {}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    while pending:
        child = subprocess.Popen(
            [sys.executable, "-c", _VERIFY_CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            child.stdin.write((json.dumps({"paths": pending, "check": reference}) + "\n").encode())
            child.stdin.close()
            fd = child.stdout.fileno()
            buffer = b""
            # Starting the child (imports) has its own allowance; each file then gets ``timeout``.
            deadline = time.monotonic() + _CHILD_START_SECONDS
            started = False
            while pending:
                ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(fd, 65536) if ready else None
                if not chunk and not started:
                    raise H5StreamError(
                        "the reader process did not start",
                        found=f"exit code {child.poll()}" if chunk is not None else "no answer in time",
                        hint=f"check that `{sys.executable} -c 'import h5stream'` works"
                        + (f" and that {reference} can be imported" if reference else ""),
                    )
                if chunk is None:
                    stuck = pending.pop(0)
                    results[stuck] = FormatError(
                        f"reading did not finish within {timeout:g} s",
                        path=stuck,
                        expected="a file that reads in bounded time",
                        found="a read that does not end (corrupted object)",
                        hint="the file is corrupted; restore it from a good copy",
                    )
                    break
                if not chunk:
                    code = child.wait()
                    crashed = pending.pop(0)
                    results[crashed] = FormatError(
                        "the HDF5 library crashed reading this file",
                        path=crashed,
                        found=f"reader process ended with code {code}",
                        hint="the file is corrupted or crafted; do not open it in-process",
                    )
                    break
                buffer += chunk
                while b"\n" in buffer and pending:
                    line, buffer = buffer.split(b"\n", 1)
                    done = json.loads(line)
                    deadline = time.monotonic() + timeout
                    if done.get("ready"):
                        started = True
                        continue
                    pending.remove(done["path"])
                    results[done["path"]] = _child_result(done)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
            child.stdout.close()
    return [results[os.fspath(p)] for p in paths]


def _child_result(done: dict) -> H5StreamError | None:
    if done["error"] is None:
        return None
    if done["error"].startswith("untyped:"):
        return FormatError(
            f"reading raised an untyped {done['error'][8:]} ({done['message']})", path=done["path"]
        )
    cls = _error_class(done["error"])
    err = cls.__new__(cls)
    H5StreamError.__init__(err, done["message"])
    err.path = done["path"]
    for key in ("obj", "expected", "found", "hint"):
        setattr(err, key, done.get(key))
    return err


def verify_file(
    path: str | os.PathLike,
    *,
    check: Callable[[h5py.File], None] | None = None,
    timeout: float = 10.0,
) -> None:
    """Raise the :class:`FormatError` reading ``path`` in full would raise; see :func:`verify_files`."""
    error = verify_files([path], check=check, timeout=timeout)[0]
    if error is not None:
        raise error
