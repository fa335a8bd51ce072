# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The stored references of variable-length attribute values in a version-1 object header, checked in C.

:mod:`h5stream.files._headers` explains why: a version-1 object header carries
no checksum, and libhdf5 allocates whatever length a damaged reference claims
before it fails.  :func:`scan` reads the header (prefix, messages, continuation
blocks) with ``pread`` and returns either the number of references it checked
or, at the first damaged one, a tuple the caller turns into its typed error:

* ``(DAMAGED_TYPE, name, kind, padding, charset)``: a variable-length type whose
  kind, padding or character set HDF5 does not define;
* ``(OUTSIDE, name, index, count, address)``: a value's heap collection lies
  past the end of the file;
* ``(TOO_LONG, name, index, count, length)``: a value claims more bytes than the
  file holds.

``name`` is the attribute's stored name (bytes, trailing NULs removed).  What
does not parse as a version-1 header, or cannot be read, is left to libhdf5
(which reports its own errors): the scan stops there and returns its count.

Addresses stored in a file are relative to its base address: the end of its user
block (512 bytes in a MuData ``.h5mu``), where the superblock starts.  ``base``
(the user block's size) is added to every address before a byte is read, and a
heap collection must lie within the ``file_size - base`` bytes past it.

:func:`find` is the search for a global heap collection's signature in a
file's bytes (``bytes.find`` crawls through binary data: 0.55 ms for a 1.2 MB
file, against 0.02 ms for ``memchr`` of its first byte).

:func:`check_object` first asks libhdf5 for the object's header address and
attribute count (``H5Oget_info3``, the very function of the library h5py
loaded, bound by :func:`configure`; loading the header is what refuses a
damaged one), then scans it.  The caller holds h5py's library lock.
"""

from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memchr, memcmp, memset

cdef extern from "unistd.h" nogil:
    ssize_t pread(int fd, void *buf, size_t count, long long offset)

cdef extern from "errno.h" nogil:
    int errno
    int EINTR

cdef extern from "time.h" nogil:
    ctypedef long time_t

ctypedef int64_t hid_t

cdef struct object_info:  # H5O_info2_t
    unsigned long fileno
    uint8_t token[16]
    int kind
    unsigned rc
    time_t atime
    time_t mtime
    time_t ctime
    time_t btime
    uint64_t num_attrs
    uint8_t spare[192]  # room, should a later libhdf5 grow the structure past num_attrs

ctypedef int (*get_info_t)(hid_t, object_info *, unsigned) noexcept nogil

#: outcomes of a scan besides a count (first item of the tuple returned)
DAMAGED_TYPE = 1
OUTSIDE = 2
TOO_LONG = 3
#: what :func:`check_object` returns when libhdf5 could not load the object's header
INFO_FAILED = -1

DEF CONTINUATION = 0x10
DEF ATTRIBUTE = 0x0C
DEF VLEN_CLASS = 9
# bounds on what is read from one damaged header (a crafted one can claim anything)
DEF MAX_CHUNKS = 64
DEF MAX_CHUNK_BYTES = 1 << 20
DEF MAX_VALUES = 1 << 16
DEF INFO_BASIC_NUM_ATTRS = 0x0001 | 0x0004

cdef get_info_t _get_info = NULL


def configure(size_t get_info3):
    """Bind libhdf5's ``H5Oget_info3`` (its address)."""
    global _get_info
    if not get_info3:
        raise ValueError("configure: the address of H5Oget_info3 is needed")
    _get_info = <get_info_t><void *>get_info3


def configured():
    """Whether :func:`check_object` can ask libhdf5 itself (else the caller gets the info its own way)."""
    return _get_info != NULL


cdef inline uint64_t _u(const uint8_t *raw, Py_ssize_t n) noexcept nogil:
    """An unsigned little-endian field of ``n`` bytes; past 8 bytes, any set high byte saturates."""
    cdef uint64_t v = 0
    cdef Py_ssize_t k
    for k in range(n - 1, -1, -1):
        if k >= 8:
            if raw[k]:
                return <uint64_t>-1
        else:
            v = (v << 8) | raw[k]
    return v


