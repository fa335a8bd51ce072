"""The manifest of a scptensor Parquet dataset, and the folder members it names.

The manifest (``manifest.json``) is written last and read first: it states the
format name and version, the ids, shapes and storage of every layer, matrix
metadata, links and the history, and maps assay and layer names to their files.
Used by :mod:`scptensor.io.formats_parquet` (the format's layout is described there).

End-to-end checksums: the manifest's ``"checksums"`` entry holds the size and
CRC-32 (``zlib.crc32``'s value, 8 lowercase hex digits; computed by libdeflate
when installed, about seven times faster) of the bytes of every other file of
the folder::

    "checksums": {"algorithm": "crc32",
                  "files": {"obs.parquet": {"size": 5120, "crc32": "3a1f09c2"}, ...}}

A Parquet file of several row groups (the layers, which partial loads read
only in part) has a digest per row group instead, so a partial load checks
only the bytes it reads: ``{"size": n, "row_groups": [[offset, rows, crc32],
...], "footer": [offset, crc32]}``; row group ``i`` covers the bytes from its
offset to the next one's (the first from byte 0, with the leading magic), the
footer from the end of the last row group to the end of the file (page
indexes, metadata, length and magic).  The offsets come from the file's own
footer at save time (:func:`parquet_segments`).

``manifest.json.crc32`` beside the manifest holds ``crc32 <digest> <size>`` of the
manifest's own bytes.  Both are written in the same atomic folder swap as the
data.  Readers check the manifest's bytes before parsing them, and each file's
bytes before polars or pyarrow parse it, so a damaged file is an
:class:`~scptensor.io.exceptions.IOChecksumError` naming the folder, the file and
the expected and found digests, and never reaches a Parquet parser.  Folders
written before checksums existed (no digest file, no ``"checksums"``) are read
without verification, with one INFO log record per folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import mmap
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from h5stream import jsonvalues
from h5stream.checksums import LIBDEFLATE_CRC32
from scptensor.core.exceptions import ValidationError
from scptensor.core.structures import ProvenanceLog
from scptensor.io.exceptions import IOChecksumError, IOFormatError, IOSourceNotFoundError
from scptensor.io.selection import SelectionError

FORMAT_NAME = "scptensor-parquet"
FORMAT_VERSION = "1.0"
MANIFEST = "manifest.json"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
_MANIFEST_LIMIT = 256 * 2**20
MANIFEST_DIGEST = MANIFEST + ".crc32"
ALGORITHM = "crc32"
_BLOCK = 8 * 2**20
_HINT = "the dataset is damaged; restore it from a copy, or load with verify=False to get the data as stored"

logger = logging.getLogger(__name__)
_noted: set[str] = set()
_FAST_CRC32 = LIBDEFLATE_CRC32


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
            obj="history",
        )
        for h in history
    ]


def file_crc(path: str | os.PathLike) -> tuple[int, str]:
    """Size and CRC-32 (8 hex digits) of a file's bytes, read in blocks."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        (digest,) = _range_crcs(fd, [(0, size)])
    finally:
        os.close(fd)
    return size, digest


def _range_crcs(fd: int, ranges: list[tuple[int, int]]) -> list[str]:
    """CRC-32 of each byte range ``[start, end)`` of an open file (a short file gives a short range)."""
    buffer = bytearray(min(_BLOCK, max((b - a for a, b in ranges), default=0)) or 1)
    view = memoryview(buffer)
    address = ctypes.addressof((ctypes.c_char * len(buffer)).from_buffer(buffer)) if _FAST_CRC32 else 0
    out = []
    for start, end in ranges:
        crc, at = 0, start
        while at < end:
            want = min(len(buffer), end - at)
            n = os.preadv(fd, [view[:want]], at)
            if not n:
                break
            crc = _FAST_CRC32(crc, address, n) if _FAST_CRC32 else zlib.crc32(view[:n], crc)
            at += n
        out.append(f"{crc:08x}")
    return out


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


