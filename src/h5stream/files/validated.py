"""Validated reads: a file is checked before h5py trusts it, and every read failure becomes a typed error.

The HDF5 signature is checked before h5py touches the file; pipes and devices
are refused; external links, external storage, virtual datasets and
unavailable filters are refused (:func:`scan_unsafe_objects`, over the bounded walk of
:mod:`h5stream.files._walk`), and every failure leaves as a typed error naming
the path and the object.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py

from h5stream.errors import (
    FormatError,
    H5StreamError,
    MissingPluginError,
    SourceNotFoundError,
    UnsafeFileError,
)
from h5stream.files._headers import AttributeReferences, direct_object_info
from h5stream.files._walk import MAX_DEPTH, MAX_GROUP_MEMBERS, MAX_LINKS, Descriptions, _walk, link_names, stored_names  # noqa: F401
from h5stream.files.claims import hdf5_lock_held, open_here_error, open_in_this_process
from h5stream.files.global_heaps import (
    GLOBAL_HEAP_SCAN_BYTES,
    add_storage_ranges,
    check_global_heaps,
    check_large_global_heaps,
)
from h5stream.files.self_contained import marked_self_contained
from h5stream.files.header_checks import check_declared_size, check_stored_type, check_text_lengths, plain_storage

__all__ = [
    "ALLOWED_FILTERS",
    "link_names",
    "check_hdf5_signature",
    "check_regular_file",
    "scan_unsafe_objects",
    "ObjectVisitor",
    "guard_read",
    "open_validated",
    "refuse_unsafe_target",
    "require_attr_format",
]

logger = logging.getLogger("h5stream.files")

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# Filters a reader accepts.  Standard HDF5 filters are always present; the rest
# come with hdf5plugin (imported on demand so their filters register).
ALLOWED_FILTERS = {
    1: "deflate (gzip)",
    2: "shuffle",
    3: "fletcher32",
    4: "szip",
    5: "nbit",
    6: "scaleoffset",
    32000: "lzf",
    32001: "blosc",
    32004: "lz4",
    32008: "bitshuffle",
    32015: "zstd",
    32026: "blosc2",
}
PLUGIN_FILTERS = {32001, 32004, 32008, 32015, 32026}


def check_regular_file(path: str | os.PathLike) -> Path:
    """Refuse a missing path, a directory, a pipe, a socket or a device before anything is read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SourceNotFoundError("file does not exist", path=path, hint="check the path") from None
    except OSError as exc:
        raise FormatError(f"cannot inspect the file ({exc.strerror or exc})", path=path) from exc
    if stat.S_ISDIR(mode):
        raise FormatError("is a directory", path=path, expected="an HDF5 file", found="a directory")
    if not stat.S_ISREG(mode):
        # A FIFO or device would block the reader or stream endless bytes.
        raise FormatError(
            "is not a regular file", path=path, expected="an HDF5 file",
            found="a pipe, socket or device", hint="copy the data into a file first",
        )
    return path


