# cython: language_level=3
"""Attributes of one HDF5 object written in one call, with the digests of their text.

The tree writer creates hundreds of thousands of small attributes per file:
through ctypes each costs three foreign calls with their argument conversion,
a ``char *[]`` array for a string and, when the file keeps checksums, a
digest computed in Python.  :func:`write_attrs` does the same for a whole list
of attributes in C: scalar strings (variable-length UTF-8, h5py's ``str``) and
numpy scalars of the types it was given.  It stops at the first value it does
not take (a larger string, an array, another type) and hands it back, so the
caller writes that one its own way and attributes keep their order.

The functions are libhdf5's own, found by the caller in the very library h5py
loaded (:class:`h5stream.lowlevel.NativeHDF5`) and passed here as
addresses by :func:`configure`.  The caller holds the GIL and the engine's
library lock; nothing here releases either.

The digest of a string is :func:`h5stream.digests.scalar_text_digest`'s:
CRC-32 of the 8-byte little-endian length of its UTF-8 bytes and the bytes,
started from the CRC of ``text|()``, as 8 hex digits, looked up in and added
to the same cache of short strings.

The checksum recorder's bookkeeping is here too: :func:`record_sets` orders
each object's queued attribute set and packs its digests, and
:func:`plain_map_json` writes the manifest's large maps of plain paths to
digests as JSON in one pass (``json.dumps``'s text, without a Python string per
entry).
"""

from libc.stdint cimport int64_t, uint64_t

import numpy as np

cimport numpy as cnp
from cpython.unicode cimport PyUnicode_AsUTF8AndSize

cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void *PyUnicode_DATA(object text)
    Py_ssize_t PyUnicode_GET_LENGTH(object text)
    bint PyUnicode_IS_COMPACT_ASCII(object text)

cdef extern from "string.h" nogil:
    void *memcpy(void *dest, const void *src, size_t n)
    int memcmp(const void *a, const void *b, size_t n)

cnp.import_array()

cdef extern from "zlib.h" nogil:
    unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int length)

ctypedef int64_t hid_t
ctypedef hid_t (*acreate_t)(hid_t, const char *, hid_t, hid_t, hid_t, hid_t) noexcept nogil
ctypedef int (*awrite_t)(hid_t, hid_t, const void *) noexcept nogil
ctypedef int (*aclose_t)(hid_t) noexcept nogil
ctypedef uint64_t hsize_t
ctypedef hid_t (*screate_simple_t)(int, const hsize_t *, const hsize_t *) noexcept nogil
ctypedef int (*sset_extent_t)(hid_t, int, const hsize_t *, const hsize_t *) noexcept nogil

#: what :func:`write_attrs` returns beside the index where it stopped
DONE = 0          # every attribute is written
YOURS = 1         # the value at the index is for the caller (not taken here)
CREATE_FAILED = 2  # H5Acreate2 failed for the attribute at the index
WRITE_FAILED = 3   # H5Awrite failed for it (the attribute exists, empty)

cdef acreate_t _acreate = NULL
cdef awrite_t _awrite = NULL
cdef aclose_t _aclose = NULL
cdef hid_t _text_type = -1
cdef hid_t _scalar_space = -1
cdef dict _scalar_types = {}
cdef dict _text_digests = {}
cdef Py_ssize_t _cached_text_max = 0
cdef Py_ssize_t _text_digests_max = 0
cdef unsigned long _text_seed = 0
cdef bint _digests_ready = False
cdef screate_simple_t _screate_simple = NULL  # H5Screate_simple, H5Sset_extent_simple: arrays' dataspaces
cdef sset_extent_t _sset_extent = NULL

cdef enum:
    _MAX_RANK = 32

cdef hid_t _spaces[_MAX_RANK + 1]  # one reused simple dataspace per rank (its extent set per attribute)
for _k in range(_MAX_RANK + 1):
    _spaces[_k] = -1


