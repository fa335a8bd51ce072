# The object headers of plain datasets read by the open-time scan itself (included by _h5scan.pyx, whose
# types, constants and bound functions it uses): see _h5scan.members.
def configure_headers(size_t checksum_metadata):
    """Bind libhdf5's ``H5_checksum_metadata`` (its address), which :func:`members` needs to read object
    headers itself (``fd``); 0 unbinds it (every object is then opened through the library)."""
    global _checksum
    _checksum = <checksum_t><void *>checksum_metadata


cdef Py_ssize_t _headers_taken = 0


def headers_taken():
    """How many datasets :func:`members` has taken from their headers without the library opening them."""
    return _headers_taken


def headers_configured():
    """Whether :func:`members` can read object headers itself (:func:`configure_headers` was called)."""
    return _checksum != NULL


cdef enum:
    _HEADER_READ = 512  # bytes read at a header's address first (a plain dataset's header holds about 270)
    _HEADER_MAX = 65536  # a larger first chunk: left to the library
    _MSG_NIL = 0x00
    _MSG_SPACE = 0x01
    _MSG_TYPE = 0x03
    _MSG_FILL = 0x05
    _MSG_LAYOUT = 0x08
    _MSG_ATTRIBUTE = 0x0C
    _MSG_MTIME = 0x12
    _MSG_ATTRIBUTE_INFO = 0x15
    _MSG_FLAGS_ALLOWED = 0x01 | 0x04 | 0x08 | 0x40  # constant, not shareable, fail if unknown (write), shareable


cdef struct plain_header:
    int rank
    hsize_t dims[_MAX_RANK]
    int kind  # _INTEGER or _FLOAT
    int order
    int sign
    size_t size
    int layout  # _COMPACT or _CONTIGUOUS
    const uint8_t *compact  # a compact dataset's values, in the header's buffer
    hsize_t compact_size
    haddr_t address  # a contiguous dataset's storage
    hsize_t stored
    int attributes  # attribute or attribute info messages found (their contents not read)


cdef inline uint64_t _le(const uint8_t *raw, int n) noexcept nogil:
    cdef uint64_t value = 0
    cdef int i
    for i in range(n - 1, -1, -1):
        value = (value << 8) | raw[i]
    return value


cdef int _space(const uint8_t *m, size_t n, plain_header *out) noexcept nogil:
    """A version-2 dataspace message: scalar or simple, its maximum equal to its size; 0 when anything else."""
    cdef int rank, flags, kind, i
    cdef size_t want
    if n < 4 or m[0] != 2:
        return 0
    rank, flags, kind = m[1], m[2], m[3]
    if flags & ~0x01 or rank > _MAX_RANK or (kind == _SCALAR and rank != 0) or (kind == _SIMPLE and rank == 0):
        return 0
    if kind != _SCALAR and kind != _SIMPLE:
        return 0  # a null dataspace: the library's own description
    want = 4 + <size_t>rank * 8 * (2 if flags & 0x01 else 1)
    if n < want:
        return 0
    for i in range(rank):
        out.dims[i] = _le(m + 4 + 8 * i, 8)
        if flags & 0x01 and _le(m + 4 + 8 * (rank + i), 8) != out.dims[i]:
            return 0  # extendible: the library decides what its layout allows
    out.rank = rank
    return 1


cdef int _type(const uint8_t *m, size_t n, plain_header *out) noexcept nogil:
    """A datatype message of integers with every bit used or of IEEE single or double precision floats, in
    either byte order, nothing padded; 0 when anything else."""
    cdef int version = m[0] >> 4 if n else 0, kind = m[0] & 0x0F if n else -1
    cdef uint32_t bits
    cdef size_t size
    if n < 12 or version < 1 or version > 3:
        return 0
    bits = <uint32_t>_le(m + 1, 3)
    size = <size_t>_le(m + 4, 4)
    if _le(m + 8, 2) != 0 or _le(m + 10, 2) != 8 * size:  # bit offset, precision
        return 0
    if kind == _INTEGER:
        if bits & ~<uint32_t>0x09 or (size != 1 and size != 2 and size != 4 and size != 8):
            return 0  # padding bits, or an integer numpy has no type for
        out.sign = 1 if bits & 0x08 else 0
    elif kind == _FLOAT:
        if n < 20 or (bits & 0xFF) & ~0x31 or (bits & 0x30) != 0x20:  # VAX order or padding; normalisation implied
            return 0
        if size == 4:
            if not ((bits >> 8) == 31 and m[12] == 23 and m[13] == 8 and m[14] == 0 and m[15] == 23
                    and _le(m + 16, 4) == 127):
                return 0
        elif size == 8:
            if not ((bits >> 8) == 63 and m[12] == 52 and m[13] == 11 and m[14] == 0 and m[15] == 52
                    and _le(m + 16, 4) == 1023):
                return 0
        else:
            return 0
        out.sign = 0
    else:
        return 0
    out.kind = kind
    out.order = _ORDER_BE if bits & 0x01 else _ORDER_LE
    out.size = size
    return 1


