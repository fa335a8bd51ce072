"""The CRC manifest of a folder: the size and CRC-32 of every file, written beside its data, checked on read.

A folder dataset (:mod:`h5stream.files.folders`) carries its checksums in its own
manifest (a JSON file the format owns): :func:`seal` digests every other file of the
folder into the manifest's ``"checksums"`` entry, writes the manifest, and beside it
``<manifest>.crc32`` holding ``crc32 <digest> <size>`` of the manifest's own bytes::

    "checksums": {"algorithm": "crc32",
                  "files": {"obs.parquet": {"size": 5120, "crc32": "3a1f09c2"}, ...}}

A digest is ``zlib.crc32``'s value as 8 lowercase hex digits (computed by libdeflate
when installed, about seven times faster, :mod:`h5stream.native.libdeflate`).  A file a
reader reads only in part may be digested in parts instead: the format passes a
``parts(path, size)`` function that returns ``([(first byte, rows), ...], footer start)``
(Parquet row groups and footer), and the entry becomes ``{"size": n, "row_groups":
[[offset, rows, crc32], ...], "footer": [offset, crc32]}``; part ``i`` runs from its
offset to the next one's.  :func:`check_member` then checks only the parts holding the
rows a read touches.

Readers check the manifest's bytes (:func:`check_manifest_bytes`) before parsing them
and each file's bytes (:func:`check_member`) before a parser sees them, so a damaged
file is a :class:`~h5stream.errors.ChecksumError` naming the folder, the file and the
expected and found digests.
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import re
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from h5stream.errors import ChecksumError, FormatError
from h5stream.native import libdeflate

__all__ = [
    "ALGORITHM", "DIGEST_SUFFIX", "Parts", "file_crc", "bytes_crc", "range_crcs", "digest_entry", "seal",
    "manifest_digest", "check_manifest_bytes", "checksums_entry", "check_member",
]

ALGORITHM = "crc32"
#: The manifest's own digest is in the file of its name plus this suffix.
DIGEST_SUFFIX = ".crc32"
_BLOCK = 8 * 2**20
_FAST_CRC32 = libdeflate.CRC32
_HINT = "the dataset is damaged; restore it from a copy, or load with verify=False to get the data as stored"

#: ``parts(path, size)`` -> ``([(first byte, rows), ...], footer start)`` or None (the file is digested whole)
Parts = Callable[[str | os.PathLike, int], "tuple[list[tuple[int, int]], int] | None"]


def file_crc(path: str | os.PathLike) -> tuple[int, str]:
    """Size and CRC-32 (8 hex digits) of a file's bytes, read in blocks."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        (digest,) = range_crcs(fd, [(0, size)])
    finally:
        os.close(fd)
    return size, digest


def bytes_crc(data: bytes) -> str:
    """CRC-32 (8 hex digits) of bytes in memory (libdeflate when installed, else zlib)."""
    if _FAST_CRC32 is None or not data:
        return f"{zlib.crc32(data):08x}"
    view = np.frombuffer(data, dtype=np.uint8)
    return f"{_FAST_CRC32(0, view.ctypes.data, view.size):08x}"


def range_crcs(fd: int, ranges: list[tuple[int, int]]) -> list[str]:
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


def _mapped_crcs(path: str | os.PathLike, ranges: list[tuple[int, int]]) -> list[str]:
    """:func:`range_crcs` through a read-only mapping (no copy): only for files of the folder being
    written, which no one else can truncate while they are mapped."""
    if _FAST_CRC32 is None or not ranges or ranges[-1][1] == 0:
        fd = os.open(path, os.O_RDONLY)
        try:
            return range_crcs(fd, ranges)
        finally:
            os.close(fd)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        data = np.frombuffer(mapped, dtype=np.uint8)
        try:
            base = data.ctypes.data
            return [f"{_FAST_CRC32(0, base + a, b - a):08x}" for a, b in ranges]
        finally:
            del data


def digest_entry(path: str | os.PathLike, parts: Parts | None = None) -> dict:
    """The manifest's checksum entry of one file of a folder being written (see the module text)."""
    size = os.path.getsize(path)
    layout = parts(path, size) if parts is not None else None
    if layout is None:
        (digest,) = _mapped_crcs(path, [(0, size)])
        return {"size": size, "crc32": digest}
    groups, footer = layout
    edges = [start for start, _rows in groups] + [footer, size]
    crcs = _mapped_crcs(path, list(zip(edges[:-1], edges[1:])))
    return {"size": size, "row_groups": [[start, rows, crc] for (start, rows), crc in zip(groups, crcs)],
            "footer": [footer, crcs[-1]]}


def seal(root: Path, manifest: dict, manifest_name: str, parts: Parts | None = None) -> None:
    """Digest every file under ``root`` into ``manifest``, then write it and its own digest file."""
    files = {}
    for here, _subdirs, names in os.walk(root):
        for name in names:
            full = os.path.join(here, name)
            files[Path(os.path.relpath(full, root)).as_posix()] = digest_entry(full, parts)
    manifest["checksums"] = {"algorithm": ALGORITHM, "files": dict(sorted(files.items()))}
    raw = json.dumps(manifest, ensure_ascii=True, indent=1).encode("ascii")
    (root / manifest_name).write_bytes(raw)
    (root / (manifest_name + DIGEST_SUFFIX)).write_text(f"{ALGORITHM} {zlib.crc32(raw):08x} {len(raw)}\n",
                                                        encoding="ascii")