def configure(size_t acreate, size_t awrite, size_t aclose, hid_t text_type, hid_t scalar_space,
              dict scalar_types):
    """Bind libhdf5's ``H5Acreate2``, ``H5Awrite`` and ``H5Aclose`` (addresses), the string type and the
    scalar space to use, and the numpy scalar types taken (type -> HDF5 type id, read at each call, so
    the caller may add to it)."""
    global _acreate, _awrite, _aclose, _text_type, _scalar_space, _scalar_types
    if not (acreate and awrite and aclose):
        raise ValueError("configure: every libhdf5 function address is needed")
    _acreate = <acreate_t><void *>acreate
    _awrite = <awrite_t><void *>awrite
    _aclose = <aclose_t><void *>aclose
    _text_type = text_type
    _scalar_space = scalar_space
    _scalar_types = scalar_types


def configure_arrays(size_t screate_simple, size_t sset_extent):
    """Bind libhdf5's ``H5Screate_simple`` and ``H5Sset_extent_simple`` (addresses): from then on
    :func:`write_attrs` takes numpy arrays of the scalar types it was given too."""
    global _screate_simple, _sset_extent
    if not (screate_simple and sset_extent):
        raise ValueError("configure_arrays: every libhdf5 function address is needed")
    _screate_simple = <screate_simple_t><void *>screate_simple
    _sset_extent = <sset_extent_t><void *>sset_extent


cdef hid_t _array_space(int ndim, cnp.npy_intp *shape):
    """The simple dataspace of an array of ``shape`` (a reused one per rank, ``ndim`` >= 1), or -1."""
    cdef hsize_t dims[_MAX_RANK]
    cdef int k
    for k in range(ndim):
        dims[k] = <hsize_t>shape[k]
    if _spaces[ndim] < 0:
        _spaces[ndim] = _screate_simple(ndim, dims, NULL)
        return _spaces[ndim]
    if _sset_extent(_spaces[ndim], ndim, dims, NULL) < 0:
        return -1
    return _spaces[ndim]


def configure_digests(dict text_digests, Py_ssize_t cached_text_max, Py_ssize_t text_digests_max,
                      unsigned long text_seed):
    """Share the digest cache of short strings (with its limits) and the CRC of the scalar-text header
    with :func:`h5stream.digests.scalar_text_digest` (done when that module is imported)."""
    global _text_digests, _cached_text_max, _text_digests_max, _text_seed, _digests_ready
    _text_digests = text_digests
    _cached_text_max = cached_text_max
    _text_digests_max = text_digests_max
    _text_seed = text_seed
    _digests_ready = True


cdef str _text_digest(str value, const char *data, Py_ssize_t n):
    cdef unsigned char length[8]
    cdef uint64_t size = <uint64_t>n
    cdef int k
    cdef unsigned long crc
    digest = _text_digests.get(value)
    if digest is not None:
        return <str>digest
    for k in range(8):
        length[k] = <unsigned char>((size >> (8 * k)) & 0xFF)
    crc = crc32(_text_seed, length, 8)
    while n > 0:  # zlib takes at most 4 GiB a call
        k = <int>(n if n < 0x40000000 else 0x40000000)
        crc = crc32(crc, <const unsigned char *>data, <unsigned int>k)
        data += k
        n -= k
    text = "%08x" % crc
    if len(value) <= _cached_text_max and len(_text_digests) < _text_digests_max:
        _text_digests[value] = text
    return text


