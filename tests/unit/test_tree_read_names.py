"""A tree read from a file names the file in every error, at any depth, though the file's name is looked up once
per read (h5py builds a ``File`` object for each lookup)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from h5stream.errors import FormatError
from h5stream.tree.nodes import TYPE_ATTR
from h5stream.tree.read import decode_node, node_from_h5, read_attrs


def _file(path, damaged: bool):
    with h5py.File(path, "w") as f:
        f.attrs["top"] = 3
        deep = f.create_group("a/b")
        deep.attrs["level"] = "two"
        f["a/b/values"] = np.arange(5)
        f["a/b/values"].attrs["unit"] = "s"
        f["a/text"] = np.array([b"x", b"y"])
        scalar = deep.create_dataset("c", data=np.arange(3) if damaged else np.arange(1))
        scalar.attrs[TYPE_ATTR] = "int"


@pytest.mark.parametrize("lazy", [False, True])
def test_a_damaged_object_deep_in_the_tree_is_named_with_its_file(tmp_path, lazy):
    path = tmp_path / "damaged.h5"
    _file(path, damaged=True)
    with h5py.File(path, "r") as f, pytest.raises(FormatError, match="wrong number of items") as caught:
        node_from_h5(f, lazy=lazy, opener=None, manifest=None)
    assert caught.value.path == str(path) and caught.value.obj == "/a/b/c"


def test_the_tree_read_with_its_file_name_given_is_the_tree_read_without(tmp_path):
    path = tmp_path / "sound.h5"
    _file(path, damaged=False)
    with h5py.File(path, "r") as f:
        found = decode_node(node_from_h5(f, manifest=None))
        given = decode_node(node_from_h5(f, manifest=None, path=str(path)))
        assert read_attrs(f["a/b/values"], manifest=None, path=str(path)) == read_attrs(f["a/b/values"], manifest=None)
    assert found["a"]["b"]["c"] == given["a"]["b"]["c"] == 0
    np.testing.assert_array_equal(found["a"]["b"]["values"], given["a"]["b"]["values"])
    assert found["top"] == given["top"] == 3 and found["a"]["b"]["level"] == "two"
