"""The compiled scan (h5stream._ext._h5scan) answers as the scan through h5py does.

Files are made here with plain h5py (groups, datasets of every layout and many types, attributes,
links of every kind, a cycle, a named type); the walk is run twice, once through the compiled listing
and once through h5py alone, and what each finds is compared, with h5py's high-level reader as the
reference for the values of the datasets the compiled code takes.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from h5stream.errors import FormatError, H5StreamError, UnsafeFileError
from h5stream._ext import _h5scan
from h5stream.files import _walk as walk_module
from h5stream.files.header_checks import SIZE_FLOOR
from h5stream.files.validated import Descriptions, open_validated, scan_unsafe_objects
from h5stream.tree.read import EAGER_LIMIT, describe_dataset

pytestmark = pytest.mark.skipif(walk_module.compiled_members() is None,
                                reason="the direct libhdf5 calls are unavailable here (the compiled scan is off)")

#: datasets the compiled code takes: name -> the numpy dtype h5py reads them as
TAKEN = {
    "g/i1": "|i1", "g/u1": "|u1", "g/i2be": ">i2", "g/u2": "<u2", "g/i4": "<i4", "g/u4be": ">u4",
    "g/i8": "<i8", "g/u8": "<u8", "g/f4": "<f4", "g/f8be": ">f8", "g/f8": "<f8", "g/scalar": "<f8",
    "g/empty_rows": "<i8", "g/big": "<f4", "g/big_compact": "<i2", "g/sub/deep/x": "<i8", "top": "<u8",
}
#: datasets handed to Python: with attributes, filtered, chunked, not plain numbers, or without a dataspace
HANDED = {"g/with_attr", "g/with_attr_big", "g/gzip", "g/chunked", "g/f2", "g/bool", "g/complex", "g/table", "g/fixed_text",
          "g/text", "g/enum", "g/null"}


def _file(path, libver: str = "earliest") -> None:
    rng = np.random.default_rng(7)
    with h5py.File(path, "w", libver=libver) as f:
        g = f.create_group("g")
        for name, dtype in (("i1", "i1"), ("u1", "u1"), ("i2be", ">i2"), ("u2", "<u2"), ("i4", "i4"),
                            ("u4be", ">u4"), ("i8", "i8"), ("u8", "u8"), ("f4", "f4"), ("f8be", ">f8"),
                            ("f8", "f8")):
            g.create_dataset(name, data=rng.integers(0, 100, (3, 4)).astype(dtype))
        g.create_dataset("scalar", data=np.float64(2.5))
        g.create_dataset("empty_rows", data=np.zeros((0, 5), dtype=np.int64))
        g.create_dataset("big", data=rng.random(10_000).astype(np.float32))  # contiguous, past the eager limit
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_layout(h5py.h5d.COMPACT)
        space = h5py.h5s.create_simple((9_000,))
        compact = h5py.h5d.create(g.id, b"big_compact", h5py.h5t.STD_I16LE, space, dcpl=plist)
        compact.write(h5py.h5s.ALL, h5py.h5s.ALL, np.arange(9_000, dtype=np.int16))
        g.create_dataset("sub/deep/x", data=np.arange(5))
        f.create_dataset("top", data=np.arange(7, dtype=np.uint64))
        g.create_dataset("with_attr", data=np.arange(4)).attrs["unit"] = "ms"
        g.create_dataset("with_attr_big", data=np.arange(5_000)).attrs["unit"] = "ms"  # contiguous
        g.create_dataset("gzip", data=np.arange(100), compression="gzip")
        g.create_dataset("chunked", data=np.arange(100), chunks=(10,))
        g.create_dataset("f2", data=np.arange(3, dtype=np.float16))
        g.create_dataset("bool", data=np.array([True, False]))
        g.create_dataset("complex", data=np.array([1 + 2j]))
        g.create_dataset("table", data=np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]))
        g.create_dataset("fixed_text", data=np.array([b"ab", b"cd"]))
        g.create_dataset("text", data=["one", "two"], dtype=h5py.string_dtype())
        g.create_dataset("enum", data=np.array([0, 1], dtype=np.int8),
                         dtype=h5py.enum_dtype({"a": 0, "b": 1}, basetype="i1"))
        g.create_dataset("null", data=h5py.Empty("f8"))
        f["named_type"] = np.dtype("<i4")
        g["again"] = g["i8"]  # a second hard link to a dataset
        f["g_again"] = g  # a second hard link to a group: walked once
        g["sub/up"] = g  # a cycle
        g["soft"] = h5py.SoftLink("/g/i8")
        g["dangling"] = h5py.SoftLink("/nowhere")


def _run(f, path, compiled: bool, monkeypatch, *, describe: bool = True):
    """(names the visitor saw in order, the visitor's describe_dataset per dataset, the compiled
    descriptions, storage ranges) of one scan."""
    monkeypatch.setattr(walk_module, "_members", False if compiled else None)  # False: bound on first use
    seen, described = [], {}

    def visit(full, oid):
        seen.append(full)
        if isinstance(oid, h5py.h5d.DatasetID):
            described[full] = describe_dataset(oid)
        return False

    checked = Descriptions(EAGER_LIMIT) if describe else None
    storage: list = []
    scan_unsafe_objects(f, path, visit=visit, storage=storage, describe=checked)
    return seen, described, checked, storage


@pytest.mark.parametrize("libver", ["earliest", "latest"])
def test_compiled_scan_takes_plain_datasets_and_describes_them_as_h5py_reads_them(tmp_path, monkeypatch, libver):
    path = tmp_path / "made.h5"
    _file(path, libver)
    with h5py.File(path, "r") as f:
        ref_seen, ref_described, _none, ref_storage = _run(f, path, False, monkeypatch)
        before = _h5scan.headers_taken()
        seen, described, checked, storage = _run(f, path, True, monkeypatch)
        # version-2 headers (libver latest) of plain datasets, with attributes or not, are read without the
        # library opening them; the dataset of two links (g/i8: a reference count message), one without
        # storage (g/empty_rows) and version-1 headers are opened by the library as before
        unopened = _h5scan.headers_taken() - before
        headers = libver == "latest" and _h5scan.headers_configured()
        assert unopened == (len(TAKEN) - 2 + len({"g/with_attr", "g/with_attr_big"}) if headers else 0)
        taken = {item[0].decode(): item for item in checked}
        assert set(taken) == set(TAKEN) | {"g/again"}  # the second link is another name of a plain dataset
        assert not HANDED & set(taken)
        # every link the h5py scan visits is visited in the same order, but those taken
        assert seen == [name for name in ref_seen if name.decode() not in taken]
        assert HANDED <= {name.decode() for name in seen}
        for name, (_full, dtype, shape, values, stored_at) in taken.items():
            stored = f[name]  # h5py's own reader: the reference
            assert dtype == np.dtype(TAKEN.get(name, "<i8")) == stored.dtype, name
            assert shape == stored.shape, name
            nbytes = stored.size * stored.dtype.itemsize
            if nbytes <= EAGER_LIMIT:
                assert values is not None and stored_at is None, name
                assert values.dtype == stored.dtype and values.shape == stored.shape, name
                np.testing.assert_array_equal(values, stored[()])
            else:
                assert values is None, name
                contiguous = stored.id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS
                assert stored_at == ((stored.id.get_offset(), nbytes) if contiguous else None), name
            # as the h5py scan's visitor described it
            want = ref_described[name.encode()]
            assert (want.dtype, want.shape, want.stored_at) == (dtype, shape, stored_at), name
            assert (want.data is None) == (values is None), name
            if values is not None:
                np.testing.assert_array_equal(want.data, values)
        for name in described:  # handed over: the visitor's own descriptions are the same as before
            want, got = ref_described[name], described[name]
            assert (want is None) == (got is None), name
        # the storage ranges of every dataset (the large file's heap search skips them)
        assert sorted(storage) == sorted(ref_storage)
        assert (f["g/big"].id.get_offset(), f["g/big"].id.get_offset() + 40_000) in storage


def test_without_describe_a_visitor_sees_every_link_as_before(tmp_path, monkeypatch):
    path = tmp_path / "made.h5"
    _file(path)
    with h5py.File(path, "r") as f:
        ref_seen, ref_described, _none, _ = _run(f, path, False, monkeypatch, describe=False)
        seen, described, _none, _ = _run(f, path, True, monkeypatch, describe=False)
    assert seen == ref_seen and len(seen) > len(TAKEN) + len(HANDED)
    assert described.keys() == ref_described.keys()


def test_each_hard_link_carries_its_objects_address_and_a_link_back_to_the_root_is_walked_once(tmp_path,
                                                                                                  monkeypatch):
    path = tmp_path / "made.h5"
    _file(path)
    with h5py.File(path, "a") as f:
        f["g/sub/root_again"] = f  # a hard link back to the root: a cycle through "/"
    with h5py.File(path, "r") as f:
        members = walk_module.compiled_members()
        for name in ("/", "/g", "/g/sub"):
            group = f[name]
            _count, entries = members(group.id.id, b"", set(), False, None, 0, None)
            assert len(entries) == len(group)
            for full, kind, address, oid in entries:
                if kind == h5py.h5l.TYPE_HARD:  # h5py's own object info is the reference
                    assert address == h5py.h5o.get_info(group.id, full).addr, (name, full)
                if not isinstance(oid, (bytes, type(None))):
                    oid.close()
        ref_seen, _ref, _none, _ = _run(f, path, False, monkeypatch, describe=False)
        seen, _described, _none, _ = _run(f, path, True, monkeypatch, describe=False)
    assert seen == ref_seen
    assert seen.count(b"g/sub/root_again") == 1 and seen.count(b"g/i8") == 1  # "/" is not entered again


def test_the_scan_lists_each_group_as_h5py_lists_it(tmp_path, monkeypatch):
    path = tmp_path / "made.h5"
    _file(path)
    with h5py.File(path, "r") as f:
        for compiled in (True, False):
            _seen, _described, checked, _storage = _run(f, path, compiled, monkeypatch)
            groups = [b""] + [name.encode() for name in ("g", "g/sub", "g/sub/deep")]
            assert set(checked.listings) == set(groups), compiled  # g_again and g/sub/up: walked once
            for group in groups:
                want = [name.encode() for name in f["/" + group.decode()]]  # h5py's listing, by name
                assert checked.listings[group] == want, (compiled, group)


@pytest.mark.parametrize("libver", ["earliest", "latest"])
def test_plain_datasets_with_attributes_are_checked_in_c_and_handed_over(tmp_path, monkeypatch, libver):
    path = tmp_path / "made.h5"
    _file(path, libver)
    monkeypatch.setattr(walk_module, "_members", False)
    with h5py.File(path, "r") as f:
        handed, checked, storage = [], set(), []
        unopened = []  # (version-2 headers: read by the compiled walk, handed over without opening them)
        walk_module._walk(f, path, lambda full, kind, oid: (handed.append(full),
                                                             oid is None and full in checked and unopened.append(full)),
                          take=True, describe=Descriptions(EAGER_LIMIT), storage=storage, checked=checked)
        assert checked == {b"g/with_attr", b"g/with_attr_big"}
        assert checked <= set(handed)
        assert set(unopened) == (checked if libver == "latest" and _h5scan.headers_configured() else set())
        big = f["g/with_attr_big"].id
        assert (big.get_offset(), big.get_offset() + big.get_storage_size()) in storage


def _declares_too_much(path, libver: str = "earliest") -> None:
    """A contiguous dataset whose dataspace claims far more than its storage (a damaged header)."""
    with h5py.File(path, "w", libver=libver) as f:
        f.create_dataset("ok", data=np.arange(3))
        space = h5py.h5s.create_simple((SIZE_FLOOR // 8 + 1_000_000,))
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_alloc_time(h5py.h5d.ALLOC_TIME_LATE)
        h5py.h5d.create(f.id, b"claims", h5py.h5t.STD_I64LE, space, dcpl=plist)


def _external_link(path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("a/ok", data=np.arange(3))
        f["a/out"] = h5py.ExternalLink("elsewhere.h5", "/x")


def _external_storage(path) -> None:
    raw = path.with_suffix(".raw")
    raw.write_bytes(np.arange(4, dtype="<i8").tobytes())
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(2))
        f.create_dataset("ext", shape=(4,), dtype="<i8", external=[(raw.name, 0, 32)])


@pytest.mark.parametrize("make, error, obj", [
    (_declares_too_much, FormatError, "/claims"),
    (_external_link, UnsafeFileError, "/a/out"),
    (_external_storage, UnsafeFileError, "/ext"),
])
def test_hostile_files_are_refused_with_the_same_error(tmp_path, monkeypatch, make, error, obj):
    path = tmp_path / "hostile.h5"
    make(path)
    found = []
    for compiled in (False, True):
        monkeypatch.setattr(walk_module, "_members", False if compiled else None)
        with pytest.raises(error) as caught:
            open_validated(path, locking=False).close()
        found.append(str(caught.value))
        assert caught.value.obj == obj
    assert found[0] == found[1]


def _external_storage_latest(path) -> None:
    raw = path.with_suffix(".raw")
    raw.write_bytes(np.arange(4, dtype="<i8").tobytes())
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset("x", data=np.arange(2))
        f.create_dataset("ext", shape=(4,), dtype="<i8", external=[(raw.name, 0, 32)])


def _virtual_latest(path) -> None:
    source = path.with_name("source.h5")
    with h5py.File(source, "w") as s:
        s.create_dataset("v", data=np.arange(4))
    layout = h5py.VirtualLayout(shape=(4,), dtype="<i8")
    layout[:] = h5py.VirtualSource(str(source), "v", shape=(4,))
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset("x", data=np.arange(2))
        f.create_virtual_dataset("vds", layout)


def _declares_too_much_latest(path) -> None:
    _declares_too_much(path, "latest")


@pytest.mark.parametrize("make, error, obj", [
    (_declares_too_much_latest, FormatError, "/claims"),
    (_external_storage_latest, UnsafeFileError, "/ext"),
    (_virtual_latest, UnsafeFileError, "/vds"),
])
def test_version_2_headers_of_hostile_datasets_are_refused_as_before(tmp_path, monkeypatch, make, error, obj):
    path = tmp_path / "hostile.h5"
    make(path)
    found = []
    for headers in (False, True):
        monkeypatch.setattr(walk_module, "_members", False)
        monkeypatch.setattr(walk_module, "header_reader", walk_module.header_reader if headers else lambda f: None)
        with pytest.raises(error) as caught:
            open_validated(path, locking=False).close()
        found.append(str(caught.value))
        assert caught.value.obj == obj
    assert found[0] == found[1]


@pytest.mark.parametrize("where", ["space", "checksum"])
def test_a_damaged_version_2_header_of_a_plain_dataset_is_refused_by_the_library_as_before(tmp_path, monkeypatch,
                                                                                          where):
    path = tmp_path / "damaged.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset("a/ok", data=np.arange(3))
        f.create_dataset("a/x", data=np.arange(5, dtype="<i8"))
        address = h5py.h5o.get_info(f["a/x"].id).addr
    raw = bytearray(path.read_bytes())
    header = bytes(raw[address:address + 512])
    assert header[:4] == b"OHDR"
    # a byte of the dataspace's size (5, found by value), or of the header's checksum
    at = header.index((5).to_bytes(8, "little")) if where == "space" else None
    if at is None:  # the header's checksum itself
        prefix, width = 6 + (16 if header[5] & 0x20 else 0) + (4 if header[5] & 0x10 else 0), 1 << (header[5] & 0x03)
        at = prefix + width + int.from_bytes(header[prefix:prefix + width], "little")
    raw[address + at] ^= 0x01
    path.write_bytes(bytes(raw))
    found = []
    for headers in (False, True):
        monkeypatch.setattr(walk_module, "_members", False)
        monkeypatch.setattr(walk_module, "header_reader", walk_module.header_reader if headers else lambda f: None)
        with pytest.raises(H5StreamError) as caught:
            open_validated(path, locking=False).close()
        found.append((type(caught.value), str(caught.value)))
        assert caught.value.obj == "/a/x"
    assert found[0] == found[1]


def test_a_file_open_for_writing_is_scanned_through_the_library(tmp_path, monkeypatch):
    path = tmp_path / "open.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset("x", data=np.arange(4))
    monkeypatch.setattr(walk_module, "_members", False)
    with h5py.File(path, "a", libver="latest") as f:
        f["x"][...] = np.arange(4) + 10  # (not flushed: the bytes on disk still hold 0..3)
        f.create_dataset("y", data=np.arange(3))
        checked, before = Descriptions(EAGER_LIMIT), _h5scan.headers_taken()
        scan_unsafe_objects(f, path, describe=checked)
        assert _h5scan.headers_taken() == before  # the library's view, not the file's bytes
    values = {item[0]: item[3] for item in checked}
    np.testing.assert_array_equal(values[b"x"], np.arange(4) + 10)
    np.testing.assert_array_equal(values[b"y"], np.arange(3))


def _names_through_h5py(obj) -> tuple[list[bytes], list[bytes]]:
    """(attribute names, member names) of ``obj``, sorted bytes, as h5py's high-level reader lists them."""
    members = sorted(k.encode() for k in obj) if isinstance(obj, h5py.Group) else []
    return sorted(k.encode() for k in obj.attrs), members


