"""The manifest of a scptensor Parquet dataset, and the folder members it names.

The manifest (``manifest.json``) is written last and read first: it states the
format name and version, the ids, shapes and storage of every layer, matrix
metadata, links and the history, and maps assay and layer names to their files.
Used by :mod:`h5scp.io.formats_parquet` (the format's layout is described there).

End-to-end checksums (the engine's CRC manifest of a folder,
:mod:`h5stream.files.folder_digests`): the manifest's ``"checksums"`` entry holds
the size and CRC-32 (``zlib.crc32``'s value, 8 lowercase hex digits) of the bytes of
every other file of the folder::

    "checksums": {"algorithm": "crc32",
                  "files": {"obs.parquet": {"size": 5120, "crc32": "3a1f09c2"}, ...}}

A Parquet file of several row groups (the layers, which partial loads read
only in part) has a digest per row group instead, so a partial load checks
only the bytes it reads: ``{"size": n, "row_groups": [[offset, rows, crc32],
...], "footer": [offset, crc32]}``; row group ``i`` covers the bytes from its
offset to the next one's (the first from byte 0, with the leading magic), the
footer from the end of the last row group to the end of the file (page
indexes, metadata, length and magic).  The offsets come from the file's own
footer at save time (:func:`parquet_segments`, the parts this format passes to the engine).

``manifest.json.crc32`` beside the manifest holds ``crc32 <digest> <size>`` of the
manifest's own bytes.  Both are written in the same atomic folder swap as the
data.  Readers check the manifest's bytes before parsing them, and each file's
bytes before polars or pyarrow parse it, so a damaged file is an
:class:`~h5scp.io.exceptions.IOChecksumError` naming the folder, the file and
the expected and found digests, and never reaches a Parquet parser.  Folders
written before checksums existed (no digest file, no ``"checksums"``) are read
without verification, with one INFO log record per folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from h5stream import jsonvalues
from h5stream.files import folder_digests
from h5stream.files.folder_digests import file_crc  # noqa: F401  (importable from here, as before)
from h5scp.core.exceptions import ValidationError
from h5scp.core.structures import ProvenanceLog
from h5scp.io._files import engine_errors
from h5scp.io.exceptions import IOChecksumError, IOFormatError, IOSourceNotFoundError
from h5scp.io.selection import SelectionError

FORMAT_NAME = "scptensor-parquet"
FORMAT_VERSION = "1.0"
MANIFEST = "manifest.json"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
_MANIFEST_LIMIT = 256 * 2**20
MANIFEST_DIGEST = MANIFEST + folder_digests.DIGEST_SUFFIX
ALGORITHM = folder_digests.ALGORITHM
_HINT = "the dataset is damaged; restore it from a copy, or load with verify=False to get the data as stored"

logger = logging.getLogger(__name__)
_noted: set[str] = set()


# --------------------------------------------------------------------------- writing


def _file_names(names: Sequence[str], prefix: str) -> list[str]:
    used: set[str] = set()
    out = []
    for i, name in enumerate(names):
        plain = _PLAIN_NAME.fullmatch(name) and name.lower() not in used
        chosen = name if plain else f"{prefix}.{i}"  # "." never occurs in a plain name
        used.add(chosen.lower())
        out.append(chosen)
    return out


def _history_json(history: Sequence[ProvenanceLog]) -> list:
    return [
        jsonvalues.encode(
            {"timestamp": h.timestamp, "action": h.action, "params": dict(h.params),
             "software_version": h.software_version, "description": h.description},
            obj=f"history/{i}",
        )
        for i, h in enumerate(history)
    ]


# Parquet footers are Thrift compact-protocol structs (FileMetaData); these are the protocol's type codes.
(_T_TRUE, _T_FALSE, _T_I8, _T_I16, _T_I32, _T_I64, _T_DOUBLE, _T_BINARY,
 _T_LIST, _T_SET, _T_MAP, _T_STRUCT) = range(1, 13)


def _varint(raw: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = raw[at]
        at += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, at
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def _skip(raw: bytes, at: int, kind: int, depth: int) -> int:
    """Position after a Thrift value of type ``kind`` starting at ``at``."""
    if kind in (_T_TRUE, _T_FALSE):
        return at
    if kind == _T_I8:
        return at + 1
    if kind in (_T_I16, _T_I32, _T_I64):
        while raw[at] >= 0x80:
            at += 1
        return at + 1
    if kind == _T_DOUBLE:
        return at + 8
    if kind == _T_BINARY:
        n, at = _varint(raw, at)
        return at + n
    if depth > 16:
        raise ValueError("nesting too deep")
    if kind in (_T_LIST, _T_SET):
        head = raw[at]
        at += 1
        n, elem = head >> 4, head & 0x0F
        if n == 15:
            n, at = _varint(raw, at)
        if elem in (_T_TRUE, _T_FALSE):  # booleans in a list: one byte each
            return at + n
        for _ in range(n):
            at = _skip(raw, at, elem, depth + 1)
        return at
    if kind == _T_MAP:
        n, at = _varint(raw, at)
        if n:
            types = raw[at]
            at += 1
            for _ in range(n):
                at = _skip(raw, at, types >> 4, depth + 1)
                at = _skip(raw, at, types & 0x0F, depth + 1)
        return at
    if kind == _T_STRUCT:
        return _struct(raw, at, None, depth + 1)[1]
    raise ValueError(f"unknown Thrift type {kind}")


def _struct(raw: bytes, at: int, spec: dict | None, depth: int = 0) -> tuple[dict, int]:
    """The fields of a Thrift compact struct named by ``spec`` (field id -> None for an integer,
    a spec for a struct, a one-item list holding a spec for a list of structs); others are skipped."""
    fields: dict = {}
    last = 0
    while True:
        head = raw[at]
        at += 1
        if head == 0:
            return fields, at
        delta, kind = head >> 4, head & 0x0F
        if delta:
            last += delta
        else:
            v, at = _varint(raw, at)
            last = (v >> 1) ^ -(v & 1)
        want = spec.get(last, False) if spec is not None else False
        if want is None and kind in (_T_I16, _T_I32, _T_I64):
            v, at = _varint(raw, at)
            fields[last] = (v >> 1) ^ -(v & 1)
        elif isinstance(want, dict) and kind == _T_STRUCT:
            fields[last], at = _struct(raw, at, want, depth + 1)
        elif isinstance(want, list) and kind in (_T_LIST, _T_SET):
            head = raw[at]
            at += 1
            n, elem = head >> 4, head & 0x0F
            if n == 15:
                n, at = _varint(raw, at)
            if elem != _T_STRUCT:
                raise ValueError("a list of structs was expected")
            items = []
            for _ in range(n):
                item, at = _struct(raw, at, want[0], depth + 1)
                items.append(item)
            fields[last] = items
        else:
            at = _skip(raw, at, kind, depth)


# FileMetaData.row_groups (4) -> RowGroup.columns (1), num_rows (3) -> ColumnChunk.meta_data (3)
# -> ColumnMetaData.total_compressed_size (7), data_page_offset (9), dictionary_page_offset (11)
_FOOTER_SPEC = {4: [{1: [{3: {7: None, 9: None, 11: None}}], 3: None}]}


def parquet_segments(path: str | os.PathLike, size: int) -> tuple[list[tuple[int, int]], int] | None:
    """Row groups of a Parquet file as (first byte, rows), and the first byte of its footer.

    Read from the file's own footer (FileMetaData: row groups, their row counts
    and each column chunk's dictionary/data page offset and compressed size).
    None when the file has fewer than two row groups or its chunks are not laid
    out one row group after the other (it is then digested whole).
    """
    with open(path, "rb") as fh:
        if size < 12:
            return None
        fh.seek(size - 8)
        tail = fh.read(8)
        length = int.from_bytes(tail[:4], "little")
        if tail[4:] != b"PAR1" or length > size - 12:
            return None
        fh.seek(size - 8 - length)
        meta, _end = _struct(fh.read(length), 0, _FOOTER_SPEC)
    groups = meta.get(4) or []
    if len(groups) < 2:
        return None
    bounds, end = [], 4
    for group in groups:
        starts, ends = [], []
        for chunk in group.get(1) or []:
            column = chunk.get(3) or {}
            first = column.get(11) or column.get(9)
            starts.append(first)
            ends.append(first + column.get(7, 0))
        if not starts or min(starts) < end:
            return None
        bounds.append((min(starts), int(group.get(3, 0))))
        end = max(ends)
    if end > size - 8 - length:
        return None
    bounds[0] = (0, bounds[0][1])
    return bounds, end


def _parts(path: str | os.PathLike, size: int) -> tuple[list[tuple[int, int]], int] | None:
    """The row groups and footer of a Parquet file of the folder (None: digested whole)."""
    if not os.fspath(path).endswith(".parquet"):
        return None
    with contextlib.suppress(ValueError, IndexError, TypeError, AttributeError):
        return parquet_segments(path, size)
    return None


def digest_entry(path: str | os.PathLike) -> dict:
    """The manifest's checksum entry of one file of a folder being written (see the module text)."""
    return folder_digests.digest_entry(path, _parts)


