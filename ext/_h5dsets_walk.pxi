# Included by _h5dsets.pyx (one compiled module: the same libhdf5 bindings and digest state):
# GroupWalk, a tree's groups created and their children written in one compiled walk.

ctypedef hid_t (*gcreate_t)(hid_t, const char *, hid_t, hid_t, hid_t) noexcept nogil
ctypedef int (*gclose_t)(hid_t) noexcept nogil

#: what :class:`GroupWalk` hands its ``failed`` beside the dataset statuses: creating a group failed
GROUP_FAILED = 6

#: An attribute message's bytes in a version-2 object header beyond its name and inline value (message
#: header, version and sizes, datatype and dataspace descriptions: a scalar variable-length string's
#: message, the largest of the common ones, takes 52 bytes beside them): a generous round figure.
ATTR_MESSAGE_BYTES = 72
#: The most header room :class:`GroupWalk` asks for a group's attributes (a larger set grows the header
#: with continuation chunks, as any header does).
ATTR_ROOM_MAX = 4096
#: The writer's bookkeeping attributes a group may get beside its own: its type tag, its keys, its
#: attributes' type tags (an attribute each, of at most this many name characters).
_BOOKKEEPING_NAME = 19


cdef Py_ssize_t _inline_bytes(value):
    """The bytes an attribute value takes inside an object header (an estimate: text is a 16-byte
    reference into the global heap per string, a number its size)."""
    if isinstance(value, cnp.ndarray):
        if (<cnp.ndarray>value).dtype.kind in "OUS":
            return 16 * (<cnp.ndarray>value).size
        return (<cnp.ndarray>value).nbytes
    if isinstance(value, (list, tuple)):
        return 16 * len(value)
    return 16


cdef Py_ssize_t attr_room(node):
    """The header bytes the attributes of group node ``node`` will take (its own and the writer's
    bookkeeping ones, estimated), at most :data:`ATTR_ROOM_MAX`."""
    cdef Py_ssize_t room = 0
    attrs = node.attrs
    if attrs:
        for name, value in attrs.items():
            room += ATTR_MESSAGE_BYTES + len(<str>name) + _inline_bytes(value)
        room += ATTR_MESSAGE_BYTES + _BOOKKEEPING_NAME + 16  # (their type tags, when any has one)
    if node.tag is not None:
        room += ATTR_MESSAGE_BYTES + _BOOKKEEPING_NAME + 16
    if node.keys is not None:
        room += ATTR_MESSAGE_BYTES + _BOOKKEEPING_NAME + 16
    return room if room < ATTR_ROOM_MAX else ATTR_ROOM_MAX

cdef gcreate_t _gcreate = NULL
cdef gclose_t _gclose = NULL


def configure_groups(size_t gcreate, size_t gclose):
    """Bind libhdf5's ``H5Gcreate2`` and ``H5Gclose`` (addresses) for :class:`GroupWalk`."""
    global _gcreate, _gclose
    if not (gcreate and gclose):
        raise ValueError("configure_groups: every libhdf5 function address is needed")
    _gcreate = <gcreate_t><void *>gcreate
    _gclose = <gclose_t><void *>gclose