@pytest.mark.parametrize("libver", ["earliest", "latest"])
@pytest.mark.parametrize("compiled", [True, False])
def test_the_scan_lists_the_names_of_every_object_it_opens_as_h5py_lists_them(tmp_path, monkeypatch, libver,
                                                                             compiled):
    path = tmp_path / "made.h5"
    _file(path, libver)
    with h5py.File(path, "a") as f:
        f["g"].attrs["é名"] = 1  # non-ASCII names, stored as UTF-8
        f["g"].create_group("grüße").attrs["b"] = 2
        f.attrs["z"], f.attrs["a"] = 3, 4
    monkeypatch.setattr(walk_module, "_names", False if compiled else None)
    monkeypatch.setattr(walk_module, "_members", False if compiled else None)
    with h5py.File(path, "r") as f:
        names: dict = {}
        scan_unsafe_objects(f, path, names=names)
        assert (walk_module._names is not None) == compiled
        for where, listed in names.items():
            assert listed == _names_through_h5py(f[where]), where
    # every group and every dataset the walk opens is listed (a plain one the compiled scan takes, or hands over
    # from its version-2 header, is not opened: the names check opens it itself)
    groups = {"/", "/g", "/g/sub", "/g/sub/deep", "/g/grüße"}
    assert groups | {"/g/" + name for name in ("fixed_text", "text", "table", "gzip")} <= set(names)
    if compiled and libver == "earliest":
        assert not {"/" + name for name in TAKEN} & set(names)