def _mapped_crcs(path: str | os.PathLike, ranges: list[tuple[int, int]]) -> list[str]:
    """:func:`_range_crcs` through a read-only mapping (no copy): only for files of the folder being
    written, which no one else can truncate while they are mapped."""
    if _FAST_CRC32 is None or not ranges or ranges[-1][1] == 0:
        fd = os.open(path, os.O_RDONLY)
        try:
            return _range_crcs(fd, ranges)
        finally:
            os.close(fd)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        data = np.frombuffer(mapped, dtype=np.uint8)
        try:
            base = data.ctypes.data
            return [f"{_FAST_CRC32(0, base + a, b - a):08x}" for a, b in ranges]
        finally:
            del data


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


def digest_entry(path: str | os.PathLike) -> dict:
    """The manifest's checksum entry of one file of a folder being written (see the module text)."""
    size = os.path.getsize(path)
    layout = None
    if os.fspath(path).endswith(".parquet"):
        with contextlib.suppress(ValueError, IndexError, TypeError, AttributeError):
            layout = parquet_segments(path, size)
    if layout is None:
        (digest,) = _mapped_crcs(path, [(0, size)])
        return {"size": size, "crc32": digest}
    groups, footer = layout
    edges = [start for start, _rows in groups] + [footer, size]
    crcs = _mapped_crcs(path, list(zip(edges[:-1], edges[1:])))
    return {"size": size, "row_groups": [[start, rows, crc] for (start, rows), crc in zip(groups, crcs)],
            "footer": [footer, crcs[-1]]}


def seal_folder(root: Path, manifest: dict) -> None:
    """Digest every file under ``root``, then write the manifest and its own digest file."""
    files = {}
    for here, _subdirs, names in os.walk(root):
        for name in names:
            full = os.path.join(here, name)
            files[Path(os.path.relpath(full, root)).as_posix()] = digest_entry(full)
    manifest["checksums"] = {"algorithm": ALGORITHM, "files": dict(sorted(files.items()))}
    raw = json.dumps(manifest, ensure_ascii=True, indent=1).encode("ascii")
    (root / MANIFEST).write_bytes(raw)
    (root / MANIFEST_DIGEST).write_text(f"{ALGORITHM} {zlib.crc32(raw):08x} {len(raw)}\n", encoding="ascii")


# --------------------------------------------------------------------------- reading


