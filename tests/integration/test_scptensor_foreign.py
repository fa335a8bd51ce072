"""Files written by anndata and mudata themselves load into containers; one loader for every format."""

from __future__ import annotations

import logging
import shutil

import h5py
import numpy as np
import pandas as pd
import polars as pl
import pytest
from scipy import sparse

from h5scp import ScpContainer
from h5scp.core.structures import AggregationLink, Assay, ScpMatrix
from h5scp.io import load_h5ad, load_h5mu, load_hdf5, save_h5ad, save_hdf5
from h5scp.io.exceptions import IOFormatError
from h5scp.testing import assert_container_equal

anndata = pytest.importorskip("anndata")
mudata = pytest.importorskip("mudata")


def _obs_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cluster": pd.Categorical(["b", "a", "b", "c"], categories=["a", "b", "c"]),
            "n_genes": pd.array([10, None, 30, 40], dtype="Int64"),
            "is_doublet": pd.array([True, None, False, False], dtype="boolean"),
            "donor": ["d1", "d1", "d2", "d2"],
            "purity": [0.5, np.nan, 0.25, 1.0],
        },
        index=pd.Index(["c1", "c2", "c3", "c4"], name="cell"),
    )


def _foreign_anndata() -> anndata.AnnData:
    var = pd.DataFrame({"gene": ["ALB", "APOA1", "TTR"]}, index=["P1", "P2", "P3"])
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    X[1, 2] = np.nan
    counts = sparse.csr_matrix(np.array([[1, 0, 0], [0, 2, 0], [0, 0, 0], [3, 0, 4]], dtype=np.float64))
    return anndata.AnnData(
        X=X, obs=_obs_frame(), var=var,
        layers={"counts": counts, "scaled": sparse.csc_matrix(counts * 0.5)},
        uns={"method": "scanpy", "params": {"n_top": 3, "weights": np.array([0.5, 0.25])}},
        obsm={"X_pca": np.ones((4, 2))},
    )


def _column(frame: pl.DataFrame, name: str) -> list:
    return frame.get_column(name).to_list()


def test_foreign_h5ad_imports_every_kind_of_column(tmp_path, caplog):
    adata = _foreign_anndata()
    path = tmp_path / "scanpy.h5ad"
    adata.write_h5ad(path)
    with caplog.at_level(logging.WARNING, logger="h5scp.io.foreign"):
        c = load_hdf5(path)
    assert "obsm/X_pca" in caplog.text
    assert c.sample_id_col == "cell" and list(c.assays) == ["main"]
    assert c.obs.columns == ["cell", "cluster", "n_genes", "is_doublet", "donor", "purity"]
    assert _column(c.obs, "cell") == ["c1", "c2", "c3", "c4"]
    assert c.obs.schema["cluster"] == pl.Categorical and _column(c.obs, "cluster") == ["b", "a", "b", "c"]
    assert _column(c.obs, "n_genes") == [10, None, 30, 40]
    assert _column(c.obs, "is_doublet") == [True, None, False, False]
    assert _column(c.obs, "donor") == ["d1", "d1", "d2", "d2"]
    purity = c.obs.get_column("purity").to_numpy()
    assert np.isnan(purity[1]) and purity[[0, 2, 3]].tolist() == [0.5, 0.25, 1.0]
    assay = c.assays["main"]
    assert assay.feature_id_col == "_index" and _column(assay.var, "_index") == ["P1", "P2", "P3"]
    assert _column(assay.var, "gene") == ["ALB", "APOA1", "TTR"]
    assert list(assay.layers) == ["X", "counts", "scaled"]
    assert assay.layers["X"].X.dtype == np.float32
    assert np.array_equal(assay.layers["X"].X, adata.X, equal_nan=True)
    assert assay.layers["counts"].X.format == "csr" and assay.layers["scaled"].X.format == "csc"
    assert np.array_equal(assay.layers["counts"].X.toarray(), adata.layers["counts"].toarray())
    assert np.array_equal(assay.layers["scaled"].X.toarray(), adata.layers["scaled"].toarray())
    assert all(m.M is None for m in assay.layers.values())
    (entry,) = c.history
    assert entry.action == "import_anndata"
    assert entry.params["not_imported"] == ["obsm/X_pca (4 x 2 float64)"]
    assert entry.params["uns"]["method"] == "scanpy"
    assert entry.params["uns"]["params"]["n_top"] == 3
    assert np.array_equal(entry.params["uns"]["params"]["weights"], [0.5, 0.25])
    # the same through every entry point, whatever the extension
    renamed = tmp_path / "scanpy.dat"
    shutil.copy(path, renamed)
    for loaded in (ScpContainer.load(path), load_h5ad(path), ScpContainer.load(renamed)):
        assert_container_equal(loaded, c, check_history=False)
    assert list(load_h5ad(path, assay="rna").assays) == ["rna"]
    # and the imported container saves and loads exactly
    save_hdf5(c, tmp_path / "imported.h5")
    assert_container_equal(load_hdf5(tmp_path / "imported.h5"), c)