def manifest_digest(root: Path, manifest_name: str) -> tuple[str, int] | None:
    """The manifest's digest and size from its digest file; None when the folder has none."""
    name = manifest_name + DIGEST_SUFFIX
    try:
        text = (root / name).read_bytes()[:256].decode("ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeError) as exc:
        raise ChecksumError("the manifest's digest file cannot be read", path=root, obj=name,
                            expected=f"'{ALGORITHM} <8 hex digits> <size>'", found=str(exc), hint=_HINT) from exc
    fields = text.split()
    if (len(fields) != 3 or fields[0] != ALGORITHM or not re.fullmatch(r"[0-9a-f]{8}", fields[1])
            or not fields[2].isdigit()):
        raise ChecksumError("the manifest's digest file is damaged", path=root, obj=name,
                            expected=f"'{ALGORITHM} <8 hex digits> <size>'", found=repr(text[:60]), hint=_HINT)
    return fields[1], int(fields[2])


def check_manifest_bytes(root: Path, manifest_name: str, raw: bytes, stored: tuple[str, int]) -> None:
    """Raise ChecksumError unless the manifest's bytes ``raw`` match ``stored`` (:func:`manifest_digest`)."""
    found = f"{zlib.crc32(raw):08x}"
    if (found, len(raw)) != stored:
        raise ChecksumError(
            "checksum mismatch: the manifest differs from what was written", path=root, obj=manifest_name,
            expected=f"{ALGORITHM} {stored[0]}, {stored[1]} bytes (from {manifest_name + DIGEST_SUFFIX})",
            found=f"{ALGORITHM} {found}, {len(raw)} bytes", hint=_HINT)


def checksums_entry(root: Path, manifest: dict, manifest_name: str, *, hint: str) -> dict | None:
    """The manifest's map of file digests; None when it has none (a folder written before checksums)."""
    entry = manifest.get("checksums")
    if entry is None:
        return None
    if not isinstance(entry, dict) or entry.get("algorithm") != ALGORITHM or not isinstance(entry.get("files"), dict):
        raise FormatError("unsupported checksums in the manifest", path=root, obj=f"{manifest_name}/checksums",
                          expected=f"algorithm {ALGORITHM!r} and a map of files",
                          found=repr(str(entry)[:80]), hint=hint)
    return entry["files"]


def _parts_to_check(entry: dict, size: int, rows) -> list[tuple[str, int, int, str]] | None:
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


def check_member(root: Path, rel: str, member: Path, digests: dict, rows=None, *,
                 expected_file: str = "a readable file") -> int:
    """Check a file's bytes against the manifest before it is parsed; returns the bytes checked.

    ``rows``: the row ranges ``[(start, end), ...]`` a read will touch; a file
    digested in parts then has only those parts and its footer checked (None: all of it).
    """
    entry = digests.get(rel)
    shape_ok = isinstance(entry, dict) and isinstance(entry.get("size"), int) and (
        isinstance(entry.get("crc32"), str) or "row_groups" in entry)
    if not shape_ok:
        raise ChecksumError("a file of the dataset has no checksum in the manifest", path=root, obj=rel,
                            expected="a digest in the manifest", found=repr(entry)[:80], hint=_HINT)
    try:
        fd = os.open(member, os.O_RDONLY)
    except OSError as exc:
        raise FormatError("a file of the dataset is unreadable", path=root, obj=rel,
                          expected=expected_file, found=str(exc)) from exc
    try:
        size = os.fstat(fd).st_size
        if size != entry["size"]:
            raise ChecksumError("a file of the dataset has another size than was written", path=root, obj=rel,
                                expected=f"{entry['size']} bytes", found=f"{size} bytes", hint=_HINT)
        if "crc32" in entry:
            parts = [("the file", 0, size, entry["crc32"])]
        else:
            parts = _parts_to_check(entry, size, rows)
            if parts is None:
                raise ChecksumError("a file's checksum entry in the manifest is not in the expected form",
                                    path=root, obj=rel, expected="row groups and footer with their digests",
                                    found=repr(entry)[:80], hint=_HINT)
        try:
            found = range_crcs(fd, [(a, b) for _what, a, b, _digest in parts])
        except OSError as exc:
            raise FormatError("a file of the dataset is unreadable", path=root, obj=rel,
                              expected=expected_file, found=str(exc)) from exc
    finally:
        os.close(fd)
    for (what, a, b, expected), got in zip(parts, found):
        if got != expected:
            raise ChecksumError(
                f"checksum mismatch: the file differs from what was written ({what}, bytes {a}-{b})",
                path=root, obj=rel, expected=f"{ALGORITHM} {expected}", found=f"{ALGORITHM} {got}", hint=_HINT)
    return sum(b - a for _what, a, b, _digest in parts)