def write_attrs(hid_t oid, list names, list values, Py_ssize_t start, list digests, bint numbers,
                Py_ssize_t text_limit):
    """Create attribute ``names[i]`` holding ``values[i]`` on ``oid``, for ``i`` from ``start`` on.

    Taken here: a ``str`` of at most ``text_limit`` UTF-8 bytes (a scalar
    variable-length string), a numpy scalar of a configured type and, once
    :func:`configure_arrays` was called, a C-contiguous ``numpy.ndarray``
    (exactly) of one, in native byte order, of rank 1 or more and at most
    ``text_limit`` bytes (not when ``numbers``: then the caller digests
    numbers, so it writes them too).  The
    name and the digest of each string are appended to ``digests`` (unless it is
    None): an attribute set as a flat list, name, digest, name, digest, ...  Returns ``(i, status)``: where it stopped and why (:data:`DONE`,
    :data:`YOURS`, :data:`CREATE_FAILED`, :data:`WRITE_FAILED`).  An attribute
    name or a string that is not valid UTF-8 raises ``UnicodeEncodeError``.
    """
    cdef Py_ssize_t i, n = len(names), size
    cdef const char *key
    cdef const char *data
    cdef hid_t aid, tid, space
    cdef int status
    cdef cnp.ndarray array
    cdef double buffer[4]  # a numpy scalar's value (complex128 and smaller), suitably aligned
    if _acreate == NULL or not _digests_ready:
        raise RuntimeError("h5stream._ext._h5attrs.write_attrs: configure() and configure_digests() come first")
    if len(values) != n:
        raise ValueError("write_attrs: names and values differ in length")
    for i in range(start, n):
        value = values[i]
        if type(value) is str:
            data = PyUnicode_AsUTF8AndSize(value, &size)
            if size > text_limit:
                return i, YOURS
            key = PyUnicode_AsUTF8AndSize(names[i], NULL)
            aid = _acreate(oid, key, _text_type, _scalar_space, 0, 0)
            if aid < 0:
                return i, CREATE_FAILED
            status = _awrite(aid, _text_type, &data)
            _aclose(aid)
            if status < 0:
                return i, WRITE_FAILED
            if digests is not None:
                digests.append(names[i])
                digests.append(_text_digest(<str>value, data, size))
            continue
        if numbers:
            return i, YOURS
        if type(value) is np.ndarray:
            array = <cnp.ndarray>value
            if _screate_simple == NULL or cnp.PyArray_NDIM(array) < 1 or cnp.PyArray_NDIM(array) > _MAX_RANK \
                    or not cnp.PyArray_IS_C_CONTIGUOUS(array) or not cnp.PyArray_ISNOTSWAPPED(array) \
                    or cnp.PyArray_NBYTES(array) > text_limit:
                return i, YOURS
            found = _scalar_types.get(array.dtype.type)
            if found is None:
                return i, YOURS
            tid = <hid_t>found
            space = _array_space(cnp.PyArray_NDIM(array), cnp.PyArray_DIMS(array))
            if space < 0:
                return i, CREATE_FAILED
            key = PyUnicode_AsUTF8AndSize(names[i], NULL)
            aid = _acreate(oid, key, tid, space, 0, 0)
            if aid < 0:
                return i, CREATE_FAILED
            status = _awrite(aid, tid, cnp.PyArray_DATA(array)) if cnp.PyArray_SIZE(array) else 0
            _aclose(aid)
            if status < 0:
                return i, WRITE_FAILED
            continue
        found = _scalar_types.get(type(value))
        if found is None:
            return i, YOURS
        tid = <hid_t>found
        cnp.PyArray_ScalarAsCtype(value, buffer)
        key = PyUnicode_AsUTF8AndSize(names[i], NULL)
        aid = _acreate(oid, key, tid, _scalar_space, 0, 0)
        if aid < 0:
            return i, CREATE_FAILED
        status = _awrite(aid, tid, buffer)
        _aclose(aid)
        if status < 0:
            return i, WRITE_FAILED
    return n, DONE


from cpython.object cimport PyObject


cdef extern from "Python.h":
    int PyUnicode_Compare(object left, object right) except? -1

#: attribute sets up to this size are ordered here, in C; larger ones by list.sort
cdef enum:
    _SMALL_SET = 64


cdef int _name_cmp(PyObject *a, PyObject *b) except? -2:
    """The order of two names by code points (-1, 0, 1): bytes for ASCII names, else unicode's compare."""
    cdef Py_ssize_t na, nb
    cdef int c
    if PyUnicode_IS_COMPACT_ASCII(<object>a) and PyUnicode_IS_COMPACT_ASCII(<object>b):
        na = PyUnicode_GET_LENGTH(<object>a)
        nb = PyUnicode_GET_LENGTH(<object>b)
        c = memcmp(PyUnicode_DATA(<object>a), PyUnicode_DATA(<object>b), na if na < nb else nb)
        if c != 0:
            return -1 if c < 0 else 1
        return (na > nb) - (na < nb)
    return PyUnicode_Compare(<object>a, <object>b)


