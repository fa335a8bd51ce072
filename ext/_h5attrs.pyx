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
loaded (:class:`h5stream.tree.lowlevel.NativeHDF5`) and passed here as
addresses by :func:`configure`.  The caller holds the GIL and the engine's
library lock; nothing here releases either.

The digest of a string is :func:`h5stream._digests.scalar_text_digest`'s:
CRC-32 of the 8-byte little-endian length of its UTF-8 bytes and the bytes,
started from the CRC of ``text|()``, as 8 hex digits, looked up in and added
to the same cache of short strings.
"""

from libc.stdint cimport int64_t, uint64_t

import numpy as np

cimport numpy as cnp
from cpython.unicode cimport PyUnicode_AsUTF8AndSize

cnp.import_array()

cdef extern from "zlib.h" nogil:
    unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int length)

ctypedef int64_t hid_t
ctypedef hid_t (*acreate_t)(hid_t, const char *, hid_t, hid_t, hid_t, hid_t) noexcept nogil
ctypedef int (*awrite_t)(hid_t, hid_t, const void *) noexcept nogil
ctypedef int (*aclose_t)(hid_t) noexcept nogil

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


def configure_digests(dict text_digests, Py_ssize_t cached_text_max, Py_ssize_t text_digests_max,
                      unsigned long text_seed):
    """Share the digest cache of short strings (with its limits) and the CRC of the scalar-text header
    with :func:`h5stream._digests.scalar_text_digest` (done when that module is imported)."""
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


def write_attrs(hid_t oid, list names, list values, Py_ssize_t start, dict digests, bint numbers,
                Py_ssize_t text_limit):
    """Create attribute ``names[i]`` holding ``values[i]`` on ``oid``, for ``i`` from ``start`` on.

    Taken here: a ``str`` of at most ``text_limit`` UTF-8 bytes (a scalar
    variable-length string), and a numpy scalar of a configured type (not when
    ``numbers``: then the caller digests numbers, so it writes them too).  The
    digest of each string goes into ``digests`` (unless it is None) under its
    name.  Returns ``(i, status)``: where it stopped and why (:data:`DONE`,
    :data:`YOURS`, :data:`CREATE_FAILED`, :data:`WRITE_FAILED`).  An attribute
    name or a string that is not valid UTF-8 raises ``UnicodeEncodeError``.
    """
    cdef Py_ssize_t i, n = len(names), size
    cdef const char *key
    cdef const char *data
    cdef hid_t aid, tid
    cdef int status
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
                digests[names[i]] = _text_digest(<str>value, data, size)
            continue
        if numbers:
            return i, YOURS
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


def pack_digests(dict digests):
    """The digests of ``digests`` (name -> 8 hex digits) joined in the order of the names' code points
    (one object's attribute set of :mod:`h5stream._manifest`)."""
    cdef list names = list(digests)
    cdef Py_ssize_t i, n = len(names)
    if n == 0:
        return ""
    if n == 1:
        return digests[names[0]]
    for i in range(1, n):
        if <str>names[i - 1] > <str>names[i]:
            names.sort()
            break
    return "".join([digests[name] for name in names])


def record_sets(list pending, dict sets, dict seqs, Py_ssize_t seq, dict kinds, dict names, dict legacy):
    """Move the attribute sets queued in ``pending`` (path, digests, path, digests, ...) into a recorder's
    dicts (:class:`h5stream.checksums.Recorder`), in order, all with sequence number ``seq``, then empty it.

    As ``Recorder.attribute_set`` with the default kind: an object with no
    digest gets no entry unless it had one (or ``names`` is not None: a
    walking recorder, which also keeps each set's names in order); ``kinds``
    and ``legacy`` lose the object's entries.
    """
    cdef Py_ssize_t i, n = len(pending)
    if n % 2:
        raise ValueError("record_sets: pending holds path and digests pairs")
    for i in range(0, n, 2):
        path = pending[i]
        digests = <dict>pending[i + 1]
        if digests:
            packed = pack_digests(digests)
        elif names is not None or path in sets:
            packed = ""
        else:
            continue
        sets[path] = packed
        seqs[path] = seq
        if kinds:
            kinds.pop(path, None)
        if names is not None:
            names[path] = sorted(digests)
        if legacy:
            legacy.pop(path, None)
    del pending[:]


def text_set_digests(dict values, str skip=None):
    """The packed digests of the text attributes among ``values`` (name -> value as h5py reads it), in
    the order of the names' code points, leaving out the attribute named ``skip``; None when a value is
    text of another form than ``str`` (a numpy string or an array of strings) or is not valid UTF-8, for
    the caller's exact check (:func:`h5stream._manifest.check_attribute_set`)."""
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
