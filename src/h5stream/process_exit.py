"""This process ending itself now, with ``os._exit``, once what it must hand back is handed back.

:func:`end_process` skips the interpreter's teardown (seconds once numba has loaded LLVM; after a stop that cut
an extension module's import short, an end by SIGINT whatever status the program returned).  Before it exits it
flushes the standard streams and the log handlers, and runs :mod:`multiprocessing`'s finalizers, which unlink the
named semaphores this process made and tell the resource tracker process it shares with its children.

One of those finalizers may be running on another thread already.  multiprocessing gives each named semaphore
(a queue's locks, a process pool's, a ``multiprocessing.Semaphore``) a finalizer that unlinks it, then sends the
tracker its name (``SemLock._cleanup``); it runs on whichever thread lets go of the semaphore's last reference (a
process pool's manager thread as it ends, a queue's feeder thread, a garbage collection on any thread), and takes
itself out of the registry before it runs, so the exit's own run of the registry skips it.  A process that ended
between the unlink and the message left the tracker holding a name it believed in use: at its own end the tracker
printed ``There appear to be 1 leaked semaphore objects to clean up at shutdown`` and, unlinking the name again,
``[Errno 2] No such file or directory``, after the command's last line.  So the exit first waits, at most
:data:`CLEANUP_WAIT_SECONDS`, until no other thread is inside such a cleanup (:func:`wait_for_cleanups`).

Standard library only: a command line's start imports this (through :mod:`h5stream.stops`) before anything heavy.
"""

from __future__ import annotations

import os
import sys
import threading
import time

__all__ = ["end_process", "flush_standard_streams", "cleanups_running", "wait_for_cleanups",
           "CLEANUP_WAIT_SECONDS"]

#: seconds an ending process waits at most for the semaphore cleanups of its other threads (one takes microseconds
#: once its thread runs; a busy machine may keep that thread from running for a while)
CLEANUP_WAIT_SECONDS = 1.0
#: seconds between two looks at the other threads (each pause lets them run)
LOOK_SECONDS = 0.002


def flush_standard_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001, S110 - a closed or broken stream has nothing left to flush
            pass


def end_process(code: int = 0) -> None:
    """End this process now with ``code``, skipping the interpreter's teardown (for a process whose files are
    all committed and closed: the standard streams and log handlers are flushed, and multiprocessing's own
    finalizers run, which hand this process's semaphores back to the resource tracker it shares, also those
    that another thread is handing back now: :func:`wait_for_cleanups`).

    Also the one sure exit after a stop: a ``KeyboardInterrupt`` that cut short code an extension module ran
    through ``PyRun_*`` while it was imported marks the interpreter, which then ends itself by SIGINT at its
    exit (status -2, nothing said) whatever status the program returned, although the program took the
    exception.  The teardown also takes seconds once numba has loaded LLVM.
    """
    flush_standard_streams()
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    if "multiprocessing.util" in sys.modules:
        # the standard library has no public name for this step of its exit handler
        sys.modules["multiprocessing.util"]._run_finalizers()
        wait_for_cleanups()
    os._exit(code)


def cleanups_running() -> list[int]:
    """The identities of the threads, other than this one, inside a semaphore's multiprocessing cleanup: in
    ``SemLock._cleanup``, or in the call of its finalizer (which has taken it out of the registry)."""
    synchronize = sys.modules.get("multiprocessing.synchronize")
    util = sys.modules.get("multiprocessing.util")
    if synchronize is None or util is None:  # no semaphore of multiprocessing was ever made here
        return []
    cleanup = synchronize.SemLock._cleanup
    cleanup_code = cleanup.__code__
    call_code = util.Finalize.__call__.__code__
    here = threading.get_ident()
    running = []
    for ident, frame in sys._current_frames().items():
        while ident != here and frame is not None:
            code = frame.f_code
            if code is cleanup_code or (
                    code is call_code and getattr(frame.f_locals.get("self"), "_callback", None) is cleanup):
                running.append(ident)
                break
            frame = frame.f_back
    return running


def wait_for_cleanups(timeout: float = CLEANUP_WAIT_SECONDS) -> bool:
    """Wait until no other thread is inside a semaphore's cleanup (:func:`cleanups_running`), ``timeout``
    seconds at most; whether none is."""
    deadline = time.monotonic() + timeout
    while cleanups_running():
        if time.monotonic() >= deadline:
            return False
        time.sleep(LOOK_SECONDS)  # the interpreter's lock goes to the threads that run a cleanup
    return True
