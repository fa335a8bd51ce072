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
switch interval after another while a thread computes).  :func:`start_pieces`
runs the same on a thread of its own and returns at once: a reader starts the
pieces of a large dataset and goes on with its small reads meanwhile.  Errors are reported
per piece: the bytes read (a short read ends the piece) and the ``errno`` of a
failed read; the caller decides what a short read means.
"""

from cython.parallel cimport prange
from libc.errno cimport EINTR, errno
from libc.stdint cimport int64_t, uint32_t
from libc.string cimport memset

import threading

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
    #ifdef _WIN32
    typedef int h5s_thread;
    static int h5s_thread_start(h5s_thread *t, void *(*fn)(void *), void *arg) {
        (void)t; (void)fn; (void)arg; return -1;
    }
    static int h5s_thread_join(h5s_thread t) { (void)t; return -1; }
    #else
    #include <pthread.h>
    typedef pthread_t h5s_thread;
    static int h5s_thread_start(h5s_thread *t, void *(*fn)(void *), void *arg) {
        return pthread_create(t, NULL, fn, arg);
    }
    static int h5s_thread_join(h5s_thread t) { return pthread_join(t, NULL); }
    #endif
    """
    long long h5s_pread(int fd, void *buf, long long n, long long offset) nogil
    ctypedef uint32_t (*h5s_crc_fn)(uint32_t, const void *, size_t) noexcept nogil
    ctypedef int h5s_thread
    int h5s_thread_start(h5s_thread *t, void *(*fn)(void *) noexcept nogil, void *arg) nogil
    int h5s_thread_join(h5s_thread t) nogil

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


cdef struct Job:
    size_t base
    Py_ssize_t n
    const int *fds
    const int64_t *file_at
    const int64_t *buffer_at
    const int64_t *length
    const unsigned char *touch
    const int64_t *crc_from
    const int64_t *crc_to
    size_t crc_address
    int n_threads
    int64_t *got
    int *failed
    uint32_t *crcs


cdef void _read_all(Job *job) noexcept nogil:
    cdef Py_ssize_t i
    cdef long long done, r, want
    cdef unsigned char *at
    for i in prange(job.n, num_threads=job.n_threads, schedule="dynamic", chunksize=1):
        at = <unsigned char *>(job.base + <size_t>job.buffer_at[i])
        if job.touch[i]:
            memset(at, 0, <size_t>job.length[i])
        done = 0
        job.failed[i] = 0
        while done < job.length[i]:
            want = job.length[i] - done
            r = h5s_pread(job.fds[i], at + done, want, job.file_at[i] + done)
            if r < 0:
                if errno == EINTR:
                    continue
                job.failed[i] = errno
                break
            if r == 0:
                break
            done = done + r
            if (job.file_at[i] + done) % 512 != 0:  # not a sector boundary: the end of the file
                break
        job.got[i] = done
        job.crcs[i] = 0
        if job.failed[i] == 0 and job.crc_to[i] > job.crc_from[i]:
            job.crcs[i] = _crc(job.crc_address, <const unsigned char *>(job.base + <size_t>job.crc_from[i]),
                               job.crc_to[i] - job.crc_from[i])


cdef void *_run(void *job) noexcept nogil:
    _read_all(<Job *>job)
    return NULL


cdef class Reading:
    """Pieces being read on a thread of their own (:func:`start_pieces`); :meth:`wait` until they are in."""

    cdef Job job
    cdef h5s_thread thread
    cdef bint running
    cdef object keep  # the arrays the job points into
    cdef object joining  # one joiner at a time: a thread joined twice is undefined (and may never return)

    def wait(self):
        """Block (without the GIL) until every piece is read and digested; the results are then in the
        arrays given to :func:`start_pieces`.  Any number of threads may wait at once."""
        if not self.running:
            return
        with self.joining:  # waits with the GIL released
            if self.running:
                with nogil:
                    h5s_thread_join(self.thread)
                self.running = False

    def __dealloc__(self):
        if self.running:  # never let the thread write into arrays freed after this object
            with nogil:
                h5s_thread_join(self.thread)


cdef Reading _job(size_t base, const int[::1] fds, const int64_t[::1] file_at, const int64_t[::1] buffer_at,
                  const int64_t[::1] length, const unsigned char[::1] touch, const int64_t[::1] crc_from,
                  const int64_t[::1] crc_to, size_t crc_address, int n_threads,
                  int64_t[::1] got, int[::1] failed, uint32_t[::1] crcs):
    cdef Py_ssize_t n = fds.shape[0]
    sizes = (file_at.shape[0], buffer_at.shape[0], length.shape[0], touch.shape[0], crc_from.shape[0],
             crc_to.shape[0], got.shape[0], failed.shape[0], crcs.shape[0])
    if any(size != n for size in sizes):
        raise ValueError(f"every per-piece array must have {n} entries (found {sizes})")
    cdef Reading reading = Reading.__new__(Reading)
    reading.keep = (fds, file_at, buffer_at, length, touch, crc_from, crc_to, got, failed, crcs)
    reading.joining = threading.Lock()
    reading.job.base = base
    reading.job.n = n
    if n == 0:
        return reading
    reading.job.fds = &fds[0]
    reading.job.file_at = &file_at[0]
    reading.job.buffer_at = &buffer_at[0]
    reading.job.length = &length[0]
    reading.job.touch = &touch[0]
    reading.job.crc_from = &crc_from[0]
    reading.job.crc_to = &crc_to[0]
    reading.job.crc_address = crc_address
    reading.job.n_threads = n_threads if n_threads > 0 else 1
    reading.job.got = &got[0]
    reading.job.failed = &failed[0]
    reading.job.crcs = &crcs[0]
    return reading


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
    cdef Reading reading = _job(base, fds, file_at, buffer_at, length, touch, crc_from, crc_to, crc_address,
                                n_threads, got, failed, crcs)
    if reading.job.n:
        with nogil:
            _read_all(&reading.job)


def start_pieces(size_t base, const int[::1] fds, const int64_t[::1] file_at, const int64_t[::1] buffer_at,
                 const int64_t[::1] length, const unsigned char[::1] touch, const int64_t[::1] crc_from,
                 const int64_t[::1] crc_to, size_t crc_address, int n_threads,
                 int64_t[::1] got, int[::1] failed, uint32_t[::1] crcs):
    """As :func:`read_pieces`, on a thread of its own: returns at once a :class:`Reading` to wait for
    (where no thread can be started, the pieces are read before it returns).  The memory at ``base``
    must stay allocated until then; the arrays are kept by the :class:`Reading`."""
    cdef Reading reading = _job(base, fds, file_at, buffer_at, length, touch, crc_from, crc_to, crc_address,
                                n_threads, got, failed, crcs)
    cdef int status = 0
    if reading.job.n:
        with nogil:
            status = h5s_thread_start(&reading.thread, _run, &reading.job)
        if status == 0:
            reading.running = True
        else:
            with nogil:
                _read_all(&reading.job)
    return reading


def crc32_join(uint32_t crc1, uint32_t crc2, long long len2):
    """The CRC-32 of two byte strings one after the other, from each one's CRC-32 and the second's length."""
    return <uint32_t>crc32_combine(crc1, crc2, <long>len2)