def seal_folder(root: Path, manifest: dict) -> None:
    """Digest every file under ``root``, then write the manifest and its own digest file."""
    folder_digests.seal(root, manifest, MANIFEST, _parts)


# --------------------------------------------------------------------------- reading


def _manifest_digest(root: Path) -> tuple[str, int] | None:
    """The manifest's digest and size from its digest file; None when the folder has none."""
    with engine_errors():
        return folder_digests.manifest_digest(root, MANIFEST)


def _read_manifest(root: Path, *, verify: bool = True) -> dict:
    """The manifest, its bytes checked against ``manifest.json.crc32`` first (``verify``)."""
    manifest_path = root / MANIFEST
    try:
        size = manifest_path.stat().st_size
        if size > _MANIFEST_LIMIT:
            raise IOFormatError("manifest is too large", path=root, obj=MANIFEST,
                                expected=f"at most {_MANIFEST_LIMIT} bytes", found=f"{size} bytes")
        raw = manifest_path.read_bytes()
    except FileNotFoundError:
        raise IOFormatError(
            "folder is not a scptensor Parquet dataset", path=root, obj=MANIFEST,
            expected=f"a {MANIFEST} written by scptensor", found="no manifest",
            hint="save it with save_parquet, or read its files with polars",
        ) from None
    except OSError as exc:
        raise IOFormatError("manifest is unreadable", path=root, obj=MANIFEST,
                            expected="JSON text", found=str(exc)) from exc
    stored = _manifest_digest(root) if verify else None
    if stored is not None:
        with engine_errors():
            folder_digests.check_manifest_bytes(root, MANIFEST, raw, stored)
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise IOFormatError("manifest is unreadable", path=root, obj=MANIFEST,
                            expected="JSON text", found=str(exc)) from exc
    if not isinstance(manifest, dict) or manifest.get("format_name") != FORMAT_NAME:
        found = manifest.get("format_name") if isinstance(manifest, dict) else type(manifest).__name__
        raise IOFormatError("manifest names another format", path=root, obj=MANIFEST,
                            expected=repr(FORMAT_NAME), found=repr(found))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IOFormatError(
            "unsupported scptensor Parquet format version", path=root, obj=f"{MANIFEST}/format_version",
            expected=repr(FORMAT_VERSION), found=repr(manifest.get("format_version")),
            hint="the dataset may come from a newer scptensor; upgrade to read it",
        )
    if verify and stored is None and "checksums" in manifest:
        raise IOChecksumError("the manifest's digest file is missing", path=root, obj=MANIFEST_DIGEST,
                              expected=f"the digest of {MANIFEST} (the manifest lists checksums)",
                              found="no file", hint=_HINT)
    return manifest


