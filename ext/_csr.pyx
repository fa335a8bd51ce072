# cython: language_level=3
"""Row-block CSR encoding of dense matrices.

Two passes per block of rows: count the stored entries of each row, then fill
``data``/``indices`` at the row offsets the counts give.  Rows are independent,
so both passes run in parallel over rows (OpenMP) with no shared writes.

Missing-value rules: 0 = zeros are left out, 1 = NaN is left out (zeros are
stored), 2 = both are left out.
"""

from cython.parallel cimport parallel, prange

cdef extern from "_omp_fork.h":
    int h5s_omp_fork_import() except -1
    int h5s_omp_threads(int asked) nogil

h5s_omp_fork_import()  # the decision shared by every kernel (_omp_fork.h)
from libc.stdlib cimport free, malloc
from libc.math cimport isnan
from libc.stdint cimport int32_t, int64_t

ctypedef fused value_t:
    float
    double
    signed char
    short
    int
    long long
    unsigned char
    unsigned short
    unsigned int
    unsigned long long

ctypedef fused index_t:
    int32_t
    int64_t


cdef inline bint _stored(value_t v, int rule) noexcept nogil:
    if value_t is float or value_t is double:
        if rule == 0:
            return v != 0
        if rule == 1:
            return not isnan(v)
        return v != 0 and not isnan(v)
    else:
        # Integers have no NaN: rule 1 keeps everything.
        if rule == 1:
            return True
        return v != 0


def _count_rows(const value_t[:, ::1] block, int64_t[::1] counts, int rule, int n_threads):
    """counts[i] = stored entries of row i of ``block``."""
    cdef Py_ssize_t n_rows = block.shape[0]
    cdef Py_ssize_t n_cols = block.shape[1]
    cdef Py_ssize_t i, j
    cdef int64_t c
    if n_threads < 1:
        n_threads = 1
    with nogil:
        for i in prange(n_rows, num_threads=h5s_omp_threads(n_threads), schedule="static"):
            c = 0
            for j in range(n_cols):
                if _stored(block[i, j], rule):
                    c = c + 1
            counts[i] = c


def _fill_rows(const value_t[:, ::1] block, const int64_t[::1] starts,
               value_t[::1] data, index_t[::1] indices, int rule, int n_threads,
               int32_t[::1] failed):
    """Write the stored entries of row i at ``starts[i]`` onwards (starts from _count_rows).

    Each thread encodes a row into its own scratch row without branches (the
    position advances by 0 or 1), then copies the stored prefix out: random
    sparsity patterns would otherwise mispredict a branch per entry.
    ``failed[0]`` is set to 1 when a thread could not allocate its scratch row.
    """
    cdef Py_ssize_t n_rows = block.shape[0]
    cdef Py_ssize_t n_cols = block.shape[1]
    cdef Py_ssize_t i, j, k
    cdef int64_t pos, start
    cdef value_t v
    cdef value_t *row_data = NULL
    cdef index_t *row_indices = NULL
    if n_threads < 1:
        n_threads = 1
    if n_rows == 0 or n_cols == 0:
        return
    with nogil, parallel(num_threads=h5s_omp_threads(n_threads)):
        row_data = <value_t *>malloc(n_cols * sizeof(value_t))
        row_indices = <index_t *>malloc(n_cols * sizeof(index_t))
        if row_data == NULL or row_indices == NULL:
            failed[0] = 1
        for i in prange(n_rows, schedule="static"):
            if row_data != NULL and row_indices != NULL:
                pos = 0
                for j in range(n_cols):
                    v = block[i, j]
                    row_data[pos] = v
                    row_indices[pos] = <index_t>j
                    pos = pos + _stored(v, rule)
                start = starts[i]
                for k in range(pos):
                    data[start + k] = row_data[k]
                    indices[start + k] = row_indices[k]
        free(row_data)
        free(row_indices)
