"""Piece digests (h5stream.checksums._pieces): a read of some rows of a contiguous dataset checks what it reads.

Digests are compared with a naive twin (zlib's CRC-32 of each piece's header and bytes, pieces cut
with plain slicing); reads of random runs with plain h5py slicing of the same file; damage is a byte
flipped on disk at HDF5's own offset of the contiguous storage.
"""

from __future__ import annotations

import json
import os
import zlib

import h5py
import numpy as np
import pytest

from h5stream import checksums
from h5stream.errors import ChecksumError
from h5stream.files import create_atomic
from h5stream.writer import WriteOptions, write_array


def _naive_digest(values: np.ndarray) -> str:
    values = np.ascontiguousarray(values)
    head = zlib.crc32(f"{values.dtype.str}|{tuple(values.shape)}".encode())
    return f"{zlib.crc32(values.tobytes(), head):08x}"


def _naive_pieces(values: np.ndarray) -> str | None:
    row = max(1, int(np.prod(values.shape[1:])) * values.dtype.itemsize)
    k = max(1, checksums.PIECE_BYTES // row)
    if values.shape[0] <= k:
        return None
    return f"{k}/" + "".join(_naive_digest(values[a:a + k]) for a in range(0, values.shape[0], k))


SHAPES = [((3000, 40), "<f8"), ((100_000,), "<i4"), ((50, 7000), "<f8"), ((20, 3, 5000), "<u2"),
          ((100,), "<f8"), ((0, 4), "<f4"), ((33_000,), "|b1")]


@pytest.mark.parametrize("shape,dtype", SHAPES)
def test_array_digests_equal_the_naive_twin(shape, dtype):
    rng = np.random.default_rng(len(shape))
    values = (rng.random(shape) * 1000).astype(dtype)
    whole, pieces = checksums.array_digests(values)
    assert whole == _naive_digest(values) == checksums.array_digest(values)
    assert pieces == _naive_pieces(values)


def _write(path, arrays: dict, options: WriteOptions | None = None) -> dict:
    with create_atomic(path, checksums=True) as f:
        for name, values in arrays.items():
            write_array(f, name, values, options or WriteOptions())
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs[checksums.MANIFEST_ATTR])


def test_writer_records_pieces_of_contiguous_arrays_in_any_memory_order(tmp_path):
    rng = np.random.default_rng(1)
    c = rng.random((3000, 40))
    manifest = _write(tmp_path / "a.h5", {"c": c, "f": np.asfortranarray(c), "small": c[:10],
                                          "strided": c[:, ::2]})
    assert manifest["pieces"]["/c"] == manifest["pieces"]["/f"] == _naive_pieces(c)
    assert manifest["pieces"]["/strided"] == _naive_pieces(c[:, ::2]) is not None
    assert "/small" not in manifest["pieces"] and "/small" in manifest["datasets"]
    with h5py.File(tmp_path / "a.h5", "r") as f:
        for name in ("c", "f", "strided"):
            assert checksums.stored_digests(f[name]) == (manifest["datasets"]["/" + name],
                                                         manifest["pieces"]["/" + name])


def test_chunked_arrays_have_no_pieces(tmp_path):
    values = np.repeat(np.arange(3000.0), 40).reshape(3000, 40)
    manifest = _write(tmp_path / "g.h5", {"g": values}, WriteOptions(compression="gzip", level=4))
    assert "pieces" not in manifest and "/g" not in manifest["datasets"]
    with h5py.File(tmp_path / "g.h5", "r") as f:
        checksums.attach(f)
        assert checksums.read_runs_checked(f["g"], [(3, 9)], None, checksums.manifest_for(f)) is None


def _offset(path, name: str) -> int:
    with h5py.File(path, "r") as f:
        return f[name].id.get_offset()


def _flip(path, offset: int) -> None:
    with open(path, "r+b") as raw:
        raw.seek(offset)
        byte = raw.read(1)
        raw.seek(offset)
        raw.write(bytes([byte[0] ^ 0x08]))


