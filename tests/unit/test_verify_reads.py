"""What the out-of-process check reads of each dataset: structure whole, fixed-size values at the ends."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from h5stream.files import verify_files
from h5stream.files.verify import _points_elsewhere, _read_dataset


def test_types_that_point_elsewhere_in_the_file():
    vlen = h5py.string_dtype()
    assert not _points_elsewhere(np.dtype("f8"))
    assert not _points_elsewhere(np.dtype([("t", "u8"), ("w", "f4", (40,))]))
    assert _points_elsewhere(vlen)
    assert _points_elsewhere(h5py.vlen_dtype(np.int32))
    assert _points_elsewhere(h5py.ref_dtype)
    assert _points_elsewhere(np.dtype([("t", "u8"), ("name", vlen)]))
    assert _points_elsewhere(np.dtype([("t", "u8"), ("names", vlen, (2,))]))


class _Spy:
    """The parts of a dataset :func:`_read_dataset` uses, recording what is read."""

    def __init__(self, ds: h5py.Dataset) -> None:
        self.ds, self.reads = ds, []
        self.shape, self.dtype, self.chunks, self.id = ds.shape, ds.dtype, ds.chunks, ds.id

    def __getitem__(self, key):
        self.reads.append(key)
        return self.ds[key]


def test_fixed_size_values_are_read_at_both_ends_and_pointers_whole(tmp_path):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("big", data=np.arange(100_000, dtype="f8"), chunks=(1000,))
        f.create_dataset("small", data=np.arange(10, dtype="f8"))
        f.create_dataset("names", data=[f"n{i}" for i in range(100_000)], dtype=h5py.string_dtype())
    with h5py.File(path, "r") as f:
        big, small, names = (_Spy(f[n]) for n in ("big", "small", "names"))
        _read_dataset(big, 8 * 1000)
        _read_dataset(small, 8 * 1000)
        _read_dataset(names, 8 * 1000)
    assert big.reads == [slice(None, 500), slice(99_500, None)]
    assert small.reads == [()] and names.reads == [()]


def test_a_broken_chunk_index_in_the_middle_is_found_without_reading_the_data(tmp_path):
    """A chunk-index entry between the two ends read points past the end of the file: the walk of the index
    (not a read of the data) reports it."""
    path = tmp_path / "f.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset("x", data=np.arange(1_000_000, dtype="f8"), chunks=(1000,), maxshape=(None,))
    with h5py.File(path, "r") as f:
        info = f["x"].id.get_chunk_info(500)
    assert verify_files([path], max_read_bytes=64 * 1024) == [None]
    # the address of chunk 500 is in the index: replace it by an address past the end of the file
    raw = bytearray(path.read_bytes())
    where = raw.find(info.byte_offset.to_bytes(8, "little"))
    assert where > 0
    raw[where:where + 8] = (len(raw) * 4).to_bytes(8, "little")
    path.write_bytes(bytes(raw))
    with h5py.File(path, "r") as f:  # both ends still read
        f["x"][:100]
        f["x"][-100:]
    (error,) = verify_files([path], max_read_bytes=64 * 1024)
    assert error is not None and str(path) in str(error), error


def test_one_walk_reads_every_object_of_the_file(tmp_path, monkeypatch):
    """The check's reading rides on the open's safety scan: every dataset below nested groups is read once per
    hard link (the scan opens a dataset through each of its hard links), a soft link is not read again, and
    every attribute is read once."""
    from h5stream.files import verify as verify_module

    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.attrs["root"] = 1
        deep = f.create_group("a/b/c")
        deep.attrs["note"] = "deep"
        deep["x"] = np.arange(5.0)
        f["top"] = np.arange(3)
        f["again"] = f["top"]  # a second hard link to the same dataset
        f["soft"] = h5py.SoftLink("/a/b/c/x")
    read, attrs = [], []
    monkeypatch.setattr(verify_module, "_read_dataset", lambda ds, limit: read.append(ds[()].tolist()))
    original = h5py.AttributeManager.__getitem__

    def attribute(self, name):
        attrs.append(name)
        return original(self, name)

    monkeypatch.setattr(h5py.AttributeManager, "__getitem__", attribute)
    verify_module._read_everything(str(path), None, 1024)
    assert sorted(read) == [[0, 1, 2], [0, 1, 2], [0.0, 1.0, 2.0, 3.0, 4.0]]
    assert sorted(attrs) == ["note", "root"]


def test_a_visitor_needs_the_scan(tmp_path):
    from h5stream.files import open_validated

    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(ValueError, match="scan"):
        open_validated(path, scan=False, visit=lambda name, oid: False)
