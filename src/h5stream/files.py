"""File lifecycle: atomic creation and replacement, single-writer claims, validated reads.

The rules this module enforces:

* A new file is built at ``<target>.partial-<pid>-<n>`` in the target's
  directory, flushed, fsynced, renamed over the target with ``os.replace`` and
  the directory fsynced.  The target path itself is never opened for writing,
  so a crash at any moment leaves either no target or the previous complete one.
* One writer per target.  A claim file ``<target>.claim`` (host, pid, thread,
  time) is created with ``O_EXCL`` before any work; HDF5's own file lock guards
  the partial file.  A claim left by a dead process on this host is cleared with
  a :class:`~h5stream.errors.StaleClaimWarning`; one from another host is
  reported with the way to clear it.
* Readers distrust files: the HDF5 signature is checked before h5py touches the
  file, external links, external storage, virtual datasets and unavailable
  filters are refused, and every failure leaves as a typed error naming the path
  and the object.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import itertools
import json
import logging
import os
import shutil
import socket
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py

from h5stream.errors import (
    FormatError,
    H5StreamError,
    MissingPluginError,
    SourceNotFoundError,
    StaleClaimWarning,
    TargetExistsError,
    UnsafeFileError,
    WriteError,
    WriterClaimError,
)

__all__ = [
    "AtomicFile",
    "WriterClaim",
    "create_atomic",
    "update_atomic",
    "open_validated",
    "guard_read",
    "check_hdf5_signature",
    "scan_unsafe_objects",
    "partial_path",
    "claim_path",
    "fsync_path",
    "fsync_directory",
    "ALLOWED_FILTERS",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

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

_partial_counter = itertools.count()
_claims_lock = threading.Lock()


# --------------------------------------------------------------------------- paths


def claim_path(target: str | os.PathLike) -> Path:
    """The claim file that guards ``target``."""
    target = Path(target)
    return target.with_name(target.name + ".claim")


def partial_path(target: str | os.PathLike) -> Path:
    """A fresh partial path beside ``target``, unique to this process and call."""
    target = Path(target)
    return target.with_name(f"{target.name}.partial-{os.getpid()}-{next(_partial_counter)}")


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's data and metadata to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(path: str | os.PathLike) -> None:
    """Make a rename inside ``path`` durable."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on directories
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- claims


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


class WriterClaim:
    """Exclusive right to write ``target``, held through ``<target>.claim``.

    The claim file is created with ``O_CREAT | O_EXCL`` so exactly one thread or
    process of any host sharing the directory wins.  It holds JSON with the
    holder's host, pid, thread and start time, which the loser's error reports.
    """

    def __init__(self, target: str | os.PathLike) -> None:
        self.target = Path(target)
        self.path = claim_path(self.target)
        self.held = False
        self._payload: dict | None = None

    # The holder description used in error messages.
    @staticmethod
    def describe(holder: dict | None) -> str:
        if not holder:
            return "an unknown writer (the claim file is unreadable)"
        return (
            f"pid {holder.get('pid')} (thread {holder.get('thread')}) on host "
            f"{holder.get('host')!s} since {holder.get('time')}"
        )

    def read_holder(self) -> dict | None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None

    def acquire(self) -> WriterClaim:
        if self.held:
            raise WriterClaimError(
                "this claim is already held", path=self.target, hint="release it before acquiring again"
            )
        payload = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "thread": threading.get_ident(),
            "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        data = json.dumps(payload).encode()
        for _attempt in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.read_holder()
                if self._clear_if_stale(holder):
                    continue
                raise WriterClaimError(
                    "file is already open for writing by " + self.describe(holder),
                    path=self.target,
                    hint=self._clear_hint(holder),
                ) from None
            except OSError as exc:
                raise WriteError(
                    f"cannot create the writer claim {self.path.name} ({exc.strerror})",
                    path=self.target,
                    hint="check that the directory exists and is writable",
                ) from exc
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            self.held = True
            self._payload = payload
            return self
        raise WriterClaimError(
            "could not claim the file after clearing stale claims", path=self.target
        )

    def _clear_if_stale(self, holder: dict | None) -> bool:
        if holder is None:
            # A claim being written this instant is unreadable for a moment; only an
            # old unreadable claim is stale.
            try:
                age = _dt.datetime.now().timestamp() - self.path.stat().st_mtime
            except FileNotFoundError:
                return True
            if age < 30:
                return False
        elif holder.get("host") != socket.gethostname():
            return False
        elif _pid_alive(int(holder.get("pid", -1))):
            return False
        warnings.warn(
            f"{self.target}: cleared a stale writer claim left by {self.describe(holder)}, "
            "which no longer runs",
            StaleClaimWarning,
            stacklevel=4,
        )
        logger.warning("cleared stale writer claim %s (%s)", self.path, self.describe(holder))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        return True

    def _clear_hint(self, holder: dict | None) -> str:
        if holder and holder.get("host") != socket.gethostname():
            return (
                f"wait for that writer to finish; if no writer runs on host {holder.get('host')}, "
                f"delete {self.path}"
            )
        return "wait for that writer to finish, or close the file in the other process"

    def release(self) -> None:
        if not self.held:
            return
        holder = self.read_holder()
        if holder is None or (
            holder.get("pid") == self._payload["pid"]
            and holder.get("thread") == self._payload["thread"]
            and holder.get("time") == self._payload["time"]
        ):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self.held = False

    def __enter__(self) -> WriterClaim:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# --------------------------------------------------------------------------- atomic writes


