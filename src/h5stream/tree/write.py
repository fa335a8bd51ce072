"""The one writer of the typed tree: nodes in, HDF5 objects out.

:func:`write_node` writes a node and everything below it in one pass, through
the direct libhdf5 bindings of :mod:`h5stream.lowlevel` when they are
available and through h5py's low-level wrappers otherwise; both paths create
the same objects with the same property lists.

Attribute values too large for an HDF5 attribute (over
:data:`~h5stream.tree.nodes.ATTR_LIMIT` bytes) are stored as hidden objects,
written by the same writer as any value, and read back as attributes (tag
``dataset`` in ``h5stream_attr_types``): a group's large attribute ``a`` is its
child ``__attr__a``; a large attribute ``a`` of dataset ``parent/d`` is
``parent/__dsattr__d/a`` (a dataset cannot have children).  Hidden names never
appear in listings, and a dataset is always replaced or removed together with
its hidden sibling.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import sys
from collections.abc import Mapping

import h5py
import numpy as np

from h5stream import checksums, jsonvalues
from h5stream.errors import WriteError
from h5stream.native import compiled
from h5stream.tree.filearray import FileArray
from h5stream import lowlevel
from h5stream.lowlevel import copy_dataset_at, create_attr, create_group, store_array
from h5stream.tree.nodes import (
    ATTR_LIMIT,
    ATTR_TYPES_ATTR,
    DATASET_ATTRS_PREFIX,
    HIDDEN_PREFIX,
    KEYS_ATTR,
    TYPE_ATTR,
    Dataset,
    Group,
    Node,
    encode_attr,
    stored_nbytes,
    text,
    value_node,
)

__all__ = [
    "WriteContext",
    "write_node",
    "write_children",
    "write_root",
    "write_attrs",
    "remove_child",
    "replace_child",
    "dataset_attrs_home",
]


#: the compiled group walk (``GroupWalk``: groups created and their children written in one walk)
_h5dsets = compiled("_h5dsets")
# the compiled dataset writer takes this module's dataset nodes, a node with its type tag alone too
lowlevel.take_dataset_nodes(Dataset, TYPE_ATTR)

_UNSET = object()
#: entries of the recorder's queue (path, count and pairs of each object) before it takes them in
_PENDING_ITEMS = 1 << 17


class WriteContext:
    """What the writer needs to know about the file it writes: spilled arrays it may move, the
    :class:`~h5stream.checksums.Recorder` of the file's digests (None when the file keeps none), and
    ``written``: a dict that, when given, receives ``id(node) -> digest`` of every dataset written from
    an array in memory (the digest of exactly what was written, whether or not the file records it).

    ``raw_writes``: :func:`write_root` may hand the bytes of contiguous arrays to a second thread that
    writes them at their offsets while the library creates the other objects
    (:func:`h5stream.lowlevel.raw_writer`; for a new file that nothing else writes meanwhile)."""

    __slots__ = ("file", "movable", "recorder", "written", "raw_writes", "raw", "deferred", "deferred_paths", "walk")

    def __init__(self, file: h5py.File | None = None, movable=None, written: dict | None = None, *,
                 raw_writes: bool = False):
        self.file = file
        self.movable = movable  # callable(FileArray) -> bool: True when the array lives in ``file``
        self.recorder = _UNSET
        self.written = written
        self.raw_writes = raw_writes
        # while write_root hands bytes to a raw writer: the writer, then (id(node), index, ...) and
        # (path, index, ...) of the datasets whose digests it returns at its finish
        self.raw, self.deferred, self.deferred_paths = None, [], []
        self.walk = None  # the compiled group walk of this context as it stands (_group_walk)


def _context(ctx: WriteContext | None, obj) -> WriteContext:
    if ctx is None:
        ctx = WriteContext(obj.file)
    elif ctx.file is None:
        ctx.file = obj.file
    if ctx.recorder is _UNSET:
        ctx.recorder = checksums.recorder_for(obj)
    return ctx


def _text_items(array: np.ndarray) -> list[str]:
    return [v if isinstance(v, str) else text(v) for v in array.ravel().tolist()]


def _text_digest(array: np.ndarray, items: list[str]) -> str:
    """The digest of a text dataset written from ``items``, the text of ``array``."""
    return checksums.text_digest(np.array(items, dtype=object).reshape(array.shape) if array.ndim else items[0])


def _attr_digest(digests: list[str], name: str, stored, numbers: bool) -> None:
    """Add the name and digest of an attribute just written to ``digests`` (the object's attribute set,
    a flat list name, digest, ...).

    Text always (its bytes live in HDF5's global heap, which has no checksum);
    numbers only when ``numbers`` (they live in the object header, which HDF5
    checksums itself in version-2 headers): the set is a ``"text"`` or an
    ``"all"`` set of :mod:`h5stream.checksums`.
    """
    if isinstance(stored, str):  # most attributes (hundreds of thousands per save): the cheap path first
        digests += (name, checksums.scalar_text_digest(stored))
    elif isinstance(stored, np.ndarray) and stored.dtype.kind == "O":
        digests += (name, checksums.text_digest(
            np.array([text(v) for v in stored.ravel().tolist()], dtype=object).reshape(stored.shape)))
    elif numbers:
        digests += (name, checksums.array_digest(np.asarray(stored)))


def _queue_set(recorder, path: str, digests: list[str]) -> None:
    """Queue the attribute set of the object at ``path``, ``digests`` (name, digest, ...), in the
    recorder's flat queue (recorded in one compiled pass: Recorder.flush)."""
    if not digests:
        recorder.empty_set(path)
    pending = recorder.pending
    pending.append(path)
    pending.append(len(digests) >> 1)
    pending += digests
    if len(pending) > _PENDING_ITEMS:
        recorder.flush()


def _record_existing_attrs(recorder, obj) -> None:
    """Record the digests of every attribute of an existing object, as stored (after an in-place edit)."""
    text_only = recorder.attribute_kind == checksums.TEXT_ATTRS
    digests = {}
    for name in obj.attrs:
        if obj.name == "/" and name == checksums.MANIFEST_ATTR:
            continue
        value = obj.attrs[name]
        if not text_only or checksums.is_text_value(value):
            digests[name] = checksums.value_digest(value)
    recorder.attribute_set(obj.name, digests)


def _compact(array: np.ndarray) -> bool:
    return array.dtype.kind not in "OUT" and 0 < array.nbytes <= lowlevel.COMPACT_LIMIT


def _bookkeeping(node: Node, tags: dict[str, str]):
    """The internal attributes that carry the node's type information."""
    if node.tag is not None:
        yield TYPE_ATTR, node.tag
    if isinstance(node, Group) and node.keys is not None:
        yield KEYS_ATTR, jsonvalues.dumps(node.keys)
    if tags:
        yield ATTR_TYPES_ATTR, json.dumps(tags, sort_keys=True)


def dataset_attrs_home(parent: h5py.Group, dataset_name: str) -> h5py.Group:
    """The hidden group beside ``parent[dataset_name]`` that holds its large attributes, created if needed."""
    name = DATASET_ATTRS_PREFIX + dataset_name
    if name in parent:
        return parent[name]
    return h5py.Group(create_group(parent.id, name))


def _existing_dataset_attrs_home(dataset: h5py.Dataset) -> h5py.Group | None:
    parent = dataset.parent
    name = DATASET_ATTRS_PREFIX + posixpath.basename(dataset.name)
    return parent[name] if name in parent else None


def _place_file_array(loc, name: str, full: str, data: FileArray,
                      ctx: WriteContext) -> tuple[h5py.Dataset, str | None]:
    """Put an on-disk array at ``name`` under ``loc`` (a low-level group or file id; ``full``: the same place
    as a full name): a link rename inside the same file, else a library copy, checked against the array's
    digest (:meth:`FileArray.checked_copy_digest`, whose digest is returned)."""
    if ctx.movable is not None and ctx.movable(data):
        ctx.file.move(data.name, full)
        return h5py.Dataset(h5py.h5d.open(loc, name.encode("utf-8"))), None
    source = data.file
    with checksums.checked_read(source.filename, data.name):  # a source header failing its checksum
        copy_dataset_at(source.id, data.name, loc, name)
    copy = h5py.Dataset(h5py.h5d.open(loc, name.encode("utf-8")))
    return copy, data.checked_copy_digest(copy)


# --------------------------------------------------------------------------- through h5py's wrappers


def _wrapped_attrs(oid, node: Node, ctx: WriteContext, *, record: bool = True) -> None:
    tags: dict[str, str] = {}
    recorder = ctx.recorder if record else None
    digests: list[str] | None = [] if recorder is not None else None
    numbers = recorder is not None and not recorder.headers_checksummed
    for name, value in node.attrs.items():
        stored, tag = encode_attr(value)
        if stored_nbytes(stored) > ATTR_LIMIT:
            if isinstance(oid, h5py.h5g.GroupID):
                _wrapped_node(oid, HIDDEN_PREFIX + name, value_node(value), ctx)
            else:
                dataset = h5py.Dataset(oid)
                home = dataset_attrs_home(dataset.parent, posixpath.basename(dataset.name))
                _wrapped_node(home.id, name, value_node(value), ctx)
            tags[name] = "dataset"
            continue
        create_attr(oid, name, stored)
        if digests is not None:
            _attr_digest(digests, name, stored, numbers)
        if tag is not None:
            tags[name] = tag
    for name, stored in _bookkeeping(node, tags):
        create_attr(oid, name, stored)
        if digests is not None:
            _attr_digest(digests, name, stored, numbers)
    if digests is not None:
        _queue_set(recorder, _object_path(oid), digests)


def _object_path(oid) -> str:
    return h5py.h5i.get_name(oid).decode("utf-8")


def _wrapped_node(pid, name: str, node: Node, ctx: WriteContext) -> None:
    """The writer through h5py's low-level wrappers (used when direct library calls are unavailable)."""
    if isinstance(node, Group):
        gid = create_group(pid, name)
        for child_name, child in node.children.items():
            _wrapped_node(gid, child_name, child, ctx)
        if node.attrs or node.tag is not None:
            _wrapped_attrs(gid, node, ctx)
        return
    if isinstance(node.data, FileArray):
        dataset, checked = _place_file_array(pid, name, _object_path(pid).rstrip("/") + "/" + name, node.data, ctx)
        dsid = dataset.id
        if ctx.recorder is not None:
            node.data.record_copy_digest(ctx.recorder, dataset.name, dataset, checked)
    else:
        array = np.asarray(node.data)
        if array.dtype.kind in "OUT":
            array = array.copy()  # the references: the strings themselves cannot change
            dsid = store_array(pid, name, array)
            digest = _text_digest(array, _text_items(array))
        else:
            dsid, digest = lowlevel.store_fixed_digested(pid, name, array)
        if ctx.recorder is not None and not (ctx.recorder.headers_checksummed and _compact(array)):
            ctx.recorder.dataset(_object_path(dsid), digest)
        if ctx.written is not None:
            ctx.written[id(node)] = digest
    if node.attrs or node.tag is not None:
        _wrapped_attrs(dsid, node, ctx)


# --------------------------------------------------------------------------- direct library calls


def _failed(action: str, ctx: WriteContext, path: str) -> WriteError:
    filename = ctx.file.filename if ctx.file is not None else None
    return WriteError(f"{action} failed inside the HDF5 library", path=filename, obj=path,
                      hint="check free disk space; an object of that name may already exist")


def _native_node(native, pid: int, parent_path: str, name: str, node: Node, ctx: WriteContext) -> None:
    if isinstance(node, Group):
        (ctx.walk or _group_walk(native, ctx)).group(pid, parent_path, name, node)
        return
    path = f"{parent_path.rstrip('/')}/{name}"
    key = name.encode("utf-8")
    if isinstance(node.data, FileArray):
        movable = ctx.movable is not None and ctx.movable(node.data)
        rewritten = None if movable else node.data.checked_values_to_rewrite()
        if rewritten is not None:  # read, checked and written as an array in memory is written (no library copy)
            # (through h5py's wrappers, as the library copy was: a failed write's error names the disk's state)
            dsid, digest = lowlevel.store_fixed_digested(ctx.file.id, path, rewritten)
            if ctx.recorder is not None and not (ctx.recorder.headers_checksummed and _compact(rewritten)):
                ctx.recorder.dataset(path, digest)
            oid = dsid.id
        else:
            dataset, checked = _place_file_array(ctx.file.id, path, path, node.data, ctx)
            if ctx.recorder is not None:
                node.data.record_copy_digest(ctx.recorder, path, dataset, checked)
            oid = dataset.id.id
        if node.attrs or node.tag is not None:
            _native_attrs(native, oid, path, node, ctx, is_group=False)
        return
    did = _native_dataset(native, pid, key, node, ctx, path)
    try:
        if node.attrs or node.tag is not None:
            _native_attrs(native, did, path, node, ctx, is_group=False)
    finally:
        native.H5Dclose(did)


def _group_walk(native, ctx: WriteContext):
    """The compiled walk (``h5stream._ext._h5dsets.GroupWalk``) writing groups for ``ctx`` as it stands (its
    raw writer, its lists of deferred digests), kept as ``ctx.walk`` until the next entry point.

    It creates each group with the creation list :meth:`~h5stream.lowlevel.PropertyLists.group_sized` gives,
    writes its children in order (runs of arrays in memory, numbers or one string, without attributes but a
    type tag, in one compiled call each: ``native.write_datasets``, the same bytes and digests as
    :func:`_native_dataset` and :func:`_native_attrs`; groups itself; any other child through
    :func:`_native_node`), then its attributes (:func:`_native_attrs`).
    """
    lists, recorder = lowlevel.plists(), ctx.recorder

    def settle(base: str, recorded: list | None, tagged: list[str]) -> None:
        if recorded:  # in the order written, before the next child's (a digest to come: its index, for now)
            for k in range(0, len(recorded), 2):
                digest = recorded[k + 1]
                if type(digest) is int:
                    ctx.deferred_paths += (f"{base}/{recorded[k]}", digest)
                    digest = ""
                recorder.dataset(f"{base}/{recorded[k]}", digest)
            del recorded[:]
        for k in range(0, len(tagged) if recorder is not None else 0, 2):  # the sets _native_attrs would queue
            _queue_set(recorder, f"{base}/{tagged[k]}", [TYPE_ATTR, checksums.scalar_text_digest(tagged[k + 1])])
        del tagged[:]

    def failed(status: int, path: str) -> WriteError:
        if status == _h5dsets.GROUP_FAILED:
            return _failed("creating the group", ctx, path)
        return _failed(lowlevel.DATASET_FAILURES.get(status, "creating the dataset"), ctx, path)

    ctx.walk = _h5dsets.GroupWalk(
        native.write_datasets or lowlevel._hand_back_datasets, Group, lists.link.id, lists.group.id,
        lists.group_sized, lists.compact.id, lists.contiguous.id, ctx.written, [] if recorder is not None else None,
        recorder is not None and not recorder.headers_checksummed, [], ctx.raw, lists.allocated.id, ctx.deferred,
        lists.text.id, checksums.scalar_text_digest,
        lambda gid, parent_path, name, node: _native_node(native, gid, parent_path, name, node, ctx),
        lambda gid, path, node: _native_attrs(native, gid, path, node, ctx, is_group=True), settle, failed)
    return ctx.walk


def _native_dataset(native, pid: int, key: bytes, node: Dataset, ctx: WriteContext, path: str) -> int:
    """Create and fill one dataset (the layout policy of :func:`~h5stream.lowlevel.store_array`).

    The values written, and their digest, come from one private copy of the array (its text's items, or
    its numbers block by block: :func:`~h5stream.lowlevel.write_snapshots`), so a thread changing
    the array meanwhile cannot make the file fail its own check."""
    array = np.asarray(node.data)
    lists = lowlevel.plists()
    recorder = ctx.recorder
    text_data = array.dtype.kind in "OUT"
    if text_data:
        tid, space, dcpl = lowlevel.TEXT_TYPE, lowlevel.dataspace(array.shape), lists.text
    else:
        tid, space, dcpl = lowlevel.file_type(array.dtype), lowlevel.dataspace(array.shape), lists.dataset(array.nbytes)
    # Compact data sit in the object header, which HDF5 checksums itself in version-2 headers.
    record = recorder is not None and not (recorder.headers_checksummed and dcpl is lists.compact)
    did = native.H5Dcreate2(pid, key, tid.id, space.id, lists.link.id, dcpl.id, 0)
    if did < 0:
        raise _failed("creating the dataset", ctx, path)

    def write_block(rows, block) -> None:
        if rows is None:
            status = native.H5Dwrite(did, tid.id, native.H5S_ALL, native.H5S_ALL, 0, block.ctypes.data)
        else:
            memory_space, file_space = lowlevel.row_spaces(array.shape, rows)
            status = native.H5Dwrite(did, tid.id, memory_space.id, file_space.id, 0, block.ctypes.data)
        if status < 0:
            raise _failed("writing the dataset", ctx, path)

    try:
        if text_data:
            items = _text_items(array)
            if array.size and native.H5Dwrite(did, tid.id, native.H5S_ALL, native.H5S_ALL, 0,
                                              native.text_buffer(items)) < 0:
                raise _failed("writing the dataset", ctx, path)
            digest = _text_digest(array, items) if record or ctx.written is not None else None
        else:
            digest = lowlevel.write_snapshots(array, write_block, digest=record or ctx.written is not None)
    except BaseException:
        native.H5Dclose(did)
        raise
    if record:
        recorder.dataset(path, digest)
    if ctx.written is not None:
        ctx.written[id(node)] = digest
    return did


def _native_attr(native, oid: int, name: str, stored, ctx: WriteContext, path: str) -> None:
    if isinstance(stored, str):
        tid, space, buffer, size = lowlevel.TEXT_TYPE, lowlevel.SCALAR_SPACE, native.text_buffer([stored]), 1
    elif isinstance(stored, np.ndarray) and stored.dtype.kind == "O":
        tid, space, size = lowlevel.TEXT_TYPE, lowlevel.dataspace(stored.shape), stored.size
        buffer = native.text_buffer([text(v) for v in stored.ravel().tolist()])
    else:
        data = np.asarray(stored)
        if not data.flags.c_contiguous:
            data = np.ascontiguousarray(data)
        tid, space = lowlevel.file_type(data.dtype), lowlevel.dataspace(data.shape)
        buffer, size = data.ctypes.data, data.size
    aid = native.H5Acreate2(oid, name.encode("utf-8"), tid.id, space.id, 0, 0)
    if aid < 0:
        raise _failed(f"creating attribute {name!r}", ctx, path)
    try:
        if size and native.H5Awrite(aid, tid.id, buffer) < 0:
            raise _failed(f"writing attribute {name!r}", ctx, path)
    finally:
        native.H5Aclose(aid)


def _native_attr_list(native, oid: int, path: str, names: list[str], values: list, ctx: WriteContext,
                      digests: list[str] | None, numbers: bool, node: Node | None, tags: dict[str, str],
                      is_group: bool) -> None:
    """Write ``names[i] = values[i]`` (stored values) in order: the compiled writer takes what it can
    (strings and numpy scalars, see ``h5stream._ext._h5attrs``) and hands back the rest, written here.

    ``node`` is the node whose attributes these are, or None for the
    bookkeeping attributes, which are never moved out to hidden objects; a
    node's attribute over :data:`ATTR_LIMIT` bytes is, and its tag becomes
    ``"dataset"``.
    """
    limit = ATTR_LIMIT if node is not None else sys.maxsize
    i, n = 0, len(names)
    while i < n:
        i, status = native.write_attrs(oid, names, values, i, digests, numbers, limit)
        if status == native.ATTRS_DONE:
            return
        name, stored = names[i], values[i]
        if status != native.ATTR_YOURS:
            verb = "creating" if status == native.ATTR_CREATE_FAILED else "writing"
            raise _failed(f"{verb} attribute {name!r}", ctx, path)
        if node is not None and stored_nbytes(stored) > ATTR_LIMIT:
            if is_group:
                _native_node(native, oid, path, HIDDEN_PREFIX + name, value_node(node.attrs[name]), ctx)
            else:
                parent_path, _, dataset_name = path.rpartition("/")
                home = dataset_attrs_home(ctx.file[parent_path or "/"], dataset_name)
                _native_node(native, home.id.id, home.name, name, value_node(node.attrs[name]), ctx)
            tags[name] = "dataset"
        else:
            _native_attr(native, oid, name, stored, ctx, path)
            if digests is not None:
                _attr_digest(digests, name, stored, numbers)
        i += 1


def _native_attrs(native, oid: int, path: str, node: Node, ctx: WriteContext, *, is_group: bool,
                  record: bool = True) -> None:
    tags: dict[str, str] = {}
    recorder = ctx.recorder if record else None
    digests: list[str] | None = None
    if recorder is not None:
        # The recorder's one scratch list, emptied after each object; an object written while another
        # one's pairs are in it (a hidden dataset for a large attribute) gets a list of its own.
        digests = recorder.scratch
        if digests:
            digests = []
    numbers = recorder is not None and not recorder.headers_checksummed
    names, values = list(node.attrs), []
    for name, value in node.attrs.items():
        stored, tag = encode_attr(value)
        values.append(stored)
        if tag is not None:
            tags[name] = tag
    if names:
        _native_attr_list(native, oid, path, names, values, ctx, digests, numbers, node, tags, is_group)
    bookkeeping = list(_bookkeeping(node, tags))
    if bookkeeping:
        _native_attr_list(native, oid, path, [b[0] for b in bookkeeping], [b[1] for b in bookkeeping], ctx,
                          digests, numbers, None, tags, is_group)
    if digests is not None:
        _queue_set(recorder, path or "/", digests)
        del digests[:]


# --------------------------------------------------------------------------- entry points


def write_node(parent: h5py.Group, name: str, node: Node, ctx: WriteContext | None = None) -> None:
    """Write ``node`` as ``parent[name]`` (which must not exist)."""
    ctx = _context(ctx, parent)
    ctx.walk = None
    with lowlevel.library_lock:
        native = lowlevel.native_hdf5()
        try:
            if native is not None:
                _native_node(native, parent.id.id, parent.name, name, node, ctx)
            else:
                _wrapped_node(parent.id, name, node, ctx)
        finally:
            ctx.walk = None  # (it refers to ctx: no cycle outlives the write)


def write_attrs(obj: h5py.Group | h5py.Dataset, node: Node, ctx: WriteContext | None = None) -> None:
    """Write the attributes of ``node`` (and its type tags) on the existing ``obj``; none of them may exist."""
    ctx = _context(ctx, obj)
    ctx.walk = None
    with lowlevel.library_lock:
        native = lowlevel.native_hdf5()
        try:
            if native is not None:
                _native_attrs(native, obj.id.id, obj.name, node, ctx, is_group=isinstance(obj, h5py.Group),
                              record=False)
            else:
                _wrapped_attrs(obj.id, node, ctx, record=False)
        finally:
            ctx.walk = None
    if ctx.recorder is not None:
        # The object may hold other attributes: digest what it holds now.
        _record_existing_attrs(ctx.recorder, obj)


def write_children(group: h5py.Group, children: Mapping[str, Node], ctx: WriteContext | None = None) -> None:
    ctx = _context(ctx, group)
    for child_name, child in children.items():
        write_node(group, child_name, child, ctx)


def write_root(f: h5py.File, root: Group, ctx: WriteContext | None = None) -> None:
    """Write a whole tree into an empty file (its root attributes and children)."""
    ctx = _context(ctx, f)
    ctx.raw = lowlevel.raw_writer(f) if ctx.raw_writes and ctx.raw is None else None
    if ctx.raw is None:
        write_children(f, root.children, ctx)
        write_attrs(f, root, ctx)
        return
    try:
        write_children(f, root.children, ctx)
        write_attrs(f, root, ctx)
    except BaseException:
        with contextlib.suppress(OSError):  # (the failure that stopped the tree is the one to report)
            _finish_raw(ctx, cancel=True)
        raise
    _finish_raw(ctx, cancel=False)


def _finish_raw(ctx: WriteContext, *, cancel: bool) -> None:
    """Wait for the raw writer's bytes (a failed write raises OSError) and record their digests."""
    raw, ctx.raw = ctx.raw, None
    digests = raw.finish(cancel)
    if digests is not None:
        deferred, paths = ctx.deferred, ctx.deferred_paths
        for k in range(0, len(deferred), 2):
            ctx.written[deferred[k]] = digests[deferred[k + 1]]
        for k in range(0, len(paths), 2):
            ctx.recorder.dataset(paths[k], digests[paths[k + 1]])
    ctx.deferred, ctx.deferred_paths = [], []


def remove_child(group: h5py.Group, name: str) -> None:
    """Remove ``group[name]`` and the hidden group of its large attributes, if any."""
    recorder = checksums.recorder_for(group)
    base = group.name.rstrip("/")
    if name in group:
        del group[name]
        if recorder is not None:
            recorder.removed(f"{base}/{name}")
    hidden = DATASET_ATTRS_PREFIX + name
    if hidden in group:
        del group[hidden]
        if recorder is not None:
            recorder.removed(f"{base}/{hidden}")


def replace_child(group: h5py.Group, name: str, node: Node, ctx: WriteContext | None = None) -> None:
    """Write ``node`` as ``group[name]``, removing whatever was there (with its hidden large attributes)."""
    remove_child(group, name)
    write_node(group, name, node, ctx)