def check_hdf5_signature(path: str | os.PathLike) -> int:
    """Return the superblock offset of an HDF5 file, or raise :class:`FormatError`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            offset = 0
            while offset + len(HDF5_SIGNATURE) <= size:
                fh.seek(offset)
                if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                    return offset
                offset = 512 if offset == 0 else offset * 2
    except FileNotFoundError:
        raise SourceNotFoundError("file does not exist", path=path) from None
    except OSError as exc:
        raise FormatError(f"cannot read the file ({exc.strerror})", path=path) from exc
    raise FormatError(
        "not an HDF5 file",
        path=path,
        expected="the HDF5 signature at offset 0, 512, 1024, ...",
        found=f"no signature in {size} bytes",
        hint="check that the path names an HDF5 file",
    )


def _plugin_filters_loaded() -> None:
    with contextlib.suppress(ImportError):
        import hdf5plugin  # noqa: F401  (registers its filters with HDF5)


#: ``visit(name, oid) -> bool`` of :func:`scan_unsafe_objects`: called for every link below the
#: file's root, ``name`` its full path without the leading ``/`` (bytes), ``oid`` the object's open
#: low-level id once the scan has checked it (None for a link the scan does not open: soft,
#: accepted external, a group already reached through another link, or, with ``describe``, a plain
#: dataset with attributes checked from its object header).  Returning True keeps
#: ``oid`` open for the caller, who then owns it; otherwise the scan closes it.
ObjectVisitor = Callable[[bytes, "h5py.h5o.ObjectID | None"], bool]


#: ``allow_link(link name, target file, target object) -> bool``: an external link a caller accepts.
LinkRule = Callable[[str, str, str], bool]


def scan_unsafe_objects(f: h5py.File, path: str | os.PathLike, *, allow_link: LinkRule | None = None,
                        visit: ObjectVisitor | None = None, storage: list[tuple[int, int]] | None = None,
                        facts: dict | None = None, describe: Descriptions | None = None,
                        names: dict[str, tuple[list[bytes], list[bytes]]] | None = None) -> None:
    """Refuse external links, external storage, virtual datasets and unavailable filters.

    One walk of the file (:func:`link_names`' walk, with its bounds) opens each
    object once from its group and checks each dataset as it goes.
    ``allow_link`` accepts named external links (never followed), for example
    the vendor link rule the recording face passes for an MCS ``.cmtr``.
    ``visit`` sees every link and its checked object on the way and may keep the
    object open (see :data:`ObjectVisitor`), so a reader that walks the same
    objects next need not open them again; ``facts`` receives what the checks asked of each dataset
    (full name without the leading slash, as bytes -> (its type id, its shape as h5py's low-level id
    gives it)), so that reader need not ask again.  The plain datasets of numbers without attributes
    (most of a session's file) are checked in the compiled walk itself (as are those of attributes, then
    handed over) and, without ``visit`` and ``facts``, not handed to Python at all; with ``describe`` (:class:`Descriptions`) they are described
    there instead of being handed to ``visit`` or recorded in ``facts`` (see :func:`h5stream.files._walk._walk`).
    ``names`` receives, for each object the walk opens, its attribute and member names
    (:func:`h5stream.files._walk.stored_names`) under its full name (``"/a/b"``), so that a check of the
    names (:func:`h5stream.checksums.check_names`) need not open the object again; an object whose path is
    not UTF-8 text, one the walk does not open or whose names cannot be listed is left out.
    Raises :class:`UnsafeFileError`, :class:`MissingPluginError` or
    :class:`FormatError` naming the offending object.
    """
    plugins = [False]  # hdf5plugin imported (its filters registered)
    external, dataset_id = h5py.h5l.TYPE_EXTERNAL, h5py.h5d.DatasetID
    # table types already found sound in this walk: a file of many tables (a .cmtr's Peaks, one per
    # unit) mostly repeats one type, which H5Tequal (every property, bit fields included) recognises
    checked: list = []
    headers = AttributeReferences.of(f, path, direct_object_info)
    prechecked: set[bytes] = set()  # datasets with attributes the compiled walk checked (see _walk)

    def on_member(full: bytes, kind: int, oid) -> bool:
        if kind == external:
            _check_link(f, path, full, allow_link)
        elif isinstance(oid, dataset_id) and full not in prechecked:  # (else checked, storage added, in C)
            layout = _check_dataset(oid, path, full, plugins, checked, facts)
            if storage is not None:
                add_storage_ranges(oid, layout, storage)
        if oid is not None:
            if headers is not None:
                headers.check(oid, "/" + full.decode("utf-8", errors="replace"))
            if names is not None:
                _record_names(names, full, oid)
        # Soft links name objects of this file, visited through their hard link.
        return visit(full, oid) if visit is not None else False

    try:
        if headers is not None:
            headers.check(f.id, f.name or "/")
        if names is not None and f.name == "/":
            _record_names(names, b"", f.id)
        take = describe is not None or (visit is None and facts is None)  # nothing asked of those taken
        _walk(f, path, on_member, take=take, describe=describe, storage=storage, checked=prechecked)
    finally:
        if headers is not None:
            headers.close()


def _record_names(names: dict, full: bytes, oid) -> None:
    """``names[full name] = stored_names(oid)``; an object whose path is not UTF-8 or whose names cannot be
    listed is left out (the check of the names opens it itself, and names what is wrong)."""
    with contextlib.suppress(UnicodeDecodeError, OSError, RuntimeError, ValueError, KeyError):
        names["/" + full.decode("utf-8")] = stored_names(oid)


def _check_link(f: h5py.File, path, full: bytes, allow_link: LinkRule | None) -> None:
    """Refuse the external link ``full`` unless ``allow_link`` accepts it."""
    name = "/" + full.decode("utf-8", errors="replace")
    target_file, target_obj = _external_link_target(f, full)
    if allow_link is None or not allow_link(name, target_file, target_obj):
        raise UnsafeFileError(
            "external link to another file", path=path, obj=name, found=f"link to {target_file}:{target_obj}",
            hint="external links are refused; copy the data into the file",
        )


def _scan_links_and_storage(f: h5py.File, path) -> None:
    """What of :func:`scan_unsafe_objects` a writer replacing the file needs: external links, external storage,
    virtual datasets (same errors); a plain dataset (:func:`plain_storage`) is not asked more (sizes, types: reads)."""
    external, dataset_id, plugins = h5py.h5l.TYPE_EXTERNAL, h5py.h5d.DatasetID, [False]

    def on_member(full: bytes, kind: int, oid) -> bool:
        if kind == external:
            _check_link(f, path, full, None)
        elif isinstance(oid, dataset_id) and plain_storage(oid) is None:
            _check_dataset(oid, path, full, plugins)
        return False

    _walk(f, path, on_member, take=True)  # (a dataset the compiled walk takes is plain: nothing to ask here)


def _check_dataset(oid: h5py.h5d.DatasetID, path, full: bytes, plugins: list[bool],
                   checked: list | None = None, facts: dict | None = None) -> int:
    """Refuse a virtual dataset, external raw storage, an implausible declared size or a filter not allowed or
    not available; ``checked`` holds table types found sound before (each checked once); ``facts`` receives
    the dataset's (type id, shape) under ``full`` once it passed (see :func:`scan_unsafe_objects`).  Returns
    the dataset's layout."""
    name = "/" + full.decode("utf-8", errors="replace")
    layout = plain_storage(oid)  # no filter, external file or virtual mapping: nothing more to ask of them
    if layout is not None:
        return _check_plain_dataset(oid, path, name, full, layout, checked, facts)
    plist = oid.get_create_plist()
    layout = plist.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        raise UnsafeFileError(
            "virtual dataset", path=path, obj=name,
            found="a dataset mapped onto other files",
            hint="virtual datasets read other files and are refused",
        )
    if plist.get_external_count() > 0:
        raise UnsafeFileError(
            "dataset with external storage", path=path, obj=name,
            found=f"raw data in {plist.get_external(0)[0].decode(errors='replace')}",
            hint="external raw storage reads other files and is refused",
        )
    nfilters = plist.get_nfilters()
    _check_plain_dataset(oid, path, name, full, layout, checked, facts, filtered=nfilters > 0)
    for i in range(nfilters):
        code, _flags, _vals, fname = plist.get_filter(i)
        if code not in ALLOWED_FILTERS:
            raise FormatError(
                "dataset uses a filter that is not allowed",
                path=path, obj=name,
                expected="one of " + ", ".join(sorted(ALLOWED_FILTERS.values())),
                found=f"filter {code} ({fname.decode(errors='replace')})",
                hint="rewrite the data with an allowed filter",
            )
        if code in PLUGIN_FILTERS and not plugins[0]:
            _plugin_filters_loaded()
            plugins[0] = True
        if not h5py.h5z.filter_avail(code):
            raise MissingPluginError(
                f"dataset is compressed with {ALLOWED_FILTERS[code]} (filter {code}), "
                "which is not available here",
                path=path, obj=name,
                hint="install the plugin: pip install 'h5stream[fast]' (hdf5plugin)",
            )
    return layout


def _check_plain_dataset(oid: h5py.h5d.DatasetID, path, name: str, full: bytes, layout: int, checked: list | None,
                         facts: dict | None, *, filtered: bool = False) -> int:
    """:func:`_check_dataset`'s checks of the declared size and stored type (the storage's own are done)."""
    tid = oid.get_type()
    space = oid.get_space()
    check_declared_size(oid, path, name, filtered=filtered, tid=tid, space=space)
    kind = tid.get_class()
    if kind in (h5py.h5t.COMPOUND, h5py.h5t.ARRAY):  # tables: the layouts older libhdf5 trusts (see there)
        if checked is None or not any(tid.equal(known) for known in checked):
            check_stored_type(tid, path, name)
            if checked is not None and len(checked) < 16:
                checked.append(tid)
    elif kind == h5py.h5t.STRING and tid.is_variable_str() and layout == h5py.h5d.CONTIGUOUS:
        check_text_lengths(oid, path, name)
    if facts is not None:
        facts[full] = (tid, space.shape)  # what DatasetID.dtype and .shape ask of HDF5 again
    return layout


def _external_link_target(f: h5py.File, raw_name: bytes) -> tuple[str, str]:
    try:
        link = f.get(raw_name.decode("utf-8", errors="replace"), getlink=True)
    except Exception:  # noqa: BLE001 - the link is refused either way; its target is only for the message
        return "?", "?"
    return getattr(link, "filename", "?"), getattr(link, "path", "?")


# Exceptions h5py, numpy and the OS raise for corrupt or truncated content.
# SystemError appears when libhdf5 fails inside an h5py callback; MemoryError
# and OverflowError when a corrupted shape or size asks for an impossible array.
_READ_FAILURES = (
    OSError,
    RuntimeError,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    AttributeError,
    SystemError,
    ArithmeticError,
    MemoryError,
)


def _stop_behind(exc: BaseException) -> BaseException | None:
    """The stop (``KeyboardInterrupt``, ``SystemExit`` or another non-``Exception``) behind ``exc``, if any.

    A signal handler's exception raised while compiled code runs (h5py's lock, a Cython callback) can
    come out as that code's own ``SystemError`` ("returned a result with an exception set") with the
    stop as its cause: the read did not fail, it was stopped, and the stop must go on as itself.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if not isinstance(exc, Exception):
            return exc
        exc = exc.__cause__  # an exception raised while another was handled is not caused by it
    return None


@contextlib.contextmanager
def guard_read(path: str | os.PathLike, obj: str | None = None) -> Iterator[None]:
    """Turn any low-level failure inside the block into a :class:`FormatError`.

    Our own typed errors pass through unchanged.  A missing decompression
    filter becomes :class:`MissingPluginError`.
    """
    try:
        yield
    except H5StreamError:
        raise
    except _READ_FAILURES as exc:
        stop = _stop_behind(exc)
        if stop is not None:  # a stop landed inside compiled code, which reported it as its own failure
            raise stop from None
        text = str(exc) or type(exc).__name__
        from h5stream.checksums import fletcher32_failure  # the checksums module imports this package

        mismatch = fletcher32_failure(exc, path, obj)
        if mismatch is not None:
            raise mismatch from exc
        if "filter" in text and ("not registered" in text or "can't open" in text or "available" in text):
            raise MissingPluginError(
                f"cannot decompress data ({text})", path=path, obj=obj,
                hint="install the plugin: pip install 'h5stream[fast]' (hdf5plugin)",
            ) from exc
        if isinstance(exc, MemoryError):
            raise FormatError(
                "the object asks for more memory than is available (corrupted size?)",
                path=path, obj=obj, hint="the file may be corrupted",
            ) from exc
        raise FormatError(
            f"cannot read the object ({type(exc).__name__}: {text})",
            path=path, obj=obj,
            hint="the file may be corrupted or incomplete",
        ) from exc


#: The out-of-process whole-file check behind ``open_validated(verify_timeout=...)``: set by
#: :mod:`h5stream.files.verify` when it is imported (with the package), so the dependency runs one way
#: (verify's child process opens files through this module).
_whole_file_check = None


def open_validated(
    path: str | os.PathLike,
    *,
    check: Callable[[h5py.File], None] | None = None,
    scan: bool = True,
    verify_timeout: float | None = None,
    allow_link: LinkRule | None = None,
    visit: ObjectVisitor | None = None,
    facts: dict | None = None,
    describe: Descriptions | None = None,
    names: dict | None = None,
    **h5py_kwargs,
) -> h5py.File:
    """Open an HDF5 file for reading after checking it can be trusted.

    Parameters
    ----------
    path : path
        A regular file; pipes and devices are refused before anything is read.
    check : callable, optional
        ``check(f)`` validates the format name and version (see
        :func:`require_attr_format`) and raises :class:`FormatError`; any raw
        exception it lets through becomes a :class:`FormatError` too.
    scan : bool, default True
        Refuse external links, external storage, virtual datasets and filters
        that are not allowed or not installed (see :func:`scan_unsafe_objects`).
        The scan opens every object once (about 0.1 ms each).
    verify_timeout : float, optional
        First read the whole file in a separate process with
        :func:`verify_file` (``check`` must then be a module-level function):
        a file that would make libhdf5 loop or crash becomes a typed error
        within this many seconds instead of hanging this process.
    allow_link : callable, optional
        External links the scan accepts (see :func:`scan_unsafe_objects`).
    visit : callable, optional
        Sees every object the scan opens, before ``check`` runs (see
        :data:`ObjectVisitor`): a reader of the whole file reads each object
        there instead of walking the file again.  Only with ``scan``.
    facts : dict, optional
        Filled by the scan with each dataset's type and shape (see :func:`scan_unsafe_objects`).
    describe : Descriptions, optional
        Filled by the scan with the plain datasets it checked in compiled code, described instead of
        handed to ``visit`` (see :func:`scan_unsafe_objects`).
    names : dict, optional
        Filled by the scan with the attribute and member names of each object it opens, for
        :func:`h5stream.checksums.attach` (see :func:`scan_unsafe_objects`).
    **h5py_kwargs
        Passed to ``h5py.File`` (for example ``rdcc_nbytes``).

    Returns
    -------
    h5py.File
        Open read-only; read objects inside :func:`guard_read`.

    Raises
    ------
    SourceNotFoundError, FormatError, UnsafeFileError, MissingPluginError
    """
    if visit is not None and not scan:
        raise ValueError("visit needs the scan (scan=True): the scan's walk is what visits the objects")
    path = check_regular_file(path)
    check_hdf5_signature(path)
    # A large file's heaps are searched around its datasets' storage, which the scan below maps.
    large = scan and path.stat().st_size > GLOBAL_HEAP_SCAN_BYTES
    if not large:
        check_global_heaps(path)
    if verify_timeout is not None:
        if _whole_file_check is None:
            raise RuntimeError("verify_timeout needs h5stream.files.verify (import h5stream.files first)")
        _whole_file_check(path, check=check, timeout=verify_timeout)
    try:
        f = _open_read_only(path, h5py_kwargs)
    except _READ_FAILURES as exc:
        intent = open_in_this_process(path)
        if intent is not None:
            raise open_here_error(path, intent) from exc
        if _lock_errno(exc) in (errno.EAGAIN, errno.EWOULDBLOCK) or _held_elsewhere(path):
            raise FormatError(
                "file is held by another program, which has it open for writing (HDF5 file lock held)",
                path=path,
                hint="wait until the writer has closed it",
            ) from exc
        raise FormatError(
            f"cannot open the HDF5 file ({exc})", path=path,
            hint="the file may be corrupted, truncated or still being written",
        ) from exc
    try:
        with guard_read(path, "/"):
            if scan:
                storage: list[tuple[int, int]] | None = [] if large else None
                scan_unsafe_objects(f, path, allow_link=allow_link, visit=visit, storage=storage, facts=facts,
                                    describe=describe, names=names)
                if large:
                    check_large_global_heaps(path, storage)
            if check is not None:
                check(f)
    except BaseException:
        f.close()
        raise
    return f


def refuse_unsafe_target(path: str | os.PathLike) -> None:
    """Refuse to replace an HDF5 file whose objects a read refuses.

    A writer about to replace ``path`` calls this first, so that writers never
    accept what readers refuse: an existing HDF5 file with an external link,
    external storage or a virtual dataset raises the :class:`UnsafeFileError`
    that :func:`open_validated` raises for it.  A missing path, a file that is
    not HDF5 or one that cannot be read is left for the writer to replace.
    A file its writer marked self-contained, unchanged since
    (:mod:`h5stream.files.self_contained`), is not walked.
    """
    path = Path(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode) or marked_self_contained(path):
            return
        check_hdf5_signature(path)
        f = _open_read_only(path, {"locking": False})
    except (H5StreamError, *_READ_FAILURES):
        return
    try:
        with guard_read(path, "/"):
            _scan_links_and_storage(f, path)
    except UnsafeFileError:
        raise
    except H5StreamError:
        return  # unreadable or unknown filters: replaced whole, nothing is read through it
    finally:
        f.close()


def _held_elsewhere(path: Path) -> bool:
    """Another program holds HDF5's write lock on ``path`` (seen even when opening without locks,
    as libhdf5 then refuses the superblock's "open for write" flag)."""
    return hdf5_lock_held(path)


def _lock_errno(exc: BaseException) -> int | None:
    """The errno of an HDF5 file-locking failure, or None for any other error."""
    match = re.search(r"unable to lock file, errno = (\d+)", str(exc))
    return int(match.group(1)) if match else None


# Errors of filesystems that do not support locks (NFS, Lustre): ENOLCK, ENOSYS, ENOTSUP, ENOTSUPP.
_LOCKS_UNSUPPORTED = {errno.ENOLCK, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, 524}


def open_without_unsupported_locks(opener: Callable[..., h5py.File], path: Path, mode: str,
                                    kwargs: dict) -> h5py.File:
    """Open with HDF5's file lock, or without it where the filesystem has no locks.

    On such filesystems the claim file is the single-writer guard.
    """
    try:
        return opener(path, mode, **kwargs)
    except OSError as exc:
        if "locking" in kwargs or _lock_errno(exc) not in _LOCKS_UNSUPPORTED:
            raise
    logger.info("%s: the filesystem refuses HDF5 file locks; opening without them", path)
    if mode == "x":  # our own fresh partial path: drop what the failed attempt created
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return opener(path, mode, locking=False, **kwargs)


def _open_read_only(path: Path, kwargs: dict) -> h5py.File:
    return open_without_unsupported_locks(h5py.File, path, "r", kwargs)


def require_attr_format(
    f: h5py.File,
    path: str | os.PathLike,
    *,
    name_attr: str | None,
    expected_name: str | None,
    version_attr: str,
    supported: tuple[str, ...] | set[str],
) -> str:
    """Check a root format-name/version attribute pair and return the version found."""
    if name_attr is not None:
        found = f.attrs.get(name_attr)
        if isinstance(found, bytes):
            found = found.decode(errors="replace")
        if found != expected_name:
            raise FormatError(
                "file was written by another tool or in another format",
                path=path, obj=f"/@{name_attr}",
                expected=repr(expected_name), found=repr(found),
            )
    version = f.attrs.get(version_attr)
    if isinstance(version, bytes):
        version = version.decode(errors="replace")
    if version is None:
        raise FormatError(
            "format version attribute is missing", path=path, obj=f"/@{version_attr}",
            expected="one of " + ", ".join(sorted(supported)), found="nothing",
        )
    version = str(version)
    if version not in supported:
        raise FormatError(
            "unsupported format version", path=path, obj=f"/@{version_attr}",
            expected="one of " + ", ".join(sorted(supported)), found=repr(version),
            hint="upgrade h5stream to read newer files",
        )
    return version
