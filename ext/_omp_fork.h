/* The thread count of every OpenMP kernel, made safe across fork().

   GNU OpenMP (libgomp) keeps the threads of a parallel region in a pool tied to
   the thread that started the region; fork() copies only the calling thread, so
   a child of a process that ran a region with two or more threads inherits a
   pool whose threads do not exist.  Its next region with two or more threads
   waits for them forever (os.fork, multiprocessing's "fork" start method).  A
   region with one thread does not use the pool.

   The rule: a kernel asked for n threads runs on n (at least 1), except in a
   process forked (at any depth) from one that had run a region with more than
   one thread, where it runs on one: correct results, no wait.  A child of a
   process that never did (the batch's fork-server workers, forked from a
   freshly executed server) keeps its threads.  The rule holds whichever thread
   forked and whichever OpenMP runtime the kernels use (LLVM's resets itself at
   fork; such children then run on one thread where they could have run on
   more: the safe side).  Regions of other libraries are not counted.

   Why in C and not a flag the Python callers consult: the kernels are also
   called directly (h5stream._ext.*), and a decision inside the kernel leaves no
   call site to forget.

   The decision is made inside each kernel, just before its parallel region,
   so no caller escapes it (an explicit ``n_threads`` included).  The state it
   reads must be one for the whole process, and each kernel is its own shared
   object loaded with RTLD_LOCAL, so a static variable here would be one per
   kernel module: the state lives in h5stream._ext._runtime (built with
   H5S_OMP_FORK_PROVIDER defined), which registers the fork handler and hands
   the decision to the other modules through a capsule, ``_omp_fork_api``,
   taken once when each kernel module is imported (h5s_omp_fork_import).

   Within the process, marking a region as run is a plain int store of the same
   value from any thread; the fork handler runs in the child alone. */

#ifndef H5S_OMP_FORK_H
#define H5S_OMP_FORK_H

#include <Python.h>

#define H5S_OMP_FORK_CAPSULE "h5stream._ext._runtime._omp_fork_api"

typedef struct {
    int (*threads)(int asked);  /* the thread count to run with when `asked` were asked */
} h5s_omp_fork_api;

#ifdef H5S_OMP_FORK_PROVIDER

#if !defined(_WIN32)
#include <errno.h>
#include <pthread.h>
#endif

static volatile int h5s_omp_ran_parallel = 0;  /* this process (or an ancestor) ran a region with > 1 thread */
static volatile int h5s_omp_forked = 0;        /* ... and this process is a fork of it */

static int h5s_omp_threads_here(int asked) {
    if (asked <= 1)
        return 1;
    if (h5s_omp_forked)
        return 1;
    h5s_omp_ran_parallel = 1;
    return asked;
}

#if !defined(_WIN32)
static void h5s_omp_after_fork_in_child(void) {
    if (h5s_omp_ran_parallel)
        h5s_omp_forked = 1;
}
#endif

/* Registers the fork handler (once) and returns the capsule, a new reference; NULL with an exception set. */
static PyObject *h5s_omp_fork_capsule(void) {
    static h5s_omp_fork_api api = {h5s_omp_threads_here};
#if !defined(_WIN32)
    static int registered = 0;
    if (!registered) {
        int err = pthread_atfork(NULL, NULL, h5s_omp_after_fork_in_child);
        if (err) {
            errno = err;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        registered = 1;
    }
#endif
    return PyCapsule_New(&api, H5S_OMP_FORK_CAPSULE, NULL);
}

static int h5s_omp_state(int which) { return which ? h5s_omp_forked : h5s_omp_ran_parallel; }

#else  /* a kernel module: the decision of h5stream._ext._runtime */

static h5s_omp_fork_api *h5s_omp_fork_shared = NULL;

/* 0, or -1 with an exception set. */
static int h5s_omp_fork_import(void) {
    PyObject *module, *capsule;
    if (h5s_omp_fork_shared)
        return 0;
    module = PyImport_ImportModule("h5stream._ext._runtime");
    if (!module)
        return -1;
    capsule = PyObject_GetAttrString(module, "_omp_fork_api");
    Py_DECREF(module);
    if (!capsule)
        return -1;
    h5s_omp_fork_shared = (h5s_omp_fork_api *)PyCapsule_GetPointer(capsule, H5S_OMP_FORK_CAPSULE);
    Py_DECREF(capsule);
    return h5s_omp_fork_shared ? 0 : -1;
}

static int h5s_omp_threads(int asked) { return h5s_omp_fork_shared->threads(asked); }

#endif
#endif
