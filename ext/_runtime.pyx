# Build facts of the compiled kernels, reported at run time.

cdef extern from *:
    """
    #ifndef H5STREAM_OPENMP
    #define H5STREAM_OPENMP 0
    #endif
    #if H5STREAM_OPENMP
    #include <omp.h>
    static int h5s_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int h5s_max_threads(void) { return 1; }
    #endif
    """
    int H5STREAM_OPENMP
    int h5s_max_threads() nogil


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(H5STREAM_OPENMP)


def openmp_max_threads():
    """Threads an OpenMP region may use (1 for a serial build)."""
    return h5s_max_threads()


# ------------------------------------------------------------------ an exception raised in another thread

from cpython.object cimport PyObject

cdef extern from "Python.h":
    int PyThreadState_SetAsyncExc(unsigned long id, PyObject *exc)

import sys as _sys
import threading as _threading

cdef object _THREAD_START = _threading.Thread.start.__code__


def raise_in_thread_now(unsigned long ident, exception):
    """Raise ``exception`` in thread ``ident`` at its next Python instruction, unless that is not safe now.

    Returns 1 when it was set, 0 when no thread ``ident`` runs Python, and -1
    when the thread is inside ``threading.Thread.start`` and the new thread has
    not started running: CPython 3.11 gives a new thread's state its creator's
    ident until the new thread runs, and sets the exception on the newest state
    with that ident, which is the new thread's; the caller tries again.

    Everything here is C calls made with the GIL held (no bytecode runs: the
    reads of frames and of the new thread's event are attribute reads), so no
    thread can start another between the look at the stack and the raise.
    """
    return _raise_now(ident, exception)


cdef int _raise_now(unsigned long ident, object exception) except -2:
    frame = _sys._current_frames().get(ident)
    if frame is None:
        return 0
    while frame is not None:
        if frame.f_code is _THREAD_START:
            # Unsafe from the new thread's creation until it runs (it then sets its _started event).
            started = getattr(frame.f_locals.get("self"), "_started", None)
            if not getattr(started, "_flag", False):
                return -1
        frame = frame.f_back
    return PyThreadState_SetAsyncExc(ident, <PyObject *>exception)


cdef class RaiseAfter:
    """A callable for a hook called from C (``sys.unraisablehook``): calls ``decide(argument)``, which returns
    None or ``(ident, exception)``, then raises ``exception`` in thread ``ident`` at its next Python
    instruction, as :func:`raise_in_thread_now` does.

    The raise is set after ``decide`` returned, with no Python instruction of the hook after it: set by
    Python code, the exception would arrive in that code itself (the hook, where it is dropped again).  It
    arrives in the code that runs once the C caller of the hook returns to Python.  Calls ``failed(ident)``
    when it could not be set (None returned: the raise was set).
    """

    cdef object decide
    cdef object failed

    def __init__(self, decide, failed):
        self.decide = decide
        self.failed = failed

    def __call__(self, argument):
        chosen = self.decide(argument)
        if chosen is None:
            return None
        ident, exception = chosen
        if _raise_now(ident, exception) != 1:
            self.failed(ident)
        return None


def clear_in_thread(unsigned long ident):
    """Take back an exception set in thread ``ident`` that has not arrived yet; 1 when the thread exists.

    Called by the thread itself, outside ``threading.Thread.start``, so the
    state matched is its own.
    """
    return PyThreadState_SetAsyncExc(ident, NULL)
