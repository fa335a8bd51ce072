# cython: language_level=3
"""One group's links listed, their objects opened and its plain datasets checked, in one call.

The open-time safety scan (:func:`h5stream.files.validated.scan_unsafe_objects`)
opens every object of a file once.  A session's file holds tens of thousands of
small datasets of plain numbers, each asked through h5py's wrappers: its
attribute count, creation properties, type and dataspace, then, for a reader of
the whole file, its values.  :func:`members` lists a group's links in the order
h5py's ``links.iterate`` gives them (by name, increasing), opens each object of
a hard link from the group (by its name: an object opened so keeps the path it
was reached by, which h5py's ``.name`` gives) and asks these questions of libhdf5
directly; a
dataset it takes (see :func:`members`) is checked and described here and closed,
and every other link comes back to the caller in order, with its object open, so
the caller checks it as before.  A dataset is taken only where the caller's own
checks would find nothing to refuse and ask nothing more of it; for anything
else, or when libhdf5 fails on a question, the object goes to the caller, who
asks again and raises the library's error, named.

Most of a session's datasets are looked at before that, in their object headers
(``_h5scan_headers.pxi``, included here): a version-2 header, whose checksum
libhdf5's own function checks, holding only messages of a plain dataset (a
dataspace, a datatype of plain numbers, compact or contiguous storage, a fill
value, a time, attributes) is read from the file's descriptor at the object's
address, and the dataset taken (or, with attributes, handed over unopened)
without the library opening it: opening one costs about 15 us of libhdf5's
work, reading and checking its header about 1 us.  Any other object is opened
by the library as above.

The functions are libhdf5's own, found by the caller in the very library h5py
loaded and passed here as addresses by :func:`configure`.  The caller holds the
GIL and h5py's library lock; nothing here releases either.
"""

from libc.stdint cimport int64_t, uint16_t, uint32_t, uint64_t, uint8_t
from libc.string cimport memcmp, memcpy, memset
from libc.stdlib cimport free, malloc

cdef extern from "unistd.h" nogil:
    ssize_t pread(int fd, void *buf, size_t count, long long offset)

import numpy as np

cimport numpy as cnp
from cpython.bytes cimport PyBytes_FromStringAndSize

cnp.import_array()

ctypedef int64_t hid_t
ctypedef uint64_t hsize_t
ctypedef uint64_t haddr_t

cdef union link_target:  # the union of H5L_info2_t (aligned as its size_t member: the token starts at 24)
    uint8_t token[16]  # H5O_token_t, for a hard link
    size_t val_size  # for a soft or external link

cdef struct link_info:  # H5L_info2_t
    int kind
    uint8_t corder_valid
    int64_t corder
    int cset
    link_target u

cdef struct object_info:  # H5O_info2_t
    unsigned long fileno
    uint8_t token[16]
    int kind
    unsigned rc
    long atime
    long mtime
    long ctime
    long btime
    uint64_t num_attrs
    uint8_t spare[192]  # room, should a later libhdf5 grow the structure past num_attrs

ctypedef int (*link_cb_t)(hid_t, const char *, const link_info *, void *) noexcept
ctypedef int (*iterate_t)(hid_t, int, int, hsize_t *, link_cb_t, void *) noexcept
ctypedef hid_t (*open_t)(hid_t, const char *, hid_t) noexcept nogil
ctypedef int (*iget_type_t)(hid_t) noexcept nogil
ctypedef int (*close_t)(hid_t) noexcept nogil
ctypedef int (*get_info_t)(hid_t, object_info *, unsigned) noexcept nogil
ctypedef hid_t (*get_id_t)(hid_t) noexcept nogil
ctypedef int (*get_int_t)(hid_t) noexcept nogil
ctypedef size_t (*get_size_t)(hid_t) noexcept nogil
ctypedef int (*get_fields_t)(hid_t, size_t *, size_t *, size_t *, size_t *, size_t *) noexcept nogil
ctypedef int (*get_dims_t)(hid_t, hsize_t *, hsize_t *) noexcept nogil
ctypedef haddr_t (*get_offset_t)(hid_t) noexcept nogil
ctypedef hsize_t (*get_storage_t)(hid_t) noexcept nogil
ctypedef int (*read_t)(hid_t, hid_t, hid_t, hid_t, hid_t, void *) noexcept nogil
ctypedef uint32_t (*checksum_t)(const void *, size_t, uint32_t) noexcept nogil

