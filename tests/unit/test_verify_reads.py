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
    assert not _points_elsewhere(np.dtype("S8"))  # fixed-length text is stored in place
    assert not _points_elsewhere(np.dtype([("t", "u8"), ("w", "f4", (40,))]))
    assert not _points_elsewhere(h5py.enum_dtype({"a": 0, "b": 1}, basetype="i1"))
    assert _points_elsewhere(vlen)
    assert _points_elsewhere(h5py.string_dtype("ascii"))
    assert _points_elsewhere(h5py.vlen_dtype(np.int32))
    assert _points_elsewhere(h5py.ref_dtype)
    assert _points_elsewhere(h5py.regionref_dtype)
    assert _points_elsewhere(np.dtype([("t", "u8"), ("name", vlen)]))
    assert _points_elsewhere(np.dtype([("t", "u8"), ("names", vlen, (2,))]))
    assert _points_elsewhere(np.dtype([("t", "u8"), ("inner", [("x", "f4"), ("name", vlen)])]))


def _recording_reads(monkeypatch) -> list:
    """(what, dataset name, start, count) of each read :func:`_read_dataset` makes."""
    from h5stream.files import verify as verify_module

    reads = []
    rows, whole = verify_module._read_rows, verify_module._read_whole

    def read_rows(dsid, tid, shape, start, count):
        reads.append(("rows", h5py.h5i.get_name(dsid).decode(), start, count))
        return rows(dsid, tid, shape, start, count)

    def read_whole(dsid, tid, shape):
        reads.append(("whole", h5py.h5i.get_name(dsid).decode(), 0, shape[0] if shape else 1))
        return whole(dsid, tid, shape)

    monkeypatch.setattr(verify_module, "_read_rows", read_rows)
    monkeypatch.setattr(verify_module, "_read_whole", read_whole)
    return reads


def _recording_attributes(monkeypatch) -> list:
    """Names of the attributes :func:`_read_attributes` reads, one entry per object and attribute."""
    from h5stream.files import verify as verify_module

    seen = []
    original = verify_module._read_attributes

    def attributes(oid, *where):
        h5py.h5a.iterate(oid, lambda name: seen.append(name.decode()))
        original(oid, *where)

    monkeypatch.setattr(verify_module, "_read_attributes", attributes)
    return seen


def test_fixed_size_values_are_read_at_both_ends_and_pointers_whole(tmp_path, monkeypatch):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("big", data=np.arange(100_000, dtype="f8"), chunks=(1000,))
        f.create_dataset("small", data=np.arange(10, dtype="f8"))
        f.create_dataset("names", data=[f"n{i}" for i in range(100_000)], dtype=h5py.string_dtype())
    reads = _recording_reads(monkeypatch)
    with h5py.File(path, "r") as f:
        for name in ("big", "small", "names"):
            _read_dataset(f[name].id, 8 * 1000)
    assert reads == [("rows", "/big", 0, 500), ("rows", "/big", 99_500, 500), ("whole", "/small", 0, 10),
                     ("whole", "/names", 0, 100_000)]


def test_values_are_read_as_the_file_stores_them(tmp_path):
    """Fixed-size values come back as the file's own bytes (big-endian numbers, a packed compound), not
    converted; values that point elsewhere are converted (the strings themselves are read)."""
    from h5stream.files.verify import _read_rows, _read_whole

    packed = np.dtype([("t", ">i8"), ("a", "<f4"), ("w", "u1")])  # 13 bytes per item, as h5py stores it
    table = np.zeros(7, dtype=packed)
    table["t"], table["a"], table["w"] = np.arange(7) * 1000, np.linspace(0, 1, 7), np.arange(7)
    grid = np.arange(30, dtype=">u2").reshape(10, 3)
    names = ["alpha", "", "\u00e9t\u00e9", "x" * 300]
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f["table"] = table
        f["grid"] = grid
        f.create_dataset("names", data=names, dtype=h5py.string_dtype())
    with h5py.File(path, "r") as f:
        tid = f["table"].id.get_type()
        assert tid.get_size() == 13
        raw = _read_whole(f["table"].id, tid, (7,))
        assert raw.tobytes() == table.tobytes()
        gid = f["grid"].id
        rows = _read_rows(gid, gid.get_type(), (10, 3), 4, 3)
        assert rows.tobytes() == grid[4:7].tobytes()  # big-endian bytes, as stored
        nid = f["names"].id
        assert [v.decode() for v in _read_whole(nid, nid.get_type(), (4,))] == names


def test_every_kind_of_value_h5py_writes_is_read(tmp_path, monkeypatch):
    """Attributes and datasets of every type and shape h5py writes (null and scalar spaces, empty arrays,
    references, enums, nested compounds with text) pass the check, and each attribute is read once."""
    from h5stream.files import verify as verify_module

    vlen = h5py.string_dtype()
    nested = np.dtype([("t", "u8"), ("inner", [("x", "f4"), ("name", vlen)])])
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("g")
        values = {
            "text": "d\u00e9j\u00e0", "bytes": np.bytes_(b"fixed"), "int": np.int16(-3), "float": 2.5,
            "bool": True, "array": np.arange(6.0).reshape(2, 3), "texts": ["a", "bc"], "empty": h5py.Empty("f8"),
            "nothing": np.zeros(0, dtype="i4"), "big_endian": np.arange(3, dtype=">i4"),
            "enum": np.array(1, dtype=h5py.enum_dtype({"off": 0, "on": 1}, basetype="u1")),
            "ref": g.ref,
        }
        for name, value in values.items():
            f.attrs[name] = value
            f.create_dataset(f"d_{name}", data=value)
        f.attrs.create("nested", np.array([(1, (0.5, "n"))], dtype=nested))
        f.create_dataset("d_nested", data=np.array([(i, (i / 2, f"n{i}")) for i in range(5)], dtype=nested))
        f.create_dataset("d_vlen", data=np.array([np.arange(i) for i in range(4)], dtype=object),
                         dtype=h5py.vlen_dtype("i8"))
        f.create_dataset("d_chunked", data=np.arange(50_000, dtype="i2").reshape(-1, 5), chunks=(100, 5),
                         compression="gzip")
        f.create_dataset("d_unwritten", shape=(1_000_000,), dtype="f4", chunks=(1000,))
    seen = _recording_attributes(monkeypatch)
    verify_module._read_everything(str(path), None, 1024)
    assert sorted(seen) == sorted([*values, "nested"])
    assert verify_files([path], max_read_bytes=1024) == [None]
    assert verify_files([path]) == [None]


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
    read = []
    monkeypatch.setattr(verify_module, "_read_dataset",
                        lambda dsid, limit: read.append(h5py.Dataset(dsid)[()].tolist()))
    attrs = _recording_attributes(monkeypatch)
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
