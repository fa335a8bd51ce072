"""Property tests: every numpy scalar kind keeps its exact type and bytes through every encoding path.

The three paths that turn values into stored form each ask ``h5stream.valuekinds`` what a value is:
tree nodes (``value_node``: the recording store's metadata), attributes (``encode_attr``: feature
scalars, group attributes) and typed JSON (``jsonvalues``). Each is exercised with a numpy scalar on
its own, inside a list beside other values, and inside a dict, and read back with plain h5py
underneath the tree reader. The reference is the value itself: same type, same dtype, same bytes
(so NaN payloads, -0.0 and long doubles are compared exactly).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from h5stream import jsonvalues
from h5stream.tree import Group, decode_node, node_from_h5, value_node, write_node
from h5stream.valuekinds import kind_of

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: one dtype per numpy scalar type (every concrete type numpy defines but object)
DTYPES = [
    "?", "i1", "i2", "i4", "i8", "q", "u1", "u2", "u4", "u8", "Q", "f2", "f4", "f8", "g", "c8", "c16", "G",
    "U3", "S3", "M8[s]", "M8[D]", "m8[ms]",
]


def _scalar(dtype: str):
    return hnp.arrays(np.dtype(dtype), shape=()).map(lambda a: a[()])


SCALARS = st.one_of(
    *[_scalar(d) for d in DTYPES],
    st.binary(min_size=1, max_size=4).map(lambda b: np.void(b)),
)


def test_every_numpy_scalar_type_is_a_numpy_scalar_kind():
    types = {np.dtype(d).type for d in DTYPES} | {np.void}
    assert types >= {t for t in np.sctypeDict.values() if t is not np.object_}
    for cls in types:
        assert kind_of(np.zeros((), dtype=cls)[()] if cls is not np.void else np.void(b"\0")) == "npscalar", cls
    # the types that are also Python types are numpy scalars first
    assert kind_of(np.float64(1.5)) == "npscalar" and kind_of(1.5) == "float"
    assert kind_of(np.str_("a")) == "npscalar" and kind_of("a") == "str"
    assert kind_of(np.bytes_(b"a")) == "npscalar" and kind_of(b"a") == "bytes"


def _same(found, expected, where: str) -> None:
    if isinstance(expected, np.generic):
        # numpy's C aliases (longlong and int64 on Linux) share one dtype, which is what a file holds
        assert isinstance(found, np.generic), f"{where}: {type(found).__name__} back for {type(expected).__name__}"
        assert found.dtype == expected.dtype, f"{where}: dtype {found.dtype} back for {expected.dtype}"
        if expected.dtype.char in "gG":  # long doubles: 10 bytes of value in 16, the rest padding
            assert np.array_equal(np.array(found), np.array(expected), equal_nan=True), f"{where}: {found!r}"
        else:
            assert found.tobytes() == expected.tobytes(), f"{where}: {found!r} back for {expected!r}"
        return
    assert type(found) is type(expected), f"{where}: {type(found).__name__} back for {type(expected).__name__}"
    if isinstance(expected, (list, tuple)):
        assert len(found) == len(expected), where
        for i, (f, e) in enumerate(zip(found, expected)):
            _same(f, e, f"{where}[{i}]")
    elif isinstance(expected, dict):
        assert sorted(found) == sorted(expected), where  # a group lists its members in name order
        for key in expected:
            _same(found[key], expected[key], f"{where}[{key!r}]")
    else:
        assert found == expected, where


def _through_file(write, read):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kinds.h5"
        with h5py.File(path, "w") as f:
            write(f)
        with h5py.File(path, "r") as f:
            return read(f)


def _node_roundtrip(value):
    return _through_file(lambda f: write_node(f, "v", value_node(value)),
                         lambda f: decode_node(node_from_h5(f["v"])))


def _attr_roundtrip(value):
    return _through_file(lambda f: write_node(f, "g", Group(attrs={"a": value})),
                         lambda f: node_from_h5(f["g"]).attrs["a"])


def _json_roundtrip(value):
    return jsonvalues.loads(jsonvalues.dumps(value))


PATHS = {"node": _node_roundtrip, "attribute": _attr_roundtrip, "json": _json_roundtrip}


@pytest.mark.parametrize("path", list(PATHS))
@SETTINGS
@given(value=SCALARS)
def test_scalar_alone(path, value):
    _same(PATHS[path](value), value, path)


@pytest.mark.parametrize("path", list(PATHS))
@SETTINGS
@given(items=st.lists(st.one_of(SCALARS, st.text(max_size=3), st.integers(-5, 5), st.floats(allow_nan=False)),
                      min_size=1, max_size=5))
def test_scalars_in_a_mixed_list(path, items):
    items = [*items, "a"]  # never homogeneous Python values only
    _same(PATHS[path](items), items, path)


@pytest.mark.parametrize("path", list(PATHS))
@SETTINGS
@given(values=st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), SCALARS, min_size=1, max_size=4))
def test_scalars_in_a_dict(path, values):
    _same(PATHS[path](values), values, path)
