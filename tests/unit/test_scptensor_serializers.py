"""Element-level serializers of scptensor (the seed's signatures) and exact JSON of history params."""

from __future__ import annotations

import h5py
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy import sparse

from h5stream.errors import EncodingError
from h5scp.core.structures import ProvenanceLog, values_equal
from h5scp.io import json_values
from h5scp.io.serializers import (
    deserialize_dataframe,
    deserialize_matrix,
    deserialize_provenance,
    serialize_dataframe,
    serialize_dense_matrix,
    serialize_provenance,
    serialize_sparse_matrix,
)


def test_dataframe_into_existing_group(h5):
    df = pl.DataFrame(
        {
            "batch": ["A", None, "B"],
            "_index": ["S1", "S2", "S3"],
            "n": pl.Series([1, None, 3], dtype=pl.Int16),
            "x": pl.Series([1.0, float("nan"), None], dtype=pl.Float32),
        }
    )
    group = h5.create_group("obs")
    serialize_dataframe(df, group, id_col="_index")
    assert h5["obs"].attrs["encoding-type"] == "dataframe"
    assert h5["obs"].attrs["_index"] in h5["obs"]  # the row labels are the id column
    assert_frame_equal(deserialize_dataframe(h5["obs"]), df)
    h5.create_group("full").create_dataset("x", data=[1])
    with pytest.raises(ValueError, match="not empty"):
        serialize_dataframe(df, h5["full"])


def test_plain_column_groups_read_sorted(h5):
    group = h5.create_group("obs")
    group.create_dataset("value", data=[1.0, 2.0])
    group.create_dataset("_index", data=["S1", "S2"], dtype=h5py.string_dtype())
    group.create_dataset("batch", data=["A", "B"], dtype=h5py.string_dtype())
    df = deserialize_dataframe(group)
    assert df.columns == ["_index", "batch", "value"]
    assert df["_index"].to_list() == ["S1", "S2"] and df["value"].dtype == pl.Float64


def test_dense_matrix_keeps_dtype(h5):
    layer = h5.create_group("layer")
    # above the engine's small-array size, below which data is stored uncompressed
    x64 = np.random.default_rng(0).normal(size=(64, 32))
    x64[0, :2] = [1.0 + 1e-12, np.nan]
    serialize_dense_matrix(x64, layer, "X")
    serialize_dense_matrix(np.array([[0, 5]], dtype=np.int8), layer, "M", compression=None)
    assert layer["X"].dtype == np.float64 and layer["X"].compression == "gzip"
    assert layer["X"].compression_opts == 4
    got = deserialize_matrix(layer["X"])
    assert got.dtype == np.float64 and np.array_equal(got, x64, equal_nan=True)
    assert deserialize_matrix(layer["M"]).dtype == np.int8 and layer["M"].compression is None


def test_sparse_matrix_keeps_format(h5):
    layer = h5.create_group("layer")
    dense = np.array([[0, 1.5, 0], [2.0, 0, 0]], dtype=np.float32)
    serialize_sparse_matrix(sparse.csc_matrix(dense), layer, "X")
    serialize_sparse_matrix(sparse.coo_matrix(dense), layer, "Y", compression=None)
    assert layer["X"].attrs["encoding-type"] == "csc_matrix"
    x = deserialize_matrix(layer["X"])
    assert isinstance(x, sparse.csc_matrix) and x.dtype == np.float32 and np.array_equal(x.toarray(), dense)
    y = deserialize_matrix(layer["Y"])
    assert isinstance(y, sparse.csr_matrix) and np.array_equal(y.toarray(), dense)


def test_provenance_round_trip(h5):
    history = [
        ProvenanceLog("2025-01-01T00:00:00+00:00", "filter", {"min": np.float32(0.5), "ids": np.arange(4)}, "0.2.0", None),
        ProvenanceLog("2025-01-01T00:01:00+00:00", "impute", {}, None, "kNN"),
    ]
    group = h5.create_group("history")
    serialize_provenance(history, group)
    assert deserialize_provenance(group) == history
    empty = h5.create_group("empty")
    serialize_provenance([], empty)
    assert deserialize_provenance(empty) == []


def test_provenance_legacy_layout(h5):
    group = h5.create_group("history")
    s = h5py.string_dtype()
    group.create_dataset("action", data=["a"], dtype=s)
    group.create_dataset("timestamp", data=["t"], dtype=s)
    group.create_dataset("params", data=['{"n": 5}'], dtype=s)
    group.create_dataset("software_version", data=[""], dtype=s)
    group.create_dataset("description", data=["Test operation"], dtype=s)
    (entry,) = deserialize_provenance(group)
    assert entry.params == {"n": 5} and entry.software_version is None and entry.description == "Test operation"


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": [1, "x", None, 2.5, True], "c": {"d": (1, 2)}},
        {"f": float("nan"), "g": float("inf"), "h": -0.0},
        {"s": np.float32(1.1), "i": np.int8(-3), "u": np.uint64(2**64 - 1), "b": np.bool_(True)},
        {"arr": np.array([[1.5, np.nan]], dtype=np.float16), "s": np.array(["a", "bé"]), "e": np.zeros((0, 3))},
        {"bytes": b"\x00\xff", 1: "int key", "__tricky": "tag-like key", ("t", 1): 3},
        {"dt": np.datetime64("2025-01-02T03:04:05", "s"), "c": np.complex64(1 + 2j)},
        # numpy scalars that are also Python floats/strings keep their numpy type
        {"f64": np.float64(0.5), "str": np.str_("é"), "plain": 0.5},
    ],
)
def test_json_values_exact(value):
    text = json_values.dumps(value, obj="history params")
    assert isinstance(text, str)
    back = json_values.loads(text)
    assert values_equal(back, value)
    assert {k: type(v) for k, v in back.items()} == {k: type(v) for k, v in value.items()}


def test_json_values_refuses_what_it_cannot_keep():
    with pytest.raises(EncodingError, match="object"):
        json_values.dumps({"x": np.array([object()], dtype=object)}, obj="history params")
    with pytest.raises(EncodingError, match="set"):
        json_values.dumps({"x": {1, 2}}, obj="history params")