cdef str _joined(list pairs):
    order = sorted(range(0, len(pairs), 2), key=pairs.__getitem__)
    return "".join([pairs[i + 1] for i in order])


cdef str _pack(list items, Py_ssize_t start, Py_ssize_t n):
    """The digests of an attribute set, the ``n`` pairs name, digest at ``items[start:]`` (the names
    distinct), joined in the order of the names' code points.  A set of plain digests (8 ASCII
    characters, always so from the writers here) with string names is ordered in a C array and copied
    into one new string; anything else is sorted and joined."""
    cdef Py_ssize_t i, j
    cdef PyObject *names[_SMALL_SET]
    cdef PyObject *values[_SMALL_SET]
    cdef PyObject *key
    cdef PyObject *value
    cdef char *out
    if n == 0:
        return ""
    if n > _SMALL_SET:
        return _joined(items[start:start + 2 * n])
    for i in range(n):
        key = <PyObject *>items[start + 2 * i]
        value = <PyObject *>items[start + 2 * i + 1]
        if (type(<object>key) is not str or type(<object>value) is not str
                or not PyUnicode_IS_COMPACT_ASCII(<object>value) or PyUnicode_GET_LENGTH(<object>value) != 8):
            return _joined(items[start:start + 2 * n])
        # insertion sort (a set holds a few names, mostly in order already)
        j = i
        while j > 0 and _name_cmp(names[j - 1], key) > 0:
            names[j] = names[j - 1]
            values[j] = values[j - 1]
            j -= 1
        names[j] = key
        values[j] = value
    packed = PyUnicode_New(8 * n, 127)
    out = <char *>PyUnicode_DATA(packed)
    for i in range(n):
        memcpy(out + 8 * i, PyUnicode_DATA(<object>values[i]), 8)
    return <str>packed


