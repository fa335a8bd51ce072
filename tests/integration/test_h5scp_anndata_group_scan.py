"""An AnnData group is looked at once: what ``scan`` finds in files made with plain h5py and with anndata
itself, and a load that reads each root attribute of a group at most once."""

from __future__ import annotations

import collections
import json

import h5py
import numpy as np
import pandas as pd
import pytest

from h5stream import batch_attrs, checksums
from h5scp.io import load_hdf5
from h5scp.io._anndata_group import mod_order, scan

anndata = pytest.importorskip("anndata")
mudata = pytest.importorskip("mudata")


def _plain_group(path):
    """An AnnData-like root written with plain h5py: a null X, two layers named by a keys attribute, obsm and raw."""
    with h5py.File(path, "w") as f:
        f.create_dataset("X", shape=None, dtype="f8")  # an HDF5 null dataspace: anndata's missing X
        layers = f.create_group("layers")
        layers.create_dataset("a%2Fb", data=np.zeros((3, 2)))
        layers.create_dataset("counts", data=np.ones((3, 2), dtype=np.int32))
        layers.attrs["h5stream:keys"] = json.dumps(["counts", "a/b"])
        obsm = f.create_group("obsm")
        obsm.create_dataset("X_pca", data=np.zeros((3, 5), dtype=np.float32))
        raw = f.create_group("raw")
        raw.attrs["encoding-type"] = "dict"
        raw.create_dataset("x", data=np.zeros(2))
        f.create_group("varp").attrs["encoding-type"] = "dict"
        f.create_group("uns").create_group("scptensor")


def test_scan_of_a_group_written_with_plain_h5py(tmp_path):
    path = tmp_path / "plain.h5"
    _plain_group(path)
    with h5py.File(path, "r") as f:
        view = scan(f, "mod/m/")
        assert view.x is None  # the null dataspace is no X
        assert list(view.members) == ["a%2Fb", "counts"]
        assert {k: v.name for k, v in view.layers.items()} == {"counts": "/layers/counts", "a/b": "/layers/a%2Fb"}
        assert list(view.foreign_layers) == ["counts", "a/b"]
        assert view.ours
        assert view.unmapped == ("mod/m/obsm/X_pca (3 x 5 float32)", "mod/m/raw (dict of 1 members)")
        assert view.obs_members is None  # no obs frame


def test_scan_of_a_file_anndata_wrote(tmp_path):
    obs = pd.DataFrame({"batch": pd.Categorical(["x", "y", "x"]), "depth": [1.0, 2.0, 3.0]},
                       index=pd.Index(["c1", "c2", "c3"], name="cell"))
    adata = anndata.AnnData(np.arange(6, dtype=np.float32).reshape(3, 2), obs=obs,
                            var=pd.DataFrame(index=["g1", "g2"]),
                            layers={"X": np.zeros((3, 2)), "raw_counts": np.ones((3, 2))})
    adata.obsm["umap"] = np.zeros((3, 2))
    path = tmp_path / "a.h5ad"
    adata.write_h5ad(path)
    with h5py.File(path, "r") as f:
        view = scan(f)
        assert view.x is not None and view.x.name == "/X"
        assert not view.ours
        assert {k: v.name for k, v in view.foreign_layers.items()} == {"X": "/X", "raw_counts": "/layers/raw_counts"}
        assert view.layers["X"].name == "/layers/X"  # (its name is taken by X: left out of foreign_layers)
        assert view.unmapped == ("obsm/umap (3 x 2 float64)",)
        assert list(view.obs_members) == ["cell", "batch", "depth"]


def test_mod_order_of_a_file_mudata_wrote(tmp_path):
    a = anndata.AnnData(np.zeros((2, 1)), obs=pd.DataFrame(index=["c1", "c2"]), var=pd.DataFrame(index=["g"]))
    b = anndata.AnnData(np.zeros((2, 1)), obs=pd.DataFrame(index=["c1", "c2"]), var=pd.DataFrame(index=["p"]))
    path = tmp_path / "m.h5mu"
    mudata.MuData({"rna": a, "adt": b}).write(path)
    with h5py.File(path, "r") as f:
        assert mod_order(f) == [m.decode() if isinstance(m, bytes) else str(m) for m in f["mod"].attrs["mod-order"]]
        assert sorted(mod_order(f)) == ["adt", "rna"]


def test_a_load_reads_each_attribute_of_a_group_once(tmp_path, monkeypatch):
    adata = anndata.AnnData(np.arange(12, dtype=np.float32).reshape(4, 3),
                            obs=pd.DataFrame({"batch": ["a", "b", "a", "b"]}, index=[f"c{i}" for i in range(4)]),
                            var=pd.DataFrame(index=["g1", "g2", "g3"]),
                            layers={"one": np.ones((4, 3)), "two": np.zeros((4, 3))})
    h5ad = tmp_path / "a.h5ad"
    adata.write_h5ad(h5ad)
    h5mu = tmp_path / "m.h5mu"
    mdata = mudata.MuData({"rna": adata})
    mdata.obs["batch"] = adata.obs["batch"].to_numpy()  # a column of the root's obs too
    mdata.write(h5mu)
    reads = collections.Counter()
    batched = collections.Counter()
    attr_value, read_values = checksums.attr_value, batch_attrs.read_values

    def counted(obj, name, *args, **kwargs):
        reads[(obj.name, name)] += 1
        return attr_value(obj, name, *args, **kwargs)

    def counted_pass(objs, read_left):  # every attribute of each object, in one pass
        for obj in objs:
            batched[obj.name] += 1
        return read_values(objs, read_left)

    monkeypatch.setattr(checksums, "attr_value", counted)
    monkeypatch.setattr(batch_attrs, "read_values", counted_pass)
    for path, options in ((h5ad, {}), (h5ad, {"obs_columns": ["batch"]}), (h5mu, {}), (h5mu, {"obs_columns": ["batch"]})):
        reads.clear()
        batched.clear()
        loaded = load_hdf5(path, **options)
        assert list(next(iter(loaded.assays.values())).layers) == ["X", "one", "two"]
        # the root's encoding-type is read by the format's checks before the load; every other attribute once,
        # alone or in its object's one pass
        repeated = {k: n for k, n in reads.items() if n > 1 and k != ("/", "encoding-type")}
        assert repeated == {}, (path, options)
        # (a MuData load reads the root's row labels to match the modalities' rows, then with the whole obs)
        again = {"/obs/_index"} if path == h5mu else set()
        assert {k: n for k, n in batched.items() if n > 1 and k not in again} == {}, (path, options)
        assert not [k for k in reads if k[0] in batched], (path, options)
        assert any(name.endswith("layers") for name in batched)  # (the layers' keys were looked for)
