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


# ------------------------------------------------------------------ OpenMP threads after fork()
# _omp_fork.h says why: the process-wide state of the decision lives here; each kernel module takes it
# through the capsule ``_omp_fork_api`` when imported and calls it just before its parallel region.

cdef extern from *:
    """
    #define H5S_OMP_FORK_PROVIDER 1
    #include "_omp_fork.h"
    static int h5s_omp_team_size(int asked) {
        int size = 1;
    #if H5STREAM_OPENMP
        int n = h5s_omp_threads_here(asked);
        #pragma omp parallel num_threads(n)
        {
            #pragma omp single
            size = omp_get_num_threads();
        }
    #endif
        return size;
    }
    """
    object h5s_omp_fork_capsule()
    int h5s_omp_threads_here(int asked) nogil
    int h5s_omp_state(int which) nogil
    int h5s_omp_team_size(int asked) nogil

_omp_fork_api = h5s_omp_fork_capsule()


def omp_threads(int asked):
    """Threads a kernel asked for ``asked`` runs on: ``asked`` (at least 1), or 1 in a process forked from one
    that had run an OpenMP region with more than one thread (its runtime's threads did not survive the fork).
    Asking for more than one marks this process as having run such a region, as a kernel does."""
    return h5s_omp_threads_here(asked)


def omp_fork_state():
    """``(ran_parallel, forked)``: this process or an ancestor ran a region with more than one thread; this
    process is a fork of such a one (its kernels run on one thread)."""
    return bool(h5s_omp_state(0)), bool(h5s_omp_state(1))


def omp_team_size(int asked):
    """Runs an empty parallel region asked for ``asked`` threads, as a kernel does; returns the team's size."""
    cdef int size
    with nogil:
        size = h5s_omp_team_size(asked)
    return size


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
