"""Which operating-system mechanisms this process uses: decided by what the system offers.

Each Linux-only mechanism of the package has a portable path that works
everywhere, taken where the system lacks the mechanism:

=====================  ==========================================  ==========================================
capability             used for (where it exists)                  portable path
=====================  ==========================================  ==========================================
``linux_proc``         ``/proc`` and ``/sys/fs/cgroup`` reads:     the machine's CPU count, no measure of
                       runnable threads, cgroup CPU quota,         others' load; a claim's pid is alive or
                       process start times (a reused pid), the     not (no start time); h5py's own
                       loaded libhdf5 (called directly)            wrappers instead of direct libhdf5 calls
``cpu_affinity``       ``os.sched_getaffinity``: the cores this    ``os.cpu_count()``
                       process may run on
``fcntl_locks``        probe of HDF5's ``flock`` on a target       the claim file alone guards the target
``direct_io``          ``O_DIRECT`` reads of raw recordings        reads through the page cache (h5py)
``fadvise``            ``posix_fadvise(WILLNEED)`` read-ahead      no read-ahead hint
``page_residency``     ``mincore`` on a mapping: which pieces of   none asked (:mod:`h5stream.pagecache`);
                       a file the page cache holds, read from it   with ``direct_io`` on, every piece read
                       rather than directly                        directly
``small_pages``        ``madvise(MADV_NOHUGEPAGE)`` for large      numpy's arrays (huge pages where the
                       arrays written once (:mod:`h5stream.memory`) system gives them)
``early_writeback``    ``sync_file_range(WRITE)``: a large array's  its blocks go to the disk at the file's
                       written blocks handed to the disk while     closing fsync
                       the writer copies the next ones
``fork_server``        worker processes forked from a server       worker processes spawned
                       that imported their modules once
``rename_exchange``    ``renameat2(RENAME_EXCHANGE)``: a folder     the old folder renamed aside, the new one
                       replaced by another in one step             renamed in, then the old one deleted
``pid_signals``        ``os.kill(pid, 0)``: is a writer's process  a lock each writer holds on a liveness
                       still running?                              file while it runs
                                                                   (:mod:`h5stream.files.liveness`)
``posix_signals``      SIGTERM sent to a batch's worker process    the worker's own thread, woken by an event
                       (its handler checkpoints); SIGTERM sent     the driver sets, raises the stop in the
                       to the thread that runs a job               job's thread at its next instruction
=====================  ==========================================  ==========================================

``H5STREAM_PORTABLE=1`` in the environment turns every capability off, so the
portable paths run (and are tested) on Linux too.  It is read at each call:
setting it before a worker process starts is enough.
"""

from __future__ import annotations

import importlib.util
import os

# the switch lives with the native calls it turns off first (h5stream.native.libhdf5 reads it there)
from h5stream.native import PORTABLE_ENV as ENV_VAR
from h5stream.native import portable

__all__ = ["ENV_VAR", "portable", "linux_proc", "cpu_affinity", "fcntl_locks", "direct_io", "fadvise",
           "page_residency", "small_pages", "early_writeback", "fork_server", "rename_exchange", "pid_signals",
           "posix_signals", "describe"]

def linux_proc() -> bool:
    """``/proc/self`` is there to read (Linux)."""
    return not portable() and os.path.isdir("/proc/self/task")


def cpu_affinity() -> bool:
    return not portable() and hasattr(os, "sched_getaffinity")


def fcntl_locks() -> bool:
    return not portable() and importlib.util.find_spec("fcntl") is not None


def direct_io() -> bool:
    return not portable() and hasattr(os, "O_DIRECT")


def fadvise() -> bool:
    return not portable() and hasattr(os, "posix_fadvise")


def page_residency() -> bool:
    """The C library can map a file and say which of its pages the page cache holds (``mincore``)."""
    if portable():
        return False
    from h5stream.native import libc

    return libc.mincore_supported()


def small_pages() -> bool:
    """Anonymous mappings can decline transparent huge pages (``mmap.MADV_NOHUGEPAGE``, Linux)."""
    import mmap

    return not portable() and hasattr(mmap, "MADV_NOHUGEPAGE") and hasattr(mmap.mmap, "madvise")


def early_writeback() -> bool:
    """The C library has ``sync_file_range`` (Linux)."""
    if portable():
        return False
    from h5stream.native import libc

    return libc.writeback_supported()


def fork_server() -> bool:
    if portable():
        return False
    import multiprocessing

    return "forkserver" in multiprocessing.get_all_start_methods()


def rename_exchange() -> bool:
    """The C library has ``renameat2`` (Linux, glibc >= 2.28); a filesystem may still refuse the exchange."""
    if portable():
        return False
    from h5stream.native import libc

    return libc.exchange_supported()


def pid_signals() -> bool:
    """Signal 0 probes a pid (POSIX); on Windows 0 is ``CTRL_C_EVENT``, which ``os.kill`` would send."""
    import signal

    return not portable() and hasattr(os, "kill") and getattr(signal, "CTRL_C_EVENT", None) != 0


def posix_signals() -> bool:
    """A signal sent to another process, or to one thread, runs the receiver's handler (POSIX).

    On Windows ``os.kill(pid, signal.SIGTERM)`` is ``TerminateProcess``: the
    process ends at once and no handler runs, and no signal targets a thread.
    """
    import signal

    return not portable() and hasattr(signal, "pthread_kill") and hasattr(signal, "SIGKILL")


def describe() -> dict[str, bool]:
    """Every capability and whether this process uses it."""
    return {name: globals()[name]() for name in ("linux_proc", "cpu_affinity", "fcntl_locks", "direct_io",
                                                  "fadvise", "page_residency", "small_pages", "early_writeback",
                                                  "fork_server", "rename_exchange", "pid_signals", "posix_signals")}
