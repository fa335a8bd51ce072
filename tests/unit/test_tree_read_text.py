"""A lazy tree reads variable-length text through the dataset's low-level id: each value is the array h5py's
own ``Dataset[()]`` (``[...]`` for a 0-d dataset) gives, dtype, shape and items, in both encodings; other
text (fixed-length) is left to h5py (files made with plain h5py)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from h5stream.errors import FormatError
from h5stream.tree.read import _read_variable_text, node_from_h5

CASES = {
    "utf8_scalar": (h5py.string_dtype("utf-8"), "ä text"),
    "ascii_scalar": (h5py.string_dtype("ascii"), b"plain"),
    "utf8_vector": (h5py.string_dtype("utf-8"), ["a", "", "ü" * 300, "x"]),
    "ascii_matrix": (h5py.string_dtype("ascii"), [[b"a", b"bb"], [b"", b"ccc"], [b"d", b"e"]]),
    "utf8_empty": (h5py.string_dtype("utf-8"), np.array([], dtype=object)),
}


def _file(path) -> None:
    with h5py.File(path, "w") as f:
        for name, (dtype, value) in CASES.items():
            f.create_dataset(name, data=value, dtype=dtype)
        f.create_dataset("undecodable", data=b"\xff\xfe", dtype=h5py.string_dtype("ascii"))
        f.create_dataset("damaged/text", data=b"ok \xff", dtype=h5py.string_dtype("utf-8"))
        f["fixed"] = np.array([b"ab", b"c"], dtype="S2")
        f["numbers"] = np.arange(3)


def _reference(ds: h5py.Dataset) -> np.ndarray:
    return ds[...] if ds.shape == () else ds[()]


@pytest.mark.parametrize("name", [*CASES, "undecodable"])
def test_variable_text_reads_as_h5py_reads_it(tmp_path, name):
    path = tmp_path / "text.h5"
    _file(path)
    with h5py.File(path, "r") as f:
        ds = f[name]
        expected = _reference(ds)
        found = _read_variable_text(ds.id, ds.shape)
        assert isinstance(found, np.ndarray) and found.shape == expected.shape == ds.shape
        assert found.dtype == expected.dtype and found.dtype.metadata == expected.dtype.metadata
        assert found.tolist() == expected.tolist()
        assert all(isinstance(v, bytes) for v in found.ravel().tolist())


@pytest.mark.parametrize("name", ["fixed", "numbers"])
def test_other_types_are_left_to_h5py(tmp_path, name):
    path = tmp_path / "text.h5"
    _file(path)
    with h5py.File(path, "r") as f:
        assert _read_variable_text(f[name].id, f[name].shape) is None


def test_a_tree_of_text_reads_as_h5py_reads_it(tmp_path):
    path = tmp_path / "text.h5"
    _file(path)
    with h5py.File(path, "r") as f:
        node = node_from_h5(f["/"], lazy=True, opener=lambda: f, manifest=None, listings={b"": [
            name.encode() for name in sorted([*CASES, "fixed", "numbers"])]})
        for name in (*CASES, "fixed"):
            data, expected = node.children[name].data, _reference(f[name])
            assert data.dtype == expected.dtype and data.shape == expected.shape, name
            assert data.tolist() == expected.tolist(), name


def test_text_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "text.h5"
    _file(path)
    with h5py.File(path, "r") as f, pytest.raises(FormatError, match="not valid UTF-8") as caught:
        node_from_h5(f["damaged"], lazy=True, opener=lambda: f, manifest=None)
    assert caught.value.obj == "/damaged/text"