#: the libhdf5 functions :func:`configure` takes, in this order
FUNCTIONS = (
    "H5Literate2", "H5Oopen", "H5Iget_type", "H5Oclose", "H5Oget_info3",
    "H5Dget_create_plist", "H5Pget_layout", "H5Pget_external_count", "H5Pget_nfilters", "H5Pclose",
    "H5Dget_type", "H5Tget_class", "H5Tget_size", "H5Tget_order", "H5Tget_sign", "H5Tget_precision",
    "H5Tget_offset", "H5Tget_fields", "H5Tget_ebias", "H5Tclose",
    "H5Dget_space", "H5Sget_simple_extent_type", "H5Sget_simple_extent_ndims", "H5Sget_simple_extent_dims",
    "H5Sclose", "H5Dget_offset", "H5Dget_storage_size", "H5Dread",
)

#: datasets of one group handed over open by :func:`members` (the rest by name: libhdf5 holds kilobytes per
#: open object, and a group can hold a hundred thousand)
cdef Py_ssize_t _OPEN_DATASETS = 1024
OPEN_DATASETS = _OPEN_DATASETS

cdef enum:
    _MAX_RANK = 32
    _LINK_HARD = 0
    _ID_GROUP = 2
    _ID_DATASET = 5
    _COMPACT = 0
    _CONTIGUOUS = 1
    _INTEGER = 0
    _FLOAT = 1
    _ORDER_LE = 0
    _ORDER_BE = 1
    _SCALAR = 0
    _SIMPLE = 1
    _INFO_BASIC_NUM_ATTRS = 0x0001 | 0x0004

cdef iterate_t _iterate = NULL
cdef open_t _oopen = NULL
cdef iget_type_t _iget_type = NULL
cdef close_t _oclose = NULL
cdef get_info_t _get_info = NULL
cdef get_id_t _dget_create_plist = NULL
cdef get_int_t _pget_layout = NULL
cdef get_int_t _pget_external_count = NULL
cdef get_int_t _pget_nfilters = NULL
cdef close_t _pclose = NULL
cdef get_id_t _dget_type = NULL
cdef get_int_t _tget_class = NULL
cdef get_size_t _tget_size = NULL
cdef get_int_t _tget_order = NULL
cdef get_int_t _tget_sign = NULL
cdef get_size_t _tget_precision = NULL
cdef get_int_t _tget_offset = NULL
cdef get_fields_t _tget_fields = NULL
cdef get_size_t _tget_ebias = NULL
cdef close_t _tclose = NULL
cdef get_id_t _dget_space = NULL
cdef get_int_t _sget_extent_type = NULL
cdef get_int_t _sget_ndims = NULL
cdef get_dims_t _sget_dims = NULL
cdef close_t _sclose = NULL
cdef get_offset_t _dget_offset = NULL
cdef get_storage_t _dget_storage_size = NULL
cdef read_t _dread = NULL
cdef checksum_t _checksum = NULL  # libhdf5's H5_checksum_metadata (see configure_headers)

cdef object _group_class = None
cdef object _dataset_class = None
cdef hsize_t _size_floor = 0
cdef dict _dtypes = {}  # (class, order, sign, size) -> numpy dtype


