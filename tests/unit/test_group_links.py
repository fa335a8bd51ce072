"""Groups written by the tree writer keep their links in a header sized for them (compact link storage up to
:data:`h5stream.lowlevel.HEADER_LINKS_MAX` links, dense beyond), and read back through plain h5py as written."""

from __future__ import annotations

import ctypes

import h5py
import numpy as np
import pytest

from h5stream import lowlevel
from h5stream.files import create_atomic
from h5stream.files.checksum_checks import check_file
from h5stream.native import libhdf5
from h5stream.tree import write as tree_write
from h5stream.tree.nodes import Dataset, Group

native = lowlevel.native_hdf5()
pytestmark = pytest.mark.skipif(native is None, reason="h5py's libhdf5 could not be located")

#: H5G_storage_type_t
COMPACT, DENSE = 1, 2


class _GroupInfo(ctypes.Structure):
    _fields_ = [("storage_type", ctypes.c_int), ("nlinks", ctypes.c_uint64), ("max_corder", ctypes.c_int64),
                ("mounted", ctypes.c_bool)]


def _storage(group: h5py.Group) -> tuple[int, int, tuple[int, int], tuple[int, int]]:
    """(storage type, links, (max compact, min dense), (estimated links, estimated name length)) as libhdf5
    reports them for ``group``."""
    lib = libhdf5.library()
    info = _GroupInfo()
    assert lib.H5Gget_info(ctypes.c_int64(group.id.id), ctypes.byref(info)) >= 0
    gcpl = group.id.get_create_plist()
    a, b, c, d = (ctypes.c_uint() for _ in range(4))
    assert lib.H5Pget_link_phase_change(ctypes.c_int64(gcpl.id), ctypes.byref(a), ctypes.byref(b)) >= 0
    assert lib.H5Pget_est_link_info(ctypes.c_int64(gcpl.id), ctypes.byref(c), ctypes.byref(d)) >= 0
    return info.storage_type, info.nlinks, (a.value, b.value), (c.value, d.value)


def _tree(sizes: dict[str, int]) -> Group:
    rng = np.random.default_rng(7)
    return Group(children={
        name: Group(attrs={"n": n}, children={
            str(i): Dataset(np.sort(rng.integers(0, 10**6, int(rng.integers(1, 60)))).astype(np.uint64))
            for i in range(n)})
        for name, n in sizes.items()})


def _write(path, tree: Group) -> None:
    atomic = create_atomic(path, libver=lowlevel.LIBVER, checksums=True, evict_on_close=True)
    f = atomic.open()
    try:
        tree_write.write_root(f, tree, tree_write.WriteContext(f, raw_writes=True))
    except BaseException:
        atomic.abort()
        raise
    atomic.commit()


def test_groups_keep_their_links_in_a_header_sized_for_them(tmp_path):
    big = lowlevel.HEADER_LINKS_MAX + 1
    sizes = {"empty": 0, "few": 5, "eight": 8, "nine": 9, "trials": 200, "limit": lowlevel.HEADER_LINKS_MAX,
             "many": big}
    tree = _tree(sizes)
    _write(tmp_path / "t.h5", tree)
    with h5py.File(tmp_path / "t.h5", "r") as f:
        # the file's format is as before: superblock 3 (libver bounds from v1.10)
        assert f.id.get_create_plist().get_version()[0] == 3
        for name, n in sizes.items():
            storage, nlinks, phase, estimate = _storage(f[name])
            assert nlinks == n, name
            # the attributes written after the links (``n`` and none else here) fit the header's first chunk
            assert h5py.h5o.get_info(f[name].id).hdr.nchunks == 1, name
            if n == 0:
                assert (storage, phase) == (COMPACT, (8, 6)), name  # the default phase change
                continue
            name_length = -(-sum(len(str(i)) for i in range(n)) // n)
            if n <= lowlevel.HEADER_LINKS_MAX:
                assert storage == COMPACT, name
                assert phase == ((n, 6) if n > 8 else (8, 6)), name
                assert estimate[0] == n, name
            else:
                assert (storage, phase, estimate[0]) == (DENSE, (8, 6), 8), name
            # the estimated name length: the links' own, with the attributes' room shared among them
            assert name_length < estimate[1] <= name_length + 256, name
        # every link and value reads back through plain h5py as given, in h5py's name order
        for name, group in tree.children.items():
            assert list(f[name].keys()) == sorted(group.children), name
            assert f[name].attrs["n"] == sizes[name]
            for key, node in group.children.items():
                stored = f[name][key]
                assert stored.dtype == node.data.dtype and stored.shape == node.data.shape
                np.testing.assert_array_equal(stored[()], node.data)
    assert check_file(tmp_path / "t.h5")["manifest"]


def test_a_group_s_attributes_go_into_its_first_header_chunk(tmp_path):
    """A group's own attributes and the writer's bookkeeping ones (type tag, keys) go into the header
    sized at its creation, whether it has many links, few or none; and read back as written."""
    text = {f"note_{i}": f"value {i}" for i in range(12)}
    numbers = {"rate": 20_000.0, "channels": np.arange(16, dtype=np.int32), "labels": ["a", "bc"]}
    tree = Group(children={
        "trials": Group(children={str(i): Dataset(np.arange(i + 1, dtype=np.float64)) for i in range(200)},
                        tag="dict", keys=list(range(200))),
        "unit": Group(attrs={**text, **numbers}, children={"a": Dataset(np.arange(3.0))}),
        "meta": Group(attrs=dict(text)),
        "dense": Group(attrs=dict(text), children={str(i): Dataset(np.arange(2.0)) for i in range(300)}),
    })
    _write(tmp_path / "t.h5", tree)
    with h5py.File(tmp_path / "t.h5", "r") as f:
        for name in tree.children:
            assert h5py.h5o.get_info(f[name].id).hdr.nchunks == 1, name
        assert {"h5stream_type", "h5stream_keys"} <= set(f["trials"].attrs)
        assert f["trials"].attrs["h5stream_type"] == "dict"
        for name in ("unit", "meta", "dense"):
            for key, value in text.items():
                assert f[name].attrs[key] == value, (name, key)
        assert f["unit"].attrs["rate"] == 20_000.0
        np.testing.assert_array_equal(f["unit"].attrs["channels"], np.arange(16, dtype=np.int32))
        assert [v.decode() if isinstance(v, bytes) else v for v in f["unit"].attrs["labels"]] == ["a", "bc"]
        assert len(f["dense"]) == 300 and len(f["trials"]) == 200
    assert check_file(tmp_path / "t.h5")["manifest"]


def test_a_group_sized_at_creation_still_takes_links_added_later(tmp_path):
    _write(tmp_path / "t.h5", _tree({"trials": 12}))
    with h5py.File(tmp_path / "t.h5", "r+") as f:
        for i in range(12, 20):
            f["trials"][str(i)] = np.arange(i)
        assert _storage(f["trials"])[:2] == (DENSE, 20)  # past its size the group turns dense, as by default
        for i in range(5, 20):
            del f["trials"][str(i)]
        assert _storage(f["trials"])[:2] == (COMPACT, 5)
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert sorted(f["trials"], key=int) == [str(i) for i in range(5)]
