"""Files anndata and mudata write themselves load, whole and in part, equal to ``adata[rows, cols]``.

Every obs/var column kind anndata writes (categoricals of int, bool, float, text and ordered
categories, unused categories, missing values; nullable integers and booleans; text arrays;
numbers and booleans), with ``obsm``/``varm`` data frames, sparse layers, ``uns`` and ``raw``
beside them.  The expected values come from anndata's own subset of the object it wrote.  What a
polars frame cannot hold (a compound or object-reference column, which a file may carry) is
refused naming the column, and the other columns still load.
"""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
from scipy import sparse

ad = pytest.importorskip("anndata")
md = pytest.importorskip("mudata")
pd = pytest.importorskip("pandas")

from h5scp.io import load  # noqa: E402
from h5scp.io.exceptions import IOFormatError  # noqa: E402

N, F = 24, 7


def _columns(rng, n: int) -> dict:
    return {
        "cat_int": pd.Categorical(rng.integers(0, 4, n)),
        "cat_bool": pd.Categorical(rng.integers(0, 2, n).astype(bool)),
        "cat_float": pd.Categorical(rng.integers(0, 3, n) * 0.5),
        "cat_text": pd.Categorical(rng.choice(["a", "b", "c"], n)),
        "cat_ordered": pd.Categorical(rng.choice(["lo", "mid", "hi"], n), categories=["lo", "mid", "hi"],
                                      ordered=True),
        "cat_missing": pd.Categorical((["x", None] * n)[:n]),
        "cat_int_unused": pd.Categorical(rng.integers(1, 3, n), categories=[1, 2, 3, 9]),
        "nullable_int": pd.array(([7, None] * n)[:n], dtype="Int64"),
        "nullable_uint8": pd.array(([3, None] * n)[:n], dtype="UInt8"),
        "nullable_bool": pd.array(([True, None] * n)[:n], dtype="boolean"),
        "text": np.array([f"t{i}" for i in range(n)], dtype=object),
        "int": np.arange(n, dtype=np.int32),
        "float": np.linspace(0, 1, n),
        "bool": np.arange(n) % 3 == 0,
    }