def configure(addresses, group_class, dataset_class, hsize_t size_floor):
    """Bind the functions of :data:`FUNCTIONS` (their addresses, in that order), h5py's low-level group and
    dataset classes (which take over an open id) and the declared size beyond which the caller checks a
    dataset's storage itself (:data:`h5stream.files.header_checks.SIZE_FLOOR`)."""
    global _iterate, _oopen, _iget_type, _oclose, _get_info, _dget_create_plist, _pget_layout
    global _pget_external_count, _pget_nfilters, _pclose, _dget_type, _tget_class, _tget_size, _tget_order
    global _tget_sign, _tget_precision, _tget_offset, _tget_fields, _tget_ebias, _tclose, _dget_space
    global _sget_extent_type, _sget_ndims, _sget_dims, _sclose, _dget_offset, _dget_storage_size, _dread
    global _group_class, _dataset_class, _size_floor
    cdef list a = [int(x) for x in addresses]
    if len(a) != len(FUNCTIONS) or not all(a):
        raise ValueError(f"configure: the addresses of {', '.join(FUNCTIONS)} are needed")
    _iterate = <iterate_t><void *><size_t>a[0]
    _oopen = <open_t><void *><size_t>a[1]
    _iget_type = <iget_type_t><void *><size_t>a[2]
    _oclose = <close_t><void *><size_t>a[3]
    _get_info = <get_info_t><void *><size_t>a[4]
    _dget_create_plist = <get_id_t><void *><size_t>a[5]
    _pget_layout = <get_int_t><void *><size_t>a[6]
    _pget_external_count = <get_int_t><void *><size_t>a[7]
    _pget_nfilters = <get_int_t><void *><size_t>a[8]
    _pclose = <close_t><void *><size_t>a[9]
    _dget_type = <get_id_t><void *><size_t>a[10]
    _tget_class = <get_int_t><void *><size_t>a[11]
    _tget_size = <get_size_t><void *><size_t>a[12]
    _tget_order = <get_int_t><void *><size_t>a[13]
    _tget_sign = <get_int_t><void *><size_t>a[14]
    _tget_precision = <get_size_t><void *><size_t>a[15]
    _tget_offset = <get_int_t><void *><size_t>a[16]
    _tget_fields = <get_fields_t><void *><size_t>a[17]
    _tget_ebias = <get_size_t><void *><size_t>a[18]
    _tclose = <close_t><void *><size_t>a[19]
    _dget_space = <get_id_t><void *><size_t>a[20]
    _sget_extent_type = <get_int_t><void *><size_t>a[21]
    _sget_ndims = <get_int_t><void *><size_t>a[22]
    _sget_dims = <get_dims_t><void *><size_t>a[23]
    _sclose = <close_t><void *><size_t>a[24]
    _dget_offset = <get_offset_t><void *><size_t>a[25]
    _dget_storage_size = <get_storage_t><void *><size_t>a[26]
    _dread = <read_t><void *><size_t>a[27]
    _group_class, _dataset_class = group_class, dataset_class
    _size_floor = size_floor


def configured():
    """Whether :func:`members` can be called (:func:`configure` was)."""
    return _iterate != NULL



include "_h5scan_headers.pxi"

cdef uint64_t object_address(hid_t oid) except? 0:
    cdef object_info info
    cdef uint64_t address = 0
    memset(&info, 0, sizeof(info))
    if _get_info(oid, &info, 0x0001) < 0:
        return 0
    memcpy(&address, info.token, 8)
    return address


def address_of(hid_t oid):
    """The address of the object ``oid`` as :func:`members` keys groups (that of ``h5py.h5o.get_info``),
    None when libhdf5 cannot say."""
    cdef uint64_t address = object_address(oid)
    return address if address else None


