"""The engine's read-side walk (h5stream.walk) and whole-table reads (h5stream.tables) on files made with plain
h5py, against what h5py itself reads of them."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from h5stream.errors import FormatError
from h5stream.files import open_validated
from h5stream.tables import TableReader, aligned_buffer, plain_runs
from h5stream.walk import ANY, NOT_PLAIN, KeptObjects, Layout, walk_group

TABLE = np.dtype([("Timestamp", "<i8"), ("Flag", "u1"), ("Value", "<f4")])


@pytest.fixture
def plain(tmp_path):
    path = tmp_path / "plain.h5"
    rng = np.random.default_rng(3)
    with h5py.File(path, "w") as f:
        g = f.create_group("top")
        a = g.create_group("a")
        a.attrs["number"] = np.int32(7)
        a.attrs["text"] = "words"
        a.attrs["flag"] = np.bool_(True)
        a.attrs["ratio"] = 0.25
        a.create_dataset("x", data=np.arange(5, dtype=np.int16))
        a.create_dataset("skipped", data=np.zeros(3))
        c = g.create_group("c")
        c.attrs["array"] = np.arange(3)  # not a plain scalar
        c.attrs["fixed"] = np.bytes_(b"MCS")
        c.attrs["one"] = np.array([9], dtype=np.int64)
        c.create_group("x")  # a group where the layout expects a dataset
        table = np.zeros(1000, TABLE)
        table["Timestamp"] = np.sort(rng.integers(0, 10**9, 1000))
        table["Value"] = rng.normal(size=1000)
        g.create_dataset("contiguous", data=table)
        g.create_dataset("chunked", data=table, chunks=(128,))
        g.create_dataset("compressed", data=table, chunks=(128,), compression="gzip")
        g.create_dataset("empty", shape=(0,), dtype=TABLE)
    return path


LAYOUT = Layout(paths=[(ANY, "x")], attrs={(ANY,): None})


def test_entries_are_what_h5py_reads(plain):
    with h5py.File(plain, "r") as f:
        top = walk_group(f, "top", LAYOUT)
        assert top.path == "/top" and top.kind == "group"
        assert list(top.members) == list(f["top"])  # listing order
        assert set(top.children) == set(f["top"])
        a, c = top.children["a"], top.children["c"]
        assert a.path == "/top/a" and list(a.members) == ["skipped", "x"]
        assert set(a.children) == {"x"}  # the layout names only x
        assert a.attrs == dict(f["top/a"].attrs) and isinstance(a.attrs["text"], str)
        assert c.attrs is None  # an array attribute: not all plain
        x = a.children["x"]
        assert (x.kind, x.shape, x.dtype) == ("dataset", (5,), np.dtype(np.int16))
        assert c.children["x"].kind == "group"
        for name in ("contiguous", "chunked", "compressed", "empty"):
            entry = top.children[name]
            assert entry.kind == "dataset" and entry.shape == f["top"][name].shape
            assert entry.dtype == f["top"][name].dtype
            assert not entry.children and entry.attrs == {}
        out = np.empty(5, np.float64)
        x.read_into(out)
        np.testing.assert_array_equal(out, np.arange(5))
        np.testing.assert_array_equal(x.object()[()], f["top/a/x"][()])


def test_named_attributes(plain):
    with h5py.File(plain, "r") as f:
        top = walk_group(f, "top", Layout(paths=[ANY], attrs={(ANY,): ("number", "one", "fixed", "array", "no")}))
        assert top.children["a"].attrs == {"number": 7}
        named = top.children["c"].attrs
        assert named["one"] == 9 and named["fixed"] is NOT_PLAIN and named["array"] is NOT_PLAIN
        assert "no" not in named
        assert top.children["a"].named_attrs(["text", "ratio"]) == {"text": "words", "ratio": 0.25}


def test_deferred_attributes_and_kept_objects_give_the_same_tree(plain):
    kept = KeptObjects("top", LAYOUT)
    f = open_validated(plain, visit=kept)
    try:
        assert kept.objects  # the scan handed its open objects over
        via_scan = walk_group(f, "top", LAYOUT, kept=kept, attrs=False)
        assert not kept.objects and via_scan.children["a"].attrs is None
        from h5stream.walk import read_plain_attrs

        read_plain_attrs(via_scan, plain)
        fresh = walk_group(f, "top", LAYOUT)

        def shape(entry):
            return (entry.path, entry.kind, entry.members, entry.shape, entry.dtype, entry.attrs,
                    {k: shape(v) for k, v in entry.children.items()})

        assert shape(via_scan) == shape(fresh)
    finally:
        f.close()


def test_a_missing_group_is_a_typed_error(plain):
    with h5py.File(plain, "r") as f, pytest.raises(FormatError) as err:
        walk_group(f, "nothing", LAYOUT)
    assert "/nothing" in str(err.value) and str(plain) in str(err.value)


@pytest.mark.parametrize("direct", [False, True])
def test_tables_read_whole_equal_h5py(plain, direct):
    with h5py.File(plain, "r") as f:
        top = walk_group(f, "top", Layout(paths=[ANY]))
        runs = {name: plain_runs(top.children[name]) for name in ("contiguous", "chunked", "compressed", "empty")}
        assert len(runs["contiguous"]) == 1 and len(runs["chunked"]) >= 1
        assert runs["compressed"] is None and runs["empty"] is None
        with TableReader(f, plain, direct=direct) as reader:
            assert reader.direct_reads
            for name, r in runs.items():
                entry = top.children[name]
                buffer = aligned_buffer(reader.span(entry.shape[0], TABLE.itemsize, r)) if r else None
                got = reader.read(entry, TABLE, r, buffer)
                np.testing.assert_array_equal(got, f["top"][name][()])


def test_tables_of_a_writable_file_are_read_through_h5py(plain):
    with h5py.File(plain, "r+") as f:
        entry = walk_group(f, "top", Layout(paths=[ANY])).children["chunked"]
        with TableReader(f, plain) as reader:
            assert not reader.direct_reads
            np.testing.assert_array_equal(reader.read(entry, TABLE, plain_runs(entry), aligned_buffer(1 << 16)),
                                          f["top/chunked"][()])


def test_a_table_past_the_end_of_the_file_is_refused(plain, tmp_path):
    with h5py.File(plain, "r") as f:
        entry = walk_group(f, "top", Layout(paths=[ANY])).children["contiguous"]
        runs = plain_runs(entry)
        with TableReader(f, plain) as reader:
            moved = [(0, reader._raw.size - 100)]
            with pytest.raises(FormatError, match="past the end of the file"):
                reader.read(entry, TABLE, moved, aligned_buffer(reader.span(1000, TABLE.itemsize, runs)))


def test_the_face_readers_walk_through_the_engine_only():
    """The recording's unit scan and the .cmtr reader keep their layouts and leave libhdf5's ids, h5py's
    low-level modules and its lock to the engine."""
    import ast
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src" / "hdmea" / "io"
    for name in ("_unit_scan.py", "cmtr.py", "cmtr_peaks.py"):
        tree = ast.parse((src / name).read_text())
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and (
                    node.module.startswith("h5py") and any(a.name.startswith("h5") or a.name == "phil"
                                                           for a in node.names) or node.module.startswith("h5py.")):
                found.append(f"line {node.lineno}: from {node.module} import ...")
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "h5py" \
                    and node.attr.startswith("h5"):
                found.append(f"line {node.lineno}: h5py.{node.attr}")
            if isinstance(node, ast.Attribute) and node.attr in ("id", "phil"):
                found.append(f"line {node.lineno}: .{node.attr}")
            if isinstance(node, ast.Name) and node.id in ("phil", "library_lock"):
                found.append(f"line {node.lineno}: {node.id}")
        assert not found, f"hdmea/io/{name} reaches past the engine's walk: {found}"
