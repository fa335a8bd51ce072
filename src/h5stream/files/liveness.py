"""Is the process that left a claim or a partial file still running?  Two ways, chosen by capability.

Where a signal can probe a pid (:func:`h5stream.capabilities.pid_signals`: POSIX
systems), ``os.kill(pid, 0)`` answers.  Elsewhere (Windows, where signal number 0
is ``CTRL_C_EVENT`` and ``os.kill(pid, 0)`` would send Ctrl-C to the pid's console
group), and on any system with ``H5STREAM_PORTABLE=1``, each writer holds an
exclusive lock on a liveness file of its own, ``<temp dir>/h5stream-live/<host>-<pid>.lock``,
for as long as it runs: a checker that can take a shared lock on the file, or finds
no file, knows the writer is gone.  The operating system drops the lock when the
process ends, however it ends (a crash, a kill), so nothing has to clean up.  The
lock is ``msvcrt.locking`` where that exists (Windows; not tested here), ``flock``
elsewhere; both are per open file, so another thread of the holder's own process
sees it held too.  A reused pid cannot pass for the writer: the new process does
not hold the old one's lock.

The lock file is made when a process first takes a writer claim
(:meth:`h5stream.files.WriterClaim.acquire`) and the claim records its path;
files named for a pid (partial files) are written under a claim.  On Windows the
temporary directory is the user's own: a writer of another user on the same
machine is not seen, so targets two users write at once need separate
directories there.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
from pathlib import Path

from h5stream import capabilities

__all__ = ["process_alive", "hold_liveness_lock", "liveness_lock_path"]

_DIR_NAME = "h5stream-live"
_guard = threading.Lock()
_held: tuple[int, str, int] | None = None  # (pid, path, fd) of this process's liveness lock


def liveness_lock_path(pid: int) -> Path:
    """The liveness file a writer with process id ``pid`` on this host holds while it runs."""
    return Path(tempfile.gettempdir()) / _DIR_NAME / f"{socket.gethostname()}-{int(pid)}.lock"


def _lock(fd: int, *, exclusive: bool) -> bool:
    """Take a non-blocking lock on ``fd``; False when another open file holds a conflicting one."""
    try:
        import msvcrt
    except ImportError:
        msvcrt = None
    try:
        if msvcrt is not None:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    try:
        import msvcrt
    except ImportError:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def hold_liveness_lock() -> str | None:
    """Hold this process's liveness lock from now until it ends; returns the file's path.

    Done once per process (a forked child makes its own).  None when the lock
    cannot be taken (no writable temporary directory): the writer's claims then
    carry no lock, and a checker without :func:`~h5stream.capabilities.pid_signals`
    takes such a writer as alive.
    """
    global _held
    pid = os.getpid()
    with _guard:
        if _held is not None and _held[0] == pid:
            return _held[1]
        path = liveness_lock_path(pid)
        try:
            path.parent.mkdir(exist_ok=True)
            with contextlib.suppress(OSError):
                os.chmod(path.parent, 0o1777)  # every user's writers keep their files here (sticky)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None
        if not _lock(fd, exclusive=True):
            # A process with our pid still holds it: impossible while pids are unique on a host.
            os.close(fd)
            return None
        _held = (pid, str(path), fd)  # the descriptor stays open: the lock lasts as long as the process
        return str(path)


def _lock_file_held(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # there, but not ours to test (permissions): taken as held
    try:
        if _lock(fd, exclusive=False):
            _unlock(fd)
            return False
        return True
    finally:
        os.close(fd)


def process_alive(pid: int, lock_file: str | os.PathLike | None = None) -> bool:
    """True when process ``pid`` of this host may still be running.

    ``lock_file``: the liveness file the process recorded (a claim's
    ``live_lock``); by default the one :func:`liveness_lock_path` names.
    """
    if pid <= 0:  # 0 and negatives address process groups, never one writer
        return False
    if pid == os.getpid():
        return True
    if capabilities.pid_signals():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:  # EPERM: it exists but belongs to someone else
            return not _zombie(pid)
        return not _zombie(pid)
    return _lock_file_held(Path(lock_file) if lock_file else liveness_lock_path(pid))


def _zombie(pid: int) -> bool:
    """True when ``pid`` has ended but its parent has not collected it yet (state ``Z`` in ``/proc``).

    Such a process still answers ``os.kill(pid, 0)``, yet it runs no code and holds no claim: a
    killed batch worker stays one until its pool cleans it up.  Where ``/proc`` is missing
    (not Linux), nothing is known and the process counts as running.
    """
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_bytes()
    except OSError:
        return False
    # "pid (comm) state ...": comm may hold spaces and parentheses, so the state follows the last ")"
    state = stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3]
    return state == b"Z"
