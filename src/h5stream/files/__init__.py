"""File lifecycle: atomic creation and replacement, single-writer claims, validated reads.

The rules this package enforces:

* A new file is built at ``<target>.partial-<pid>-<n>`` in the target's
  directory, flushed, fsynced, renamed over the target with ``os.replace`` and
  the directory fsynced.  The target path itself is never opened for writing,
  so a crash at any moment leaves either no target or the previous complete one
  (:mod:`~h5stream.files.atomic`; small files through :func:`write_bytes_atomic`, and the target's checks
  and the rename both share, in :mod:`~h5stream.files.publish`).
* One writer per target.  A claim file ``<target>.claim`` (host, pid, thread,
  time) is created before any work; HDF5's own file lock guards the partial
  file.  A claim left by a dead process on this host is cleared with a
  :class:`~h5stream.errors.StaleClaimWarning`; one from another host is
  reported with the way to clear it (:mod:`~h5stream.files.claims`).
* Readers distrust files: the HDF5 signature is checked before h5py touches the
  file, external links, external storage, virtual datasets and unavailable
  filters are refused, and every failure leaves as a typed error naming the path
  and the object (:mod:`~h5stream.files.validated`).  Writers never follow what
  readers refuse: an update scans its copy the same way before the first write.
* A file of unknown origin can be read in full in a separate process first, so
  a file that crashes or hangs libhdf5 becomes a typed error
  (:mod:`~h5stream.files.verify`).

Modules: ``paths`` (names beside a target, fsync), ``claims``, ``validated`` (with
``global_heaps`` and ``header_checks``, the checks it runs before values are read),
``publish``, ``atomic``, ``verify``.  Every public name is importable from ``h5stream.files``.
"""

from __future__ import annotations

import logging

from h5stream.files.atomic import (
    AtomicFile,
    adopt_partial,
    copy_atomic,
    create_atomic,
    update_atomic,
)
from h5stream.files.publish import write_bytes_atomic
from h5stream.files.write_errors import as_write_error, disk_full
from h5stream.files.claims import WriterClaim, hdf5_lock_held, open_here_error, open_in_this_process
from h5stream.files.paths import claim_path, fsync_directory, fsync_path, partial_path, staged_path
from h5stream.files.global_heaps import GLOBAL_HEAP_SCAN_BYTES, check_global_heaps, check_large_global_heaps
from h5stream.files.header_checks import check_declared_size, check_stored_type
from h5stream.files.validated import (
    ALLOWED_FILTERS,
    check_hdf5_signature,
    check_regular_file,
    guard_read,
    open_validated,
    refuse_unsafe_target,
    require_attr_format,
    scan_unsafe_objects,
)
from h5stream.files.verify import LinkRuleFor, verify_file, verify_files

__all__ = [
    "AtomicFile",
    "WriterClaim",
    "hdf5_lock_held",
    "open_in_this_process",
    "open_here_error",
    "create_atomic",
    "update_atomic",
    "write_bytes_atomic",
    "adopt_partial",
    "copy_atomic",
    "as_write_error",
    "disk_full",
    "open_validated",
    "refuse_unsafe_target",
    "guard_read",
    "check_hdf5_signature",
    "check_regular_file",
    "scan_unsafe_objects",
    "require_attr_format",
    "partial_path",
    "staged_path",
    "claim_path",
    "fsync_path",
    "fsync_directory",
    "ALLOWED_FILTERS",
    "verify_file",
    "verify_files",
    "LinkRuleFor",
    "check_declared_size",
    "check_stored_type",
    "GLOBAL_HEAP_SCAN_BYTES",
    "check_global_heaps",
    "check_large_global_heaps",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
