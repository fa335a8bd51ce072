"""Stopping work that runs on another thread of this process.

Python delivers a signal to the main thread only.  A long job on a worker
thread (a Dask worker's, a thread pool's) is stopped by raising an exception in
that thread: it arrives at the thread's next Python instruction, after any
compiled call it is in has returned.  The C API call lives in
:mod:`h5stream.native.pythonapi`.
"""

from __future__ import annotations

__all__ = ["raise_in_thread"]


def raise_in_thread(ident: int, exception: type[BaseException]) -> bool:
    """Raise ``exception`` (a class) in the thread ``ident``; False when no such thread runs Python."""
    from h5stream.native.pythonapi import raise_in_thread as _raise

    return _raise(ident, exception)