cdef int _fill(const uint8_t *m, size_t n) noexcept nogil:
    """A fill value message of version 1 to 3 that holds together; 0 when not."""
    cdef int flags
    if n < 2 or m[0] < 1 or m[0] > 3:
        return 0
    if m[0] == 3:
        flags = m[1]
        if flags & ~0x3F or (flags & 0x30) == 0x30:
            return 0
        if flags & 0x20 and (n < 6 or 6 + _le(m + 2, 4) > n):
            return 0
        return 1
    if n < 4:
        return 0
    if m[0] == 1 or m[3]:  # a version-1 message always stores the size; version 2 where a value is defined
        if n < 8 or 8 + _le(m + 4, 4) > n:
            return 0
    return 1


cdef int _layout(const uint8_t *m, size_t n, plain_header *out) noexcept nogil:
    """A version-3 or -4 layout message of compact or contiguous storage; 0 when anything else."""
    if n < 2 or (m[0] != 3 and m[0] != 4):
        return 0
    if m[1] == _COMPACT:
        if n < 4 or 4 + _le(m + 2, 2) > n:
            return 0
        out.compact_size = _le(m + 2, 2)
        out.compact = m + 4
    elif m[1] == _CONTIGUOUS:
        if n < 18:
            return 0
        out.address = _le(m + 2, 8)
        out.stored = _le(m + 10, 8)
    else:
        return 0  # chunked or virtual: the library's own checks
    out.layout = m[1]
    return 1


cdef int _plain_header(const uint8_t *b, size_t n, plain_header *out) noexcept nogil:
    """Whether ``b`` (``n`` bytes at an object's address) is a whole version-2 object header, its checksum
    sound, of a dataset with exactly a dataspace, a datatype, a layout and optionally a fill value, a
    modification time and attributes (no filter, external storage, shared or other message, no continuation)
    that :func:`_space`, :func:`_type`, :func:`_fill` and :func:`_layout` accept: 1 and ``out`` filled
    (``out.attributes`` counts the attribute and attribute info messages, left unread);
    0 for anything else (the library then opens the object and asks it, as for any other).  -1 where more
    bytes are needed: ``out.stored`` is then their count."""
    cdef int flags, width, kind, mflags, head
    cdef size_t p, chunk, end, size
    cdef int space = 0, dtype = 0, layout = 0, fill = 0
    if n < 7 or memcmp(b, b"OHDR", 4) != 0 or b[4] != 2:
        return 0
    flags = b[5]
    if flags & ~0x3F:
        return 0
    p = 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
    width = 1 << (flags & 0x03)
    if p + width > n:
        return 0
    chunk = <size_t>_le(b + p, width)
    p += width
    if chunk > _HEADER_MAX:
        return 0
    end = p + chunk
    if end + 4 > n:
        out.stored = end + 4
        return -1
    if _checksum(b, end, 0) != <uint32_t>_le(b + end, 4):
        return 0  # damaged: the library refuses it, and says why
    head = 6 if flags & 0x04 else 4
    while p + head <= end:
        kind, size, mflags = b[p], <size_t>_le(b + p + 1, 2), b[p + 3]
        p += head
        if p + size > end or mflags & ~_MSG_FLAGS_ALLOWED:
            return 0
        if kind == _MSG_NIL or kind == _MSG_MTIME:
            pass
        elif kind == _MSG_ATTRIBUTE or kind == _MSG_ATTRIBUTE_INFO:
            out.attributes += 1  # (read by whoever reads the attributes, through the library)
        elif kind == _MSG_SPACE and not space:
            space = _space(b + p, size, out)
            if not space:
                return 0
        elif kind == _MSG_TYPE and not dtype:
            dtype = _type(b + p, size, out)
            if not dtype:
                return 0
        elif kind == _MSG_LAYOUT and not layout:
            layout = _layout(b + p, size, out)
            if not layout:
                return 0
        elif kind == _MSG_FILL and not fill:
            fill = _fill(b + p, size)
            if not fill:
                return 0
        else:
            return 0  # any other message (filters, external storage, continuation, shared, ...), or one twice
        p += size
    return 1 if space and dtype and layout else 0