cdef class GroupWalk:
    """A tree's groups created, and their children written, in one compiled walk.

    :meth:`group` creates group ``name`` in ``pid`` for a node of ``group_class`` (``children``, ``attrs``,
    ``tag``, ``keys``) with the creation list ``sized(n_links, name_chars, attr_bytes)`` returns
    (``attr_bytes``: the room its attributes will take in its header, estimated; ``empty_gcpl`` for a group
    with neither children nor attributes), writes its children in order, then has ``attrs(gid, path, node)``
    write its attributes when it has any or a type tag, and closes it.  Children: runs of datasets through ``batch``
    (:func:`write_datasets`, or a stand-in taking the same arguments, this walk's fields), groups of
    ``group_class`` by this walk, any other node by ``node(gid, parent_path, name, node)``.  After each
    run, ``settle(base, recorded,
    tagged)`` takes (and empties) the names and digests :func:`write_datasets` appended, when there are
    any; a failure raises what ``failed(status, path)`` returns (a status of :func:`write_datasets`, or
    :data:`GROUP_FAILED`).  Paths are those of the file, built as ``parent + "/" + name``.
    """
    cdef object batch, group_class, sized, node, attrs, settle, failed, written, text_digest
    cdef hid_t lcpl, empty_gcpl, compact, contiguous, allocated, text_dcpl
    cdef list recorded, tagged, deferred
    cdef bint record_compact
    cdef RawWriter raw

    def __init__(self, batch, group_class, hid_t lcpl, hid_t empty_gcpl, sized, hid_t compact, hid_t contiguous,
                 dict written, list recorded, bint record_compact, list tagged, RawWriter raw, hid_t allocated,
                 list deferred, hid_t text_dcpl, text_digest, node, attrs, settle, failed):
        if _gcreate == NULL:
            raise RuntimeError("h5stream._ext._h5dsets.GroupWalk: configure_groups() comes first")
        self.batch, self.group_class, self.lcpl, self.empty_gcpl, self.sized = batch, group_class, lcpl, empty_gcpl, sized
        self.compact, self.contiguous, self.written, self.recorded = compact, contiguous, written, recorded
        self.record_compact, self.tagged, self.raw, self.allocated = record_compact, tagged, raw, allocated
        self.deferred, self.text_dcpl, self.text_digest = deferred, text_dcpl, text_digest
        self.node, self.attrs, self.settle, self.failed = node, attrs, settle, failed

    def group(self, hid_t pid, str parent_path, str name, node):
        """Write group node ``node`` as ``name`` in ``pid`` (whose path is ``parent_path``) and all below it."""
        self._group(pid, parent_path.rstrip("/"), name, node)

    def children(self, hid_t gid, str path, children):
        """Write ``children`` (a mapping of names to nodes) in order into the existing group ``gid`` at ``path``."""
        self._children(gid, path.rstrip("/"), children)

    cdef int _group(self, hid_t pid, str base, str name, node) except -1:
        cdef str path = base + "/" + name
        cdef Py_ssize_t n_links, chars = 0, room
        cdef hid_t gcpl, gid
        children = node.children
        n_links = len(children)
        for child_name in children:
            chars += len(<str>child_name)
        room = attr_room(node)
        gcpl = self.sized(n_links, chars, room) if n_links or room else self.empty_gcpl
        gid = _gcreate(pid, PyUnicode_AsUTF8AndSize(name, NULL), self.lcpl, gcpl, 0)
        if gid < 0:
            raise self.failed(GROUP_FAILED, path)
        try:
            if n_links:
                self._children(gid, path, children)
            if node.attrs or node.tag is not None:
                self.attrs(gid, path, node)
        finally:
            _gclose(gid)
        return 0

    cdef int _children(self, hid_t gid, str base, children) except -1:
        cdef list names = list(children)
        cdef list nodes = list(children.values())
        cdef Py_ssize_t i = 0, n = len(names)
        cdef int status
        while i < n:
            i, status = self.batch(gid, names, nodes, i, self.lcpl, self.compact, self.contiguous, self.written,
                                   self.recorded, self.record_compact, self.tagged, self.raw, self.allocated,
                                   self.deferred, self.text_dcpl, self.text_digest)
            if self.recorded or self.tagged:
                self.settle(base, self.recorded, self.tagged)
            if status == DONE:
                return 0
            if status != YOURS:
                raise self.failed(status, base + "/" + <str>names[i])
            child = nodes[i]
            if type(child) is self.group_class:
                self._group(gid, base, <str>names[i], child)
            else:
                self.node(gid, base or "/", names[i], child)
            i += 1
        return 0