def _as_write_error(exc: BaseException, path: Path, action: str) -> WriteError:
    reason = getattr(exc, "strerror", None) or str(exc)
    hint = "free disk space" if getattr(exc, "errno", None) == errno.ENOSPC else (
        "check permissions and free space of the directory"
    )
    return WriteError(f"{action} failed ({reason}); any earlier file is intact", path=path, hint=hint)


class AtomicFile:
    """Write a new HDF5 file for ``target`` that appears there only when complete.

    Use as a context manager; the body receives an ``h5py.File`` open on the
    partial path.  A clean exit commits (flush, fsync, ``os.replace``, directory
    fsync); an exception aborts (the partial file is removed, the target is
    untouched).  ``commit()`` and ``abort()`` may also be called directly.

    With ``source`` the partial file starts as a byte copy of ``source`` opened
    ``r+`` (copy-on-write update of an existing file).
    """

    def __init__(
        self,
        target: str | os.PathLike,
        *,
        overwrite: bool = False,
        source: str | os.PathLike | None = None,
        userblock_size: int = 0,
        libver: str | tuple | None = None,
        claim: bool = True,
        on_commit: Callable[[Path], None] | None = None,
    ) -> None:
        self.target = Path(target)
        self.overwrite = overwrite
        self.source = Path(source) if source is not None else None
        self.userblock_size = userblock_size
        self.libver = libver
        self.claim = WriterClaim(self.target) if claim else None
        self.partial = partial_path(self.target)
        self.file: h5py.File | None = None
        self.committed = False
        self._on_commit = on_commit

    # -- lifecycle
    def open(self) -> h5py.File:
        target = self.target
        if self.source is None and target.exists() and not self.overwrite:
            raise TargetExistsError(
                "file already exists",
                path=target,
                hint="pass overwrite=True to replace it (the old file stays intact until the new one is complete)",
            )
        parent = target.parent if str(target.parent) else Path(".")
        if not parent.is_dir():
            raise WriteError(
                "the directory does not exist", path=target, expected="an existing directory",
                found=f"no directory {parent}",
            )
        if not os.access(parent, os.W_OK | os.X_OK):
            raise WriteError(
                "the directory is not writable", path=target,
                hint=f"check the permissions of {parent}",
            )
        if self.claim is not None:
            self.claim.acquire()
        try:
            if self.source is not None:
                try:
                    shutil.copyfile(self.source, self.partial)
                except OSError as exc:
                    raise _as_write_error(exc, target, "copying the file for update") from exc
                self.file = h5py.File(self.partial, "r+")
            else:
                kwargs = {}
                if self.userblock_size:
                    kwargs["userblock_size"] = self.userblock_size
                if self.libver is not None:
                    kwargs["libver"] = self.libver
                self.file = h5py.File(self.partial, "x", **kwargs)
        except H5StreamError:
            self._cleanup()
            raise
        except (OSError, ValueError) as exc:
            self._cleanup()
            raise _as_write_error(exc, target, "creating the file") from exc
        return self.file

    def commit(self) -> Path:
        """Make the partial file the target; returns the target path."""
        if self.committed:
            return self.target
        if self.file is None:
            raise WriteError("commit() before open()", path=self.target)
        try:
            if self.file.id.valid:
                self.file.flush()
                self.file.close()
            fsync_path(self.partial)
            os.replace(self.partial, self.target)
            fsync_directory(self.target.parent if str(self.target.parent) else ".")
        except OSError as exc:
            self._cleanup()
            raise _as_write_error(exc, self.target, "finishing the file") from exc
        self.committed = True
        if self.claim is not None:
            self.claim.release()
        logger.debug("committed %s", self.target)
        if self._on_commit is not None:
            self._on_commit(self.target)
        return self.target

    def abort(self) -> None:
        """Discard the partial file; the target is left as it was."""
        self._cleanup()

    def _cleanup(self) -> None:
        if self.file is not None:
            with contextlib.suppress(Exception):
                if self.file.id.valid:
                    self.file.close()
        with contextlib.suppress(FileNotFoundError, OSError):
            os.unlink(self.partial)
        if self.claim is not None:
            self.claim.release()

    def __enter__(self) -> h5py.File:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
            return False
        self.abort()
        if isinstance(exc, OSError) and not isinstance(exc, H5StreamError):
            raise _as_write_error(exc, self.target, "writing") from exc
        return False


