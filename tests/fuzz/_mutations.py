"""Where a file's data and metadata lie, and a seeded plan of byte flips and zeroed blocks.

For HDF5 files the data are the byte ranges of every contiguous dataset and every
chunk (from libhdf5's own storage map); everything else is metadata (superblock,
object headers with their attributes and compact datasets, B-trees, heaps) or unused
space.  Within the metadata, the stored types of tables (the datatype messages of
compound datasets, found by their encoding) get flips of their own: a damaged member
offset, size or number layout is what made libhdf5 crash in a ``.cmtr``'s peaks read.  For Parquet files the data are the column chunks (pages) and the metadata the
footer (Thrift file metadata, its length and the magic numbers).

A zarr store is fuzzed as a whole (:func:`plan_store_mutations`): each mutation names
the file of the store it damages (``member``).  The data are the chunk files, the
metadata the ``.zarray``/``.zattrs``/``.zgroup``/``zarr.json`` files and the consolidated
``.zmetadata``; besides flips and zeroed
blocks, a tenth of the mutations change the store's structure: a file deleted, a chunk
truncated to half, two chunk files swapped, an array's first dimension
declared as 40,000,000.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

DATA, METADATA, ZEROED, TYPE = "data", "metadata", "zeroed", "type"
DELETED, TRUNCATED, SWAPPED, SHAPE = "deleted", "truncated", "swapped", "shape"
STRUCTURE = (DELETED, TRUNCATED, SWAPPED, SHAPE)
ZERO_BLOCKS = (512, 4096)
#: A store's metadata files; ``.zmetadata`` is the consolidated metadata anndata writes (the readers here read
#: each array's own files, so a flip in it reads identically: counted as data, it took most data flips)
STORE_METADATA = (".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json")


@dataclasses.dataclass(frozen=True)
class Mutation:
    index: int
    kind: str  # DATA, METADATA, TYPE or ZEROED
    offset: int
    size: int  # bytes changed (1 for a flip, the block's size when zeroed)
    xor: int = 0  # the value a flipped byte is XORed with (1..255)
    seed: int = 0  # the seed of the plan it belongs to (to rerun it: --fuzz-seed SEED)
    member: str = ""  # in a store: the file damaged (relative to the store)
    other: str = ""  # in a store: the chunk ``member`` is swapped with

    def apply(self, original: bytes) -> bytes:
        data = bytearray(original)
        if self.kind == ZEROED:
            data[self.offset:self.offset + self.size] = bytes(len(data[self.offset:self.offset + self.size]))
        else:
            data[self.offset] ^= self.xor
        return bytes(data)

    def apply_to_store(self, files: dict[str, bytes]) -> dict[str, bytes | None]:
        """The files of a store this mutation changes, with their new bytes (None: deleted)."""
        original = files[self.member]
        if self.kind == DELETED:
            return {self.member: None}
        if self.kind == TRUNCATED:
            return {self.member: original[:len(original) // 2]}
        if self.kind == SWAPPED:
            return {self.member: files[self.other], self.other: original}
        if self.kind == SHAPE:
            meta = json.loads(original)
            meta["shape"][0] = 40_000_000
            return {self.member: json.dumps(meta, indent=4).encode()}
        return {self.member: self.apply(original)}

    def describe(self) -> str:
        where = f" of {self.member}" if self.member else ""
        if self.kind in STRUCTURE:
            with_other = f" with {self.other}" if self.other else ""
            return f"{self.kind} {self.member}{with_other} (seed {self.seed})"
        if self.kind == ZEROED:
            return f"{self.size} B zeroed at {self.offset}{where} (seed {self.seed})"
        return f"{self.kind} byte {self.offset}{where} ^ 0x{self.xor:02x} (seed {self.seed})"


def hdf5_data_ranges(path: Path) -> list[tuple[int, int]]:
    """``(start, stop)`` byte ranges of every dataset's raw data (contiguous storage and chunks)."""
    import h5py

    ranges: list[tuple[int, int]] = []

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        dcpl = obj.id.get_create_plist()
        layout = dcpl.get_layout()
        if layout == h5py.h5d.CONTIGUOUS:
            offset, size = obj.id.get_offset(), obj.id.get_storage_size()
            if offset is not None and size:
                ranges.append((offset, offset + size))
        elif layout == h5py.h5d.CHUNKED:
            for i in range(obj.id.get_num_chunks()):
                info = obj.id.get_chunk_info(i)
                ranges.append((info.byte_offset, info.byte_offset + info.size))
        # compact data lives inside the object header: metadata

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return sorted(ranges)