cdef object _dtype_of(hid_t tid, int kind, size_t size):
    """The numpy dtype h5py gives the plain number type ``tid``, or None where h5py is left to say it."""
    cdef int order = _tget_order(tid), sign = 0
    cdef size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0, ebias
    if order != _ORDER_LE and order != _ORDER_BE:
        return None
    if kind == _INTEGER:
        if size != 1 and size != 2 and size != 4 and size != 8:
            return None
        sign = _tget_sign(tid)
        if sign != 0 and sign != 1:
            return None
    else:  # IEEE single and double precision only (h5py maps other layouts its own way)
        if _tget_precision(tid) != 8 * size or _tget_offset(tid) != 0:
            return None
        if _tget_fields(tid, &spos, &epos, &esize, &mpos, &msize) < 0:
            return None
        ebias = _tget_ebias(tid)
        if size == 4:
            if not (spos == 31 and epos == 23 and esize == 8 and mpos == 0 and msize == 23 and ebias == 127):
                return None
        elif size == 8:
            if not (spos == 63 and epos == 52 and esize == 11 and mpos == 0 and msize == 52 and ebias == 1023):
                return None
        else:
            return None
    return _dtype_for(kind, order, sign, size)


cdef object _dtype_for(int kind, int order, int sign, size_t size):
    """The numpy dtype of plain numbers of this class, byte order, sign and size (kept once made)."""
    key = (kind, order, sign, size)
    dtype = _dtypes.get(key)
    if dtype is None:
        code = ("<" if order == _ORDER_LE else ">") + ("f" if kind == _FLOAT else ("i" if sign == 1 else "u"))
        dtype = _dtypes[key] = np.dtype(f"{code}{size}")
    return dtype


cdef int _take(hid_t did, bytes full, list describe, hsize_t eager_limit, list storage, set checked) except -1:
    """Check and describe the dataset ``did`` when it is one :func:`members` takes: 1 when taken, 2 when it
    passed the same checks but has attributes (its name added to ``checked``: handed over), else 0."""
    cdef object_info info
    cdef hid_t pid, tid = -1, sid = -1
    cdef int layout, kind, extent, rank, i
    cdef bint plain
    cdef size_t size
    cdef hsize_t dims[_MAX_RANK]
    cdef hsize_t declared, nbytes, stored
    cdef haddr_t offset
    cdef cnp.ndarray out
    memset(&info, 0, sizeof(info))
    if _get_info(did, &info, _INFO_BASIC_NUM_ATTRS) < 0 or (info.num_attrs != 0 and checked is None):
        return 0
    pid = _dget_create_plist(did)
    if pid < 0:
        return 0
    layout = _pget_layout(pid)
    plain = _pget_external_count(pid) == 0 and _pget_nfilters(pid) == 0
    _pclose(pid)
    if not plain or (layout != _COMPACT and layout != _CONTIGUOUS):
        return 0
    try:
        tid = _dget_type(did)
        if tid < 0:
            return 0
        kind = _tget_class(tid)
        if kind != _INTEGER and kind != _FLOAT:
            return 0
        size = _tget_size(tid)
        if size == 0:
            return 0
        dtype = _dtype_of(tid, kind, size)
        if dtype is None:
            return 0
        sid = _dget_space(did)
        if sid < 0:
            return 0
        extent = _sget_extent_type(sid)
        if extent == _SCALAR:
            rank = 0
        elif extent == _SIMPLE:
            rank = _sget_ndims(sid)
            if rank < 0 or rank > _MAX_RANK or _sget_dims(sid, dims, NULL) < 0:
                return 0
        else:
            return 0  # an empty dataspace: the caller's own description
        declared = size
        for i in range(rank):
            if dims[i] and declared > _size_floor // dims[i]:
                return 0  # more than the floor: the caller checks it against its storage
            declared *= dims[i]
        if declared > _size_floor:
            return 0
        if storage is not None and layout == _CONTIGUOUS:
            offset, stored = _dget_offset(did), _dget_storage_size(did)
            if offset != <haddr_t>-1 and stored:
                storage.append((offset, offset + stored))
        if info.num_attrs != 0:
            checked.add(full)
            return 2
        if describe is None:
            return 1
        shape = tuple([dims[i] for i in range(rank)])
        nbytes = declared
        if nbytes > eager_limit:
            where = None
            if layout == _CONTIGUOUS:
                offset, stored = _dget_offset(did), _dget_storage_size(did)
                if offset != <haddr_t>-1 and stored == nbytes:
                    where = (offset, nbytes)
            describe.append((full, dtype, shape, None, where))
            return 1
        out = np.empty(shape, dtype=dtype)
        if nbytes and _dread(did, tid, 0, 0, 0, cnp.PyArray_DATA(out)) < 0:
            return 1  # checked; its read fails again where it is read, and is named there
        describe.append((full, dtype, shape, out, None))
        return 1
    finally:
        if sid >= 0:
            _sclose(sid)
        if tid >= 0:
            _tclose(tid)


