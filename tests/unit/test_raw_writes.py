"""Contiguous arrays written at their offsets by a second thread (``h5stream._ext._h5dsets.RawWriter`` through
``WriteContext(raw_writes=True)``), checked against plain h5py, zlib and the file's own checksum manifest."""

from __future__ import annotations

import os
import zlib

import h5py
import numpy as np
import pytest

from h5stream import lowlevel
from h5stream._ext import _h5dsets
from h5stream.errors import WriteError
from h5stream.files import create_atomic
from h5stream.files.checksum_checks import check_file
from h5stream.native import libhdf5
from h5stream.tree import write as tree_write
from h5stream.tree.nodes import Dataset, Group, Pieces, value_node

native = lowlevel.native_hdf5()
pytestmark = pytest.mark.skipif(native is None or native.write_datasets is None
                                or libhdf5.function_address("H5Dget_offset") is None,
                                reason="h5py's libhdf5 (with H5Dget_offset) could not be located")


def _zlib_digest(array: np.ndarray) -> str:
    """The array digest, computed here with zlib alone: ``"<dtype.str>|<shape>"`` then the C-order bytes."""
    header = f"{array.dtype.str}|{tuple(int(s) for s in array.shape)}".encode("ascii")
    return f"{zlib.crc32(np.ascontiguousarray(array).tobytes(), zlib.crc32(header)):08x}"


def _tree(seed: int = 4) -> Group:
    rng = np.random.default_rng(seed)
    units = {}
    for u in range(6):
        spikes = np.sort(rng.integers(0, 10**7, 3000 + 500 * u))
        units[f"unit_{u}"] = Group(attrs={"row": u}, children={
            "trials": Pieces(spikes, np.linspace(0, spikes.size, 31).astype(np.int64)).node(),
            "spike_times": Dataset(spikes.astype(np.uint64)),  # 24-44 kB: contiguous
            "cutout": Dataset(rng.random((40, 300), "f4")),  # 48 kB
            "eimage": Dataset(rng.random((50, 65, 65), "f4")),  # 845 kB
            "waveform": Dataset(rng.random(40, "f4")),  # compact
            "count": value_node(400), "margins": value_node([float(x) for x in rng.random(5000)]),  # tagged, 40 kB
            "empty": Dataset(np.zeros(0)), "meta": Dataset(rng.random(5000), attrs={"unit": "s"}),
        })
    return Group(attrs={"dataset_id": "rec"}, children={
        "units": Group(children=units),
        "stimulus": Group(children={"raw": Dataset(rng.integers(0, 2**15, 3_000_000).astype(np.int16)),  # 6 MB
                                    "long": Dataset(rng.random(2_600_000, "f4"))})})  # over the snapshot limit


def _datasets(node: Group, prefix: str = ""):
    for name, child in node.children.items():
        path = f"{prefix}/{name}"
        if isinstance(child, Group):
            yield from _datasets(child, path)
        else:
            yield path, child


def _write(path, tree: Group, *, raw_writes: bool, writers: list | None = None) -> dict:
    atomic = create_atomic(path, libver=lowlevel.LIBVER, checksums=True)
    f = atomic.open()
    written = {}
    try:
        tree_write.write_root(f, tree, tree_write.WriteContext(f, written=written, raw_writes=raw_writes))
    except BaseException:
        atomic.abort()
        raise
    atomic.commit()
    return written


@pytest.fixture
def watched_writers(monkeypatch):
    """The raw writers the tree writer opens (to see that they took the arrays)."""
    opened = []
    real = lowlevel.raw_writer

    def watched(file):
        got = real(file)
        if got is not None:
            opened.append(got)
        return got

    monkeypatch.setattr(lowlevel, "raw_writer", watched)
    return opened


def test_raw_writes_give_the_same_objects_values_and_digests(tmp_path, watched_writers):
    tree = _tree()
    written_raw = _write(tmp_path / "raw.h5", tree, raw_writes=True)
    written_plain = _write(tmp_path / "plain.h5", tree, raw_writes=False)
    # the second thread took the contiguous arrays without attributes (a type tag alone is taken)
    assert len(watched_writers) == 1
    # (an array over the snapshot limit too, copied piece by piece)
    contiguous = [n.data for _, n in _datasets(tree) if isinstance(n.data, np.ndarray) and not n.attrs
                  and lowlevel.COMPACT_LIMIT < n.data.nbytes]
    assert max(a.nbytes for a in contiguous) > lowlevel.SNAPSHOT_BLOCK
    assert watched_writers[0].bytes_queued == sum(a.nbytes for a in contiguous) > 16 * 10**6
    # every dataset reads back through plain h5py as the array it was given, in the same layout as without
    with h5py.File(tmp_path / "raw.h5", "r") as f, h5py.File(tmp_path / "plain.h5", "r") as g:
        for path, node in _datasets(tree):
            stored = f[path]
            assert stored.dtype == node.data.dtype and stored.shape == node.data.shape, path
            np.testing.assert_array_equal(stored[()], node.data)
            assert stored.id.get_create_plist().get_layout() == g[path].id.get_create_plist().get_layout(), path
            assert dict(stored.attrs) == dict(g[path].attrs), path
        assert sorted(f["units/unit_3"].attrs.items()) == sorted(g["units/unit_3"].attrs.items())
    # the digests handed back are those of the arrays (zlib's twin), the same as written one by one
    assert written_raw == written_plain
    for _, node in _datasets(tree):
        if id(node) in written_raw:
            assert written_raw[id(node)] == _zlib_digest(node.data)
    # the file's manifest holds every digest and the file's bytes match them
    assert check_file(tmp_path / "raw.h5") == check_file(tmp_path / "plain.h5")


