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