def members(hid_t gid, bytes prefix, set seen, bint take, list describe, hsize_t eager_limit, list storage,
            set checked=None, dict listings=None, int fd=-1, uint64_t file_size=0):
    """The links of the open group ``gid`` (full names below ``prefix``, b"" for the root), with their
    objects opened, and, with ``take``, the plain datasets among them checked here; None when libhdf5 fails
    to list them (the caller lists them through h5py, which raises the library's error).

    Returns ``(links, entries)``: ``links`` the number of the group's links; ``entries`` a list of
    ``(full name, link kind, address, object)`` for each link not taken here, in order, ``address`` that of
    a hard link's object (0 for another link), ``object`` None (a soft, external or user-defined link, or
    a group whose address is in ``seen``: reached before), an h5py group or dataset id that now owns the
    object (a group's address is added to ``seen``), or the link's name (bytes) where the caller opens it
    itself (a named datatype, a dataset past the first :data:`OPEN_DATASETS` handed over open, or an object
    libhdf5 failed to open: h5py raises its error).

    A dataset is taken (checked, described and closed here) when it has no attribute, no filter, no
    external storage, a compact or contiguous layout, a type of integers (1, 2, 4 or 8 bytes) or IEEE
    floats (4 or 8 bytes) in either byte order, a scalar or simple dataspace, and declares at most the
    configured floor of bytes: the caller's checks have nothing more to ask of it.  Each taken dataset
    adds ``(start, stop)`` of its contiguous storage to ``storage`` (when a list), and, when ``describe``
    is a list, ``(full name, dtype, shape, values, stored_at)``: its values read in its stored type when
    they are at most ``eager_limit`` bytes (``stored_at`` None), else None with ``stored_at`` the (byte
    offset, byte count) of contiguous storage of exactly the values' size, else None.  A taken dataset
    whose values libhdf5 fails to read is not described.  With ``checked`` a set, a dataset that passes
    the same checks but has attributes is handed over with its name added there (and its storage range
    added to ``storage``): the caller need not check it again.  With ``listings`` a dict, the names of
    all the group's links, in order, are stored there under ``prefix`` (a list of bytes).

    Each hard link's object is opened by its name in the group (``H5Oopen``), not by the token its link holds:
    an object opened by token has no path, and libhdf5 then finds one for ``.name`` by searching the file
    (another link's path, for an object reached by two).

    With ``take``, ``fd`` (the file's descriptor, as libhdf5 reads it: its addresses are byte offsets in it)
    and ``file_size``, and :func:`configure_headers` called, a dataset is first looked at in its object
    header, read here: a version-2 header whose every message is known and plain (:func:`_plain_header`)
    is taken as above without the library opening it, or, when it has attributes and ``checked`` is a
    set, handed over with ``object`` None and its name added to ``checked`` (the caller opens it when it
    reads it).  Any other object is opened by the library as above, which checks it and names what is wrong.
    """
    cdef listing found
    cdef hsize_t idx = 0
    cdef hid_t oid
    cdef int kind, id_type
    cdef uint64_t address
    cdef bytes name, full
    cdef Py_ssize_t handed = 0
    cdef int taken
    cdef list names = []
    cdef list entries = []
    global _headers_taken
    cdef bint unopened = take and fd >= 0 and _checksum != NULL
    if _iterate == NULL:
        raise RuntimeError("members: libhdf5's functions are not bound (configure first)")
    found.names = <void *>names
    found.failed = 0
    if _iterate(gid, 0, 0, &idx, _collect, &found) < 0:
        if found.failed:
            raise MemoryError("members: the links could not be listed")
        return None
    if listings is not None:
        listings[prefix] = [entry[0] for entry in names]
    for name, kind, address in names:
        full = prefix + b"/" + name if prefix else name
        if kind != _LINK_HARD:
            entries.append((full, kind, 0, None))
            continue
        if address in seen:
            entries.append((full, kind, address, None))
            continue
        if unopened:
            taken = _take_unopened(fd, file_size, address, full, describe, eager_limit, storage, checked)
            if taken:
                _headers_taken += 1
                if taken == 2:
                    entries.append((full, kind, address, None))
                continue
        oid = _oopen(gid, <const char *>name, 0)
        if oid < 0:
            entries.append((full, kind, address, name))
            continue
        id_type = _iget_type(oid)
        if id_type == _ID_GROUP:
            try:
                group = _group_class(oid)
            except BaseException:
                _oclose(oid)
                raise
            seen.add(address)
            entries.append((full, kind, address, group))
        elif id_type == _ID_DATASET:
            taken = 0
            try:
                if take:
                    taken = _take(oid, full, describe, eager_limit, storage, checked)
            except BaseException:
                _oclose(oid)
                raise
            if taken == 1 or handed >= _OPEN_DATASETS:
                _oclose(oid)
                if taken != 1:
                    entries.append((full, kind, address, name))
                continue
            try:
                dataset = _dataset_class(oid)
            except BaseException:
                _oclose(oid)
                raise
            handed += 1
            entries.append((full, kind, address, dataset))
        else:
            _oclose(oid)
            entries.append((full, kind, address, name))
    return len(names), entries