def test_foreign_h5mu_imports_one_assay_per_modality(tmp_path):
    prot = _foreign_anndata()
    # the second modality lists the same cells in another order
    order = [2, 0, 3, 1]
    pep = anndata.AnnData(
        X=np.arange(8, dtype=np.float64).reshape(4, 2)[order],
        obs=pd.DataFrame({"depth": [1.0, 2.0, 3.0, 4.0]}, index=prot.obs_names[order]),
        var=pd.DataFrame(index=["p1", "p2"]),
    )
    with mudata.set_options(pull_on_update=False):
        mdata = mudata.MuData({"prot": prot, "pep": pep})
    path = tmp_path / "both.h5mu"
    mdata.write(path)
    c = load_hdf5(path)
    assert list(c.assays) == list(mdata.mod)
    assert _column(c.obs, c.sample_id_col) == list(mdata.obs_names)
    ids = list(mdata.obs_names)
    rows = [list(pep.obs_names).index(x) for x in ids]
    assert np.array_equal(c.assays["pep"].layers["X"].X, pep.X[rows])
    rows = [list(prot.obs_names).index(x) for x in ids]
    assert np.array_equal(c.assays["prot"].layers["X"].X, prot.X[rows], equal_nan=True)
    assert "mod/pep/obs/depth" in c.history[0].params["not_imported"]
    assert_container_equal(load_h5mu(path), c, check_history=False)
    # a modality lacking some samples: its rows for them are NaN, mask code UNCERTAIN ("not measured")
    with mudata.set_options(pull_on_update=False):
        partial = mudata.MuData({"prot": prot, "pep": pep[:2].copy()})
    partial.write(tmp_path / "partial.h5mu")
    c = load_hdf5(tmp_path / "partial.h5mu")
    ids = list(partial.obs_names)
    assert _column(c.obs, c.sample_id_col) == ids
    held = [ids.index(x) for x in pep.obs_names[:2]]
    lacking = [i for i in range(len(ids)) if i not in held]
    pep_raw = c.assays["pep"].layers["X"]
    assert np.array_equal(pep_raw.X[held], pep.X[:2])
    assert np.isnan(pep_raw.X[lacking]).all() and (pep_raw.M[lacking] == 6).all() and (pep_raw.M[held] == 0).all()
    assert c.assays["prot"].layers["X"].M is None
    assert "mod/pep: 2 of 4 samples not measured (NaN, mask code UNCERTAIN)" in c.history[0].params["not_imported"]


# What anndata keeps of a frame it re-saves: text with repeated values becomes categorical, and a
# date column (a typed encoding of ours over an integer array) comes back as its day numbers.
_ANNDATA_KEEPS = [(pl.String, pl.Categorical), (pl.Date, pl.Int32)]


def _as_anndata_keeps(expected: pl.DataFrame, loaded: pl.DataFrame) -> pl.DataFrame:
    casts = []
    for name, dtype in expected.schema.items():
        found = loaded.schema.get(name)
        if found is not None and any(dtype == a and found == b for a, b in _ANNDATA_KEEPS):
            casts.append(pl.col(name).cast(found))
    return expected.with_columns(casts)


