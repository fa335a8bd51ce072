# cython: language_level=3
"""An object's attributes read as h5py reads them, in one call (:func:`h5stream.batch_attrs.read_plain`).

A session's file has thousands of objects carrying a few small attributes (the
tree's type tags, a unit's numbers); asked one foreign call at a time through
``ctypes``, each attribute costs a dozen conversions of arguments and results.
:func:`read_plain` asks the same questions of libhdf5 in C: each attribute opened
by its index (by name, increasing), named, and, for a scalar number of a native
kind and size or a scalar variable-length text, read into the caller's buffers;
anything else is marked for the caller, who reads it through h5py.  An object of more
than a few attributes has them listed once and each opened by its name instead (opening
by index decodes and sorts all of an object's attributes again for each one).

The functions are libhdf5's own, found by the caller in the very library h5py
loaded and passed here as addresses by :func:`configure`.  The caller holds the
GIL and h5py's library lock; nothing here releases either.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport strlen

ctypedef int64_t hid_t
ctypedef uint64_t hsize_t

ctypedef int (*get_int_t)(hid_t) noexcept nogil
ctypedef hid_t (*get_id_t)(hid_t) noexcept nogil
ctypedef hid_t (*open_by_idx_t)(hid_t, const char *, int, int, hsize_t, hid_t, hid_t) noexcept nogil
ctypedef Py_ssize_t (*get_name_t)(hid_t, size_t, char *) noexcept nogil
ctypedef size_t (*get_size_t)(hid_t) noexcept nogil
ctypedef int (*read_t)(hid_t, hid_t, void *) noexcept nogil
ctypedef int (*free_t)(void *) noexcept nogil
ctypedef int (*attr_cb_t)(hid_t, const char *, const void *, void *) noexcept
ctypedef int (*iterate_t)(hid_t, int, int, hsize_t *, attr_cb_t, void *) noexcept
ctypedef hid_t (*open_t)(hid_t, const char *, hid_t) noexcept nogil

#: the libhdf5 functions :func:`configure` takes, in this order
FUNCTIONS = ("H5Aget_num_attrs", "H5Aopen_by_idx", "H5Aget_name", "H5Aclose", "H5Aget_space",
             "H5Sget_simple_extent_type", "H5Sclose", "H5Aget_type", "H5Tget_class", "H5Tget_sign", "H5Tget_size",
             "H5Tis_variable_str", "H5Tget_cset", "H5Tclose", "H5Aread", "H5free_memory", "H5Aiterate2", "H5Aopen")

#: past this many attributes an object's are listed once (``H5Aiterate2``, by name) and each opened by its name:
#: ``H5Aopen_by_idx`` decodes and sorts all the object's attributes for every index it opens
cdef int _LISTED_PAST = 4

cdef enum:
    _INTEGER = 0
    _FLOAT = 1
    _STRING = 3
    _SCALAR = 0
    _SGN_NONE = 0
    _NAME = 1024

cdef get_int_t _num_attrs = NULL
cdef open_by_idx_t _open_by_idx = NULL
cdef get_name_t _get_name = NULL
cdef get_int_t _aclose = NULL
cdef get_id_t _aget_space = NULL
cdef get_int_t _extent_type = NULL
cdef get_int_t _sclose = NULL
cdef get_id_t _aget_type = NULL
cdef get_int_t _tget_class = NULL
cdef get_int_t _tget_sign = NULL
cdef get_size_t _tget_size = NULL
cdef get_int_t _is_variable_str = NULL
cdef get_int_t _tget_cset = NULL
cdef get_int_t _tclose = NULL
cdef read_t _aread = NULL
cdef free_t _free_memory = NULL
cdef iterate_t _iterate = NULL
cdef open_t _open = NULL

cdef dict _buffers = None     # (kind, size) -> (one-element numpy buffer, its address, memory type id)
cdef dict _text_types = None  # character set -> memory type id of variable-length text
cdef object _left = None


def configure(addresses, dict buffers, dict text_types, left):
    """Bind the functions of :data:`FUNCTIONS` (their addresses, in that order), the one-element buffers of
    number values by ``(kind, size)`` (``(numpy buffer, its address, memory type id)``), the memory types of
    variable-length text by character set, and the mark of a value left to the caller."""
    global _num_attrs, _open_by_idx, _get_name, _aclose, _aget_space, _extent_type, _sclose, _aget_type
    global _tget_class, _tget_sign, _tget_size, _is_variable_str, _tget_cset, _tclose, _aread, _free_memory
    global _buffers, _text_types, _left, _iterate, _open
    cdef list a = [int(x) for x in addresses]
    if len(a) != len(FUNCTIONS) or not all(a):
        raise ValueError(f"configure: the addresses of {', '.join(FUNCTIONS)} are needed")
    _num_attrs = <get_int_t><void *><size_t>a[0]
    _open_by_idx = <open_by_idx_t><void *><size_t>a[1]
    _get_name = <get_name_t><void *><size_t>a[2]
    _aclose = <get_int_t><void *><size_t>a[3]
    _aget_space = <get_id_t><void *><size_t>a[4]
    _extent_type = <get_int_t><void *><size_t>a[5]
    _sclose = <get_int_t><void *><size_t>a[6]
    _aget_type = <get_id_t><void *><size_t>a[7]
    _tget_class = <get_int_t><void *><size_t>a[8]
    _tget_sign = <get_int_t><void *><size_t>a[9]
    _tget_size = <get_size_t><void *><size_t>a[10]
    _is_variable_str = <get_int_t><void *><size_t>a[11]
    _tget_cset = <get_int_t><void *><size_t>a[12]
    _tclose = <get_int_t><void *><size_t>a[13]
    _aread = <read_t><void *><size_t>a[14]
    _free_memory = <free_t><void *><size_t>a[15]
    _iterate = <iterate_t><void *><size_t>a[16]
    _open = <open_t><void *><size_t>a[17]
    _buffers, _text_types, _left = buffers, text_types, left


def configured():
    """Whether :func:`read_plain` can be called (:func:`configure` was)."""
    return _num_attrs != NULL


cdef object _value(hid_t aid):
    """The value of attribute ``aid`` as h5py reads it (a numpy scalar, or ``str``), or the left mark."""
    cdef hid_t sid, tid
    cdef int cls, scalar
    cdef char *pointer = NULL
    cdef size_t address
    sid = _aget_space(aid)
    if sid < 0:
        raise OSError("libhdf5 failed to get an attribute's dataspace")
    scalar = _extent_type(sid) == _SCALAR
    _sclose(sid)
    if not scalar:
        return _left
    tid = _aget_type(aid)
    if tid < 0:
        raise OSError("libhdf5 failed to get an attribute's type")
    try:
        cls = _tget_class(tid)
        if cls == _INTEGER:
            key = ("u" if _tget_sign(tid) == _SGN_NONE else "i", _tget_size(tid))
        elif cls == _FLOAT:
            key = ("f", _tget_size(tid))
        elif cls == _STRING and _is_variable_str(tid) > 0:
            key = ("text", _tget_cset(tid))
        else:
            return _left
    finally:
        _tclose(tid)
    known = _buffers.get(key)
    if known is not None:
        buffer, address, memtype = known
        if _aread(aid, <hid_t>memtype, <void *><size_t>address) < 0:
            raise OSError("libhdf5 failed to read an attribute")
        return buffer[0]
    if key[0] != "text":
        return _left
    memtype = _text_types.get(key[1])
    if memtype is None:
        return _left
    if _aread(aid, <hid_t>memtype, &pointer) < 0:
        raise OSError("libhdf5 failed to read an attribute")
    try:
        raw = pointer[:strlen(pointer)] if pointer != NULL else b""
    finally:
        if pointer != NULL:
            _free_memory(pointer)
    try:
        return raw.decode("utf-8")  # h5py decodes every variable-length text as UTF-8
    except UnicodeDecodeError:
        return _left  # h5py and the tree reader name the damage


cdef struct listing:
    void *names  # a list of the attributes' names (bytes)
    int failed


cdef int _collect(hid_t location, const char *name, const void *info, void *data) noexcept:
    cdef listing *into = <listing *>data
    try:
        (<list>into.names).append(<bytes>name)
    except BaseException:
        into.failed = 1
        return -1
    return 0


cdef object _read_listed(hid_t oid, int count, internal):
    """:func:`read_plain` of an object of more than :data:`_LISTED_PAST` attributes: their names listed in
    one pass, by name, increasing (the order of ``H5Aopen_by_idx``), each attribute opened by its name."""
    cdef listing found
    cdef hsize_t idx = 0
    cdef list names = []
    cdef hid_t aid
    cdef dict out = {}
    cdef bytes raw
    found.names = <void *>names
    found.failed = 0
    if _iterate(oid, 0, 0, &idx, _collect, &found) < 0:
        if found.failed:
            raise MemoryError("read_plain: the attributes could not be listed")
        raise OSError("libhdf5 failed to list the attributes")
    if len(names) != count:
        raise OSError("libhdf5 listed another number of attributes than it counted")
    for raw in names:
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if name in internal:
            return None
        aid = _open(oid, <const char *>raw, 0)
        if aid < 0:
            raise OSError("libhdf5 failed to open an attribute")
        try:
            out[name] = _value(aid)
        finally:
            _aclose(aid)
    return out


def read_plain(hid_t oid, internal):
    """``{name: value or the left mark}`` of every attribute of the object ``oid``; None when one is in
    ``internal`` or a name is not UTF-8 (see :func:`h5stream.batch_attrs.read_plain`)."""
    cdef int count, index
    cdef hid_t aid
    cdef Py_ssize_t length
    cdef char fixed[_NAME]
    cdef char *name_buffer = fixed
    cdef size_t size = _NAME
    cdef dict out = {}
    if _num_attrs == NULL:
        raise RuntimeError("read_plain: libhdf5's functions are not bound (configure first)")
    count = _num_attrs(oid)
    if count < 0:
        raise OSError("libhdf5 failed to count the attributes")
    if count > _LISTED_PAST:
        return _read_listed(oid, count, internal)
    try:
        for index in range(count):
            aid = _open_by_idx(oid, b".", 0, 0, index, 0, 0)
            if aid < 0:
                raise OSError("libhdf5 failed to open an attribute")
            try:
                length = _get_name(aid, size, name_buffer)
                if length < 0:
                    raise OSError("libhdf5 failed to name an attribute")
                if <size_t>length >= size:
                    if name_buffer != fixed:
                        free(name_buffer)
                    name_buffer = <char *>malloc(length + 1)
                    if name_buffer == NULL:
                        name_buffer = fixed
                        raise MemoryError()
                    size = length + 1
                    _get_name(aid, size, name_buffer)
                try:
                    name = name_buffer[:strlen(name_buffer)].decode("utf-8")
                except UnicodeDecodeError:
                    return None
                if name in internal:
                    return None
                out[name] = _value(aid)
            finally:
                _aclose(aid)
    finally:
        if name_buffer != fixed:
            free(name_buffer)
    return out