def parquet_data_ranges(path: Path) -> list[tuple[int, int]]:
    """``(start, stop)`` byte ranges of every column chunk of a Parquet file."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    ranges = []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            start = column.data_page_offset
            if column.has_dictionary_page and column.dictionary_page_offset:
                start = min(start, column.dictionary_page_offset)
            ranges.append((start, start + column.total_compressed_size))
    return sorted(ranges)


def compound_type_ranges(path: Path) -> list[tuple[int, int]]:
    """``(start, stop)`` byte ranges of the stored datatype messages of every compound dataset (each place
    the type's encoding occurs in the file; none for a Parquet file)."""
    import h5py

    if Path(path).read_bytes()[:4] == b"PAR1":
        return []
    bodies: set[bytes] = set()

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.id.get_type().get_class() == h5py.h5t.COMPOUND:
            bodies.add(obj.id.get_type().encode()[2:])  # H5Tencode: 2 bytes of its own, then the message

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    content = Path(path).read_bytes()
    ranges = []
    for body in bodies:
        start = content.find(body)
        while start >= 0:
            ranges.append((start, start + len(body)))
            start = content.find(body, start + 1)
    return sorted(ranges)


def data_ranges(path: Path) -> list[tuple[int, int]]:
    head = Path(path).read_bytes()[:8]
    if head.startswith(b"PAR1"):
        return parquet_data_ranges(path)
    return hdf5_data_ranges(path)


def _positions(ranges: list[tuple[int, int]], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(data offsets, metadata offsets): every byte of the file in one of the two."""
    is_data = np.zeros(size, dtype=bool)
    for start, stop in ranges:
        is_data[max(start, 0):min(stop, size)] = True
    return np.flatnonzero(is_data), np.flatnonzero(~is_data)


def plan_mutations(path: Path, n: int, seed: int, first_index: int = 0) -> list[Mutation]:
    """``n`` mutations of ``path``: 20% zeroed blocks (512 B and 4 KiB); in a file with tables, 10% flips in
    their stored types; the rest flips, half in data and half in (other) metadata.

    A file without raw data (all of it in object headers) gets metadata flips instead.
    Indexes start at ``first_index`` (plans of several seeds are read as one).
    """
    size = Path(path).stat().st_size
    data, metadata = _positions(data_ranges(path), size)
    types = np.zeros(0, dtype=np.int64)
    type_ranges = compound_type_ranges(path)
    if type_ranges:
        types = np.unique(np.concatenate([np.arange(a, b) for a, b in type_ranges]))
    rng = np.random.default_rng(seed)
    n_zeroed = n // 5
    n_type = n // 10 if types.size else 0
    n_data = (n - n_zeroed - n_type) // 2 if data.size else 0
    n_metadata = n - n_zeroed - n_type - n_data
    mutations: list[Mutation] = []

    def add(kind: str, offset: int, size: int, xor: int = 0) -> None:
        mutations.append(Mutation(first_index + len(mutations), kind, offset, size, xor, seed))

    for kind, count, where in ((DATA, n_data, data), (METADATA, n_metadata, metadata), (TYPE, n_type, types)):
        for offset in rng.choice(where, size=count, replace=count > where.size):
            add(kind, int(offset), 1, int(rng.integers(1, 256)))
    for i in range(n_zeroed):
        block = ZERO_BLOCKS[i % 2]
        offset = int(rng.integers(0, max(size - block // 2, 1)))
        add(ZEROED, offset, min(block, size - offset))
    return mutations


def store_files(root: Path) -> dict[str, bytes]:
    """Every file of a store folder (posix path relative to it) and its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def plan_store_mutations(root: Path, n: int, seed: int, first_index: int = 0) -> list[Mutation]:
    """``n`` mutations of the zarr store ``root``: 20% zeroed blocks, 10% changes of structure (see the module
    text), the rest flips, half in chunk files and half in metadata files, each byte of a kind equally likely."""
    files = store_files(root)
    names = sorted(files)
    chunks = [r for r in names if r.rpartition("/")[2] not in STORE_METADATA and files[r]]
    metas = [r for r in names if r.rpartition("/")[2] in STORE_METADATA and files[r]]
    arrays = [r for r in metas if r.endswith(".zarray") and json.loads(files[r]).get("shape")]
    rng = np.random.default_rng(seed)
    n_zeroed, n_structure = n // 5, n // 10
    n_data = (n - n_zeroed - n_structure) // 2
    n_metadata = n - n_zeroed - n_structure - n_data
    mutations: list[Mutation] = []

    def add(kind: str, member: str, offset: int = 0, size: int = 0, xor: int = 0, other: str = "") -> None:
        mutations.append(Mutation(first_index + len(mutations), kind, offset, size, xor, seed, member, other))

    def byte_in(group: list[str]) -> tuple[str, int]:
        ends = np.cumsum([len(files[r]) for r in group])
        at = int(rng.integers(0, ends[-1]))
        i = int(np.searchsorted(ends, at, side="right"))
        return group[i], at - (int(ends[i - 1]) if i else 0)

    for kind, count, group in ((DATA, n_data, chunks), (METADATA, n_metadata, metas)):
        for _ in range(count):
            member, offset = byte_in(group)
            add(kind, member, offset, 1, int(rng.integers(1, 256)))
    for i in range(n_zeroed):
        member, offset = byte_in(chunks + metas)
        add(ZEROED, member, offset, min(ZERO_BLOCKS[i % 2], len(files[member]) - offset))
    for i in range(n_structure):
        kind = STRUCTURE[i % len(STRUCTURE)]
        if kind == DELETED:
            add(kind, names[int(rng.integers(0, len(names)))])
        elif kind == TRUNCATED:
            add(kind, chunks[int(rng.integers(0, len(chunks)))])
        elif kind == SWAPPED:
            a, b = rng.choice(len(chunks), size=2, replace=False)
            add(kind, chunks[int(a)], other=chunks[int(b)])
        else:
            add(kind, arrays[int(rng.integers(0, len(arrays)))])
    return mutations
