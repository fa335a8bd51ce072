"""Stopping work that runs on another thread of this process.

Python delivers a signal to the main thread only.  A long job on a worker
thread (a Dask worker's, a thread pool's) is stopped by raising an exception in
that thread: it arrives at the thread's next Python instruction, after any
compiled call it is in has returned.

The exception is set by thread ident, and CPython 3.11 gives a thread that is
being started its creator's ident until it runs, matching that new thread
first: raised then, the exception would land in the new thread (a thread
pool's worker dies before its first task, and its creator waits for it for
ever).  So it is raised only while the target is not starting a thread,
checked and set in one compiled call (``h5stream._ext._runtime``).
"""

from __future__ import annotations

import time

__all__ = ["raise_in_thread", "take_back_own"]

#: how long :func:`raise_in_thread` waits for a thread that is starting another
START_WAIT_SECONDS = 2.0


def raise_in_thread(ident: int, exception: type[BaseException], *,
                    wait_seconds: float = START_WAIT_SECONDS) -> bool:
    """Raise ``exception`` (a class) in the thread ``ident``; False when no such thread runs Python.

    While that thread is starting another one, the raise waits (in steps of
    half a millisecond, up to ``wait_seconds``) until it has started; False when
    it has not by then, and nothing is raised anywhere.
    """
    from h5stream.native import compiled

    runtime = compiled("_runtime")
    deadline = time.monotonic() + wait_seconds
    while True:
        status = runtime.raise_in_thread_now(ident, exception)
        if status >= 0:
            return status == 1
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.0005)


def take_back_own() -> None:
    """Take back an exception :func:`raise_in_thread` set in the calling thread that has not arrived yet.

    For code that learns of the stop on its own and raises it itself at a
    point of its choosing: the exception is then raised once, there.
    """
    import threading

    from h5stream.native import compiled

    compiled("_runtime").clear_in_thread(threading.get_ident())
