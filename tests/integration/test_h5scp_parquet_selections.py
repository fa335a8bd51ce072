"""Scattered selections of Parquet datasets: the rows asked for, read in few slices.

Each slice of a Parquet file decodes every row group it touches, so rows closer than
``_GAP_ROWS`` are read as one slice and cut in memory (137 scattered samples of a wide file of
one row group were 137 slices, each decoding the whole file).  The values are compared with the
saved matrix cut with numpy, for the long and the wide form, ids in any order and masks, on files
of many row groups (small row groups and tiles here) with gaps below and above the threshold.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from h5scp import Assay, ScpContainer, ScpMatrix
from h5scp.io import formats_parquet, load, save
from h5scp.io import _parquet_layers

N, F = 60, 24


@pytest.fixture(params=["long", "wide"])
def saved(request, tmp_path, monkeypatch):
    monkeypatch.setattr(formats_parquet, "TILE_CELLS", 64)
    monkeypatch.setattr(formats_parquet, "_TILE_FEATURES", 8)
    monkeypatch.setattr(formats_parquet, "ROW_GROUP_ROWS", 16)
    monkeypatch.setattr(_parquet_layers, "_GAP_ROWS", 20)
    rng = np.random.default_rng(3)
    X = rng.random((N, F))
    M = rng.integers(0, 3, (N, F)).astype(np.int8)
    c = ScpContainer(pl.DataFrame({"_index": [f"s{i}" for i in range(N)]}),
                     {"p": Assay(pl.DataFrame({"_index": [f"f{j}" for j in range(F)]}), {"raw": ScpMatrix(X, M)})})
    path = tmp_path / "c.parquet"
    save(c, path, compression=None, layout=request.param)
    return path, X, M


@pytest.mark.parametrize("seed", range(8))
def test_scattered_rows_and_columns_equal_numpy(saved, seed):
    path, X, M = saved
    rng = np.random.default_rng(seed)
    rows = rng.choice(N, int(rng.integers(1, N)), replace=False)
    cols = rng.choice(F, int(rng.integers(1, F)), replace=False)
    samples, features = [f"s{i}" for i in rows], [f"f{j}" for j in cols]
    if seed % 2:
        rows, samples = np.sort(rows), np.isin(np.arange(N), rows)
    layer = load(path, samples=samples, features=features).assays["p"].layers["raw"]
    np.testing.assert_array_equal(layer.X, X[rows][:, cols])
    np.testing.assert_array_equal(layer.M, M[rows][:, cols])


def test_scattered_rows_of_one_row_group_are_one_slice(tmp_path, monkeypatch):
    """137 rows drawn from a wide file of one row group: one slice of the file, not 137."""
    rng = np.random.default_rng(0)
    n, f = 3000, 30
    X = rng.random((n, f))
    c = ScpContainer(pl.DataFrame({"_index": [f"s{i}" for i in range(n)]}),
                     {"p": Assay(pl.DataFrame({"_index": [f"f{j}" for j in range(f)]}), {"raw": ScpMatrix(X)})})
    path = tmp_path / "w.parquet"
    save(c, path, compression=None, layout="wide")
    slices = []
    original = pl.LazyFrame.slice
    monkeypatch.setattr(pl.LazyFrame, "slice", lambda self, *a, **k: slices.append(a) or original(self, *a, **k))
    rows = np.sort(rng.choice(n, 137, replace=False))
    got = load(path, samples=[f"s{i}" for i in rows]).assays["p"].layers["raw"].X
    np.testing.assert_array_equal(got, X[rows])
    assert len(slices) == 1, slices