ctypedef int (*attr_cb_t)(hid_t, const char *, const void *, void *) noexcept
ctypedef int (*aiterate_t)(hid_t, int, int, hsize_t *, attr_cb_t, void *) noexcept

cdef aiterate_t _aiterate = NULL


def configure_names(size_t aiterate):
    """Bind libhdf5's ``H5Aiterate2`` (its address), which :func:`stored_names` needs; 0 unbinds it."""
    global _aiterate
    _aiterate = <aiterate_t><void *>aiterate


cdef int _collect_name(hid_t oid, const char *name, const void *info, void *data) noexcept:
    cdef listing *into = <listing *>data
    try:
        (<list>into.names).append(<bytes>name)
    except BaseException:
        into.failed = 1
        return -1
    return 0


def stored_names(hid_t oid, bint group):
    """(attribute names, member names) of the open object ``oid`` (``group``: list its links too), as stored
    bytes, each sorted; None when libhdf5 fails to list them (the caller asks through h5py, which raises the
    library's error).  Needs :func:`configure` and :func:`configure_names`."""
    cdef listing found
    cdef hsize_t idx = 0
    cdef list attrs = [], links = [], members
    if _aiterate == NULL or _iterate == NULL:
        raise RuntimeError("stored_names: libhdf5's functions are not bound (configure first)")
    found.names = <void *>attrs
    found.failed = 0
    if _aiterate(oid, 0, 0, &idx, _collect_name, &found) < 0:
        if found.failed:
            raise MemoryError("stored_names: the attribute names could not be listed")
        return None
    if group:
        idx = 0
        found.names = <void *>links
        if _iterate(oid, 0, 0, &idx, _collect, &found) < 0:
            if found.failed:
                raise MemoryError("stored_names: the member names could not be listed")
            return None
    members = [entry[0] for entry in links]
    attrs.sort()
    members.sort()
    return attrs, members