def _expected_after_resave(expected: ScpContainer, loaded: ScpContainer) -> ScpContainer:
    assays = {}
    for name, a in expected.assays.items():
        # anndata writes mappings with sorted keys: the order of matrix metadata is what it kept
        layers = {
            k: ScpMatrix(m.X, m.M, {key: m.metadata[key] for key in loaded.assays[name].layers[k].metadata})
            for k, m in a.layers.items()
        }
        assays[name] = Assay(_as_anndata_keeps(a.var, loaded.assays[name].var), layers,
                             feature_id_col=a.feature_id_col)
    links = [
        AggregationLink(e.source_assay, e.target_assay, _as_anndata_keeps(e.linkage, got.linkage))
        for e, got in zip(expected.links, loaded.links)
    ]
    return ScpContainer(_as_anndata_keeps(expected.obs, loaded.obs), assays, history=expected.history,
                        links=links, sample_id_col=expected.sample_id_col)


def test_our_files_resaved_by_anndata_and_mudata_load_back(tmp_path, container):
    ours = tmp_path / "ours.h5ad"
    save_h5ad(container, ours, assay="peptides")
    resaved = tmp_path / "resaved.h5ad"
    anndata.read_h5ad(ours).write_h5ad(resaved)  # under anndata's default settings
    loaded = load_hdf5(resaved)
    one = ScpContainer(container.obs, {"peptides": container.assays["peptides"]}, history=container.history)
    assert_container_equal(loaded, _expected_after_resave(one, loaded))
    ours_mu = tmp_path / "ours.h5mu"
    container.save(ours_mu)
    resaved_mu = tmp_path / "resaved.h5mu"
    with mudata.set_options(pull_on_update=False):
        mudata.read_h5mu(ours_mu).write(resaved_mu)
    loaded = ScpContainer.load(resaved_mu)
    assert_container_equal(loaded, _expected_after_resave(container, loaded))


def test_load_hdf5_opens_every_format_by_content(tmp_path, container):
    for name, options in (("c.h5mu", {}), ("c.h5ad", {"assay": "proteins"}), ("c.h5", {})):
        path = tmp_path / name
        container.save(path, **options)
        renamed = tmp_path / (name + ".bin")
        shutil.copy(path, renamed)
        assert_container_equal(load_hdf5(renamed), ScpContainer.load(path))


@pytest.mark.parametrize("ext", [".h5ad", ".h5mu", ".parquet"])
def test_save_hdf5_refuses_the_extension_of_another_format(tmp_path, container, ext):
    path = tmp_path / f"c{ext}"
    with pytest.raises(ValueError, match=rf"'\{ext}' names") as info:
        save_hdf5(container, path)
    assert str(path) in str(info.value)
    assert not path.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("id_col", ["_index", "cell"])
def test_anndata_and_mudata_name_the_index_after_the_id_column(tmp_path, id_col):
    obs = pl.DataFrame({id_col: ["s1", "s2"], "batch": ["a", "b"]})
    var = pl.DataFrame({"protein": ["P1", "P2", "P3"]})
    c = ScpContainer(obs, {"prot": Assay(var, {"raw": ScpMatrix(np.ones((2, 3)))}, feature_id_col="protein")},
                     sample_id_col=id_col)
    c.save(tmp_path / "c.h5ad")
    c.save(tmp_path / "c.h5mu")
    adata = anndata.read_h5ad(tmp_path / "c.h5ad")
    with mudata.set_options(pull_on_update=False):
        mdata = mudata.read_h5mu(tmp_path / "c.h5mu")
    # AnnData shows row labels stored as "_index" as an unnamed index
    expected = None if id_col == "_index" else id_col
    assert adata.obs.index.name == expected and mdata.obs.index.name == expected
    assert adata.var.index.name == "protein" and mdata.mod["prot"].var.index.name == "protein"
    for frame in (adata.obs, mdata.obs):
        assert "%5Findex" not in (frame.index.name or "") and list(frame.columns[:1]) == ["batch"]
    assert_container_equal(ScpContainer.load(tmp_path / "c.h5mu"), c)


def test_frames_written_with_the_escaped_index_name_still_read(tmp_path):
    from h5stream.elements import read_elem, write_elem

    frame = pl.DataFrame({"_index": ["a", "b"], "x": [1, 2]})
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as f:
        write_elem(f, "obs", frame, index="_index")
        # the layout files of the previous writer hold: the id column under "%5Findex"
        f["obs"].move("_index", "%5Findex")
        f["obs"].attrs["_index"] = "%5Findex"
    with h5py.File(path, "r") as f:
        back = read_elem(f["obs"])
    assert back.columns == ["_index", "x"] and back.equals(frame)
