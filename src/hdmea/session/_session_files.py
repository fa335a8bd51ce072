"""How a session's tree becomes a file: a new file built beside the target, or the spill file finished in place.

Both end in one atomic rename over the target (:mod:`h5stream.files`); a failure leaves any
earlier file at the target as it was.
"""

from __future__ import annotations

from pathlib import Path

from h5stream import checksums
from h5stream.errors import H5StreamError
from h5stream.files import adopt_partial, as_write_error, create_atomic
from h5stream.staging import LIBVER, STAGING_GROUP, FileArray, StagingArea
from hdmea.io import _files
from hdmea.io import hdf5_store as store
from hdmea.io.hdf5_store import Group
from hdmea.session._staged_tree import walk_datasets

__all__ = ["SELF_CONTAINED", "write_new_file", "save_into_spill_file"]

#: What libhdf5 raises through h5py when a write fails (a full disk comes as any of them): each leaves
#: as :class:`~h5stream.errors.WriteError`, never raw.
_WRITE_FAILURES = (OSError, RuntimeError, ValueError)


def write_new_file(target: Path, tree: Group, *, overwrite: bool, written: dict | None = None) -> None:
    """Write ``tree`` to a new partial file beside ``target`` and rename it over ``target`` (``written``
    receives the digest of each dataset written from memory: :class:`~h5stream.tree.write.WriteContext`)."""
    # evict-on-close: the tree writer closes each of its tens of thousands of objects for good;
    # early write-back: the disk writes the file while the tree writer fills it, the fsync waits for the tail
    atomic = create_atomic(target, overwrite=overwrite, libver=LIBVER, checksums=True, evict_on_close=True,
                           early_writeback=True)
    atomic.self_contained = SELF_CONTAINED  # (values only, never links)
    with _files.recording_errors(target):
        f = atomic.open()
    try:
        _all_sets_recorded(f)
        # raw writes: the bytes of the contiguous arrays go to the new file from a second thread meanwhile
        store.write_root(f, tree, store.WriteContext(f, written=written, raw_writes=True))
    except BaseException as exc:
        atomic.abort()
        if isinstance(exc, _WRITE_FAILURES) and not isinstance(exc, H5StreamError):
            raise as_write_error(exc, target, "writing") from exc
        raise
    atomic.commit()


#: The session's files are marked self-contained at their commit (:mod:`h5stream.files.self_contained`): the
#: tree writer writes values only, never an external link, external storage or a virtual dataset, and the
#: copy of a loaded file (:mod:`hdmea.session._copy_save`) starts from a file the load checked for them.  A
#: later save over such a file, unchanged since, then reads its mark instead of opening its every object.
SELF_CONTAINED = True


def _all_sets_recorded(f) -> None:
    """The session's file records an attribute set for every object it writes with attributes (the tree
    writer records each one), so its manifest says so: an attribute another tool adds later to an object
    written without any, a number too, is then refused by a verified load (:mod:`h5stream.checksums`)."""
    recorder = checksums.recorder_for(f)
    if recorder is not None:
        recorder.sets_complete = True


def save_into_spill_file(staging: StagingArea, target: Path, tree: Group, on_lost, written: dict | None = None) -> None:
    """Finish the spill file as ``target``: spilled arrays are moved inside it, not copied.

    ``on_lost(text)`` is called when the write failed after spilled arrays were
    moved (the discarded file took them with it): the session cannot save again.
    """
    opener = staging.spill_file

    def movable(array: FileArray) -> bool:
        return array.spilled and array._opener == opener

    # Values copied from another file (a recording read on demand) are checked before anything is
    # claimed or moved: a damaged source then fails the save with the spilled data still in place.
    for _path, node in walk_datasets(tree):
        if isinstance(node.data, FileArray) and not movable(node.data):
            node.data.check_source()
    # The engine adopts the spill file as the target's partial file: claim and target
    # checks come first, so a refused target leaves the spilled arrays where they are.
    with _files.recording_errors(target):
        atomic = adopt_partial(target, staging.spill_path, overwrite=True, checksums=True)
    atomic.self_contained = SELF_CONTAINED
    f = opener()
    handed = staging.detach_spill_file()
    assert handed is not None and handed[0] is f and handed[1] == atomic.partial
    atomic.file = f
    try:
        _all_sets_recorded(f)
        store.write_root(f, tree, store.WriteContext(f, movable, written=written))
        if STAGING_GROUP in f:
            del f[STAGING_GROUP]
        atomic.commit()
    except BaseException as exc:
        atomic.abort()
        on_lost(f"saving to {target} failed ({exc}) after spilled arrays were moved; the earlier file is "
                "intact, but this session's spilled data is gone. Resume from the last checkpoint.")
        if isinstance(exc, _WRITE_FAILURES) and not isinstance(exc, H5StreamError):
            raise as_write_error(exc, target, "saving") from exc
        raise