def _runs(rng, n: int) -> list[tuple[int, int]]:
    cuts = np.unique(rng.integers(0, n + 1, size=rng.integers(2, 12)))
    pairs = list(zip(cuts[:-1], cuts[1:]))
    return [(int(a), int(b)) for i, (a, b) in enumerate(pairs) if i % 2 == 0]


@pytest.mark.parametrize("seed", range(6))
def test_runs_read_equal_plain_slicing_and_check_only_their_pieces(tmp_path, seed, monkeypatch):
    monkeypatch.setattr("h5stream.checksums._pieces._BLOCK_BYTES", 300_000)  # several blocks of pieces
    rng = np.random.default_rng(seed)
    values = rng.random((5000, 30)) if seed % 2 else rng.integers(0, 1 << 30, 200_000, dtype=np.int64)
    path = tmp_path / "r.h5"
    manifest = _write(path, {"v": values})
    k = int(manifest["pieces"]["/v"].split("/")[0])
    row = values[0].nbytes if values.ndim > 1 else values.itemsize
    bad_row = int(rng.integers(0, values.shape[0]))
    _flip(path, _offset(path, "v") + bad_row * row + int(rng.integers(0, row)))
    bad_piece = bad_row // k
    cols = np.sort(rng.choice(30, 7, replace=False)) if values.ndim > 1 else None
    with h5py.File(path, "r") as f:
        manifest_read = checksums.attach(f)
        for _ in range(20):
            runs = _runs(rng, values.shape[0])
            touched = any(a // k <= bad_piece <= (b - 1) // k for a, b in runs)
            if touched:
                with pytest.raises(ChecksumError, match=rf"/v \((rows|entries) {bad_piece * k}:"):
                    checksums.read_runs_checked(f["v"], runs, cols, manifest_read)
                continue
            got = checksums.read_runs_checked(f["v"], runs, cols, manifest_read)
            want = np.concatenate([values[a:b] for a, b in runs]) if runs else values[:0]
            assert np.array_equal(got, want if cols is None else want[:, cols])


def test_a_file_without_pieces_is_read_whole_and_its_digest_checked(tmp_path):
    """A file written before piece digests: a read of some rows checks the whole digest, so damage
    anywhere in the dataset is found, and undamaged values come back exactly."""
    values = np.random.default_rng(3).random((4000, 20))
    path = tmp_path / "old.h5"
    _write(path, {"v": values})
    with h5py.File(path, "r+") as f:
        document = json.loads(f.attrs[checksums.MANIFEST_ATTR])
        del document["pieces"]
        f.attrs[checksums.MANIFEST_ATTR] = json.dumps(document)
    with h5py.File(path, "r") as f:
        got = checksums.read_runs_checked(f["v"], [(5, 9), (3000, 3002)], None, checksums.attach(f))
    assert np.array_equal(got, np.concatenate([values[5:9], values[3000:3002]]))
    _flip(path, _offset(path, "v") + 3900 * 160 + 3)
    with h5py.File(path, "r") as f:
        with pytest.raises(ChecksumError, match=r"\[/v\]"):
            checksums.read_runs_checked(f["v"], [(5, 9)], None, checksums.attach(f))


@pytest.mark.parametrize("text", ["x/00", "0/", "3/abcd", "12/"])
def test_damaged_piece_digests_are_a_checksum_error(tmp_path, text):
    values = np.arange(40_000, dtype=np.float64)
    path = tmp_path / "p.h5"
    _write(path, {"v": values})
    with h5py.File(path, "r+") as f:
        document = json.loads(f.attrs[checksums.MANIFEST_ATTR])
        document["pieces"]["/v"] = text
        f.attrs[checksums.MANIFEST_ATTR] = json.dumps(document)
    with h5py.File(path, "r") as f, pytest.raises(ChecksumError, match="piece digests"):
        checksums.read_runs_checked(f["v"], [(0, 3)], None, checksums.attach(f))


def test_a_rewritten_dataset_drops_or_replaces_its_pieces():
    recorder = checksums.Recorder()
    recorder.dataset("/a", "00000001", "2/0000000a0000000b")
    recorder.dataset("/b", "00000002", "2/0000000c")
    recorder.dataset("/a", "00000003")  # written again, one piece now
    recorder.removed("/b")
    datasets = recorder.current()[0]
    assert recorder.current_pieces(datasets) == {}
    seeded = checksums.Recorder()
    seeded.seed(checksums.Manifest("f.h5", {"/c": "00000004"}, {}, pieces={"/c": "1/0000000d0000000e"}))
    assert seeded.current_pieces(seeded.current()[0]) == {"/c": "1/0000000d0000000e"}


def test_verify_checks_the_piece_digests_too(tmp_path):
    """A whole-file check finds piece digests that no longer match the values (the whole digest does)."""
    from h5stream.files.checksum_checks import check_file

    values = np.arange(40_000, dtype=np.float64)
    path = tmp_path / "v.h5"
    manifest = _write(path, {"v": values})
    assert check_file(path)["datasets"] == 1
    with h5py.File(path, "r+") as f:
        k, packed = manifest["pieces"]["/v"].split("/")
        manifest["pieces"]["/v"] = f"{k}/{packed[8:]}{packed[:8]}"  # the right digests, in the wrong order
        f.attrs[checksums.MANIFEST_ATTR] = json.dumps(manifest)
    with pytest.raises(ChecksumError, match="piece digests"):
        check_file(path)


@pytest.mark.parametrize("block", [4096, checksums.PIECE_BYTES, 3 * checksums.PIECE_BYTES + 1, 16 << 20])
@pytest.mark.parametrize("shape,dtype", [((3000, 400), "<f8"), ((1_500_000,), "<i4"), ((70, 9, 2000), "<u4")])
def test_a_whole_read_lands_straight_in_the_array_and_checks_every_piece(tmp_path, monkeypatch, block, shape, dtype):
    """The values equal plain h5py's read of the same file; a byte flipped in any piece (the first, the
    short last one, one in between) is a checksum error naming that piece's rows, however the requests
    fall across the pieces (many per piece, one, a piece and a byte over, all in one)."""
    monkeypatch.setattr("h5stream.checksums._pieces.REQUEST_BYTES", block)
    rng = np.random.default_rng(block % 1000)
    values = (rng.random(shape) * 1e6).astype(dtype)
    path = tmp_path / "w.h5"
    manifest = _write(path, {"v": values})
    k = int(manifest["pieces"]["/v"].split("/")[0])
    n = shape[0]
    with h5py.File(path, "r") as f:
        plain = f["v"][()]
        got = checksums.read_whole_checked(f["v"], checksums.attach(f))
    assert got is not None and got.dtype == plain.dtype and got.flags.c_contiguous
    assert np.array_equal(got, plain) and np.array_equal(got, values)
    row = values[0].nbytes if values.ndim > 1 else values.itemsize
    for bad_row in (0, n - 1, int(rng.integers(k, n - k))):
        at = _offset(path, "v") + bad_row * row + int(rng.integers(0, row))
        _flip(path, at)
        first = bad_row // k * k
        unit = "rows" if values.ndim > 1 else "entries"
        with h5py.File(path, "r") as f, pytest.raises(ChecksumError, match=rf"/v \({unit} {first}:{min(n, first + k)}\)"):
            checksums.read_whole_checked(f["v"], checksums.attach(f))
        _flip(path, at)


def test_a_whole_read_leaves_to_h5py_what_is_not_one_plain_run_with_a_digest(tmp_path):
    """None (read as usual) for a chunked dataset (HDF5 checks its Fletcher32), a file opened for writing and
    a file without a manifest; a dataset of one piece is read and checked as that piece."""
    values = np.random.default_rng(2).random((3000, 100))
    path = tmp_path / "n.h5"
    _write(path, {"plain": values, "small": values[:100]})
    chunked = tmp_path / "c.h5"
    _write(chunked, {"v": values}, WriteOptions(chunks=(100, 100)))
    with h5py.File(chunked, "r") as f:
        assert f["v"].chunks is not None
        assert checksums.read_whole_checked(f["v"], checksums.attach(f)) is None
    with h5py.File(path, "r") as f:
        manifest = checksums.attach(f)
        assert np.array_equal(checksums.read_whole_checked(f["small"], manifest), values[:100])
        assert np.array_equal(checksums.read_whole_checked(f["plain"], manifest), values)
        assert checksums.read_whole_checked(f["plain"], None) is None
    with h5py.File(path, "r+") as f:
        assert checksums.read_whole_checked(f["plain"], checksums.attach(f)) is None


@pytest.mark.parametrize("block", [checksums.PIECE_BYTES, 16 << 20])
def test_a_whole_read_of_a_file_without_piece_digests_checks_the_whole_digest(tmp_path, monkeypatch, block):
    """A file written before piece digests (its manifest holds only each dataset's whole digest) is read the
    same way, the dataset as one piece: values equal plain h5py's read; a byte flipped anywhere (first,
    last, in between) is a checksum error naming the dataset."""
    monkeypatch.setattr("h5stream.checksums._pieces.REQUEST_BYTES", block)
    rng = np.random.default_rng(8)
    values = rng.random((3000, 400))
    path = tmp_path / "old.h5"
    _write(path, {"v": values})
    with h5py.File(path, "r+") as f:
        document = json.loads(f.attrs[checksums.MANIFEST_ATTR])
        del document["pieces"]
        f.attrs[checksums.MANIFEST_ATTR] = json.dumps(document)
    with h5py.File(path, "r") as f:
        assert not checksums.attach(f).pieces
        got = checksums.read_whole_checked(f["v"], checksums.attach(f))
        plain = f["v"][()]
    assert got is not None and np.array_equal(got, plain) and np.array_equal(got, values)
    for at in (0, values.nbytes - 1, int(rng.integers(1, values.nbytes - 1))):
        _flip(path, _offset(path, "v") + at)
        with h5py.File(path, "r") as f, pytest.raises(ChecksumError, match=r"/v\b") as info:
            checksums.read_whole_checked(f["v"], checksums.attach(f))
        assert "rows" not in str(info.value)
        _flip(path, _offset(path, "v") + at)


def test_a_whole_read_is_the_same_from_the_page_cache_and_from_the_disk(tmp_path):
    """The same values, and the same checks, whether the dataset's pages are cached or were dropped."""
    values = np.random.default_rng(4).random((3000, 100))
    path = tmp_path / "d.h5"
    _write(path, {"v": values})
    for cached in (True, False):
        if not cached:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        with h5py.File(path, "r") as f:
            assert np.array_equal(checksums.read_whole_checked(f["v"], checksums.attach(f)), values)


def test_a_whole_read_of_a_truncated_file_is_a_format_error(tmp_path):
    """A file that ends inside the values: a FormatError naming the dataset and the bytes found."""
    from h5stream.errors import FormatError

    values = np.random.default_rng(9).random((3000, 100))
    path = tmp_path / "t.h5"
    _write(path, {"v": values})
    end = _offset(path, "v") + values.nbytes
    assert os.path.getsize(path) >= end
    with h5py.File(path, "r") as f:
        ds, manifest = f["v"], checksums.attach(f)
        os.truncate(path, end - 1000)  # HDF5 has the file open: the values end early
        with pytest.raises(FormatError, match="ends inside") as info:
            checksums.read_whole_checked(ds, manifest)
    assert "/v" in str(info.value)
