# Included by _h5dsets.pyx (one compiled module: the same libhdf5 bindings and digest state):
# RawWriter, the second thread that writes contiguous datasets' bytes at their offsets.

def configure_raw(size_t dget_offset):
    """Bind libhdf5's ``H5Dget_offset`` (address; 0: none): from then on :func:`write_datasets` given a
    :class:`RawWriter` hands the bytes of its contiguous datasets to it."""
    global _dget_offset
    _dget_offset = <dget_offset_t><void *>dget_offset if dget_offset else NULL


ctypedef struct _RawJob:
    const char *source
    size_t nbytes
    long long offset
    unsigned long crc        # the CRC of the digest's header; the bytes' CRC continues it
    Py_ssize_t index


cdef enum:
    _RING = 1024             # jobs queued at most (the writer waits for room beyond)
    _RAW_PIECE = 1 << 18     # bytes copied at a time: the copy stays in the core's cache for its digest and write
    _BATCH = 32              # jobs handed over (and taken) under one lock


cdef class RawWriter:
    """The bytes of a new file's contiguous datasets written at their offsets by a second thread.

    :func:`write_datasets` creates such a dataset with its space allocated at creation and no fill,
    asks libhdf5 where it lies, and queues the array here instead of writing it through the library; the
    writer thread copies the array into its own buffer (piece by piece, 256 kB at most), takes the digest
    of that copy (CRC-32 begun at the digest's header, :func:`h5stream.digests.array_digest`) and
    ``pwrite``\\ s the copy to ``fd`` at the dataset's offset, while the library goes on creating the file's
    other objects.  The file's bytes are those the library would write; the digest is that of exactly the
    bytes written.  Jobs pass between the two threads in batches of :data:`_BATCH`, one lock each way per
    batch (a lock per job made the writing thread sleep on it thousands of times a save).

    The queued arrays are kept referenced until :meth:`finish`, which waits for every job and returns the
    digests in the order queued (8 lowercase hex digits each), or raises :class:`OSError` for the first
    failed write.  ``finish(cancel=True)`` drops the jobs not yet started (after a failure elsewhere).
    The writer owns ``fd`` (open for writing on the file libhdf5 writes): its thread closes it when it ends.
    """
    cdef int fd
    cdef pthread_mutex_t lock
    cdef pthread_cond_t wake        # jobs were handed over, or the writer closes
    cdef pthread_cond_t room        # jobs were taken from the ring
    cdef _RawJob ring[_RING]
    cdef Py_ssize_t head, count, queued
    cdef _RawJob pending[_BATCH]    # jobs queued, not handed over yet (the lock taken once per batch)
    cdef Py_ssize_t n_pending
    cdef unsigned int *crcs
    cdef Py_ssize_t crc_cap
    cdef int err
    cdef long long err_offset
    cdef bint closing, cancelled, finished
    cdef char *buffer
    cdef size_t buffer_size, piece
    cdef list keep
    cdef object thread
    cdef public size_t bytes_queued
    cdef public Py_ssize_t waits     # times the writing thread waited for room in the ring

    def __cinit__(self, int fd):
        self.fd = fd
        self.piece = _RAW_PIECE
        pthread_mutex_init(&self.lock, NULL)
        pthread_cond_init(&self.wake, NULL)
        pthread_cond_init(&self.room, NULL)
        self.keep = []

    def __init__(self, int fd):
        import threading
        self.thread = threading.Thread(target=self._run, name="h5stream-raw-writer", daemon=True)
        self.thread.start()

    def __dealloc__(self):
        # (finish() joined the thread; an object never finished is kept alive by its running thread)
        pthread_cond_destroy(&self.wake)
        pthread_cond_destroy(&self.room)
        pthread_mutex_destroy(&self.lock)
        free(self.crcs)
        free(self.buffer)

    def _run(self):
        with nogil:
            self._loop()

    cdef void _loop(self) noexcept nogil:
        cdef _RawJob jobs[_BATCH]
        cdef unsigned int done_crcs[_BATCH]
        cdef Py_ssize_t k, n
        cdef int failed
        while True:
            pthread_mutex_lock(&self.lock)
            while self.count == 0 and not self.closing:
                pthread_cond_wait(&self.wake, &self.lock)
            if self.count == 0:
                pthread_mutex_unlock(&self.lock)
                close(self.fd)  # (here, once no write can follow: a finish interrupted in its wait leaves it open)
                return
            n = self.count if self.count < _BATCH else _BATCH
            for k in range(n):
                jobs[k] = self.ring[(self.head + k) % _RING]
            self.head = (self.head + n) % _RING
            self.count -= n
            failed = self.err != 0 or self.cancelled
            pthread_cond_signal(&self.room)
            pthread_mutex_unlock(&self.lock)
            if failed:
                continue
            for k in range(n):
                if self._write(&jobs[k], &done_crcs[k]) < 0:
                    n = k
                    break
            pthread_mutex_lock(&self.lock)  # (crcs grows under the lock)
            for k in range(n):
                self.crcs[jobs[k].index] = done_crcs[k]
            pthread_mutex_unlock(&self.lock)

    cdef int _write(self, _RawJob *job, unsigned int *out) noexcept nogil:
        """Copy, digest and write one job's bytes; -1 (the failure recorded) when a write failed."""
        cdef unsigned long crc = job.crc
        cdef size_t done, at = 0, piece
        cdef ssize_t got
        cdef char *grown
        while at < job.nbytes:  # piece by piece: the copy is read back from the cache
            piece = job.nbytes - at if job.nbytes - at < self.piece else self.piece
            if piece > self.buffer_size:
                grown = <char *>realloc(self.buffer, piece)
                if grown == NULL:
                    self._fail(12, job.offset + <long long>at)  # ENOMEM
                    return -1
                self.buffer, self.buffer_size = grown, piece
            memcpy(self.buffer, job.source + at, piece)
            crc = _crc(crc, self.buffer, piece)
            done = 0
            while done < piece:
                got = pwrite(self.fd, self.buffer + done, piece - done, job.offset + <long long>(at + done))
                if got < 0:
                    if errno == EINTR:
                        continue
                    self._fail(errno, job.offset + <long long>(at + done))
                    return -1
                if got == 0:
                    self._fail(28, job.offset + <long long>(at + done))  # ENOSPC: nothing more goes in
                    return -1
                done += <size_t>got
            at += piece
        out[0] = <unsigned int>(crc & 0xFFFFFFFFUL)
        return 0

    cdef void _fail(self, int err, long long offset) noexcept nogil:
        pthread_mutex_lock(&self.lock)
        if self.err == 0:
            self.err, self.err_offset = err, offset
        pthread_mutex_unlock(&self.lock)

    cdef Py_ssize_t queue(self, object array, const char *source, size_t nbytes, long long offset,
                          unsigned long crc) except -1:
        """Queue one array's bytes (kept referenced until finish); returns its index among the digests.
        Jobs are handed to the thread in batches (:meth:`hand_over`)."""
        cdef _RawJob *slot
        if self.finished:
            raise RuntimeError("RawWriter.queue after finish()")
        self.keep.append(array)
        slot = &self.pending[self.n_pending]
        slot.source, slot.nbytes, slot.offset, slot.crc, slot.index = source, nbytes, offset, crc, self.queued
        self.n_pending += 1
        self.queued += 1
        self.bytes_queued += nbytes
        if self.n_pending == _BATCH:
            self.hand_over()
        return self.queued - 1

    cdef int hand_over(self) except -1:
        """Hand the pending jobs to the thread (waiting for room in the ring), under one lock."""
        cdef unsigned int *grown
        cdef Py_ssize_t k, cap, n = self.n_pending
        if n == 0:
            return 0
        with nogil:
            pthread_mutex_lock(&self.lock)
            while _RING - self.count < n:
                self.waits += 1
                pthread_cond_wait(&self.room, &self.lock)
            if self.queued > self.crc_cap:
                cap = 2 * self.crc_cap if 2 * self.crc_cap >= self.queued else self.queued + 4096
                grown = <unsigned int *>realloc(self.crcs, cap * sizeof(unsigned int))
                if grown == NULL:
                    pthread_mutex_unlock(&self.lock)
                    with gil:
                        raise MemoryError("RawWriter: no memory for the digests")
                self.crcs, self.crc_cap = grown, cap
            for k in range(n):
                self.ring[(self.head + self.count + k) % _RING] = self.pending[k]
            self.count += n
            self.n_pending = 0
            pthread_cond_signal(&self.wake)
            pthread_mutex_unlock(&self.lock)
        return 0

    def finish(self, bint cancel=False):
        """Wait for every queued job (``cancel``: drop those not started) and end the thread; returns the
        digests in the order queued, or raises OSError for the first failed write."""
        cdef Py_ssize_t i
        cdef char text[16]
        if self.finished:
            raise RuntimeError("RawWriter.finish() called twice")
        if cancel:
            self.n_pending = 0
        else:
            self.hand_over()
        with nogil:
            pthread_mutex_lock(&self.lock)
            self.closing = True
            if cancel:
                self.cancelled = True
            pthread_cond_broadcast(&self.wake)
            pthread_mutex_unlock(&self.lock)
        self.thread.join()
        self.finished = True
        self.keep = []
        if self.err:
            raise OSError(self.err, f"writing a dataset's bytes at offset {self.err_offset}: "
                                    f"{os.strerror(self.err)}")
        if self.cancelled:
            return None
        out = [None] * self.queued
        for i in range(self.queued):
            snprintf(text, 16, "%08x", self.crcs[i])
            out[i] = text[:8].decode("ascii")
        return out
