"""The engine's typed JSON codec and stable hash, seen from both faces."""

from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from h5stream import jsonvalues
from h5stream.errors import EncodingError
from hdmea.config import PipelineConfig
from hdmea.features import params_hash
from hdmea.io import hdf5_store as store
from h5scp.io import json_values
from tests.filecompare import assert_exact

# Every numpy scalar kind, each drawn from values that stress its dtype.
_INTS = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
_SCALARS = st.one_of(
    st.booleans().map(np.bool_),
    *[st.integers(int(np.iinfo(t).min), int(np.iinfo(t).max)).map(t) for t in _INTS],
    st.floats(width=16).map(np.float16),
    st.floats(width=32).map(np.float32),
    st.floats().map(np.float64),
    st.complex_numbers(width=64).map(np.complex64),
    st.complex_numbers().map(np.complex128),
    st.text(max_size=5).map(np.str_),
    st.binary(max_size=5).map(lambda b: np.bytes_(b.rstrip(b"\x00"))),
    st.integers(-(2**40), 2**40).map(lambda n: np.datetime64(n, "s")),
    st.integers(-(2**40), 2**40).map(lambda n: np.timedelta64(n, "ms")),
)
_PLAIN = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=5))
_VALUES = st.recursive(
    st.one_of(_SCALARS, _PLAIN),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
        st.dictionaries(st.integers(-5, 5), inner, max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_SCALARS, min_size=1, max_size=4), st.text(max_size=3))
def test_every_numpy_scalar_kind_keeps_its_type_inside_lists_and_dicts(scalars, key):
    value = {"list": [*scalars, "a"], "dict": {key or "k": scalars[0], 3: tuple(scalars)}}
    assert_exact(jsonvalues.loads(jsonvalues.dumps(value)), value)
    assert_exact(json_values.loads(json_values.dumps(value, obj="history params")), value)


@settings(max_examples=100, deadline=None)
@given(_VALUES)
def test_nested_values_round_trip_exactly(value):
    assert_exact(jsonvalues.loads(jsonvalues.dumps(value)), value)


def test_numpy_float64_in_a_mixed_list_stays_numpy_through_the_store(tmp_path):
    value = [np.float64(1.5), "a", np.int16(-2), np.datetime64("2024-01-02", "D")]
    with h5py.File(tmp_path / "a.h5", "w") as f:
        store.write_node(f, "g", store.Group(attrs={"mixed": value}))
        back = store.decode_node(store.node_from_h5(f["g"]))["mixed"]
    assert_exact(back, value)
    assert type(back[0]) is np.float64


def test_arrays_of_every_plain_dtype_round_trip():
    arrays = [np.arange(6, dtype=np.int32).reshape(2, 3), np.array([1 + 2j], np.complex64),
              np.array([b"ab", b"c"]), np.array(["x", "yz"]), np.array(["2024-01-01"], "M8[D]"),
              np.zeros((0, 2)), np.asfortranarray(np.arange(6.0).reshape(2, 3)), np.array(2.5)]
    for array in arrays:
        assert_exact(jsonvalues.loads(jsonvalues.dumps(array)), np.array(array, order="C"))


def test_text_is_ascii_so_nul_and_surrogates_survive_hdf5():
    text = jsonvalues.dumps(["a\x00b", "\ud800", "é"])
    assert text.isascii()
    assert jsonvalues.loads(text) == ["a\x00b", "\ud800", "é"]


def test_refuses_what_it_cannot_keep_and_names_it():
    with pytest.raises(EncodingError, match="history params/x.*object"):
        json_values.dumps({"x": np.array([object()], dtype=object)}, obj="history params")
    with pytest.raises(EncodingError, match="set"):
        jsonvalues.dumps({1, 2})


def test_both_older_payloads_still_read():
    store_v1 = '[{"__np__": "<f4", "v": 0.5}, {"__ndarray__": "<i4", "shape": [1, 2], "v": [[1, 2]]}]'
    scptensor_v1 = '{"__numpy_scalar__": "<u2", "b64": "BwA="}'
    assert_exact(jsonvalues.loads(store_v1), [np.float32(0.5), np.array([[1, 2]], dtype=np.int32)])
    assert_exact(jsonvalues.loads(scptensor_v1), np.uint16(7))


