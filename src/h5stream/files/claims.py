"""Single-writer claims: ``<target>.claim`` names the one thread or process allowed to write a target.

The claim file appears with its full content in one step, so exactly one writer
of any host sharing the directory wins.  A claim left by a dead process on this
host is cleared with a :class:`~h5stream.errors.StaleClaimWarning`; one from
another host is reported with the way to clear it.  Whoever takes a claim then
removes every file a dead local writer left beside the target (partial files,
half-made claim files, claims moved aside by a clearer that was killed), with a
:class:`~h5stream.errors.StaleFilesWarning` naming them
(:func:`remove_stale_leftovers`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
import warnings
from pathlib import Path

from h5stream import capabilities
from h5stream.errors import (
    OpenInThisProcessError,
    StaleClaimWarning,
    StaleFilesWarning,
    WriteError,
    WriterClaimError,
)
from h5stream.files.liveness import hold_liveness_lock, process_alive
from h5stream.files.paths import LINK_UNSUPPORTED, claim_path, parent_of, sibling_path

__all__ = ["WriterClaim", "remove_stale_leftovers", "hdf5_lock_held", "writer_gone", "open_in_this_process",
           "open_here_error"]

logger = logging.getLogger("h5stream.files")

# A claim younger than this whose content cannot be read may still be in the
# middle of being written by its creator (only on filesystems without hard links).
_UNREADABLE_CLAIM_GRACE_SECONDS = 30.0


def _process_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell a reused pid apart."""
    if not capabilities.linux_proc():
        return None  # a live pid is then taken as the writer's
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


def _holder_pid(holder: dict) -> int:
    try:
        return int(holder.get("pid", -1))
    except (TypeError, ValueError):
        return -1


def open_in_this_process(target: str | os.PathLike) -> str | None:
    """How this process has ``target`` open through libhdf5: ``"read-only"``, ``"for writing"``, or None.

    Asked of the library itself (its list of open files), not guessed from an
    error's text: HDF5 refuses to open a file a second time in one process with
    other file-locking settings, and takes a lock this process holds for
    another program's (``flock`` locks belong to an open file, not a process).
    """
    import h5py

    try:
        ids = h5py.h5f.get_obj_ids(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE)
    except (RuntimeError, ValueError):  # the library's list unavailable: nothing known
        return None
    try:
        wanted = os.stat(target)
    except OSError:
        return None
    intent = None
    for fid in ids:
        try:
            name = fid.name
            same = os.path.samestat(os.stat(name), wanted)
        except (OSError, RuntimeError, ValueError):
            continue
        if same:
            if fid.get_intent() & h5py.h5f.ACC_RDWR:
                return "for writing"
            intent = "read-only"
    return intent


def open_here_error(target: str | os.PathLike, intent: str) -> OpenInThisProcessError:
    """The error for ``target`` held open (``intent``: :func:`open_in_this_process`) by this very process."""
    return OpenInThisProcessError(
        f"the file is open in this process ({intent}, an h5py.File or another HDF5 handle that is not "
        "closed); HDF5 does not open it here again with other locking settings, and a write must not "
        "replace it under an open handle",
        path=target, found=f"an open HDF5 handle in this process (pid {os.getpid()}), {intent}",
        hint="close that handle first (f.close(), or open it in a `with` block), then retry; "
             "the file itself is not damaged",
        intent=intent,
    )


