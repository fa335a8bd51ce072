"""Random edits made by anndata itself to our .h5ad files: the loaded container is what anndata holds,
and every recorded value that is still there comes back exactly (dtypes, masks by id)."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_series_equal

from h5scp import ScpContainer
from h5scp.core.structures import Assay, ScpMatrix
from h5scp.io import load_hdf5, save_h5ad

anndata = pytest.importorskip("anndata")

N_SAMPLES, N_FEATURES = 7, 5


def _container() -> ScpContainer:
    rng = np.random.default_rng(3)
    n = N_SAMPLES
    obs = pl.DataFrame({
        "_index": [f"s{i}" for i in range(n)],
        "group": pl.Series(["a", "b", "a", "c", "b", "a", "c"], dtype=pl.Categorical),
        "depth": pl.Series([1, None, 3, 4, 5, None, 7], dtype=pl.Int32),
        "day": [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(n)],
        "level": pl.Series(["lo", "hi"] * 3 + ["lo"], dtype=pl.Enum(["lo", "hi", "unused"])),
        "purity": pl.Series([0.5, None, float("nan"), 0.25, 1.0, 0.0, None], dtype=pl.Float32),
        "note": pl.Series(["x", None, "y", "y", None, "z", "x"]),
    })
    var = pl.DataFrame({"protein": [f"P{j}" for j in range(N_FEATURES)],
                        "weight": pl.Series(range(N_FEATURES), dtype=pl.UInt16)})
    X = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    M = rng.integers(0, 7, size=(n, N_FEATURES)).astype(np.int8)
    layers = {"raw": ScpMatrix(X, M), "norm": ScpMatrix(X.astype(np.float64) * 2)}
    return ScpContainer(obs, {"proteins": Assay(var, layers, feature_id_col="protein")})


_EDITS = st.fixed_dictionaries({
    "rows": st.one_of(st.none(), st.permutations(range(N_SAMPLES)).flatmap(
        lambda p: st.integers(1, N_SAMPLES).map(lambda k: sorted(p[:k]) if k % 2 else list(p[:k])))),
    "cols": st.one_of(st.none(), st.lists(st.integers(0, N_FEATURES - 1), min_size=1, max_size=N_FEATURES,
                                          unique=True)),
    "add_layer": st.booleans(),
    "drop_norm": st.booleans(),
    "add_column": st.booleans(),
    "replace_depth": st.booleans(),
    "add_obsm": st.booleans(),
})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=_EDITS)
def test_random_anndata_edits_load_back(edits):
    c = _container()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.h5ad"
        save_h5ad(c, path)
        adata = anndata.read_h5ad(path)
        if edits["rows"] is not None:
            adata = adata[edits["rows"]].copy()
        if edits["cols"] is not None:
            adata = adata[:, edits["cols"]].copy()
        if edits["add_layer"]:
            adata.layers["extra"] = np.asarray(adata.X) + 1
        if edits["drop_norm"]:
            del adata.layers["norm"]
        if edits["add_column"]:
            adata.obs["score"] = np.arange(adata.n_obs, dtype=np.float64)
        if edits["replace_depth"]:
            adata.obs["depth"] = np.arange(adata.n_obs) + 100
        if edits["add_obsm"]:
            adata.obsm["X_emb"] = np.zeros((adata.n_obs, 2))
        adata.write_h5ad(path)
        loaded = load_hdf5(path)

    rows = edits["rows"] if edits["rows"] is not None else list(range(N_SAMPLES))
    cols = edits["cols"] if edits["cols"] is not None else list(range(N_FEATURES))
    # the samples, features and layers anndata holds, values as anndata holds them
    assert loaded.sample_ids.to_list() == list(adata.obs_names)
    proteins = loaded.assays["proteins"]
    assert proteins.feature_ids.to_list() == list(adata.var_names)
    expected_layers = ["raw"] + ([] if edits["drop_norm"] else ["norm"]) + (["extra"] if edits["add_layer"] else [])
    assert list(proteins.layers) == expected_layers
    assert np.array_equal(proteins.layers["raw"].X, adata.X)
    for name in expected_layers[1:]:
        assert np.array_equal(proteins.layers[name].X, adata.layers[name])
    # the mask follows its rows and columns by id
    original = c.assays["proteins"]
    assert np.array_equal(proteins.layers["raw"].M, original.layers["raw"].M[np.ix_(rows, cols)])
    # recorded columns still holding their values come back exactly, dtype included
    for name in ("group", "day", "level", "purity", "note"):
        assert_series_equal(loaded.obs.get_column(name), c.obs.get_column(name).gather(rows))
    assert_series_equal(proteins.var.get_column("weight"), original.var.get_column("weight").gather(cols))
    depth = loaded.obs.get_column("depth")
    if edits["replace_depth"]:
        assert depth.dtype == pl.Int32 and depth.to_list() == [100 + i for i in range(len(rows))]
    else:
        assert_series_equal(depth, c.obs.get_column("depth").gather(rows))
    # one history entry names every difference, and only when there is one
    changes = loaded.history[-1].params.get("changes", []) if loaded.history else []
    expect = {
        "samples": rows != list(range(N_SAMPLES)),
        "features": cols != list(range(N_FEATURES)),
        "layers added": edits["add_layer"],
        "layers removed": edits["drop_norm"],
        "columns added": edits["add_column"],
        "values replaced": edits["replace_depth"],
    }
    text = " | ".join(changes)
    for words, present in expect.items():
        assert (words in text) == present, (words, text)
    listed = loaded.history[-1].params.get("not_imported", []) if loaded.history else []
    assert ("obsm/X_emb (%d x 2 float64)" % len(rows) in listed) == edits["add_obsm"]
    assert (len(loaded.history) == 1) == any([*expect.values(), edits["add_obsm"]])