def create_atomic(
    target: str | os.PathLike, *, overwrite: bool = False, **kwargs
) -> AtomicFile:
    """A new file for ``target``; see :class:`AtomicFile`."""
    return AtomicFile(target, overwrite=overwrite, **kwargs)


def update_atomic(target: str | os.PathLike, **kwargs) -> AtomicFile:
    """Copy-on-write update of an existing ``target``; see :class:`AtomicFile`.

    The changes become visible all at once on commit; a crash leaves the old file.
    """
    target = Path(target)
    if not target.exists():
        raise SourceNotFoundError("file does not exist", path=target, hint="create it first")
    check_hdf5_signature(target)
    return AtomicFile(target, source=target, overwrite=True, **kwargs)


# --------------------------------------------------------------------------- validated reads


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


def scan_unsafe_objects(f: h5py.File, path: str | os.PathLike) -> None:
    """Refuse external links, external storage, virtual datasets and unavailable filters."""
    plugins_checked = False

    def visit(name: str, link) -> None:
        nonlocal plugins_checked
        if isinstance(link, h5py.ExternalLink):
            raise UnsafeFileError(
                "external link to another file",
                path=path,
                obj="/" + name,
                found=f"link to {link.filename}:{link.path}",
                hint="external links are refused; copy the data into the file",
            )
        if isinstance(link, h5py.SoftLink):
            return
        oid = h5py.h5o.open(f.id, name.encode())
        try:
            if oid.get_type() != h5py.h5o.TYPE_DATASET:
                return
            plist = oid.get_create_plist()
            if plist.get_layout() == h5py.h5d.VIRTUAL:
                raise UnsafeFileError(
                    "virtual dataset", path=path, obj="/" + name,
                    hint="virtual datasets read other files and are refused",
                )
            if plist.get_external_count() > 0:
                raise UnsafeFileError(
                    "dataset with external storage", path=path, obj="/" + name,
                    hint="external raw storage reads other files and is refused",
                )
            for i in range(plist.get_nfilters()):
                code, _flags, _vals, fname = plist.get_filter(i)
                if code not in ALLOWED_FILTERS:
                    raise FormatError(
                        "dataset uses a filter that is not allowed",
                        path=path, obj="/" + name,
                        expected="one of " + ", ".join(sorted(ALLOWED_FILTERS.values())),
                        found=f"filter {code} ({fname.decode(errors='replace')})",
                    )
                if code in PLUGIN_FILTERS and not plugins_checked:
                    _plugin_filters_loaded()
                    plugins_checked = True
                if not h5py.h5z.filter_avail(code):
                    raise MissingPluginError(
                        f"dataset is compressed with {ALLOWED_FILTERS[code]} (filter {code}), "
                        "which is not available here",
                        path=path, obj="/" + name,
                        hint="install the plugin: pip install 'h5stream[fast]' (hdf5plugin)",
                    )
        finally:
            oid.close()

    f.visititems_links(visit)


@contextlib.contextmanager
def guard_read(path: str | os.PathLike, obj: str | None = None) -> Iterator[None]:
    """Turn any low-level failure inside the block into a :class:`FormatError`."""
    try:
        yield
    except H5StreamError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        text = str(exc) or type(exc).__name__
        hint = None
        if "filter" in text and ("not registered" in text or "can't open" in text or "available" in text):
            raise MissingPluginError(
                f"cannot decompress data ({text})", path=path, obj=obj,
                hint="install the plugin: pip install 'h5stream[fast]' (hdf5plugin)",
            ) from exc
        raise FormatError(
            f"cannot read the object ({type(exc).__name__}: {text})",
            path=path, obj=obj,
            hint=hint or "the file may be corrupted or incomplete",
        ) from exc


def open_validated(
    path: str | os.PathLike,
    *,
    check: Callable[[h5py.File], None] | None = None,
    scan: bool = True,
    **h5py_kwargs,
) -> h5py.File:
    """Open an HDF5 file for reading after checking it can be trusted.

    ``check(f)`` validates format name and version and raises
    :class:`FormatError`; ``scan`` refuses unsafe objects (see
    :func:`scan_unsafe_objects`).  The returned file is read-only.
    """
    path = Path(path)
    if not path.exists():
        raise SourceNotFoundError("file does not exist", path=path, hint="check the path")
    if path.is_dir():
        raise FormatError("is a directory", path=path, expected="an HDF5 file")
    check_hdf5_signature(path)
    try:
        f = h5py.File(path, "r", **h5py_kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        raise FormatError(
            f"cannot open the HDF5 file ({exc})", path=path,
            hint="the file may be corrupted, truncated or still being written",
        ) from exc
    try:
        with guard_read(path, "/"):
            if scan:
                scan_unsafe_objects(f, path)
            if check is not None:
                check(f)
    except BaseException:
        f.close()
        raise
    return f


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