cdef inline bint _all_ones(const uint8_t *raw, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(n):
        if raw[k] != 0xFF:
            return False
    return True


cdef inline Py_ssize_t _pad8(Py_ssize_t n) noexcept nogil:
    return (n + 7) & ~7


cdef Py_ssize_t _read(int fd, uint8_t *buf, Py_ssize_t size, uint64_t at) noexcept nogil:
    """``pread`` of ``size`` bytes (fewer at the end of the file); -1 when the read fails."""
    cdef Py_ssize_t done = 0
    cdef ssize_t got
    while done < size:
        got = pread(fd, buf + done, <size_t>(size - done), <long long>(at + <uint64_t>done))
        if got < 0:
            if errno == EINTR:
                continue
            return -1
        if got == 0:
            break
        done += got
    return done


cdef int64_t _values(const uint8_t *space, Py_ssize_t n) noexcept nogil:
    """The number of values a dataspace message holds; -1 when it does not parse or exceeds MAX_VALUES."""
    cdef int version, rank, d
    cdef Py_ssize_t dims_at
    cdef uint64_t count = 1, dim
    if n < 4:
        return -1
    version, rank = space[0], space[1]
    if version == 1:
        dims_at = 8
    elif version == 2:
        if space[3] == 2:  # null dataspace
            return 0
        dims_at = 4
    else:
        return -1
    if rank > 32 or dims_at + 8 * rank > n:
        return -1
    for d in range(rank):
        if _u(space + dims_at + 8 * d, 8) == 0:
            return 0
    for d in range(rank):
        dim = _u(space + dims_at + 8 * d, 8)
        if dim > MAX_VALUES or count * dim > MAX_VALUES:
            return -1
        count *= dim
    return <int64_t>count


cdef object _attribute(const uint8_t *body, Py_ssize_t n, uint64_t file_size, int addr_size, int64_t *checked):
    """Check one attribute message's body (``n`` bytes); None when sound (``checked`` counts its references)."""
    cdef int version, flags, bits, charset, kind
    cdef Py_ssize_t name_size, type_size, space_size, p, name_end, type_at, space_at, data_at, item, at, i
    cdef int64_t count
    cdef uint64_t length, address
    if n < 8:
        return None
    version, flags = body[0], body[1]
    name_size = body[2] | body[3] << 8
    type_size = body[4] | body[5] << 8
    space_size = body[6] | body[7] << 8
    if version == 1:
        p = 8
        name_end, type_at = p + name_size, p + _pad8(name_size)
        space_at = type_at + _pad8(type_size)
        data_at = space_at + _pad8(space_size)
    elif version == 2 or version == 3:
        if flags & 0x03:
            return None  # a shared datatype or dataspace: a reference to another message
        p = 8 if version == 2 else 9
        name_end, type_at = p + name_size, p + name_size
        space_at = type_at + type_size
        data_at = space_at + space_size
    else:
        return None
    if data_at > n or type_size < 8:
        return None
    if body[type_at] & 0x0F != VLEN_CLASS:
        return None
    while name_end > p and body[name_end - 1] == 0:
        name_end -= 1
    bits, charset = body[type_at + 1], body[type_at + 2] & 0x0F
    kind = bits & 0x0F
    # bits 0-3: sequence (0) or string (1); a string's padding (bits 4-7) 0-2 and character set 0-1
    if kind > 1 or (kind == 1 and ((bits >> 4) > 2 or charset > 1)):
        return (DAMAGED_TYPE, body[p:name_end], kind, bits >> 4, charset)
    count = _values(body + space_at, min(space_size, n - space_at))
    item = 8 + addr_size
    if count < 0 or data_at + count * item > n:
        return None
    for i in range(count):
        at = data_at + i * item
        length, address = _u(body + at, 4), _u(body + at + 4, addr_size)
        if length == 0 or _all_ones(body + at + 4, addr_size):
            continue  # an empty value reads nothing
        if file_size < 16 or address > file_size - 16:
            return (OUTSIDE, body[p:name_end], i, count, address)
        if length > file_size:
            return (TOO_LONG, body[p:name_end], i, count, length)
    checked[0] += count
    return None


def scan(int fd, uint64_t file_size, uint64_t header_address, int addr_size, int length_size, uint64_t base=0):
    """Check the version-1 object header at ``header_address`` of the open file ``fd`` (``file_size`` bytes;
    ``addr_size`` and ``length_size`` are the file's; ``base``: its user block's size, the offset every stored
    address is relative to); the count of references checked or a damage tuple (addresses in it relative)."""
    cdef uint8_t prefix[16]
    cdef uint64_t starts[MAX_CHUNKS]
    cdef uint64_t sizes[MAX_CHUNKS]
    cdef int queued = 1, seen = 0
    cdef int64_t checked = 0
    cdef uint8_t *raw = NULL
    cdef Py_ssize_t capacity = 0, end, p, at, stop, msize, type_at, name_size
    cdef uint64_t start, size
    cdef int kind, version, flags
    if addr_size < 1 or length_size < 1 or addr_size > 32 or length_size > 32 or base >= file_size:
        return 0
    file_size -= base  # from here on, every address and bound is relative to the base
    if header_address > file_size or _read(fd, prefix, 16, base + header_address) < 16 or prefix[0] != 1:
        return 0  # a version-2 header ("OHDR", checksummed) or not a header at all
    starts[0], sizes[0] = header_address + 16, _u(prefix + 8, 4)
    try:
        while seen < queued:
            start, size = starts[seen], sizes[seen]
            seen += 1
            if size > MAX_CHUNK_BYTES or size > file_size or start > file_size - size:
                return checked
            if <Py_ssize_t>size > capacity:
                free(raw)
                capacity = max(<Py_ssize_t>size, 4096)
                raw = <uint8_t *>malloc(capacity)
                if raw == NULL:
                    raise MemoryError()
            end = _read(fd, raw, <Py_ssize_t>size, base + start)
            if end < 0:
                return checked  # unreadable bytes: left to libhdf5's own read, which reports them
            p = 0
            while p + 8 <= end:
                kind, msize = raw[p] | raw[p + 1] << 8, raw[p + 2] | raw[p + 3] << 8
                at = p + 8
                p = at + msize
                stop = min(p, end)
                if kind == ATTRIBUTE:
                    # most attributes hold numbers or fixed-size text: only a variable-length one is parsed on
                    if stop - at < 8:
                        continue
                    version, flags = raw[at], raw[at + 1]
                    name_size = raw[at + 2] | raw[at + 3] << 8
                    if version == 1:
                        type_at = at + 8 + _pad8(name_size)
                    elif (version == 2 or version == 3) and not (flags & 0x03):
                        type_at = at + (8 if version == 2 else 9) + name_size
                    else:
                        continue
                    if type_at < stop and raw[type_at] & 0x0F == VLEN_CLASS:
                        damage = _attribute(raw + at, stop - at, file_size, addr_size, &checked)
                        if damage is not None:
                            return damage
                elif kind == CONTINUATION and stop - at >= addr_size + length_size:
                    if queued < MAX_CHUNKS:
                        starts[queued] = _u(raw + at, addr_size)
                        sizes[queued] = _u(raw + at + addr_size, length_size)
                        queued += 1
        return checked
    finally:
        free(raw)


def check_object(hid_t oid, int fd, uint64_t file_size, int addr_size, int length_size, uint64_t base=0):
    """:func:`scan` of the object ``oid``'s header when it has attributes (0 when it has none);
    :data:`INFO_FAILED` when libhdf5 cannot load the header (the caller asks again through h5py for its
    error).  Needs :func:`configure`."""
    cdef object_info info
    if _get_info == NULL:
        raise RuntimeError("check_object: H5Oget_info3 is not bound (configure first)")
    memset(&info, 0, sizeof(info))
    if _get_info(oid, &info, INFO_BASIC_NUM_ATTRS) < 0:
        return INFO_FAILED
    if info.num_attrs == 0:
        return 0
    return scan(fd, file_size, _u(info.token, min(addr_size, 8)), addr_size, length_size, base)


def find(const uint8_t[::1] data, bytes signature, Py_ssize_t start=0):
    """The first index from ``start`` on where ``signature`` (non-empty) occurs in ``data``; -1 when none
    does (``bytes.find``'s answer)."""
    cdef Py_ssize_t n = data.shape[0], m = len(signature)
    cdef const uint8_t *base
    cdef const uint8_t *sig = signature
    cdef const uint8_t *p
    if m == 0:
        raise ValueError("find: an empty signature")
    if start < 0:
        start = 0
    if n == 0 or start > n - m:
        return -1
    base = &data[0]
    while start <= n - m:
        p = <const uint8_t *>memchr(base + start, sig[0], <size_t>(n - m + 1 - start))
        if p == NULL:
            return -1
        start = p - base
        if memcmp(p, sig, <size_t>m) == 0:
            return start
        start += 1
    return -1