def _written(tmp_path, rng):
    obs = pd.DataFrame(_columns(rng, N), index=[f"c{i}" for i in range(N)])
    var = pd.DataFrame(_columns(rng, F + 1), index=[f"g{j}" for j in range(F + 1)]).iloc[:F]
    X = rng.random((N, F)).astype(np.float32)
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.layers["counts"] = sparse.csr_matrix(rng.integers(0, 3, (N, F)).astype(np.float64))
    adata.obsm["frame"] = pd.DataFrame({"u": np.arange(N), "v": pd.Categorical(["p", "q"] * (N // 2))},
                                       index=adata.obs_names)
    adata.varm["frame"] = pd.DataFrame({"w": np.arange(F)}, index=adata.var_names)
    adata.obsm["pca"] = rng.random((N, 2))
    adata.uns["params"] = {"k": 3, "where": "lab"}
    adata.raw = adata.copy()
    path = tmp_path / "a.h5ad"
    adata.write_h5ad(path)
    return adata, path


def _plain(value):
    """A pandas or polars value as a plain Python value (missing: None)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _assert_frame(got, expected, id_col: str) -> None:
    assert got.get_column(id_col).to_list() == list(expected.index)
    for name in expected.columns:
        want = [_plain(v) for v in expected[name].astype(object)]
        assert [_plain(v) for v in got.get_column(name).to_list()] == want, name


def _dense(m):
    return m.toarray() if sparse.issparse(m) else np.asarray(m)


def _assert_like(container, expected) -> None:
    _assert_frame(container.obs, expected.obs, container.sample_id_col)
    assay = container.assays["main"]
    _assert_frame(assay.var, expected.var, assay.feature_id_col)
    layers = assay.layers
    assert np.array_equal(_dense(layers["X"].X), _dense(expected.X))
    assert sparse.issparse(layers["counts"].X)
    assert np.array_equal(_dense(layers["counts"].X), _dense(expected.layers["counts"]))


def test_every_column_kind_anndata_writes_loads_whole(tmp_path):
    adata, path = _written(tmp_path, np.random.default_rng(0))
    container = load(path)
    _assert_like(container, adata)
    schema = container.obs.schema
    assert schema["cat_int"].is_integer() and schema["cat_float"].is_float()
    assert str(schema["cat_bool"]) == "Boolean" and str(schema["cat_text"]) == "Categorical"
    notes = str(container.history[-1].params)
    assert "cat_int_unused" in notes and "9" in notes  # the unused category is named for the history


@pytest.mark.parametrize("seed", range(4))
def test_a_partial_load_equals_anndatas_own_subset(tmp_path, seed):
    rng = np.random.default_rng(seed)
    adata, path = _written(tmp_path, rng)
    rows = list(rng.choice(adata.obs_names, int(rng.integers(1, N)), replace=False))
    cols = list(rng.choice(adata.var_names, int(rng.integers(1, F)), replace=False))
    _assert_like(load(path, samples=rows, features=cols), adata[rows, cols])


def test_mudata_written_by_mudata_loads_whole_and_in_part(tmp_path):
    rng = np.random.default_rng(5)
    ids = [f"c{i}" for i in range(N)]

    def modality(k: int, rows: list[str], prefix: str):
        return ad.AnnData(X=rng.random((len(rows), k)), obs=pd.DataFrame(index=rows),
                          var=pd.DataFrame(_columns(rng, k), index=[f"{prefix}{j}" for j in range(k)]))

    mdata = md.MuData({"prot": modality(5, ids, "P"), "pep": modality(8, ids[3:], "p")})
    for name, values in _columns(rng, N).items():
        mdata.obs[name] = values
    mdata.obsm["frame"] = pd.DataFrame({"u": np.arange(N)}, index=mdata.obs_names)
    path = tmp_path / "m.h5mu"
    mdata.write(path)
    rows = ids[:1] + ids[5:9]
    for container, want in ((load(path), mdata), (load(path, samples=rows, features={"pep": ["p2", "p6"]}),
                                                  mdata[rows])):
        for name in _columns(rng, N):
            assert [_plain(v) for v in container.obs.get_column(name).to_list()] == \
                [_plain(v) for v in want.obs[name].astype(object)], name
        for assay, modality_want in want.mod.items():
            held = list(modality_want.obs_names)
            cols = list(container.assays[assay].var.get_column(container.assays[assay].feature_id_col))
            at = [container.sample_ids.to_list().index(i) for i in held]
            got = _dense(container.assays[assay].layers["X"].X)[at]
            assert np.array_equal(got, _dense(modality_want[:, cols].X))


def test_compound_and_reference_columns_are_refused_by_name(tmp_path):
    adata, path = _written(tmp_path, np.random.default_rng(9))
    with h5py.File(path, "r+") as f:
        obs = f["obs"]
        pair = obs.create_dataset("pair", data=np.array([(i, i / 2) for i in range(N)],
                                                        dtype=[("a", "<i4"), ("b", "<f8")]))
        ref = obs.create_dataset("ref", data=[f["X"].ref] * N, dtype=h5py.ref_dtype)
        for ds in (pair, ref):
            ds.attrs["encoding-type"], ds.attrs["encoding-version"] = "array", "0.2.0"
        order = list(obs.attrs["column-order"])
        for column, found in (("pair", "compound values with fields"), ("ref", "HDF5 object references")):
            obs.attrs["column-order"] = np.array([*order, column], dtype=h5py.string_dtype())
            f.flush()
            with pytest.raises(IOFormatError) as info:
                load(path)
            text = str(info.value)
            assert f"[/obs/{column}]" in text and found in text and "obs_columns=" in text
            assert "corrupted" not in text
        obs.attrs["column-order"] = np.array([*order, "pair", "ref"], dtype=h5py.string_dtype())
    kept = load(path, obs_columns=["cat_int", "text"])
    _assert_frame(kept.obs, adata.obs[["cat_int", "text"]], kept.sample_id_col)
