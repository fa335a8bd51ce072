"""JSON-like mappings: the documented exact round trip, and refusals."""

from __future__ import annotations


import numpy as np
import pytest

from h5stream.elements import read_elem, write_elem
from h5stream.errors import EncodingError

from tests.filecompare import assert_exact

PARAMS = {
    "method": "knn",
    "k": 5,
    "alpha": 0.5,
    "flags": [True, False],
    "ids": [1, 2, 3],
    "weights": (0.5, float("nan"), float("inf"), -float("inf")),
    "names": ["a", None, "c"],
    "mixed": [1, "two", 3.0, None, [4, [5]], {"six": 6}],
    "empty_list": [],
    "empty_tuple": (),
    "empty_dict": {},
    "np_scalar": np.float32(0.25),
    "np_int": np.int16(-7),
    "np_array": np.arange(6, dtype=np.uint8).reshape(2, 3),
    "np_strings": np.array(["x", "y"]),
    "none": None,
    "blob": b"\x00\xff",
    "unicode ключ": "значение",
    "a/b": {"nested/deeper": {"%": 1, "": 2, ".": 3, "..": 4}},
    7: "int key",
    -1: [1.5],
    "7": "str key that looks like the int key",
    "big": 2**63 + 5,
    "cplx": 1 - 2j,
    "np_bool_list": [np.bool_(True)],
}


def test_parameter_mapping_round_trips_exactly(h5):
    write_elem(h5, "p", PARAMS)
    assert_exact(read_elem(h5["p"]), PARAMS)


def test_insertion_order_is_kept(h5):
    value = {k: i for i, k in enumerate(["z", "a", "m", "b"])}
    write_elem(h5, "o", value)
    assert list(read_elem(h5["o"])) == ["z", "a", "m", "b"]


def test_homogeneous_lists_are_plain_arrays(h5):
    write_elem(h5, "m", {"i": [1, 2], "f": [1.0, 2.0], "s": ["a", "b"]})
    assert h5["m/i"].attrs["encoding-type"] == "array" and h5["m/i"].dtype == np.int64
    assert h5["m/f"].dtype == np.float64
    assert h5["m/s"].attrs["encoding-type"] == "string-array"


@pytest.mark.parametrize(
    "bad", [{"k": {1, 2}}, {"k": object()}, {1.5: "float key"}, {None: 1}, {"k": [1, {2: set()}]}]
)
def test_unrepresentable_values_are_refused(h5, bad):
    with pytest.raises(EncodingError):
        write_elem(h5, "bad", bad)
    assert "bad" not in h5


def test_error_names_the_offending_object(h5):
    with pytest.raises(EncodingError, match=r"/bad/outer/inner"):
        write_elem(h5, "bad", {"outer": {"inner": object()}})
