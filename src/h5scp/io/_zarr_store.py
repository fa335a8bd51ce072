"""The files of an AnnData zarr store: sealed with a checksum manifest when written, checked and bounded when read.

Writing (:func:`seal_store`): after the last array is written into the partial
folder, every file of the store is digested (size and CRC-32, the engine's
:func:`h5stream.files.folder_digests.digest_entry`) into a checksum manifest kept in
the root group's attributes under ``scptensor-checksums`` (zarr 3 takes any other
file in a group's folder for a broken member, so the manifest is no file of its
own); the root metadata file that holds it (``.zattrs`` in format 2, ``zarr.json``
in format 3) carries instead a digest of its own parsed content (``"self"``: the
CRC-32 of its canonical JSON without that field).  The folder is then published in
one step (:func:`h5stream.files.folders.writing_folder`).  anndata ignores the
attribute, and drops it when it rewrites a store.

Reading (:class:`StoreFiles`): a read-only mapping of the store's files that zarr
reads through (zarr 2: a ``KVStore``; zarr 3: a ``MemoryStore`` over it), so no byte
reaches zarr or a codec unchecked:

* the store is listed first; links and special files are refused;
* with a manifest (the store was written here), the manifest's bytes are checked
  against its digest, a listed file that is missing, a file that is not listed, or a
  file of another size is a :class:`~h5scp.io.exceptions.IOChecksumError` naming the
  member before anything is decoded, and each file's bytes are checked against their
  CRC-32 when zarr asks for them, before a codec sees them (so a truncated or damaged
  chunk never reaches blosc, and two swapped chunks differ from their digests);
* every array's declared shape and chunk shape are bounded by the bytes its chunk files
  hold (the rule of HDF5 datasets, :func:`h5stream.files.check_declared_size`), and its
  chunk grid by the number of its chunk files, before zarr allocates anything;
* a blosc chunk's header must state the chunk's own length (blosc trusts it), also in
  stores without a manifest (written by anndata or zarr themselves).

Stores without a manifest are read with these bounds but without digests (one INFO
record per store says so): their damage can go unnoticed, as in any zarr store.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import numpy as np

from h5stream.errors import ChecksumError, FormatError
from h5stream.files import folder_digests
from h5stream.files.header_checks import MAX_EXPANSION, SIZE_FLOOR

__all__ = ["MANIFEST", "FORMAT_NAME", "seal_store", "StoreFiles", "MAX_CHUNK_GRID"]

logger = logging.getLogger(__name__)

#: The root attribute holding the manifest.
MANIFEST = "scptensor-checksums"
FORMAT_NAME = "scptensor-zarr-checksums"
FORMAT_VERSION = "1.0"
#: Chunks an array's grid may have beyond four per chunk file it holds (missing chunks read as fill).
MAX_CHUNK_GRID = 100_000
#: Largest metadata file (``.zarray``, ``.zattrs``, ``zarr.json``...) or manifest read.
METADATA_LIMIT = 64 * 2**20
_METADATA = frozenset({".zarray", ".zgroup", ".zattrs", ".zmetadata", "zarr.json"})
_HINT = "the store is damaged; restore it from a copy, or load with verify=False to get the data as stored"
_noted: set[str] = set()


def _root_metadata(zarr_format: int) -> str:
    return ".zattrs" if zarr_format == 2 else "zarr.json"


def _canonical_crc(parsed: dict) -> str:
    """CRC-32 of a root metadata file's content without the manifest's ``"self"`` field."""
    content = json.loads(json.dumps(parsed))
    content.get("attributes", content).get(MANIFEST, {}).pop("self", None)
    raw = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return folder_digests.bytes_crc(raw)


def seal_store(group, root: Path, zarr_format: int) -> None:
    """Digest every file of the store being written at ``root`` (zarr group ``group``) into its manifest."""
    meta = _root_metadata(zarr_format)
    files = {}
    for here, _subdirs, names in os.walk(root):
        for name in names:
            full = os.path.join(here, name)
            rel = Path(os.path.relpath(full, root)).as_posix()
            if rel != meta:
                files[rel] = folder_digests.digest_entry(full)
    manifest = {"format_name": FORMAT_NAME, "format_version": FORMAT_VERSION, "algorithm": folder_digests.ALGORITHM,
                "root_metadata": meta, "files": dict(sorted(files.items()))}
    group.attrs[MANIFEST] = manifest
    parsed = json.loads((root / meta).read_bytes())
    manifest["self"] = _canonical_crc(parsed)
    group.attrs[MANIFEST] = manifest


def _listing(root: Path) -> dict[str, int]:
    """Every regular file under ``root`` (posix path relative to it) and its size; links are refused."""
    sizes: dict[str, int] = {}
    for here, dirs, names in os.walk(root):
        for name in dirs + names:
            full = os.path.join(here, name)
            rel = Path(os.path.relpath(full, root)).as_posix()
            st = os.lstat(full)
            if os.path.islink(full) or not (os.path.isdir(full) or os.path.isfile(full)):
                raise FormatError("the store holds a link or a special file", path=root, obj=rel,
                                  expected="plain files and folders", found="a link" if os.path.islink(full)
                                  else "a special file", hint="zarr stores written here never hold one")
            if name in names:
                sizes[rel] = st.st_size
    return sizes


def _ints(value, *, positive: bool) -> list[int] | None:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return None
    if any(v < (1 if positive else 0) for v in value):
        return None
    return value


def _v2_itemsize(dtype) -> int:
    if isinstance(dtype, list):
        dtype = [tuple(field) for field in dtype]
    return max(np.dtype(dtype).itemsize, 1)


_V3_SIZES = {"bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "float16": 2, "int32": 4, "uint32": 4,
             "float32": 4, "int64": 8, "uint64": 8, "float64": 8, "complex64": 8, "complex128": 16}


class _Array:
    """What an array's metadata declares: its shape, chunk shape, element size and whether chunks are blosc."""

    def __init__(self, key: str, meta: dict, root: Path) -> None:
        self.key = key
        if "zarr_format" in meta and meta.get("zarr_format") == 3:
            grid = (meta.get("chunk_grid") or {}).get("configuration") or {}
            chunks, data_type = grid.get("chunk_shape"), meta.get("data_type")
            itemsize = _V3_SIZES.get(data_type, 8) if isinstance(data_type, str) else 8
            codecs = meta.get("codecs") or []
            names = [c.get("name") for c in codecs if isinstance(c, dict)]
            self.blosc = "blosc" in names or "numcodecs.blosc" in names
            self.vlen = None
            self.filtered = any(n not in ("bytes", "blosc", "numcodecs.blosc") for n in names)
        else:
            chunks = meta.get("chunks")
            try:
                itemsize = _v2_itemsize(meta.get("dtype"))
            except (TypeError, ValueError) as exc:
                raise FormatError("an array's metadata names no data type numpy knows", path=root, obj=key,
                                  expected="a numpy dtype", found=repr(meta.get("dtype"))[:80],
                                  hint="the store is damaged or crafted") from exc
            compressor = meta.get("compressor")
            self.blosc = isinstance(compressor, dict) and compressor.get("id") == "blosc"
            self.filtered = bool(meta.get("filters")) or "O" in str(meta.get("dtype"))
            filters = meta.get("filters") if isinstance(meta.get("filters"), list) else []
            vlen = [f for f in filters if isinstance(f, dict) and str(f.get("id", "")).startswith("vlen")]
            # the codec that decompresses a chunk of variable-length values, when it has them
            self.vlen = (compressor if isinstance(compressor, dict) else {}) if vlen and len(filters) == 1 else None
        shape = _ints(meta.get("shape"), positive=False)
        chunks = _ints(chunks, positive=True)
        if shape is None or chunks is None or len(shape) != len(chunks):
            raise FormatError("an array's metadata declares no valid shape and chunk shape", path=root, obj=key,
                              expected="lists of whole numbers of one length (chunks above 0)",
                              found=f"shape {str(meta.get('shape'))[:60]}, chunks {str(chunks)[:60]}",
                              hint="the store is damaged or crafted")
        self.shape, self.chunks, self.itemsize = shape, chunks, itemsize
        self.chunk_bytes = math.prod(chunks) * itemsize

    def check_bounds(self, root: Path, stored: int, n_files: int) -> None:
        """Refuse a shape, chunk shape or grid its ``n_files`` chunk files of ``stored`` bytes cannot hold."""
        declared = math.prod(self.shape) * self.itemsize
        holds = stored * MAX_EXPANSION + SIZE_FLOOR
        grid = math.prod(-(-s // c) for s, c in zip(self.shape, self.chunks))
        found = f"shape {tuple(self.shape)}, chunks {tuple(self.chunks)} of {self.itemsize}-byte elements"
        if declared > holds or self.chunk_bytes > holds:
            raise FormatError(
                "an array declares more data than its chunk files hold", path=root, obj=self.key,
                expected=f"at most {holds} bytes for {stored} bytes in {n_files} chunk files",
                found=f"{found} ({max(declared, self.chunk_bytes)} bytes)",
                hint="the store is damaged, truncated or crafted",
            )
        # A chunk without its file reads as the fill value: a shape far beyond the chunk files stored would be
        # filled in memory (a store of 100 kB stating 10 M rows took 2.4 GB and a minute before it was refused).
        absent = max(0, grid - n_files)
        fill, allowed = absent * self.chunk_bytes, SIZE_FLOOR + n_files * self.chunk_bytes
        if fill > allowed:
            raise FormatError(
                "an array declares far more chunks than it stores (the missing ones would be filled in memory)",
                path=root, obj=self.key,
                expected=f"at most {allowed} bytes of missing chunks for {n_files} chunk files",
                found=f"{found}: {absent} of {grid} chunks missing ({fill} bytes of fill)",
                hint="the store is damaged, truncated or crafted; restore it from a copy",
            )
        if grid > max(MAX_CHUNK_GRID, 4 * n_files):
            raise FormatError(
                "an array declares more chunks than its chunk files allow", path=root, obj=self.key,
                expected=f"at most {max(MAX_CHUNK_GRID, 4 * n_files)} chunks for {n_files} chunk files",
                found=f"{found} ({grid} chunks)", hint="the store is damaged, truncated or crafted",
            )

    def check_items(self, root: Path, rel: str, data: bytes) -> None:
        """A chunk of variable-length values states as many values as the chunk holds (numcodecs' decoder
        allocates what it states, up to 2**32 values, before it meets the end of the data)."""
        try:
            if self.vlen:
                import numcodecs

                data = numcodecs.get_codec(dict(self.vlen)).decode(data)
            stated = int.from_bytes(bytes(memoryview(data).cast("B")[:4]), "little")
        except Exception as exc:  # a codec on a damaged chunk of a store without digests
            raise FormatError(f"a chunk cannot be decoded ({type(exc).__name__}: {exc})", path=root, obj=rel,
                              hint=_HINT_FOREIGN) from exc
        if stated != math.prod(self.chunks) or len(data) < 4 + 4 * stated:
            raise FormatError("a chunk of variable-length values states another number of values", path=root,
                              obj=rel, expected=f"{math.prod(self.chunks)} values (the chunk shape)",
                              found=f"{stated} values in {len(data)} bytes", hint=_HINT_FOREIGN)

    def check_blosc(self, root: Path, rel: str, data: bytes) -> None:
        """A blosc chunk's header states its own length and a decoded size its array allows (blosc trusts both)."""
        if len(data) < 16:
            raise FormatError("a blosc chunk is shorter than its header", path=root, obj=rel,
                              expected="at least 16 bytes", found=f"{len(data)} bytes", hint=_HINT_FOREIGN)
        nbytes = int.from_bytes(data[4:8], "little")
        cbytes = int.from_bytes(data[12:16], "little")
        limit = self.chunk_bytes if not self.filtered else len(data) * MAX_EXPANSION + SIZE_FLOOR
        if cbytes != len(data) or nbytes > limit:
            raise FormatError(
                "a blosc chunk's header disagrees with the chunk", path=root, obj=rel,
                expected=f"{len(data)} compressed bytes, at most {limit} decoded",
                found=f"{cbytes} compressed, {nbytes} decoded", hint=_HINT_FOREIGN,
            )


_HINT_FOREIGN = "the store is damaged or truncated; restore it from a copy"


class StoreFiles(MutableMapping):
    """The files of the store at ``root`` as a read-only mapping, each checked before it is returned.

    See the module text.  ``verify=False`` skips the digests (the bounds still apply).
    ``last`` is the key most recently read, by any thread (errors of a codec name it).
    """

    def __init__(self, root: Path, *, verify: bool = True) -> None:
        self.root = root
        self.sizes = _listing(root)
        self.checked: dict[str, bytes] = {}  # files read and checked whole before zarr asks
        self.digests = self._digests() if verify else None
        if self.digests is not None:
            self._check_members()
        self.last = "/"
        self.owner: dict[str, _Array] = {}
        self._bound_arrays()

    # -- checks made before zarr reads anything

    def _digests(self) -> dict | None:
        meta = ".zattrs" if ".zgroup" in self.sizes else "zarr.json"
        raw = self._read(meta, limit=METADATA_LIMIT) if meta in self.sizes else b"{}"
        try:
            parsed = json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise FormatError("the root group's metadata is unreadable", path=self.root, obj=meta,
                              expected="JSON text", found=str(exc)[:80], hint=_HINT) from exc
        attrs = parsed.get("attributes", {}) if meta == "zarr.json" and isinstance(parsed, dict) else parsed
        manifest = attrs.get(MANIFEST) if isinstance(attrs, dict) else None
        if manifest is None:
            key = os.fspath(self.root)
            if key not in _noted:
                _noted.add(key)
                logger.info("%s: no checksum manifest (a store written by another tool, or before checksums); "
                            "read without digests", self.root)
            return None
        where = f"{meta}/{MANIFEST}"
        if (not isinstance(manifest, dict) or manifest.get("format_name") != FORMAT_NAME
                or manifest.get("algorithm") != folder_digests.ALGORITHM or manifest.get("root_metadata") != meta
                or not isinstance(manifest.get("files"), dict) or not isinstance(manifest.get("self"), str)):
            raise FormatError("the store's checksum manifest is not in the expected form", path=self.root, obj=where,
                              expected=f"{FORMAT_NAME} {FORMAT_VERSION} (crc32 digests of the files, and its own)",
                              found=repr(str(manifest)[:80]), hint=_HINT)
        found = _canonical_crc(parsed)
        if found != manifest["self"]:
            raise ChecksumError("checksum mismatch: the root group's metadata differs from what was written",
                                path=self.root, obj=meta, expected=f"crc32 {manifest['self']}",
                                found=f"crc32 {found}", hint=_HINT)
        self.checked = {meta: raw}
        return manifest["files"]

    def _check_members(self) -> None:
        listed = set(self.digests) | set(self.checked)
        for rel in sorted(listed - set(self.sizes)):
            raise ChecksumError("a file of the store is missing", path=self.root, obj=rel,
                                expected="the file the checksum manifest lists", found="nothing", hint=_HINT)
        for rel in sorted(set(self.sizes) - listed):
            raise ChecksumError("the store holds a file that was not written with it", path=self.root, obj=rel,
                                expected="only the files the checksum manifest lists", found="an extra file",
                                hint=_HINT)
        for rel, size in sorted(self.sizes.items()):
            if rel in self.checked:
                continue
            entry = self.digests[rel]
            expected = entry.get("size") if isinstance(entry, dict) else None
            if size != expected or not isinstance(entry.get("crc32"), str):
                raise ChecksumError("a file of the store has another size than was written", path=self.root,
                                    obj=rel, expected=f"{expected} bytes", found=f"{size} bytes", hint=_HINT)

    def _bound_arrays(self) -> None:
        arrays: dict[str, _Array] = {}
        for rel in sorted(self.sizes):
            folder, _, name = rel.rpartition("/")
            if name not in (".zarray", "zarr.json"):
                continue
            try:
                meta = json.loads(self[rel].decode("utf-8"))
            except ValueError as exc:
                raise FormatError("an array's metadata is unreadable", path=self.root, obj=rel,
                                  expected="JSON text", found=str(exc)[:80]) from exc
            if not isinstance(meta, dict) or (name == "zarr.json" and meta.get("node_type") != "array"):
                continue
            arrays[folder] = _Array(rel, meta, self.root)
        stored: dict[str, list[int]] = {folder: [0, 0] for folder in arrays}
        for rel, size in self.sizes.items():
            folder, _, name = rel.rpartition("/")
            if name in _METADATA:
                continue
            while folder and folder not in arrays:
                folder = folder.rpartition("/")[0]
            if folder in arrays:
                self.owner[rel] = arrays[folder]
                stored[folder][0] += size
                stored[folder][1] += 1
        for folder, array in arrays.items():
            array.check_bounds(self.root, *stored[folder])

    # -- reads

    def _read(self, rel: str, *, limit: int | None = None) -> bytes:
        try:
            with open(self.root / rel, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if limit is not None and size > limit:
                    raise FormatError("a metadata file of the store is too large", path=self.root, obj=rel,
                                      expected=f"at most {limit} bytes", found=f"{size} bytes",
                                      hint="the store is damaged or crafted")
                return fh.read(size)
        except OSError as exc:
            if isinstance(exc, FormatError):
                raise
            raise FormatError("a file of the store is unreadable", path=self.root, obj=rel,
                              expected="a readable file", found=str(exc)) from exc

    def __getitem__(self, key: str) -> bytes:
        if key not in self.sizes:
            raise KeyError(key)
        self.last = key  # zarr 3 reads from its own threads: the key most recently asked, by any thread
        if key in self.checked:
            return self.checked[key]
        name = key.rpartition("/")[2]
        data = self._read(key, limit=METADATA_LIMIT if name in _METADATA else None)
        if self.digests is not None:
            entry = self.digests[key]
            found = folder_digests.bytes_crc(data)
            if len(data) != entry["size"] or found != entry["crc32"]:
                raise ChecksumError("checksum mismatch: the file differs from what was written", path=self.root,
                                    obj=key, expected=f"crc32 {entry['crc32']}, {entry['size']} bytes",
                                    found=f"crc32 {found}, {len(data)} bytes", hint=_HINT)
        array = self.owner.get(key)
        if array is not None and array.blosc:
            array.check_blosc(self.root, key, data)
        if array is not None and array.vlen is not None and self.digests is None:
            array.check_items(self.root, key, data)
        return data

    def __contains__(self, key) -> bool:
        return key in self.sizes

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.sizes))

    def __len__(self) -> int:
        return len(self.sizes)

    def __setitem__(self, key, value) -> None:
        raise PermissionError(f"{self.root}: the store is read-only here")

    def __delitem__(self, key) -> None:
        raise PermissionError(f"{self.root}: the store is read-only here")
