"""The one call into CPython's own C API: raising an exception in another thread.

Python delivers signals to the main thread only; a job running on a worker
thread (a Dask worker's, a thread pool's) is told to stop by an exception
raised into it here, at its next Python instruction (a compiled call it is in
finishes first).
"""

from __future__ import annotations

import ctypes

__all__ = ["raise_in_thread"]


def raise_in_thread(ident: int, exception: type[BaseException]) -> bool:
    """Raise ``exception`` (a class) in the thread ``ident``; False when no such thread runs Python."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exception))
    if done > 1:  # pragma: no cover - several thread states matched: undo, as the C API asks
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)
        return False
    return done == 1
