"""The long frame of a dense layer built tile by tile equals the cells listed one by one."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from h5scp.core.structures import ScpMatrix
from h5scp.io._parquet_layers import _dense_long, _dense_tiled_frame, _long_frame


def _cells_in_tile_order(X, M, ts, tf):
    """Reference: every cell as (row, col, value, mask), tile after tile, rows then columns inside a tile."""
    n, f = X.shape
    out, starts = [], []
    for r0 in range(0, n, ts):
        for c0 in range(0, f, tf):
            starts.append(len(out))
            for r in range(r0, min(r0 + ts, n)):
                for c in range(c0, min(c0 + tf, f)):
                    out.append((r, c, X[r, c], 0 if M is None else M[r, c]))
    return out, starts


@pytest.mark.parametrize("shape, ts, tf", [((7, 5), 3, 2), ((10, 4), 4, 4), ((1, 9), 1, 4), ((6, 1), 5, 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("with_mask", [True, False])
@pytest.mark.parametrize("string_ids", [True, False])
def test_tiled_frame_lists_every_cell_in_tile_order(shape, ts, tf, dtype, with_mask, string_ids):
    rng = np.random.default_rng(5)
    n, f = shape
    X = rng.normal(size=shape).astype(dtype)
    X[rng.random(shape) < 0.3] = np.nan
    M = rng.integers(0, 5, size=shape).astype(np.int8) if with_mask else None
    if string_ids:
        sample_ids = pl.Series([f"s{i}" for i in range(n)])
        feature_ids = pl.Series([f"f{j}" for j in range(f)])
    else:
        sample_ids = pl.Series(np.arange(100, 100 + n, dtype=np.int64))
        feature_ids = pl.Series(np.arange(7, 7 + 3 * f, 3, dtype=np.int32))
    pl_dtype = pl.Float32 if dtype == np.float32 else pl.Float64
    frame, starts, extra = _dense_tiled_frame(ScpMatrix(X, M), sample_ids, feature_ids, pl_dtype, ts, tf)
    cells, expected_starts = _cells_in_tile_order(X, M, ts, tf)
    assert starts == expected_starts and extra == {"cells": "all"}
    assert frame.columns == ["sample_id", "feature_id", "value", "mask"]
    assert frame.get_column("sample_id").cast(sample_ids.dtype).to_list() == [sample_ids[r] for r, _, _, _ in cells]
    assert frame.get_column("feature_id").cast(feature_ids.dtype).to_list() == [feature_ids[c] for _, c, _, _ in cells]
    values = frame.get_column("value").to_numpy()
    assert values.dtype == dtype
    assert np.array_equal(values, np.array([v for _, _, v, _ in cells], dtype=dtype), equal_nan=True)
    assert frame.get_column("mask").dtype == pl.Int8
    assert frame.get_column("mask").to_list() == [int(m) for _, _, _, m in cells]
    if string_ids:
        assert frame.schema["sample_id"] == pl.Enum(sample_ids)
    # the same frame as the general dense encoder
    columns, general_starts, _ = _dense_long(ScpMatrix(X, M), ts, tf, False)
    assert general_starts == starts
    assert _long_frame(columns, sample_ids, feature_ids, pl_dtype).equals(frame)


def test_tiled_frame_leaves_other_value_dtypes_to_the_general_encoder():
    X = np.arange(12, dtype=np.int64).reshape(3, 4)
    ids = pl.Series(["a", "b", "c"]), pl.Series(["w", "x", "y", "z"])
    assert _dense_tiled_frame(ScpMatrix(X.astype(np.float64)), *ids, pl.Float32, 2, 2) is None


def _rechunked(frame: pl.DataFrame, size: int) -> pl.DataFrame:
    """The same rows with every column cut into chunks of ``size`` rows (as row groups come back)."""
    pieces = [frame.slice(i, size) for i in range(0, frame.height, size)]
    return pl.concat(pieces, rechunk=False)


@pytest.mark.parametrize("chunk_rows", [1, 7, 12, 1000])
@pytest.mark.parametrize("with_mask", [True, False])
def test_dense_tiles_rebuild_the_matrix_from_any_chunking(chunk_rows, with_mask):
    from h5scp.io._parquet_layers import _dense_tiles

    rng = np.random.default_rng(9)
    n, f, ts, tf = 11, 7, 4, 3
    X = rng.normal(size=(n, f))
    X[rng.random((n, f)) < 0.3] = np.nan
    M = rng.integers(0, 5, size=(n, f)).astype(np.int8) if with_mask else None
    sample_ids = pl.Series([f"s{i}" for i in range(n)])
    feature_ids = pl.Series([f"f{j}" for j in range(f)])
    frame, _, _ = _dense_tiled_frame(ScpMatrix(X, M), sample_ids, feature_ids, pl.Float64, ts, tf)
    frame = _rechunked(frame, chunk_rows)
    spec = {"X": {"storage": "dense", "dtype": "float64"}, "M": {"storage": "dense" if with_mask else "none"},
            "cells": "all", "tile_samples": ts, "tile_features": tf}
    got = _dense_tiles(frame, spec, sample_ids, feature_ids, (n, f))
    assert np.array_equal(got.X, X, equal_nan=True)
    assert (got.M is None) if M is None else np.array_equal(got.M, M)
    # a cell of s0 (row 2 of the first tile) named s1: not the writer's layout, so the general rebuild must run
    swapped = frame.with_row_index().with_columns(
        pl.when(pl.col("index") == 2).then(pl.lit("s1")).otherwise(pl.col("sample_id").cast(pl.String))
        .cast(pl.Enum(sample_ids)).alias("sample_id")).drop("index")
    assert _dense_tiles(_rechunked(swapped, chunk_rows), spec, sample_ids, feature_ids, (n, f)) is None
