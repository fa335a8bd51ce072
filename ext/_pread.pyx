# cython: language_level=3
"""Pieces of a file read into one buffer on several native threads, each piece digested as it lands.

The kernel of :meth:`h5stream.kernels.direct_rows.DirectRows.read_digested`.  Every
piece is read by one OpenMP thread from its own file descriptor (opened with
``O_DIRECT`` for pieces read from the disk, without it for pieces the page cache
holds); a piece read directly into memory not yet written is written first
(``touch``), so that the read pins pages already present instead of faulting
them in under the process's memory-map lock.  Right after its read the same
thread computes the CRC-32 of the piece's share of the values, with the
function at ``crc_address`` (libdeflate's ``crc32``) or zlib's; the caller
joins the pieces' CRCs in file order with :func:`crc32_combine`.

No GIL is held from the first piece to the last, so the reads start together
whatever the calling process's other threads do (Python threads start one
switch interval after another while a thread computes).  Errors are reported
per piece: the bytes read (a short read ends the piece) and the ``errno`` of a
failed read; the caller decides what a short read means.
"""

from cython.parallel cimport prange
from libc.errno cimport EINTR, errno
from libc.stdint cimport int64_t, uint32_t
from libc.string cimport memset

cdef extern from *:
    """
    #ifdef _WIN32
    #include <errno.h>
    static long long h5s_pread(int fd, void *buf, long long n, long long offset) {
        (void)fd; (void)buf; (void)n; (void)offset; errno = ENOSYS; return -1;
    }
    #else
    #include <unistd.h>
    static long long h5s_pread(int fd, void *buf, long long n, long long offset) {
        return (long long)pread(fd, buf, (size_t)n, (off_t)offset);
    }
    #endif
    typedef unsigned int (*h5s_crc_fn)(unsigned int, const void *, size_t);
    """
    long long h5s_pread(int fd, void *buf, long long n, long long offset) nogil
    ctypedef uint32_t (*h5s_crc_fn)(uint32_t, const void *, size_t) noexcept nogil

cdef extern from "zlib.h" nogil:
    unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int len)
    unsigned long crc32_combine(unsigned long crc1, unsigned long crc2, long len2)

#: zlib's crc32 takes at most this many bytes per call (an unsigned int)
cdef long long ZLIB_STEP = 1 << 30


cdef uint32_t _crc(size_t crc_address, const unsigned char *data, long long n) noexcept nogil:
    cdef h5s_crc_fn fn
    cdef unsigned long value = 0
    cdef long long step
    if crc_address != 0:
        fn = <h5s_crc_fn>crc_address
        return fn(0, data, <size_t>n)
    while n > 0:
        step = n if n < ZLIB_STEP else ZLIB_STEP
        value = crc32(value, data, <unsigned int>step)
        data += step
        n -= step
    return <uint32_t>value


def read_pieces(size_t base, const int[::1] fds, const int64_t[::1] file_at, const int64_t[::1] buffer_at,
                const int64_t[::1] length, const unsigned char[::1] touch, const int64_t[::1] crc_from,
                const int64_t[::1] crc_to, size_t crc_address, int n_threads,
                int64_t[::1] got, int[::1] failed, uint32_t[::1] crcs):
    """Read piece ``i`` (``length[i]`` bytes at ``file_at[i]`` of ``fds[i]``) to ``base + buffer_at[i]``.

    ``touch[i]``: write the piece's memory first.  ``got[i]``: bytes read (less than
    ``length[i]`` where the file ended); ``failed[i]``: the ``errno`` of a failed read, else 0.
    ``crcs[i]``: CRC-32 (from 0) of the buffer's bytes ``[crc_from[i], crc_to[i])`` once the piece is
    in, when ``crc_to[i] > crc_from[i]`` and the read succeeded; with ``crc_address`` 0 zlib's.
    """
    cdef Py_ssize_t n = fds.shape[0]
    cdef Py_ssize_t i
    cdef long long done, r, want
    cdef unsigned char *at
    if n_threads < 1:
        n_threads = 1
    with nogil:
        for i in prange(n, num_threads=n_threads, schedule="dynamic", chunksize=1):
            at = <unsigned char *>(base + <size_t>buffer_at[i])
            if touch[i]:
                memset(at, 0, <size_t>length[i])
            done = 0
            failed[i] = 0
            while done < length[i]:
                want = length[i] - done
                r = h5s_pread(fds[i], at + done, want, file_at[i] + done)
                if r < 0:
                    if errno == EINTR:
                        continue
                    failed[i] = errno
                    break
                if r == 0:
                    break
                done = done + r
                if (file_at[i] + done) % 512 != 0:  # not a sector boundary: the end of the file
                    break
            got[i] = done
            crcs[i] = 0
            if failed[i] == 0 and crc_to[i] > crc_from[i]:
                crcs[i] = _crc(crc_address, <const unsigned char *>(base + <size_t>crc_from[i]),
                               crc_to[i] - crc_from[i])
    return None


def crc32_join(uint32_t crc1, uint32_t crc2, long long len2):
    """The CRC-32 of two byte strings one after the other, from each one's CRC-32 and the second's length."""
    return <uint32_t>crc32_combine(crc1, crc2, <long>len2)
