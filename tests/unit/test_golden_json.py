"""Typed JSON written before both faces shared one codec still reads exactly.

The files under tests/data/golden were written at commit 13946ca by
tests/data/golden/make_json_v1.py; every expected value below is written out
by hand from what that code stored (not produced by the code under test).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from hdmea.io import hdf5_store as store
from h5scp.io import json_values
from tests.filecompare import assert_exact

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"


def test_recording_store_typed_json_v1_reads_exactly():
    expected_attrs = {
        "mixed_list": [1, "a", None, 2.5, True],
        # The store of that version wrote numpy float64 inside mixed lists as a plain float.
        "numpy_float64_in_list": [1.5, "a"],
        "numpy_scalars_in_list": [np.int8(-3), np.uint16(7), np.int64(-9), np.uint64(2**64 - 1), np.float16(0.5),
                                  np.float32(0.25), np.bool_(True), "x"],
        "tuple_mixed": (1, "b", (2.5, None)),
        "big_int": 2**70,
        "text_with_nul": "a\x00b",
        "raw_bytes": b"\x00\xff",
        "dict_mixed_keys": {"k": [1, "x"], 3: (None,), (1, 2): "pair"},
        "array_0d": np.array(2.5),
        "array_in_list": [np.array([[0, 1, 2], [3, 4, 5]], dtype=np.int32), "x"],
        "float64_in_dict": {"a": 2.0, "b": np.float32(0.5)},
    }
    with h5py.File(GOLDEN / "hdmea_json_v1.h5", "r") as f:
        attrs = store.decode_node(store.node_from_h5(f["attrs"]))
        metadata = store.decode_node(store.node_from_h5(f["metadata"]))
    assert_exact(attrs, {k: expected_attrs[k] for k in sorted(expected_attrs)})
    assert_exact(metadata, {"text_with_nul": "x\x00y", "unsafe_keys": {1: "one", "a/b": 2, (3, 4): [None, "z"]}})


def test_scptensor_history_params_v1_read_exactly():
    expected = {
        "scalars": [np.bool_(False), np.int8(-8), np.int16(-16), np.int32(-32), np.int64(-64), np.uint8(8),
                    np.uint16(16), np.uint32(32), np.uint64(2**64 - 1), np.float16(1.5), np.float32(-0.125),
                    np.float64(1e300), np.complex64(1 - 2j), np.complex128(3 + 4j), np.str_("txt"),
                    np.bytes_(b"by"), np.datetime64("2024-03-01T12:00:00", "s"), np.timedelta64(90, "ms")],
        "arrays": {"f4": np.array([[1.5, -2.0]], dtype=np.float32), "u8": np.array([0, 1, 2], dtype=np.uint8),
                   "c16": np.array([1 + 1j], dtype=np.complex128), "S3": np.array([b"abc", b"d"], dtype="S3"),
                   "M8": np.array(["2024-01-01"], dtype="M8[D]")},
        "nested": {"t": (1, "x"), "b": b"\x01\x02", "n": None, "f": float("nan"), "i": float("-inf"),
                   "__dunder": 1, 5: "int key"},
        "plain": {"a": [1, 2.5, "s", True]},
    }
    with h5py.File(GOLDEN / "scptensor_json_v1.h5", "r") as f:
        texts = {name: f["params"].attrs[name] for name in f["params"].attrs}
    assert sorted(texts) == sorted(expected)
    for name, value in expected.items():
        assert_exact(json_values.loads(texts[name]), value)
