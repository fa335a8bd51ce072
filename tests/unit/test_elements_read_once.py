"""Every reader takes its element's attributes from the element's description, read once.

Each element of the frozen golden file (written by an earlier commit; ``dataframe-0.1.0`` by hand with h5py)
is read with :func:`h5stream.elements.read_elem` while every access to an h5py attribute manager is
counted: the description (:mod:`h5stream.elements.snapshot`) reads all attributes of an element in one pass
of direct libhdf5 calls, so a reader asking h5py for a single attribute (``obj.attrs[name]``) reads it a
second time.  Before the readers of h5stream's own encodings took the description (temporal, decimal,
int128, nested over awkward-array and the 0.1.0 layouts, nullable float, ``dataframe`` 0.1.0), reading the
golden ``dataframe`` asked h5py 14 times, the golden ``dataframe`` 0.1.0 10 times.  The values are compared
with the golden cases, rebuilt independently from their definitions.
"""

from __future__ import annotations

import collections

import h5py
import numpy as np
import pytest

from tests.data.golden import golden_cases as cases

ELEMENTS = cases.HERE / "elements.h5"
_CASES = cases.element_cases()
_ACCESSES = ("__getitem__", "get", "__contains__", "__iter__", "keys", "items", "values")


@pytest.fixture
def attribute_reads(monkeypatch):
    """Counts the accesses to any h5py attribute manager, by (method, attribute name)."""
    seen: collections.Counter = collections.Counter()
    for method in _ACCESSES:
        original = getattr(h5py.AttributeManager, method)

        def counted(self, *args, _original=original, _method=method, **kwargs):
            seen[(_method, args[0] if args else None)] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(h5py.AttributeManager, method, counted)
    return seen


@pytest.mark.parametrize("name", [*_CASES, "dataframe-0.1.0"])
def test_a_reader_asks_h5py_for_no_attribute(attribute_reads, name):
    from h5stream.elements import read_elem

    expected = cases.legacy_dataframe_0_1_0() if name == "dataframe-0.1.0" else _CASES[name][2]
    with h5py.File(ELEMENTS, "r") as f:
        obj = f[name]
        attribute_reads.clear()
        value = read_elem(obj)
        assert not attribute_reads, dict(attribute_reads)
    cases.assert_same(value, expected, name)


def test_the_count_sees_an_attribute_read(attribute_reads):
    # the counter is live: a plain h5py read is seen
    with h5py.File(ELEMENTS, "r") as f:
        attribute_reads.clear()
        _ = f["date"].attrs["encoding-type"]
    assert attribute_reads[("__getitem__", "encoding-type")] == 1


@pytest.mark.parametrize("name", ["plain.h5", "données µ 數據.h5"])
def test_a_file_name_asked_of_libhdf5_is_h5pys_filename(tmp_path, name):
    from h5stream.elements.snapshot import file_name

    path = tmp_path / name
    with h5py.File(path, "w") as f:
        f["g/d"] = np.arange(3)
    with h5py.File(path, "r") as f:
        assert file_name(f) == f.filename == str(path)
        assert file_name(f["g/d"]) == f.filename
        assert file_name(f["g"].id) == f.filename


@pytest.mark.parametrize("mode", ["r", "r+"])
def test_members_opened_for_a_description_are_what_h5py_opens(tmp_path, mode):
    """:func:`open_members` against h5py's own ``group[key]``: the same kinds, objects, paths and write flag."""
    from h5stream.elements.snapshot import open_members

    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("g")
        g.create_dataset("d", data=np.arange(3))
        g.create_group("sub").create_dataset("deep", data=[1.5])
        g["named"] = np.dtype("<i4")
        g.create_dataset("grüße", data=np.arange(2))
        g["again"] = g["d"]
    keys = ["d", "sub", "sub/deep", "named", "grüße", "again"]
    with h5py.File(path, mode) as f:
        g = f["g"]
        opened = open_members(g, keys)
        for key, obj in zip(keys, opened):
            twin = g[key]
            assert type(obj) is type(twin) and obj == twin and obj.name == twin.name, key
            if isinstance(twin, h5py.Dataset):
                assert obj._readonly == twin._readonly == (mode == "r")
                np.testing.assert_array_equal(obj[()], twin[()])
        with pytest.raises(KeyError):
            open_members(g, ["missing"])
        with pytest.raises(KeyError):
            g["missing"]