cdef int _take_unopened(int fd, uint64_t file_size, haddr_t address, bytes full, list describe,
                        hsize_t eager_limit, list storage, set checked) except -1:
    """Take the dataset whose object header lies at ``address`` as :func:`_take` takes an open one, from
    its header read here (:func:`_plain_header`) without the library opening it: 1 when taken, 2 when it
    passed the same checks but has attributes (its name added to ``checked``, its storage to ``storage``:
    handed over unopened), 0 when the library is to open it (anything else, or anything unexpected)."""
    cdef uint8_t first[_HEADER_READ]
    cdef uint8_t *b = first
    cdef uint8_t *more = NULL
    cdef plain_header h
    cdef ssize_t got
    cdef size_t n
    cdef int found, i
    cdef hsize_t declared
    cdef cnp.ndarray out
    if address == 0 or address >= file_size:
        return 0
    memset(&h, 0, sizeof(h))
    n = <size_t>min(<uint64_t>_HEADER_READ, file_size - address)
    with nogil:
        got = pread(fd, b, n, <long long>address)
    if got != <ssize_t>n:
        return 0
    try:
        found = _plain_header(b, n, &h)
        if found == -1 and address + h.stored <= file_size:
            n = h.stored
            more = <uint8_t *>malloc(n)
            if more == NULL:
                raise MemoryError()
            b = more
            with nogil:
                got = pread(fd, b, n, <long long>address)
            if got != <ssize_t>n:
                return 0
            memset(&h, 0, sizeof(h))
            found = _plain_header(b, n, &h)
        if found != 1 or (h.attributes and checked is None):
            return 0
        declared = h.size
        for i in range(h.rank):
            if h.dims[i] and declared > _size_floor // h.dims[i]:
                return 0
            declared *= h.dims[i]
        if declared > _size_floor:
            return 0
        if h.layout == _COMPACT:
            if h.compact_size != declared:
                return 0  # the library refuses a compact buffer of another size
        elif (declared == 0 or h.address == <haddr_t>-1 or h.stored != declared or h.address > file_size
              or h.stored > file_size - h.address):
            return 0  # unallocated, of another size, or past the end: the library's own checks
        if storage is not None and h.layout == _CONTIGUOUS:
            storage.append((h.address, h.address + h.stored))
        if h.attributes:
            checked.add(full)
            return 2
        if describe is None:
            return 1
        dtype = _dtype_for(h.kind, h.order, h.sign, h.size)
        shape = tuple([h.dims[i] for i in range(h.rank)])
        if declared > eager_limit:
            describe.append((full, dtype, shape, None,
                             (h.address, declared) if h.layout == _CONTIGUOUS else None))
            return 1
        out = np.empty(shape, dtype=dtype)
        if declared:
            if h.layout == _COMPACT:
                memcpy(cnp.PyArray_DATA(out), h.compact, declared)
            else:
                with nogil:
                    got = pread(fd, cnp.PyArray_DATA(out), declared, <long long>h.address)
                if got != <ssize_t>declared:
                    return 0  # the library reads it, and names what fails
        describe.append((full, dtype, shape, out, None))
        return 1
    finally:
        if more != NULL:
            free(more)


cdef struct listing:
    void *names  # a list of (name, link kind, address)
    int failed


cdef int _collect(hid_t group, const char *name, const link_info *info, void *data) noexcept:
    cdef listing *into = <listing *>data
    cdef uint64_t address = 0
    cdef bytes member
    try:
        member = name
        if info.kind == _LINK_HARD:
            memcpy(&address, info.u.token, 8)  # the native token holds the address, little-endian, zero-padded
        (<list>into.names).append((member, info.kind, address))
    except BaseException:
        into.failed = 1
        return -1
    return 0

