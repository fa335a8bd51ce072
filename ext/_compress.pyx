# cython: language_level=3
"""Parallel deflate of HDF5 chunks.

Each chunk is compressed with zlib's ``compress2`` exactly as HDF5's deflate
filter does (optionally after HDF5's byte shuffle), so the output can be
written with ``H5Dwrite_chunk`` and read by any HDF5 reader.  The loop over
chunks runs without the GIL, in parallel under OpenMP; each iteration owns its
output row, so threads share no state.
"""

from cython.parallel cimport prange
from libc.stdlib cimport free, malloc

cdef extern from "zlib.h" nogil:
    ctypedef unsigned long uLong
    ctypedef unsigned long uLongf
    ctypedef unsigned char Bytef
    int compress2(Bytef *dest, uLongf *destLen, const Bytef *source, uLong sourceLen, int level)
    uLong compressBound(uLong sourceLen)
    int Z_OK


def deflate_bound(Py_ssize_t nbytes):
    """Largest compressed size of ``nbytes`` input bytes."""
    return compressBound(<uLong>nbytes)


cdef inline void _shuffle(const unsigned char *src, unsigned char *dst,
                          Py_ssize_t nbytes, Py_ssize_t itemsize) noexcept nogil:
    # HDF5's shuffle filter: byte j of every element goes to plane j; trailing
    # bytes that do not fill an element are copied as they are.
    cdef Py_ssize_t n_items = nbytes // itemsize
    cdef Py_ssize_t i, j
    for j in range(itemsize):
        for i in range(n_items):
            dst[j * n_items + i] = src[i * itemsize + j]
    for i in range(n_items * itemsize, nbytes):
        dst[i] = src[i]


def _deflate_chunks(const unsigned char[:, ::1] src, unsigned char[:, ::1] dst,
                    long long[::1] sizes, int n_chunks, int level,
                    int shuffle_itemsize, int n_threads):
    """Compress rows ``0..n_chunks-1`` of ``src`` into rows of ``dst``.

    ``sizes[i]`` receives the compressed length of chunk ``i`` or -1 when zlib
    failed.  Returns the number of failures.
    """
    cdef Py_ssize_t nbytes = src.shape[1]
    cdef Py_ssize_t cap = dst.shape[1]
    cdef Py_ssize_t i
    cdef uLongf out_len
    cdef int status
    cdef int failures = 0
    cdef unsigned char *scratch
    cdef const unsigned char *source
    if n_threads < 1:
        n_threads = 1
    with nogil:
        for i in prange(n_chunks, num_threads=n_threads, schedule="dynamic", chunksize=1):
            out_len = <uLongf>cap
            scratch = NULL
            source = &src[i, 0]
            if shuffle_itemsize > 1:
                scratch = <unsigned char *>malloc(nbytes if nbytes > 0 else 1)
                if scratch == NULL:
                    sizes[i] = -1
                    failures += 1
                    continue
                _shuffle(source, scratch, nbytes, shuffle_itemsize)
                source = scratch
            status = compress2(&dst[i, 0], &out_len, source, <uLong>nbytes, level)
            if scratch != NULL:
                free(scratch)
            if status == Z_OK:
                sizes[i] = <long long>out_len
            else:
                sizes[i] = -1
                failures += 1
    return failures