def hdf5_lock_held(target: str | os.PathLike) -> bool:
    """True when another program holds HDF5's exclusive lock on ``target`` (open for writing).

    HDF5 takes ``flock(LOCK_EX)`` on files it opens for writing and ``LOCK_SH``
    for reading, so a shared non-blocking probe fails only against a writer.
    Filesystems without working locks (some NFS/Lustre mounts) answer
    ENOLCK/ENOSYS, in which case the claim file alone guards the target.
    """
    if not capabilities.fcntl_locks():
        return False  # the claim file alone guards the target
    import fcntl

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

    The claim file is not fsynced: it excludes live writers only (closing it makes
    its content visible to other hosts, NFS included).  After a crash its holder is
    dead, so the claim is stale whatever the disk kept of it (an empty one after a
    power loss reads as unreadable, stale after :data:`_UNREADABLE_CLAIM_GRACE_SECONDS`);
    what a save makes durable is its file and the directory entry (one fsync each).
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
        if not capabilities.pid_signals():
            # No signal to probe a pid with: this process holds a lock while it runs, which checkers test.
            payload["live_lock"] = hold_liveness_lock()
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
                    holder=holder,
                ) from None
            except OSError as exc:
                raise WriteError(
                    f"cannot create the writer claim {self.path.name} ({exc.strerror or exc})",
                    path=self.target,
                    hint="check that the directory exists and is writable",
                ) from exc
            self.held = True
            self._payload = payload
            remove_stale_leftovers(self.target)
            if self.target.exists() and hdf5_lock_held(self.target):
                self.release()
                intent = open_in_this_process(self.target)
                if intent is not None:
                    raise open_here_error(self.target, intent)
                raise WriterClaimError(
                    "file is held by another program, which has it open for writing (HDF5 file lock held)",
                    path=self.target,
                    hint="close the file in the other program and retry",
                    other_program=True,
                )
            return self
        raise WriterClaimError(
            "could not claim the file: its claim kept changing while stale claims were cleared",
            path=self.target,
            hint="another writer is starting at the same moment; retry",
        )

    def _create(self, data: bytes) -> None:
        """Create the claim file with ``data`` or raise FileExistsError."""
        tmp = sibling_path(self.path, ".tmp-")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            try:
                os.link(tmp, self.path)
                return
            except FileExistsError:
                raise
            except OSError as exc:
                if exc.errno not in LINK_UNSUPPORTED:
                    raise
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        # No hard links here: O_EXCL creation, content written right after.
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            os.write(fd, data)
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
        if not process_alive(pid, holder.get("live_lock")):
            return True
        recorded = holder.get("pid_start")
        # A live pid with another start time is a new process that reused the number.
        return recorded is not None and _process_start_ticks(pid) not in (None, recorded)

    def _clear_if_stale(self, holder: dict | None) -> bool:
        """Remove a stale claim; True when the caller should retry."""
        if holder is None and not self.path.exists():
            return True  # released between our attempt and the read: retry, clear nothing
        if not self._is_stale(holder):
            return False
        # Move the claim aside before deleting it, and check that what moved is the
        # claim judged stale: another process may have replaced it meanwhile.
        tomb = sibling_path(self.path, ".stale-")
        try:
            os.rename(self.path, tomb)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        moved = self.read_holder(tomb)
        # What moved must be the claim judged stale: the same token, or still unreadable when
        # the judged one was; a claim another writer took meanwhile goes back in place.
        if (moved or {}).get("token") != (holder or {}).get("token") or (holder is None) != (moved is None):
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
        # The files the dead holder left are removed once the claim is ours (see acquire),
        # together with those of any earlier clearer that was killed.
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


# ``<target>.partial-<pid>-<n>``, ``<target>.claim.tmp-<pid>-<n>``, ``<target>.claim.stale-<pid>-<n>``,
# ``<target>.staged-<pid>-<n>.h5`` (h5stream.files.paths.staged_path)
_LEFTOVER_SUFFIX = re.compile(r"\.(?:(?:partial|claim\.tmp|claim\.stale)-(\d+)-\d+|staged-(\d+)-\d+\.h5)")


def _boot_time() -> float | None:
    if not capabilities.linux_proc():
        return None
    try:
        with open("/proc/stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def writer_gone(pid: int, mtime: float) -> bool:
    """True when no process of this host can still be writing a file named for ``pid``.

    The pid no longer runs, or it was reused by a process started after the
    file was last modified.
    """
    if not process_alive(pid):
        return True
    ticks, boot = _process_start_ticks(pid), _boot_time()
    if ticks is None or boot is None:
        return False
    started = boot + ticks / os.sysconf("SC_CLK_TCK")
    return started > mtime + 1.0  # start times are rounded to clock ticks and btime to seconds


def remove_stale_leftovers(target: str | os.PathLike) -> list[Path]:
    """Remove the files dead local writers left beside ``target``; returns them.

    These are ``<target>.partial-<pid>-<n>`` (a partial file of a writer killed
    before it committed, or a session's spill file), ``<target>.claim.tmp-<pid>-<n>``
    (a claim killed while being created) and ``<target>.claim.stale-<pid>-<n>`` (a
    stale claim whose clearer was killed) and ``<target>.staged-<pid>-<n>.h5`` (an intermediate file of a job
    killed before it built the target, :func:`h5stream.files.paths.staged_path`), whose ``pid`` no longer runs on this
    host.  A partial file another program holds HDF5's write lock on is kept.
    Removed files are named in one :class:`~h5stream.errors.StaleFilesWarning`.

    Called by :meth:`WriterClaim.acquire` once the claim is held, so that no
    other writer of the target can be at work.  The names carry no host: in a
    directory that writers on several hosts share, writers of one target must
    all hold its claim (the default).
    """
    target = Path(target)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent_of(target)))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(target.name):
            continue
        match = _LEFTOVER_SUFFIX.fullmatch(entry.name, len(target.name))
        if match is None:
            continue
        path = Path(entry.path)
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if not writer_gone(int(match.group(1) or match.group(2)), mtime):
            continue
        if ".partial-" in entry.name and hdf5_lock_held(path):
            continue  # a writer elsewhere still has it open
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("cannot remove %s left by a dead writer: %s", path, exc)
            continue
        removed.append(path)
    if removed:
        names = ", ".join(p.name for p in removed)
        warnings.warn(
            f"{target}: removed {len(removed)} file(s) left by writers that no longer run: {names}",
            StaleFilesWarning,
            stacklevel=2,
        )
        logger.warning("removed files left by dead writers of %s: %s", target, names)
    return removed