def _manifest_digest(root: Path) -> tuple[str, int] | None:
    """The manifest's digest and size from its digest file; None when the folder has none."""
    try:
        text = (root / MANIFEST_DIGEST).read_bytes()[:256].decode("ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeError) as exc:
        raise IOChecksumError("the manifest's digest file cannot be read", path=root, obj=MANIFEST_DIGEST,
                              expected=f"'{ALGORITHM} <8 hex digits> <size>'", found=str(exc), hint=_HINT) from exc
    parts = text.split()
    if (len(parts) != 3 or parts[0] != ALGORITHM or not re.fullmatch(r"[0-9a-f]{8}", parts[1])
            or not parts[2].isdigit()):
        raise IOChecksumError("the manifest's digest file is damaged", path=root, obj=MANIFEST_DIGEST,
                              expected=f"'{ALGORITHM} <8 hex digits> <size>'", found=repr(text[:60]), hint=_HINT)
    return parts[1], int(parts[2])


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
        found = f"{zlib.crc32(raw):08x}"
        if (found, len(raw)) != stored:
            raise IOChecksumError(
                "checksum mismatch: the manifest differs from what was written", path=root, obj=MANIFEST,
                expected=f"{ALGORITHM} {stored[0]}, {stored[1]} bytes (from {MANIFEST_DIGEST})",
                found=f"{ALGORITHM} {found}, {len(raw)} bytes", hint=_HINT)
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
    if not isinstance(entry, dict) or entry.get("algorithm") != ALGORITHM or not isinstance(entry.get("files"), dict):
        raise IOFormatError("unsupported checksums in the manifest", path=root, obj=f"{MANIFEST}/checksums",
                            expected=f"algorithm {ALGORITHM!r} and a map of files",
                            found=repr(str(entry)[:80]), hint="upgrade scptensor")
    return entry["files"]


def _segments_to_check(entry: dict, size: int, rows) -> list[tuple[str, int, int, str]] | None:
    """(what, start, end, digest) of the parts of a file a read of row ranges ``rows`` touches
    (None: every part); None when the entry is not in the expected form."""
    groups, footer = entry.get("row_groups"), entry.get("footer")
    try:
        starts = [int(g[0]) for g in groups] + [int(footer[0])]
        counts = [int(g[1]) for g in groups]
        digests = [str(g[2]) for g in groups] + [str(footer[1])]
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    if not groups or starts[0] != 0 or any(b < a for a, b in zip(starts, starts[1:])) or starts[-1] > size:
        return None
    wanted = range(len(groups))
    if rows is not None:
        ends = np.cumsum(counts)
        picked: set[int] = set()
        for a, b in rows:
            if b > a:
                first = int(np.searchsorted(ends, a, side="right"))
                last = int(np.searchsorted(ends, b - 1, side="right"))
                picked.update(range(first, min(last, len(groups) - 1) + 1))
        wanted = sorted(picked)
    edges = starts + [size]
    out = [(f"row group {i}", edges[i], edges[i + 1], digests[i]) for i in wanted]
    out.append(("footer", edges[-2], size, digests[-1]))
    return out


def check_member(root: Path, rel: str, member: Path, digests: dict, rows=None) -> int:
    """Check a file's bytes against the manifest before it is parsed; returns the bytes checked.

    ``rows``: the row ranges ``[(start, end), ...]`` a read will touch; a file
    digested per row group then has only those row groups and its footer
    checked (None: all of it).
    """
    entry = digests.get(rel)
    shape_ok = isinstance(entry, dict) and isinstance(entry.get("size"), int) and (
        isinstance(entry.get("crc32"), str) or "row_groups" in entry)
    if not shape_ok:
        raise IOChecksumError("a file of the dataset has no checksum in the manifest", path=root, obj=rel,
                              expected="a digest in the manifest", found=repr(entry)[:80], hint=_HINT)
    try:
        fd = os.open(member, os.O_RDONLY)
    except OSError as exc:
        raise IOFormatError("a file of the dataset is unreadable", path=root, obj=rel,
                            expected="a readable Parquet file", found=str(exc)) from exc
    try:
        size = os.fstat(fd).st_size
        if size != entry["size"]:
            raise IOChecksumError("a file of the dataset has another size than was written", path=root, obj=rel,
                                  expected=f"{entry['size']} bytes", found=f"{size} bytes", hint=_HINT)
        if "crc32" in entry:
            parts = [("the file", 0, size, entry["crc32"])]
        else:
            parts = _segments_to_check(entry, size, rows)
            if parts is None:
                raise IOChecksumError("a file's checksum entry in the manifest is not in the expected form",
                                      path=root, obj=rel, expected="row groups and footer with their digests",
                                      found=repr(entry)[:80], hint=_HINT)
        try:
            found = _range_crcs(fd, [(a, b) for _what, a, b, _digest in parts])
        except OSError as exc:
            raise IOFormatError("a file of the dataset is unreadable", path=root, obj=rel,
                                expected="a readable Parquet file", found=str(exc)) from exc
    finally:
        os.close(fd)
    for (what, a, b, expected), got in zip(parts, found):
        if got != expected:
            raise IOChecksumError(
                f"checksum mismatch: the file differs from what was written ({what}, bytes {a}-{b})",
                path=root, obj=rel, expected=f"{ALGORITHM} {expected}", found=f"{ALGORITHM} {got}", hint=_HINT)
    return sum(b - a for _what, a, b, _digest in parts)


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