def file_digests(root: Path, manifest: dict, *, verify: bool = True) -> dict | None:
    """The digests of the dataset's files; None (no checks) with ``verify=False`` or for a folder
    written before checksums (one INFO record per folder says so)."""
    if not verify:
        return None
    entry = manifest.get("checksums")
    if entry is None:
        key = os.fspath(root)
        if key not in _noted:
            _noted.add(key)
            logger.info("%s: no checksums in the manifest (written before checksums or by another tool); "
                        "its files are read without verification", root)
        return None
    with engine_errors():
        return folder_digests.checksums_entry(root, manifest, MANIFEST, hint="upgrade scptensor")


def check_member(root: Path, rel: str, member: Path, digests: dict, rows=None) -> int:
    """Check a file's bytes against the manifest before it is parsed; returns the bytes checked.

    ``rows``: the row ranges ``[(start, end), ...]`` a read will touch; a file
    digested per row group then has only those row groups and its footer
    checked (None: all of it).
    """
    with engine_errors():
        return folder_digests.check_member(root, rel, member, digests, rows, expected_file="a readable Parquet file")


def is_parquet_dataset(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding a scptensor Parquet manifest."""
    root = Path(path)
    if not root.is_dir():
        return False
    try:
        _read_manifest(root, verify=False)
    except IOFormatError:
        return False
    return True


def dataset_member(root: Path, rel: Any, obj: str, digests: dict | None = None, rows=None) -> Path:
    """A file named by the manifest, refused when it would leave the dataset folder.

    With ``digests`` (see :func:`file_digests`) its bytes are checked first: the
    parts holding the row ranges ``rows`` (None: the whole file), see :func:`check_member`.
    """
    if not isinstance(rel, str) or not rel or os.path.isabs(rel) or ".." in Path(rel).parts:
        raise IOFormatError("manifest names a file outside the dataset", path=root, obj=obj,
                            expected="a relative path inside the folder", found=repr(rel))
    member = root / rel
    if not member.is_file():
        raise IOFormatError("a file of the dataset is missing", path=root, obj=rel,
                            expected="a Parquet file", found="nothing")
    if digests is not None:
        check_member(root, rel, member, digests, rows)
    return member


@contextlib.contextmanager
def _guard(root: Path, obj: str) -> Iterator[None]:
    try:
        yield
    except (IOFormatError, IOSourceNotFoundError, SelectionError):
        raise
    except ValidationError as exc:
        raise IOFormatError(f"dataset content breaks the data model: {exc}", path=root, obj=obj,
                            hint="the dataset was modified or written by another tool") from exc
    # a damaged Parquet file can make polars' Rust code panic: PanicException is a BaseException
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError, KeyError, TypeError, ValueError,
            IndexError) as exc:
        raise IOFormatError(f"unreadable part of the dataset ({type(exc).__name__}: {exc})",
                            path=root, obj=obj) from exc