@pytest.mark.parametrize("name", ["<f8,,", "<f(", "(<f8", "no such type", 7])
@pytest.mark.parametrize("payload", [
    '{{"__ndarray__": {name}, "shape": [1], "b64": "AAAAAAAA8D8="}}',
    '{{"__ndarray__": {name}, "shape": [1], "v": [1.0]}}',
    '{{"__numpy_scalar__": {name}, "b64": "AAAAAAAA8D8="}}',
    '{{"__np__": {name}, "v": 1.0}}',
])
def test_a_damaged_type_name_is_a_value_error_naming_it(payload, name):
    # numpy parses a comma-separated type text with Python's own parser: "<f8,," raised SyntaxError, which no
    # reader takes for a damaged file (found by the fuzz campaign on a flipped byte of a history parameter)
    with pytest.raises(ValueError, match="not a numpy type") as raised:
        jsonvalues.loads(payload.format(name=json.dumps(name)))
    assert repr(name) in str(raised.value)


# --------------------------------------------------------------------------- stable hash


def _feature_hash_before(name, version, params):
    """The feature hash as it was computed before the hash was shared (plain json + hashlib)."""

    def canon(value):
        if isinstance(value, dict):
            return {str(k): canon(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
        if isinstance(value, (list, tuple)):
            return [canon(v) for v in value]
        if isinstance(value, np.ndarray):
            return {"__array__": value.dtype.str, "shape": list(value.shape), "data": canon(value.tolist())}
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, float) and not np.isfinite(value):
            return repr(value)
        return value

    text = json.dumps({"name": name, "version": str(version), "params": canon(dict(params))},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@pytest.mark.parametrize("params", [
    {"movie": "m", "threshold": 0.5, "w": [1, 2]},
    {"v": np.int64(3), "a": np.arange(3.0), "t": (1, "x"), "inf": float("inf"), "n": None, "nested": {"b": 1, "a": 2}},
    {},
])
def test_feature_params_hash_is_byte_identical_to_stored_hashes(params):
    assert params_hash("sta", "2", params) == _feature_hash_before("sta", "2", params)


def test_feature_params_hash_of_a_large_array_follows_its_values():
    big = np.arange(100_000, dtype=np.float32)
    changed = big.copy()
    changed[-1] += 1
    first = params_hash("eimage_sta", "1", {"data": big})
    assert first == params_hash("eimage_sta", "1", {"data": big.copy()})
    assert first != params_hash("eimage_sta", "1", {"data": changed})
    assert first != params_hash("eimage_sta", "1", {"data": big.astype(np.float64)})
    assert first != params_hash("eimage_sta", "1", {"data": big.reshape(1000, 100)})


def test_config_digest_is_byte_identical_to_stored_digests():
    config = PipelineConfig()
    before = hashlib.sha256(json.dumps(config.digest_payload(), sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert config.digest() == before


def test_stable_hash_ignores_key_order_and_numpy_types():
    assert jsonvalues.stable_hash({"a": 1, "b": [2.5]}) == jsonvalues.stable_hash({"b": [np.float64(2.5)], "a": np.int8(1)})
    assert jsonvalues.stable_hash({"a": 1}) != jsonvalues.stable_hash({"a": 2})
    assert len(store.stage1_params_hash({"fs": 20000})) == 64 and store.stage1_params_hash(None) == ""


def test_a_list_of_plain_ints_is_copied_and_other_lists_are_encoded_item_by_item():
    import enum
    import json

    from h5stream import jsonvalues

    class Level(enum.IntEnum):
        HIGH = 3

    keys = list(range(200))
    encoded = jsonvalues.encode(keys)
    assert encoded == keys and encoded is not keys  # the caller's list is never handed out
    assert jsonvalues.dumps(keys) == json.dumps(keys)
    assert jsonvalues.dumps([True, 1, 2**70]) == "[true, 1, 1180591620717411303424]"
    assert jsonvalues.dumps([Level.HIGH, 2]) == "[3, 2]"  # an int subclass: its base value
    assert jsonvalues.loads(jsonvalues.dumps([1, [2, True], 3])) == [1, [2, True], 3]
