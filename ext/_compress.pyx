# cython: language_level=3
"""Parallel deflate and inflate of HDF5 chunks, and HDF5's Fletcher32 checksum.

Each chunk is compressed with zlib's ``compress2`` exactly as HDF5's deflate
filter does (optionally after HDF5's byte shuffle), so the output can be
written with ``H5Dwrite_chunk`` and read by any HDF5 reader.  The loop over
chunks runs without the GIL, in parallel under OpenMP; each iteration owns its
output row, so threads share no state.

``_inflate_chunk`` is the reverse for one stored chunk (inflate, then undo the
shuffle); it releases the GIL so Python threads decode chunks side by side.

``fletcher32`` is the checksum HDF5's Fletcher32 filter appends to each stored
chunk (``_fletcher32.h``: 16 lanes of 32-bit sums, AVX2 when the CPU has it).
"""

from cython.parallel cimport prange

cdef extern from "_omp_fork.h":
    int h5s_omp_fork_import() except -1
    int h5s_omp_threads(int asked) nogil

h5s_omp_fork_import()  # the decision shared by every kernel (_omp_fork.h)
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

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
        for i in prange(n_chunks, num_threads=h5s_omp_threads(n_threads), schedule="dynamic", chunksize=1):
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


cdef extern from "zlib.h" nogil:
    int uncompress(Bytef *dest, uLongf *destLen, const Bytef *source, uLong sourceLen)


cdef inline void _unshuffle(const unsigned char *src, unsigned char *dst,
                            Py_ssize_t nbytes, Py_ssize_t itemsize) noexcept nogil:
    # Inverse of _shuffle: plane j holds byte j of every element.
    cdef Py_ssize_t n_items = nbytes // itemsize
    cdef Py_ssize_t i, j
    for j in range(itemsize):
        for i in range(n_items):
            dst[i * itemsize + j] = src[j * n_items + i]
    for i in range(n_items * itemsize, nbytes):
        dst[i] = src[i]


def _inflate_chunk(const unsigned char[::1] src, unsigned char[::1] dst,
                   unsigned char[::1] scratch, bint inflate, int shuffle_itemsize):
    """Decode one stored chunk into ``dst`` (exactly the chunk's raw bytes).

    ``inflate`` says whether the stored bytes are deflated (the filter may
    have been skipped for this chunk); ``shuffle_itemsize > 1`` undoes HDF5's
    byte shuffle through ``scratch`` (at least ``dst``'s size).  Runs without
    the GIL so threads decode chunks in parallel.  Returns the number of bytes
    produced, or a negative zlib status.
    """
    cdef Py_ssize_t nbytes = dst.shape[0]
    cdef Py_ssize_t n_src = src.shape[0]
    cdef uLongf out_len = <uLongf>nbytes
    cdef int status = Z_OK
    cdef unsigned char *target
    cdef bint unshuffle = shuffle_itemsize > 1
    if nbytes == 0:
        return 0
    if unshuffle and scratch.shape[0] < nbytes:
        raise ValueError("scratch buffer smaller than the chunk")
    with nogil:
        target = &scratch[0] if unshuffle else &dst[0]
        if inflate:
            status = uncompress(target, &out_len, &src[0] if n_src > 0 else NULL, <uLong>n_src)
        elif n_src >= nbytes:
            memcpy(target, &src[0], nbytes)
        else:
            status = -3  # Z_DATA_ERROR: an unfiltered chunk must hold every byte
        if status == Z_OK and <Py_ssize_t>out_len == nbytes and unshuffle:
            _unshuffle(target, &dst[0], nbytes, shuffle_itemsize)
    if status != Z_OK:
        return status
    if <Py_ssize_t>out_len != nbytes:
        return -3
    return nbytes


cdef extern from "_fletcher32.h" nogil:
    unsigned int h5s_fletcher32_with(const unsigned char *data, size_t len, int vector) nogil


def fletcher32(const unsigned char[::1] data, bint vector=True):
    """HDF5's Fletcher32 checksum of ``data`` (a contiguous byte buffer), without the GIL.

    ``vector=False`` uses the portable loop even where AVX2 is available (the
    same value; tests compare both).
    """
    cdef size_t n = data.shape[0]
    cdef unsigned int value = 0
    cdef int use_vector = 1 if vector else 0
    if n == 0:
        return 0
    with nogil:
        value = h5s_fletcher32_with(&data[0], n, use_vector)
    return value
