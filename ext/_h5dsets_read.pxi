# Included by _h5dsets.pyx (one compiled module: the same libhdf5 bindings and digest state):
# read_checked, the whole load's read of a plain dataset: pread into the array, each piece digested as it lands.

cdef extern from "_crc32_fold.h" nogil:
    ctypedef unsigned long (*h5s_crc_fn)(unsigned long, const char *, size_t) noexcept nogil
    int h5s_crc32_fold_available()
    unsigned long h5s_crc32_fold(unsigned long crc, const unsigned char *p, size_t n, h5s_crc_fn scalar)
    size_t H5S_FOLD_MIN

#: whether this CPU takes ext/_crc32_fold.h's CRC-32 (AVX-512 with VPCLMULQDQ): then the whole reads digest
#: their bytes with it, several times faster than libdeflate's (the same value)
cdef bint _fold = h5s_crc32_fold_available()


cdef inline unsigned long _crc_read(unsigned long crc, const char *data, size_t n) noexcept nogil:
    if _fold and n >= H5S_FOLD_MIN:
        return h5s_crc32_fold(crc, <const unsigned char *>data, n, _crc)
    return _crc(crc, data, n)


def crc32_wide(unsigned long crc, const unsigned char[::1] data):
    """zlib's ``crc32(data, crc)`` as :func:`read_checked` takes it (ext/_crc32_fold.h where the CPU has it)."""
    if data.shape[0] == 0:
        return crc
    return _crc_read(crc, <const char *>&data[0], <size_t>data.shape[0])


def crc32_wide_available():
    """Whether :func:`read_checked` digests with ext/_crc32_fold.h (AVX-512 with VPCLMULQDQ)."""
    return bool(_fold)


def read_checked(int fd, long long offset, unsigned char[::1] out, Py_ssize_t piece_bytes, const unsigned int[::1] want,
                 unsigned long full_start, unsigned long last_start, Py_ssize_t block_bytes):
    """Read ``len(out)`` bytes from ``fd`` at ``offset`` into ``out`` (``pread``, at most ``block_bytes`` a
    request) and check them piece by piece: piece ``i`` is the run of ``piece_bytes`` from
    ``i * piece_bytes`` (the last one shorter), its CRC-32 begun at ``full_start`` (the last piece's at
    ``last_start``: the CRC of its digest header), continued over each request's bytes as they land and
    compared with ``want[i]`` once the piece is complete.  One thread, the GIL released for the whole read.

    Returns ``(bad, got)``: the first piece whose CRC differs (-1: none; the read stops there) and the
    bytes read (fewer than ``len(out)`` when the file ends first).  A failed ``pread`` raises
    :class:`OSError` with its errno.
    """
    cdef Py_ssize_t total = out.shape[0], n_pieces = want.shape[0]
    cdef Py_ssize_t pos = 0, digested = 0, piece = 0, piece_end, end, step, bad = -1
    cdef ssize_t got
    cdef unsigned long crc
    cdef int err = 0
    cdef unsigned char *buf
    cdef const unsigned int *wants
    if piece_bytes <= 0 or block_bytes <= 0 or n_pieces != (total + piece_bytes - 1) // piece_bytes:
        raise ValueError(f"read_checked: {n_pieces} digests for {total} bytes in pieces of {piece_bytes}")
    if total == 0:
        return -1, 0
    buf, wants = &out[0], &want[0]
    crc = full_start if n_pieces > 1 else last_start
    piece_end = piece_bytes if piece_bytes < total else total
    with nogil:
        while pos < total and bad < 0:
            step = total - pos if total - pos < block_bytes else block_bytes
            got = pread(fd, buf + pos, <size_t>step, offset + pos)
            if got < 0:
                if errno == EINTR:
                    continue
                err = errno
                break
            if got == 0:
                break
            pos += got
            while digested < pos:
                end = pos if pos < piece_end else piece_end
                crc = _crc_read(crc, <const char *>(buf + digested), <size_t>(end - digested))
                digested = end
                if digested == piece_end:
                    if (crc & 0xFFFFFFFFUL) != wants[piece]:
                        bad = piece
                        break
                    piece += 1
                    crc = full_start if piece < n_pieces - 1 else last_start
                    piece_end = piece_end + piece_bytes if piece_end + piece_bytes < total else total
    if err:
        raise OSError(err, f"pread at offset {offset + pos}: errno {err}")
    return bad, pos
