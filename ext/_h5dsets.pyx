# cython: language_level=3
"""A group's small datasets created, written, digested and closed in one call.

A recording's session file holds tens of thousands of small arrays (one spike
train per trial, per unit, per movie).  Written one by one from Python, each
costs its own node dispatch, three foreign calls through ctypes with their
argument conversion, a private copy, a digest and a dataspace: more than
libhdf5's own work for a tiny dataset.  :func:`write_datasets` does the same for
a whole list of a group's children in C, and stops at the first child it does
not take (a group, an array with attributes, an array on disk, text, a
structured or byte-swapped array, an array larger than the snapshot limit) and
hands it back, so the caller writes that one its own way and the children keep
their order.  An array whose only attribute is its type tag (a number stored
with its Python type: ``int``, ``float``, ``list:int``) is taken too, once
:func:`configure_tags` named the attribute: the tag is written as the
attribute the per-node writer writes (a scalar UTF-8 string, created, written
and closed before the dataset is closed), and the caller records its digest.

What is written is exactly what the per-node writer of :mod:`h5stream.tree.write`
writes: the same type (the dtype's, given by the caller), dataspace, link- and
creation property lists (compact up to the compact limit, contiguous beyond and
for empty arrays), so the file's bytes are the same.  The digest of a dataset
(:func:`h5stream.digests.array_digest`: CRC-32 of ``"<dtype.str>|<shape>"`` and
the bytes in C order) is taken from one private copy of the array, and the
dataset is written from that copy, so a thread changing the array meanwhile
cannot make the digest and the file disagree (as
:func:`h5stream.lowlevel.write_snapshots`); without a digest to take, the array
is written as it is.

The functions are libhdf5's own, found by the caller in the very library h5py
loaded and passed here as addresses by :func:`configure`.  The caller holds the
GIL and the engine's library lock; nothing here releases either.

:class:`RawWriter` takes the bytes of a new file's contiguous datasets off the writing thread: given one,
:func:`write_datasets` creates such a dataset with its space allocated at creation and queues its array;
a second thread copies, digests and ``pwrite``\ s it at the dataset's offset meanwhile.

:func:`read_checked` is the other direction: the bytes of a dataset stored as one
plain run, read with ``pread`` straight into the caller's array and digested piece
by piece as they land (the digests of :mod:`h5stream.checksums._pieces`), in one
call without the GIL.

The source is split along these seams and included here, so they stay one module
sharing the bound libhdf5 functions and the digest state: :class:`RawWriter` in
``_h5dsets_raw.pxi``, :class:`GroupWalk` in ``_h5dsets_walk.pxi``, :func:`read_checked`
in ``_h5dsets_read.pxi``.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport realloc, free
from libc.stdio cimport snprintf
from libc.errno cimport errno, EINTR
from posix.unistd cimport close, pread, pwrite

import os

import numpy as np

cimport numpy as cnp
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from cpython.long cimport PyLong_FromVoidPtr

cdef extern from "string.h" nogil:
    void *memcpy(void *dest, const void *src, size_t n)
    int memcmp(const void *a, const void *b, size_t n)

cdef extern from "zlib.h" nogil:
    unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int length)

cdef extern from "pthread.h" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    int pthread_mutex_init(pthread_mutex_t *, const void *)
    int pthread_mutex_destroy(pthread_mutex_t *)
    int pthread_mutex_lock(pthread_mutex_t *)
    int pthread_mutex_unlock(pthread_mutex_t *)
    int pthread_cond_init(pthread_cond_t *, const void *)
    int pthread_cond_destroy(pthread_cond_t *)
    int pthread_cond_wait(pthread_cond_t *, pthread_mutex_t *)
    int pthread_cond_signal(pthread_cond_t *)
    int pthread_cond_broadcast(pthread_cond_t *)

cnp.import_array()

ctypedef int64_t hid_t
ctypedef uint64_t hsize_t
ctypedef hid_t (*dcreate_t)(hid_t, const char *, hid_t, hid_t, hid_t, hid_t, hid_t) noexcept nogil
ctypedef int (*dwrite_t)(hid_t, hid_t, hid_t, hid_t, hid_t, const void *) noexcept nogil
ctypedef int (*dclose_t)(hid_t) noexcept nogil
ctypedef hid_t (*screate_simple_t)(int, const hsize_t *, const hsize_t *) noexcept nogil
ctypedef int (*sset_extent_t)(hid_t, int, const hsize_t *, const hsize_t *) noexcept nogil
ctypedef unsigned int (*crc32_t)(unsigned int, const void *, size_t) noexcept nogil
ctypedef hid_t (*acreate_t)(hid_t, const char *, hid_t, hid_t, hid_t, hid_t) noexcept nogil
ctypedef int (*awrite_t)(hid_t, hid_t, const void *) noexcept nogil
ctypedef int (*aclose_t)(hid_t) noexcept nogil
ctypedef uint64_t (*dget_offset_t)(hid_t) noexcept nogil

#: what :func:`write_datasets` returns beside the index where it stopped
DONE = 0           # every child is written
YOURS = 1          # the child at the index is for the caller (not taken here)
CREATE_FAILED = 2  # H5Dcreate2 failed for the child at the index
WRITE_FAILED = 3   # H5Dwrite failed for it (the dataset exists, unwritten)
SPACE_FAILED = 4   # no dataspace could be made for it (nothing created)
TAG_FAILED = 5     # its type tag could not be written (the dataset exists, written)

cdef enum:
    _MAX_RANK = 32
    _MAX_TYPES = 64

cdef dcreate_t _dcreate = NULL
cdef dwrite_t _dwrite = NULL
cdef dclose_t _dclose = NULL
cdef screate_simple_t _screate_simple = NULL
cdef sset_extent_t _sset_extent = NULL
cdef hid_t _scalar_space = -1
cdef hid_t _spaces[_MAX_RANK + 1]   # one reused simple dataspace per rank (its extent set per dataset)
cdef hid_t _types[_MAX_TYPES]        # numpy type number -> HDF5 type id (memory and file), -1 when not taken
cdef char _kinds[_MAX_TYPES][8]      # numpy type number -> dtype.str of its native form ("<i8", "|b1")
cdef object _dataset_class = None
cdef Py_ssize_t _compact_limit = 0
cdef Py_ssize_t _snapshot_limit = 0
cdef crc32_t _fast_crc = NULL         # libdeflate's CRC-32 (zlib's value, faster), when installed
#: below this many bytes zlib's CRC-32 is as fast (libdeflate's gain is in long runs)
cdef size_t _FAST_CRC_MIN = 16384
cdef char *_scratch = NULL            # the private copy of the array being written
cdef acreate_t _acreate = NULL        # H5Acreate2, H5Awrite, H5Aclose: the type tag's attribute
cdef awrite_t _awrite = NULL
cdef aclose_t _aclose = NULL
cdef hid_t _text_type = -1            # the variable-length UTF-8 string type of the tag
cdef bytes _tag_name = None           # the tag attribute's name (None: tagged nodes are handed back)
cdef size_t _scratch_size = 0
cdef dget_offset_t _dget_offset = NULL  # H5Dget_offset: where a dataset allocated at creation keeps its bytes

for _k in range(_MAX_RANK + 1):
    _spaces[_k] = -1
for _k in range(_MAX_TYPES):
    _types[_k] = -1
    _kinds[_k][0] = 0


cdef void _set_kind(int num, str kind) except *:
    encoded = kind.encode("ascii")
    if not 0 <= num < _MAX_TYPES or len(encoded) >= 8:
        raise ValueError(f"configure: type number {num} or dtype text {kind!r} out of range")
    memcpy(_kinds[num], <const char *>encoded, len(encoded) + 1)


#: the native numeric types whose digests :func:`first_changed` takes without a hand back (numbers,
#: booleans and complex numbers: :data:`h5stream.lowlevel._DATASET_TYPES`)
for _char in "?bBhHiIlLqQefdFD":
    _set_kind(np.dtype(_char).num, np.dtype(_char).str)


def configure(size_t dcreate, size_t dwrite, size_t dclose, size_t screate_simple, size_t sset_extent,
              hid_t scalar_space, dict types, Py_ssize_t compact_limit, Py_ssize_t snapshot_limit,
              size_t fast_crc32=0):
    """Bind libhdf5's ``H5Dcreate2``, ``H5Dwrite``, ``H5Dclose``, ``H5Screate_simple`` and
    ``H5Sset_extent_simple`` (addresses); the scalar dataspace to use; the array types taken (numpy
    type number -> ``(HDF5 type id, dtype.str)``); the compact layout's limit in bytes
    (:data:`h5stream.lowlevel.COMPACT_LIMIT`); the largest array taken (larger ones are written
    block by block by the caller, :data:`h5stream.lowlevel.SNAPSHOT_BLOCK`); and the address of
    libdeflate's ``libdeflate_crc32`` (0 without it: zlib's ``crc32``, the same value)."""
    global _dcreate, _dwrite, _dclose, _screate_simple, _sset_extent, _scalar_space
    global _compact_limit, _snapshot_limit, _fast_crc
    cdef int num
    if not (dcreate and dwrite and dclose and screate_simple and sset_extent):
        raise ValueError("configure: every libhdf5 function address is needed")
    _dcreate = <dcreate_t><void *>dcreate
    _dwrite = <dwrite_t><void *>dwrite
    _dclose = <dclose_t><void *>dclose
    _screate_simple = <screate_simple_t><void *>screate_simple
    _sset_extent = <sset_extent_t><void *>sset_extent
    _scalar_space = scalar_space
    for num in range(_MAX_TYPES):
        _types[num] = -1
    for key, (tid, kind) in types.items():
        num = key
        _set_kind(num, kind)
        _types[num] = tid
    _compact_limit = compact_limit
    _snapshot_limit = snapshot_limit
    configure_crc(fast_crc32)


def configure_crc(size_t fast_crc32):
    """The address of libdeflate's ``libdeflate_crc32`` (0 without it: zlib's ``crc32``, the same value)."""
    global _fast_crc
    _fast_crc = <crc32_t><void *>fast_crc32 if fast_crc32 else NULL


def configure_tags(size_t acreate, size_t awrite, size_t aclose, hid_t text_type, str name):
    """Bind libhdf5's ``H5Acreate2``, ``H5Awrite`` and ``H5Aclose`` (addresses), the variable-length UTF-8
    string type and the name of the type tag's attribute (:data:`h5stream.tree.nodes.TYPE_ATTR`): from then
    on :func:`write_datasets` takes an array with a tag and no other attribute."""
    global _acreate, _awrite, _aclose, _text_type, _tag_name
    if not (acreate and awrite and aclose):
        raise ValueError("configure_tags: every libhdf5 function address is needed")
    _acreate = <acreate_t><void *>acreate
    _awrite = <awrite_t><void *>awrite
    _aclose = <aclose_t><void *>aclose
    _text_type = text_type
    _tag_name = name.encode("utf-8")


cdef int _write_tag(hid_t did, str tag):
    """Create and write the scalar string attribute holding ``tag`` (ASCII) on ``did``; negative on failure."""
    cdef const char *data = PyUnicode_AsUTF8AndSize(tag, NULL)
    cdef hid_t aid = _acreate(did, <const char *>_tag_name, _text_type, _scalar_space, 0, 0)
    cdef int status
    if aid < 0:
        return -1
    status = _awrite(aid, _text_type, &data)
    _aclose(aid)
    return status


cdef int _write_text(hid_t gid, name, str item, hid_t lcpl, hid_t dcpl, tag) except -1:
    """Create scalar text dataset ``name`` in ``gid`` holding ``item``, with its type ``tag`` (or None);
    a status of :func:`write_datasets`."""
    cdef const char *data = PyUnicode_AsUTF8AndSize(item, NULL)
    cdef const char *key = PyUnicode_AsUTF8AndSize(name, NULL)
    cdef hid_t did = _dcreate(gid, key, _text_type, _scalar_space, lcpl, dcpl, 0)
    if did < 0:
        return CREATE_FAILED
    if _dwrite(did, _text_type, 0, 0, 0, <const void *>&data) < 0:
        _dclose(did)
        return WRITE_FAILED
    if tag is not None and _write_tag(did, <str>tag) < 0:
        _dclose(did)
        return TAG_FAILED
    _dclose(did)
    return DONE


def take_nodes(node_class):
    """The class of the dataset nodes taken (:class:`h5stream.tree.nodes.Dataset`: ``data``, ``attrs``
    and ``tag``); until it is named, every node is handed back."""
    global _dataset_class
    _dataset_class = node_class


cdef hid_t _space(int ndim, cnp.npy_intp *shape):
    """The dataspace of an array of ``shape`` (a reused one per rank), or -1."""
    cdef hsize_t dims[_MAX_RANK]
    cdef int k
    if ndim == 0:
        return _scalar_space
    for k in range(ndim):
        dims[k] = <hsize_t>shape[k]
    if _spaces[ndim] < 0:
        _spaces[ndim] = _screate_simple(ndim, dims, NULL)
        return _spaces[ndim]
    if _sset_extent(_spaces[ndim], ndim, dims, NULL) < 0:
        return -1
    return _spaces[ndim]


cdef unsigned long _header_crc(const char *kind, int ndim, cnp.npy_intp *shape):
    """CRC-32 of ``"<kind>|<shape>"``, the shape as Python writes a tuple of ints."""
    cdef char text[1024]
    cdef int n, k
    n = snprintf(text, 64, "%s|(", kind)
    for k in range(ndim):
        if k:
            n += snprintf(text + n, 4, ", ")
        n += snprintf(text + n, 24, "%lld", <long long>shape[k])
    if ndim == 1:
        n += snprintf(text + n, 4, ",")
    n += snprintf(text + n, 4, ")")
    return crc32(0, <const unsigned char *>text, <unsigned int>n)


cdef unsigned long _crc(unsigned long crc, const char *data, size_t n) noexcept nogil:
    cdef unsigned int k
    if _fast_crc != NULL and n >= _FAST_CRC_MIN:
        return _fast_crc(<unsigned int>crc, data, n)
    while n > 0:  # zlib takes at most 4 GiB a call
        k = <unsigned int>(n if n < 0x40000000 else 0x40000000)
        crc = crc32(crc, <const unsigned char *>data, k)
        data += k
        n -= k
    return crc


include "_h5dsets_raw.pxi"


def write_datasets(hid_t gid, list names, list nodes, Py_ssize_t start, hid_t lcpl, hid_t compact,
                   hid_t contiguous, dict written, list recorded, bint record_compact, list tagged=None,
                   RawWriter raw=None, hid_t allocated=-1, list deferred=None, hid_t text_dcpl=-1,
                   text_digest=None):
    """Create dataset ``names[i]`` in group ``gid`` holding ``nodes[i].data``, for ``i`` from ``start`` on.

    Taken here: a node of the configured class without attributes or tag whose data is a C-contiguous
    ``numpy.ndarray`` (exactly) of a configured type in native byte order, of at most the snapshot limit
    in bytes (of any size with ``raw``).  ``lcpl``: the link creation list; ``compact`` and ``contiguous``: the dataset creation
    lists of the two layouts.  When ``written`` is a dict, ``written[id(node)]`` receives the digest of
    what was written; when ``recorded`` is a list, the name and digest of each dataset the file's checksum
    manifest records (every contiguous one, and compact ones too with ``record_compact``) are appended to
    it (name, digest, name, digest, ...).  When ``tagged`` is a list (and :func:`configure_tags` was called),
    a node whose only attribute is its type tag (an ASCII ``str``) is taken as well: its tag is written as that
    attribute before the dataset is closed, and its name and tag are appended to ``tagged`` (name, tag, ...)
    for the caller to record the attribute's digest.  Returns ``(i, status)``: where it stopped and why
    (:data:`DONE`, :data:`YOURS`, :data:`CREATE_FAILED`, :data:`WRITE_FAILED`, :data:`SPACE_FAILED`,
    :data:`TAG_FAILED`).

    With ``raw`` (a :class:`RawWriter` on the file, once :func:`configure_raw` bound ``H5Dget_offset``) and
    ``allocated`` (the contiguous creation list with its space allocated at creation and no fill), a
    contiguous dataset is created with ``allocated`` and its bytes are queued on ``raw`` instead of written
    here; its digest is not known yet: ``recorded`` and ``deferred`` then receive ``name, index`` (the index
    of its digest among those ``raw.finish()`` returns), ``written`` nothing (``deferred`` gets ``id(node),
    index`` for it, after the name).

    With ``text_dcpl`` (the creation list of text datasets) and ``text_digest`` (the digest of one string,
    :func:`h5stream.digests.scalar_text_digest`), a scalar text dataset is taken too (a 0-d array of
    object or unicode type holding a ``str``; :func:`configure_tags` gave the string type): written as a
    variable-length UTF-8 string, its digest that of its string (always recorded: text is never compact).
    """
    global _scratch, _scratch_size
    cdef Py_ssize_t i, n = len(names)
    cdef cnp.ndarray array
    cdef int num, ndim, status
    cdef hid_t tid, space, did, dcpl
    cdef size_t nbytes
    cdef bint is_compact, record, digest
    cdef const char *key
    cdef const void *source
    cdef char *grown
    cdef unsigned long crc
    cdef bint take_tags = tagged is not None and _tag_name is not None
    cdef bint take_text = text_dcpl >= 0 and text_digest is not None and _text_type >= 0
    cdef bint to_raw = raw is not None and _dget_offset != NULL and allocated >= 0 and deferred is not None
    cdef uint64_t offset
    cdef Py_ssize_t index
    if _dcreate == NULL:
        raise RuntimeError("h5stream._ext._h5dsets.write_datasets: configure() comes first")
    if len(nodes) != n:
        raise ValueError("write_datasets: names and nodes differ in length")
    for i in range(start, n):
        node = nodes[i]
        if type(node) is not _dataset_class or node.attrs:
            return i, YOURS
        tag = node.tag
        if tag is not None and not (take_tags and type(tag) is str and (<str>tag).isascii()):
            return i, YOURS
        data = node.data
        if type(data) is not np.ndarray:
            return i, YOURS
        array = <cnp.ndarray>data
        num = cnp.PyArray_TYPE(array)
        ndim = cnp.PyArray_NDIM(array)
        if ndim == 0 and (num == cnp.NPY_OBJECT or num == cnp.NPY_UNICODE) and take_text:
            item = array.item()
            if type(item) is not str:
                return i, YOURS
            status = _write_text(gid, names[i], <str>item, lcpl, text_dcpl, tag)
            if status != DONE:
                return i, status
            if recorded is not None or written is not None:
                text = text_digest(item)
                if written is not None:
                    written[PyLong_FromVoidPtr(<void *>node)] = text
                if recorded is not None:
                    recorded.append(names[i])
                    recorded.append(text)
            if tag is not None:
                tagged.append(names[i])
                tagged.append(tag)
            continue
        if num < 0 or num >= _MAX_TYPES or _types[num] < 0 or ndim > _MAX_RANK \
                or not cnp.PyArray_IS_C_CONTIGUOUS(array) or not cnp.PyArray_ISNOTSWAPPED(array):
            return i, YOURS
        nbytes = <size_t>cnp.PyArray_NBYTES(array)
        is_compact = 0 < nbytes <= <size_t>_compact_limit
        if nbytes > <size_t>_snapshot_limit and not to_raw:  # (the raw writer copies it piece by piece)
            return i, YOURS
        tid = _types[num]
        record = recorded is not None and (record_compact or not is_compact)
        digest = record or written is not None
        space = _space(ndim, cnp.PyArray_DIMS(array))
        if space < 0:
            return i, SPACE_FAILED
        dcpl = compact if is_compact else contiguous
        key = PyUnicode_AsUTF8AndSize(names[i], NULL)
        if to_raw and not is_compact and nbytes:
            did = _dcreate(gid, key, tid, space, lcpl, allocated, 0)
            if did < 0:
                return i, CREATE_FAILED
            offset = _dget_offset(did)
            if offset == <uint64_t>-1:  # (never for a contiguous dataset allocated at creation)
                _dclose(did)
                return i, WRITE_FAILED
            if tag is not None and _write_tag(did, <str>tag) < 0:
                _dclose(did)
                return i, TAG_FAILED
            _dclose(did)
            index = raw.queue(array, <const char *>cnp.PyArray_DATA(array), nbytes, <long long>offset,
                              _header_crc(_kinds[num], ndim, cnp.PyArray_DIMS(array)))
            if record:
                recorded.append(names[i])
                recorded.append(index)
            if written is not None:
                deferred.append(PyLong_FromVoidPtr(<void *>node))
                deferred.append(index)
            if tag is not None:
                tagged.append(names[i])
                tagged.append(tag)
            continue
        did = _dcreate(gid, key, tid, space, lcpl, dcpl, 0)
        if did < 0:
            return i, CREATE_FAILED
        source = cnp.PyArray_DATA(array)
        if digest:
            crc = _header_crc(_kinds[num], ndim, cnp.PyArray_DIMS(array))
            if nbytes:
                if nbytes > _scratch_size:
                    grown = <char *>realloc(_scratch, nbytes)
                    if grown == NULL:
                        _dclose(did)
                        raise MemoryError(f"write_datasets: no memory for a copy of {nbytes} bytes")
                    _scratch, _scratch_size = grown, nbytes
                memcpy(_scratch, source, nbytes)
                source = _scratch
                crc = _crc(crc, _scratch, nbytes)
        status = _dwrite(did, tid, 0, 0, 0, source) if nbytes else 0
        if status < 0:
            _dclose(did)
            return i, WRITE_FAILED
        if tag is not None and _write_tag(did, <str>tag) < 0:
            _dclose(did)
            return i, TAG_FAILED
        _dclose(did)
        if digest:
            text = "%08x" % crc
            if written is not None:
                written[PyLong_FromVoidPtr(<void *>node)] = text
            if record:
                recorded.append(names[i])
                recorded.append(text)
        if tag is not None:
            tagged.append(names[i])
            tagged.append(tag)
    return n, DONE


include "_h5dsets_walk.pxi"


def digests_of(list arrays, fallback):
    """The digest (:func:`h5stream.digests.array_digest`, 8 lowercase hex digits) of each of ``arrays``, in
    one pass: a C-contiguous ``numpy.ndarray`` (exactly) of a native numeric, boolean or complex type is
    digested here, without a copy; any other array by ``fallback(array)``."""
    cdef Py_ssize_t i, n = len(arrays)
    cdef cnp.ndarray array
    cdef int num, ndim
    cdef unsigned long crc
    cdef char text[16]
    cdef list out = [None] * n
    for i in range(n):
        data = arrays[i]
        if type(data) is np.ndarray:
            array = <cnp.ndarray>data
            num = cnp.PyArray_TYPE(array)
            ndim = cnp.PyArray_NDIM(array)
            if 0 <= num < _MAX_TYPES and _kinds[num][0] != 0 and ndim <= _MAX_RANK \
                    and cnp.PyArray_IS_C_CONTIGUOUS(array) and cnp.PyArray_ISNOTSWAPPED(array):
                crc = _header_crc(_kinds[num], ndim, cnp.PyArray_DIMS(array))
                crc = _crc(crc, <const char *>cnp.PyArray_DATA(array), <size_t>cnp.PyArray_NBYTES(array))
                snprintf(text, 16, "%08lx", crc & 0xFFFFFFFFUL)
                out[i] = text[:8].decode("ascii")
                continue
        out[i] = fallback(data)
    return out


def first_changed(list arrays, list digests, fallback):
    """The index of the first of ``arrays`` whose digest (:func:`h5stream.digests.array_digest`) is not
    ``digests[i]`` (8 lowercase hex digits), or -1 when every one matches.

    A C-contiguous ``numpy.ndarray`` (exactly) of a native numeric, boolean or complex type is digested
    here, without a copy; any other array by ``fallback(array)``, which returns its digest."""
    cdef Py_ssize_t i, n = len(arrays), size
    cdef cnp.ndarray array
    cdef int num, ndim
    cdef unsigned long crc
    cdef char text[16]
    cdef const char *expected
    if len(digests) != n:
        raise ValueError("first_changed: arrays and digests differ in length")
    for i in range(n):
        data = arrays[i]
        if type(data) is np.ndarray:
            array = <cnp.ndarray>data
            num = cnp.PyArray_TYPE(array)
            ndim = cnp.PyArray_NDIM(array)
            if 0 <= num < _MAX_TYPES and _kinds[num][0] != 0 and ndim <= _MAX_RANK \
                    and cnp.PyArray_IS_C_CONTIGUOUS(array) and cnp.PyArray_ISNOTSWAPPED(array):
                crc = _header_crc(_kinds[num], ndim, cnp.PyArray_DIMS(array))
                crc = _crc(crc, <const char *>cnp.PyArray_DATA(array), <size_t>cnp.PyArray_NBYTES(array))
                snprintf(text, 16, "%08lx", crc & 0xFFFFFFFFUL)
                if type(digests[i]) is not str:
                    return i
                expected = PyUnicode_AsUTF8AndSize(digests[i], &size)
                if size != 8 or memcmp(expected, text, 8) != 0:
                    return i
                continue
        if fallback(data) != digests[i]:
            return i
    return -1


include "_h5dsets_read.pxi"
