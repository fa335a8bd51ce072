"""The save of a session resumed from a file and unchanged since: the file's bytes copied whole, then its changes.

A session loaded with :meth:`~hdmea.session.session.PipelineSession.load` and saved to a new path without any
change to its tree (the resume of a checkpoint: ``PipelineSession.load(k).save(t)``) would otherwise write
every object of the file again, one library call each (tens of thousands for a lab recording).  Here the
file the tree was read from is copied byte for byte, in the kernel, into the target's partial file, and only
what the saved file holds differently is written into the copy through the tree writer (the root's
attributes, ``/pipeline`` with its ``session_info``, ``/source_files``, the session-mode copies the writer
makes afresh at every save), before the usual fsync and atomic rename.  The file reads back, in plain h5py,
as the file the object-by-object save writes (names, kinds, dtypes, shapes, layouts, values, attributes);
its checksum manifest keeps the source's digests for what was copied.

Every byte copied is checked, as the object-by-object save checks what it copies:

* the copy is taken from the very descriptor the load opened and checked (signature, unsafe objects, every
  object header, which HDF5 checksums, and every value read at load against its digest), and only when that
  file is still the one loaded (device, inode, size, modification time), before and after the copy;
* every array left on disk at load with a digest (:attr:`FileArray.checked_on_copy`) is digested from the
  copy's bytes as each step of the copy is written (read back at once, from the page cache), else read back
  from the copy, and compared with it before anything is published: a damaged source is the same
  :class:`~h5stream.errors.ChecksumError` naming the source, the object, the digests expected and found,
  and the target is left as it was;
* an array held in memory since the load is compared with its digest at load: one changed in place (the
  caller's, from a read) sends the save down the object-by-object path, which writes it.

The copy is taken only where it writes the same file: the source carries a complete checksum manifest of
this package's session writer (``sets_complete``), nothing was spilled, and the session's tree is the one
loaded, unchanged (:meth:`~hdmea.session.tree.SessionTree.unchanged_since_load`).  Anything else saves
object by object, as before.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np

from h5stream import checksums
from h5stream.digests import digest_end, digest_start, digest_update
from h5stream.errors import H5StreamError
from h5stream.files import as_write_error, copy_atomic
from h5stream.staging import LIBVER, FileArray
from h5stream.tree.filearray import REWRITE_LIMIT
from h5stream.tree import Dataset, Group
from h5stream.tree.nodes import HIDDEN_PREFIX, STAGING_PREFIX
from h5stream.tree.write import WriteContext, remove_child, replace_child, write_attrs
from hdmea.io import _files
from hdmea.session._session_files import SELF_CONTAINED
from hdmea.session._staged_tree import walk_datasets

__all__ = ["save_by_copy"]

_WRITE_FAILURES = (OSError, RuntimeError, ValueError)


def save_by_copy(loaded, tree: Group, target: Path, *, written: dict) -> bool:
    """Save ``tree`` (the session's tree for its file) to ``target`` as a copy of the file ``loaded`` was
    read from (``loaded``: :meth:`SessionTree.unchanged_since_load`'s record) with the differences written
    into it; False, with nothing written, where the copy cannot be taken (the caller then saves object by
    object).  ``written`` receives ``id(dataset node) -> digest`` of every array the saved file holds from
    memory (those written, and those copied as loaded).  Raises what the object-by-object save raises for a
    damaged source or a failed write; the target is then untouched."""
    source = loaded.source
    fd = source.unchanged_descriptor()
    if fd is None:
        return False
    manifest = checksums.manifest_for(source())
    if manifest is None or not manifest.sets_complete:
        return False  # not a file of the session writer (or written before checksums): object by object
    atomic = copy_atomic(target, fd, overwrite=True, libver=LIBVER, checksums=True)
    atomic.self_contained = SELF_CONTAINED  # (a file the load checked, the tree writer's changes in it)
    atomic.copy_watch = copied = _CopiedDigests(tree)
    with _files.recording_errors(target):
        f = atomic.open()
    try:
        if source.unchanged_descriptor() != fd:  # changed while it was copied: object by object
            atomic.abort()
            return False
        recorder = checksums.recorder_for(f)
        if recorder is not None:
            recorder.sets_complete = True  # the copied file's objects each had their set; the writer records the rest
        _check_copied_arrays(f, tree, atomic.partial, copied.digests)
        ctx = WriteContext(f, written=written)
        _write_root_attrs(f, tree, ctx)
        _write_differences(f, loaded.root, tree, ctx)
    except BaseException as exc:
        atomic.abort()
        if isinstance(exc, _WRITE_FAILURES) and not isinstance(exc, H5StreamError):
            raise as_write_error(exc, target, "writing") from exc
        raise
    atomic.commit()
    for node_id, digest in loaded.digests.items():
        written.setdefault(node_id, digest)
    return True


class _CopiedDigests:
    """The digests of the arrays stored whole at a known place in their native type (:attr:`FileArray.stored_at`),
    taken from the bytes as the copy writes them (the ``watch`` of :func:`~h5stream.files.copying.copy_descriptor`):
    ``digests``, id of the :class:`FileArray` -> digest, each complete once its last byte was copied."""

    def __init__(self, tree: Group) -> None:
        arrays = [node.data for _path, node in walk_datasets(tree) if isinstance(node.data, FileArray)
                  and node.data.checked_on_copy and node.data.stored_at is not None and node.data.dtype.isnative]
        self._arrays = sorted(arrays, key=lambda data: data.stored_at[0])
        self._next, self._crc, self._seen = 0, None, 0
        self.digests: dict[int, str] = {}

    def __call__(self, offset: int, block: memoryview) -> None:
        end = offset + len(block)
        arrays = self._arrays
        while self._next < len(arrays):
            data = arrays[self._next]
            start, nbytes = data.stored_at
            if start >= end:
                return
            if self._crc is None:
                self._crc = digest_start(data.dtype, data.shape)
            low, high = max(start, offset), min(start + nbytes, end)
            if low < high:
                self._crc = digest_update(self._crc, np.frombuffer(block[low - offset:high - offset], dtype=np.uint8))
                self._seen += high - low
            if start + nbytes > end:
                return  # (its rest comes with the next block)
            if self._seen == nbytes:  # (an array overlapping the one before it was not seen whole: read back)
                self.digests[id(data)] = digest_end(self._crc)
            self._next, self._crc, self._seen = self._next + 1, None, 0


def _check_copied_arrays(f: h5py.File, tree: Group, partial: Path, copied: dict[int, str]) -> None:
    """Check every array left on disk at load that has a digest against the copy (the error of
    :meth:`FileArray.checked_copy_digest`, naming the source).  An array whose digest the copy took as it
    wrote its bytes (``copied``) matches or is read back; one stored whole and unfiltered in its own type is
    digested straight from the copy's bytes at its address (no read through the library); any other, and
    any mismatch (then named), goes through the library's read."""
    fid = f.id
    with open(partial, "rb") as fh:
        fd = fh.fileno()
        size = os.fstat(fd).st_size
        for path, node in walk_datasets(tree):
            data = node.data
            if not isinstance(data, FileArray) or not data.checked_on_copy:
                continue
            dtype = data.dtype
            if copied.get(id(data)) == data.digest:
                continue  # (its bytes were digested as they were copied)
            if data.stored_at is not None and dtype.isnative and _bytes_digest(data, fd, size) == data.digest:
                continue  # (the copy holds the values at the place the load found them)
            if data.nbytes > REWRITE_LIMIT or dtype.kind not in "biuf" or not dtype.isnative:
                data.checked_copy_digest(f["/" + path])  # read in blocks (a large array is not held whole)
                continue
            with checksums.checked_read(data.file, data.name):  # a header of the copy failing its checksum
                dsid = h5py.h5d.open(fid, ("/" + path).encode("utf-8"))
            if dsid.shape != data.shape:
                data.checked_copy_digest(f["/" + path])
                continue
            data.checked_values(dsid)  # read by the library: a mismatch raises, naming the source


def _bytes_digest(data: FileArray, fd: int, size: int) -> str | None:
    """The digest of ``data``'s values taken from the bytes of the file open as ``fd`` (``size`` bytes) at the
    place the load found them (:attr:`FileArray.stored_at`), in blocks of at most 16 MiB."""
    offset, nbytes = data.stored_at
    if offset + nbytes > size:
        return None
    crc = digest_start(data.dtype, data.shape)
    done = 0
    while done < nbytes:
        block = os.pread(fd, min(nbytes - done, 1 << 24), offset + done)
        if not block:
            return None
        crc = digest_update(crc, np.frombuffer(block, dtype=np.uint8))
        done += len(block)
    return digest_end(crc)


def _write_root_attrs(f: h5py.File, tree: Group, ctx: WriteContext) -> None:
    """The root's attributes as the tree writer writes them into a new file (the old ones removed first,
    but for the checksum manifest, which the commit rewrites)."""
    for name in list(f.attrs):
        if name != checksums.MANIFEST_ATTR:
            del f.attrs[name]
    for member in [m for m in f if m.startswith((HIDDEN_PREFIX, STAGING_PREFIX))]:
        remove_child(f, member)  # the root's large attributes (written again below), a spill's leftovers
    write_attrs(f, Group(dict(tree.attrs), {}, tree.tag, tree.keys), ctx)


def _write_differences(group: h5py.Group, before: Group, after: Group, ctx: WriteContext) -> None:
    """Make ``group`` (holding ``before``'s children, as loaded) hold ``after``'s: a child that is the loaded
    node itself stays as copied, a group with the same attributes is compared member by member, anything
    else is written again (a node can only be the loaded one when the tree is unchanged since the load)."""
    for name in before.children:
        if name not in after.children:
            remove_child(group, name)
    for name, node in after.children.items():
        old = before.children.get(name)
        if node is old:
            continue
        if (isinstance(node, Group) and isinstance(old, Group) and node.tag == old.tag
                and node.keys == old.keys and _same_attrs(node.attrs, old.attrs)):
            _write_differences(group[name], old, node, ctx)
        elif isinstance(node, Dataset) and isinstance(old, Dataset) and _same_dataset(node, old):
            continue
        else:
            replace_child(group, name, node, ctx)


def _same_dataset(a: Dataset, b: Dataset) -> bool:
    """Two in-memory datasets with the same tag, attributes, dtype, shape and bytes (what the writer writes
    the same way); arrays on disk are never taken as equal here."""
    if a.tag != b.tag or not _same_attrs(a.attrs, b.attrs):
        return False
    return _same_value(a.data, b.data)


def _same_attrs(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(_same_value(a[name], b[name]) for name in a)


def _same_value(a, b) -> bool:
    """Equal values of the same type (numpy: the same dtype, shape and bytes; text arrays item by item);
    anything unsure is not the same (it is then written again, which is always right)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (np.ndarray, np.generic)):
        if a.dtype != b.dtype or np.shape(a) != np.shape(b):
            return False
        if a.dtype.kind == "O":
            return np.asarray(a).tolist() == np.asarray(b).tolist()
        return np.asarray(a).tobytes() == np.asarray(b).tobytes()
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (str, bytes, int, bool)) or a is None:
        return a == b
    return False