def pack_digests(digests):
    """The digests of an attribute set (a dict name -> 8 hex digits, or a flat list name, digest, ...)
    joined in the order of the names' code points (one object's set of :mod:`h5stream.checksums._manifest`)."""
    cdef list items
    if type(digests) is list:
        items = <list>digests
    else:
        items = [x for item in dict(digests).items() for x in item]
    return _pack(items, 0, len(items) // 2)


def record_sets(list pending, dict sets, dict seqs, Py_ssize_t seq, dict kinds, dict names, dict legacy):
    """Move the attribute sets queued in ``pending`` into a recorder's dicts
    (:class:`h5stream.checksums.Recorder`), in order, all with sequence number ``seq`` (kept in
    ``seqs`` unless it is None), then empty it.

    ``pending`` is one flat list, so that no container per object outlives
    the object's write: per object its path, the number of pairs ``k``, then
    ``k`` pairs name, digest.  As ``Recorder.attribute_set`` with the default
    kind: an object with no digest gets no entry unless it had one (or
    ``names`` is not None: a walking recorder, which also keeps each set's
    names in order); ``kinds`` and ``legacy`` lose the object's entries.
    """
    cdef Py_ssize_t i = 0, n = len(pending), k
    number = seq  # one int object for every entry
    while i < n:
        if i + 2 > n:
            raise ValueError("record_sets: the queue ends inside an entry")
        path = pending[i]
        k = pending[i + 1]
        if k < 0 or i + 2 + 2 * k > n:
            raise ValueError(f"record_sets: the set of {path!r} runs past the queue")
        if k:
            packed = _pack(pending, i + 2, k)
        elif names is not None or path in sets:
            packed = ""
        else:
            i += 2
            continue
        sets[path] = packed
        if seqs is not None:
            seqs[path] = number
        if kinds:
            kinds.pop(path, None)
        if names is not None:
            names[path] = sorted(pending[i + 2:i + 2 + 2 * k:2])
        if legacy:
            legacy.pop(path, None)
        i += 2 + 2 * k
    del pending[:]


def text_set_digests(dict values, str skip=None):
    """The packed digests of the text attributes among ``values`` (name -> value as h5py reads it), in
    the order of the names' code points, leaving out the attribute named ``skip``; None when a value is
    text of another form than ``str`` (a numpy string or an array of strings) or is not valid UTF-8, for
    the caller's exact check (:func:`h5stream.checksums._manifest.check_attribute_set`)."""
    cdef list names = []
    cdef const char *data
    cdef Py_ssize_t size, i, n
    if not _digests_ready:
        raise RuntimeError("h5stream._ext._h5attrs.text_set_digests: configure_digests() comes first")
    for name, value in values.items():
        if type(value) is str:
            if skip is None or name != skip:
                names.append(name)
        elif isinstance(value, (np.str_, np.ndarray)):
            if not isinstance(value, np.ndarray) or (<cnp.ndarray>value).dtype.kind in "OUT":
                return None
    n = len(names)
    if n == 0:
        return ""
    for i in range(1, n):
        if <str>names[i - 1] > <str>names[i]:
            names.sort()
            break
    parts = []
    for name in names:
        value = values[name]
        digest = _text_digests.get(value)
        if digest is None:
            try:
                data = PyUnicode_AsUTF8AndSize(value, &size)
            except UnicodeEncodeError:
                return None
            digest = _text_digest(<str>value, data, size)
        parts.append(digest)
    return "".join(parts)


# 1 for the bytes JSON writes as they are: ASCII from the space to "~", but the quote and the backslash
cdef unsigned char _PLAIN[256]
for _c in range(256):
    _PLAIN[_c] = 0x20 <= _c <= 0x7E and _c != 0x22 and _c != 0x5C


cdef bint _plain_text(str text):
    """True when ``json.dumps(text, ensure_ascii=True)`` is ``text`` in quotes (see :data:`_PLAIN`)."""
    cdef const unsigned char *data
    cdef Py_ssize_t i, n
    cdef unsigned char ok = 1
    if not PyUnicode_IS_COMPACT_ASCII(text):
        return False
    data = <const unsigned char *>PyUnicode_DATA(text)
    n = PyUnicode_GET_LENGTH(text)
    for i in range(n):
        ok &= _PLAIN[data[i]]
    return ok


def plain_map_json(dict mapping):
    """``json.dumps(mapping, separators=(",", ":"), ensure_ascii=True)`` of a map of strings to strings
    that JSON writes as they are (see :func:`_plain_text`), built in one string; None for any other map
    (a key or a value of another type, or text JSON escapes), for the caller's general encoder."""
    cdef Py_ssize_t total = 2, pos = 1, size
    cdef char *out
    for key, value in mapping.items():
        if type(key) is not str or type(value) is not str or not _plain_text(key) or not _plain_text(value):
            return None
        total += PyUnicode_GET_LENGTH(key) + PyUnicode_GET_LENGTH(value) + 6  # "k":"v",
    if mapping:
        total -= 1  # no comma after the last entry
    text = PyUnicode_New(total, 127)
    out = <char *>PyUnicode_DATA(text)
    out[0] = c'{'
    # No Python code runs between the two passes (the GIL is held throughout), so the map is the same.
    for key, value in mapping.items():
        if pos > 1:
            out[pos] = c','
            pos += 1
        out[pos] = c'"'
        size = PyUnicode_GET_LENGTH(key)
        memcpy(out + pos + 1, PyUnicode_DATA(key), size)
        pos += size + 1
        out[pos] = c'"'
        out[pos + 1] = c':'
        out[pos + 2] = c'"'
        size = PyUnicode_GET_LENGTH(value)
        memcpy(out + pos + 3, PyUnicode_DATA(value), size)
        pos += size + 3
        out[pos] = c'"'
        pos += 1
    out[pos] = c'}'
    return text