def test_a_failed_raw_write_fails_the_save_and_leaves_the_target(tmp_path, monkeypatch):
    target = tmp_path / "out.h5"
    target.write_bytes(b"earlier file")

    def read_only(file):  # a descriptor the writes fail on (EBADF)
        return _h5dsets.RawWriter(os.open(file.filename, os.O_RDONLY))

    monkeypatch.setattr(lowlevel, "raw_writer", read_only)
    from hdmea.session._session_files import write_new_file

    with pytest.raises(WriteError) as caught:
        write_new_file(target, _tree(), overwrite=True)
    assert "Bad file descriptor" in str(caught.value) or "offset" in str(caught.value)
    assert target.read_bytes() == b"earlier file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]  # no partial file left


def test_a_failure_inside_the_tree_ends_the_raw_writer(tmp_path, watched_writers):
    tree = _tree()
    tree.children["units"].children["unit_5"].children["x/y"] = Dataset(np.arange(3))  # no group x: refused
    with pytest.raises(WriteError, match="creating the dataset"):
        _write(tmp_path / "bad.h5", tree, raw_writes=True)
    assert len(watched_writers) == 1
    with pytest.raises(RuntimeError, match="called twice"):  # it was finished (its thread ended)
        watched_writers[0].finish()
    assert not (tmp_path / "bad.h5").exists()


def _open_as(fd: int) -> int | None:
    """The inode ``fd`` is open on, or None when it is not open."""
    try:
        return os.fstat(fd).st_ino
    except OSError:
        return None


def test_the_raw_writer_digests_and_writes_what_it_was_given(tmp_path):
    path = tmp_path / "bytes.bin"
    path.write_bytes(b"")
    fd = os.open(path, os.O_WRONLY)
    arrays = [np.arange(n, dtype=np.float64) * 0.5 for n in (1, 5000, 300_000)]
    lists = lowlevel.plists()
    with h5py.File(tmp_path / "f.h5", "w", libver=lowlevel.LIBVER) as f:
        writer = _h5dsets.RawWriter(fd)
        recorded, deferred, written = [], [], {}
        nodes = [Dataset(a) for a in arrays]
        with lowlevel.library_lock:
            done = native.write_datasets(f.id.id, ["a", "b", "c"], nodes, 0, lists.link.id, lists.compact.id,
                                         lists.contiguous.id, written, recorded, False, [], writer,
                                         lists.allocated.id, deferred)
        assert done == (3, _h5dsets.DONE)
        digests = writer.finish()
        # the compact one is written by the library at once; the other two went to the writer, in order
        assert recorded == ["b", 0, "c", 1] and deferred == [id(nodes[1]), 0, id(nodes[2]), 1]
        assert list(written) == [id(nodes[0])] and written[id(nodes[0])] == _zlib_digest(arrays[0])
        assert digests == [_zlib_digest(arrays[1]), _zlib_digest(arrays[2])]
        offsets = [f["b"].id.get_offset(), f["c"].id.get_offset()]
    assert _open_as(fd) != path.stat().st_ino  # the writer's thread closed its descriptor when it ended
    data = path.read_bytes()
    for array, offset in zip(arrays[1:], offsets):
        assert data[offset:offset + array.nbytes] == array.tobytes()


def test_thousands_of_arrays_pass_in_batches_with_their_digests_in_order(tmp_path, watched_writers):
    # more jobs than the ring holds (1024) and than the first digest table (4096), not a multiple of a batch (32)
    rng = np.random.default_rng(9)
    arrays = {f"{k}": rng.random(2100 + k % 7) for k in range(4203)}  # 16.8-16.9 kB each: contiguous
    tree = Group(children={"g": Group(children={name: Dataset(a) for name, a in arrays.items()})})
    written = _write(tmp_path / "many.h5", tree, raw_writes=True)
    assert watched_writers[0].bytes_queued == sum(a.nbytes for a in arrays.values())
    nodes = tree.children["g"].children
    assert [written[id(nodes[name])] for name in arrays] == [_zlib_digest(a) for a in arrays.values()]
    with h5py.File(tmp_path / "many.h5", "r") as f:
        assert list(f["g"]) == sorted(arrays)  # (names in the library's order)
        for name in ("0", "1023", "1024", "4095", "4096", "4202"):
            np.testing.assert_array_equal(f["g"][name][()], arrays[name])
    assert check_file(tmp_path / "many.h5")["datasets"] == len(arrays)
