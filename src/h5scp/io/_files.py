"""File lifecycle for every ``scptensor`` format, on top of :mod:`h5stream.files`.

Writes go through :func:`h5stream.files.create_atomic` (partial file, fsync,
rename), reads through :func:`h5stream.files.open_validated`; engine errors
leave as their ``scptensor`` counterparts (:mod:`h5scp.io.exceptions`).
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import polars as pl

from h5stream import checksums
from h5stream.errors import EncodingError, H5StreamError
from h5stream.files import create_atomic, guard_read, open_validated
from h5stream.files.write_errors import as_write_error, bytes_in, full_disk_cause
from h5scp.core.exceptions import ValidationError
from h5scp.io.exceptions import IOFormatError, IOPasswordError, IOWriteError, translate_engine_error

__all__ = ["writing", "reading", "guarded", "engine_errors", "root_attr"]

# Leading bytes of encrypted containers people save HDF5 files into.
_ENCRYPTED_SIGNATURES = {
    b"Salted__": "OpenSSL 'enc'",
    b"age-encryption.org/": "age",
    b"-----BEGIN PGP MESSAGE": "PGP (ASCII armour)",
}


@contextlib.contextmanager
def writing(
    path: str | os.PathLike,
    *,
    overwrite: bool,
    userblock: bytes | None = None,
    userblock_size: int = 0,
) -> Iterator[h5py.File]:
    """Yield an ``h5py.File`` that becomes ``path`` only when the block completes.

    ``userblock`` is written into the file's user block (of ``userblock_size``
    bytes) after HDF5 closed the file and before it is renamed into place.
    The file carries the engine's checksums (:mod:`h5stream.checksums`):
    Fletcher32 on chunked datasets, and a manifest of the digests of every
    other dataset and of every attribute, written before the file is closed.
    """
    target = Path(path)
    atomic = create_atomic(target, overwrite=overwrite, userblock_size=userblock_size, checksums="walk")
    try:
        f = atomic.open()
    except H5StreamError as exc:
        raise translate_engine_error(exc) from exc
    try:
        yield f
        atomic.seal()
        f.close()
        if userblock is not None:
            with open(atomic.partial, "r+b") as raw:
                raw.write(userblock.ljust(userblock_size, b"\0"))
        atomic.commit()
    except EncodingError as exc:
        atomic.abort()
        raise _unencodable(exc, target) from exc
    except (H5StreamError, OSError) as exc:
        written = bytes_in(atomic.partial)
        atomic.abort()
        full = full_disk_cause(exc)
        if full is not None:  # named for the target, not the partial file a writer's error names
            raise translate_engine_error(as_write_error(full, target, "writing", written=written)) from exc
        if isinstance(exc, H5StreamError):
            raise translate_engine_error(exc) from exc
        raise translate_engine_error(as_write_error(exc, target, "writing")) from exc
    except BaseException:
        atomic.abort()
        raise


def _refuse_encrypted(path: Path) -> None:
    if not path.is_file():  # (a pipe's open would wait for a writer)
        return
    try:
        with open(path, "rb") as fh:
            head = fh.read(32)
    except OSError:
        return  # open_validated reports unreadable files with the right error
    for signature, tool in _ENCRYPTED_SIGNATURES.items():
        if head.startswith(signature):
            raise IOPasswordError(
                f"file is encrypted ({tool}) and needs a password",
                path=path, expected="an HDF5 file", found=f"an {tool} encrypted file",
                hint="decrypt it first, then load the decrypted file",
            )


@contextlib.contextmanager
def reading(path: str | os.PathLike, check: Callable[[h5py.File], None], *, verify: bool = True) -> Iterator[h5py.File]:
    """Open ``path`` read-only after the engine's safety checks and ``check(f)``.

    With ``verify`` every object read from the file is checked against its
    checksum (:mod:`h5stream.checksums`); a mismatch raises
    :class:`~h5scp.io.exceptions.IOChecksumError`.  Files written before
    checksums existed are read unchecked (one INFO log record says so).
    """
    source = Path(path)
    names: dict = {}  # each object's attribute and member names, listed by the scan for the names check
    try:
        f = open_validated(source, check=check, names=names if verify else None)
    except H5StreamError as exc:
        # an encrypted file has no HDF5 signature: its leading bytes are looked at only once the open failed
        _refuse_encrypted(source)
        raise translate_engine_error(exc) from exc
    try:
        with f:
            checksums.attach(f, verify=verify, path=source, names=names)
            yield f
    except H5StreamError as exc:
        raise translate_engine_error(exc) from exc


@contextlib.contextmanager
def engine_errors(target: str | os.PathLike | None = None) -> Iterator[None]:
    """Engine errors raised inside become their ``scptensor`` counterparts (same message and details).

    With ``target`` (a save's destination), a value no codec stores is an ``IOWriteError`` naming it.
    """
    try:
        yield
    except EncodingError as exc:
        if target is None:
            raise
        raise _unencodable(exc, target) from exc
    except H5StreamError as exc:
        raise translate_engine_error(exc) from exc


def _unencodable(exc: EncodingError, target) -> IOWriteError:
    """A value of the container no codec can store: the save failed, like any other write error."""
    return IOWriteError(
        "writing failed: a value of the container has no exact encoding; any earlier file is intact",
        path=target, obj=exc.obj, expected=exc.expected, found=exc.found, hint=exc.hint,
    )


@contextlib.contextmanager
def guarded(path: str | os.PathLike, obj: str) -> Iterator[None]:
    """Any failure inside becomes an ``IOFormatError`` naming ``path`` and ``obj``.

    Content that breaks the data model (duplicate ids, unknown mask codes,
    shapes that disagree) is a format problem of the file, reported the same way.
    """
    try:
        with guard_read(path, obj):
            yield
    except ValidationError as exc:
        raise IOFormatError(
            f"file content breaks the data model: {exc}", path=path, obj=obj,
            hint="the file was modified or written by another tool",
        ) from exc
    except H5StreamError as exc:
        raise translate_engine_error(exc) from exc
    except pl.exceptions.PolarsError as exc:
        # a table the file describes that cannot be built as described (a column it names is missing, a
        # type it records does not fit its values): damage or another tool's edit, not a fault of the reader
        raise IOFormatError(
            f"a table stored in the file does not match its own description: {type(exc).__name__}: {exc}",
            path=path, obj=obj, hint="the file was modified or written by another tool; load a copy you trust",
        ) from exc


#: id of an open read-only h5py ``File`` object (by identity: another open of the same path is another entry) ->
#: [its root's attribute values as h5py reads them, the manifest they were checked against (None: not yet)]
_ROOT_VALUES: dict[int, list] = {}


def _root_values(f: h5py.Group) -> dict | None:
    """Every attribute of a read-only file's root, read once (one batched pass) and checked once against the
    manifest attached since; None for another group, a writable file or where the batched read is unavailable."""
    if not isinstance(f, h5py.File) or f.mode != "r":
        return None
    entry = _ROOT_VALUES.get(id(f))
    if entry is None:
        values = checksums.read_attr_values(f, "/")
        if values is None:
            return None
        entry = _ROOT_VALUES[id(f)] = [values, None]
        weakref.finalize(f, _ROOT_VALUES.pop, id(f), None)
    manifest = checksums.manifest_for(f)
    if manifest is not None and entry[1] is not manifest:
        # values read before the manifest was attached (format detection runs first) are checked now, once
        checksums.check_attrs(f, entry[0], manifest, complete=True, where="/")
        entry[1] = manifest
    return entry[0]


def root_attr(f: h5py.Group, name: str, default=None):
    """An attribute as a Python value; bytes become str.

    Checked against its digest when the file is read with verification.  A read-only file's root attributes
    are read from the file once, all together (format detection, its checks and the reader ask for the same
    ones).
    """
    values = _root_values(f)
    value = checksums.attr_value(f, name, default) if values is None else values.get(name, default)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
    return value
