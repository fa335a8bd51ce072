"""Third-party readers (mudata, anndata) open our files and see the same values; the command line."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import polars as pl
import pytest

from scptensor import ScpContainer
from scptensor.io import save_hdf5
from scptensor.testing import assert_container_equal, example_container


@pytest.fixture
def container() -> ScpContainer:
    c = example_container()
    # the readers below build pandas frames: keep obs to dtypes pandas and AnnData share
    c.obs = c.obs.drop("run_date").with_columns(pl.col("purity").fill_null(0.5))
    return c


def _dense(x):
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)


def test_mudata_reads_our_h5mu(tmp_path, container):
    import mudata

    path = tmp_path / "c.h5mu"
    container.save(path)
    assert path.read_bytes()[:6] == b"MuData"
    mdata = mudata.read_h5mu(path)
    assert list(mdata.mod) == ["proteins", "peptides"]
    assert list(mdata.obs_names) == container.sample_ids.to_list()
    assert mdata.obs["batch"].tolist() == container.obs["batch"].to_list()
    assert mdata.obs["n_cells"].isna().tolist() == container.obs["n_cells"].is_null().to_list()
    for name, assay in container.assays.items():
        adata = mdata.mod[name]
        assert list(adata.var_names) == assay.feature_ids.to_list()
        assert list(adata.obs_names) == container.sample_ids.to_list()
        first, *others = list(assay.layers)
        expected = assay.layers[first].X
        assert adata.X.dtype == expected.dtype
        assert np.array_equal(_dense(adata.X), _dense(expected), equal_nan=True)
        for layer in others:
            assert np.array_equal(_dense(adata.layers[layer]), _dense(assay.layers[layer].X), equal_nan=True)
        masks = adata.uns["scptensor"]["masks"]
        for layer, matrix in assay.layers.items():
            if matrix.M is not None:
                assert np.array_equal(_dense(masks[layer]), _dense(matrix.M))
                assert _dense(masks[layer]).dtype == np.int8
    assert mdata.mod["proteins"].var["gene"].tolist() == container.assays["proteins"].var["gene"].to_list()
    history = mdata.uns["scptensor"]["history"]
    assert list(history["records"]["action"]) == [h.action for h in container.history]
    assert mdata.n_vars == sum(a.n_features for a in container.assays.values())


def test_anndata_reads_our_h5ad(tmp_path, container):
    import anndata

    path = tmp_path / "p.h5ad"
    container.save(path, assay="peptides", layer="norm")
    adata = anndata.read_h5ad(path)
    peptides = container.assays["peptides"]
    assert list(adata.obs_names) == container.sample_ids.to_list()
    assert list(adata.var_names) == peptides.feature_ids.to_list()
    assert adata.X.format == "csc" and np.array_equal(adata.X.toarray(), peptides.layers["norm"].X.toarray())
    assert np.array_equal(adata.layers["raw"].toarray(), peptides.layers["raw"].X.toarray())
    assert np.array_equal(adata.uns["scptensor"]["masks"]["raw"].toarray(), peptides.layers["raw"].M.toarray())
    assert adata.obs["purity"].tolist()[3:] == container.obs["purity"].to_list()[3:]
    # and it loads back as a one-assay container
    loaded = ScpContainer.load(path)
    assert list(loaded.assays) == ["peptides"]
    assert_container_equal(
        loaded, ScpContainer(container.obs, {"peptides": peptides}, history=container.history)
    )


def test_h5ad_needs_an_assay_choice(tmp_path, container):
    with pytest.raises(ValueError, match="one assay"):
        container.save(tmp_path / "x.h5ad")
    with pytest.raises(ValueError, match="'nope'"):
        container.save(tmp_path / "x.h5ad", assay="nope")


def test_anndata_read_elem_reads_our_h5_elements(tmp_path, container):
    from anndata.io import read_elem

    path = tmp_path / "c.h5"
    save_hdf5(container, path)
    with h5py.File(path, "r") as f:
        obs = read_elem(f["obs"])
        assert list(obs.index) == container.sample_ids.to_list()
        assert obs["batch"].tolist() == container.obs["batch"].to_list()
        x = read_elem(f["assays/proteins/layers/raw/X"])
        assert x.dtype == np.float32
        assert np.array_equal(x, container.assays["proteins"].layers["raw"].X, equal_nan=True)
        csr = read_elem(f["assays/peptides/layers/raw/X"])
        assert np.array_equal(csr.toarray(), container.assays["peptides"].layers["raw"].X.toarray())
        var = read_elem(f["assays/peptides/var"])
        assert list(var.index) == container.assays["peptides"].feature_ids.to_list()


def _cli(*args):
    """The real command line in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "scptensor", *map(str, args)], capture_output=True, text=True, timeout=120
    )


def _main(capsys, *args):
    """The same entry point in this process (fast); returns (status, stdout, stderr)."""
    from scptensor.__main__ import main

    status = main([str(a) for a in args])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_cli_convert_and_inspect(tmp_path, container, capsys):
    src = tmp_path / "c.h5"
    save_hdf5(container, src)
    mu = tmp_path / "c.h5mu"
    status, out, err = _main(capsys, "convert", src, mu)
    assert status == 0, err
    assert f"wrote {mu} (MuData)" in out
    assert_container_equal(ScpContainer.load(mu), container)
    back = tmp_path / "back.hdf5"
    assert _main(capsys, "convert", mu, back, "--compression", "none")[0] == 0
    assert_container_equal(ScpContainer.load(back), container)
    with h5py.File(back, "r") as f:
        assert f["assays/proteins/layers/raw/X"].compression is None
    ad_path = tmp_path / "prot.h5ad"
    status, _out, err = _main(capsys, "convert", src, ad_path, "--assay", "proteins", "--layer", "log")
    assert status == 0, err
    assert list(ScpContainer.load(ad_path).assays) == ["proteins"]

    done = _cli("inspect", mu)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "MuData" in out and "samples: 6" in out
    assert "proteins: 4 features" in out and "peptides: 12 features" in out
    assert "raw: 6 x 4 dense float32, mask dense int8" in out
    assert "sparse CSC" in out and "history: 2 entries" in out and "peptides -> proteins" in out


def test_cli_bad_input(tmp_path, container, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    status, _out, err = _main(capsys, "inspect", bad)
    assert status == 2 and "not an HDF5 file" in err and str(bad) in err
    src = tmp_path / "c.h5"
    save_hdf5(container, src)
    status, _out, err = _main(capsys, "convert", src, tmp_path / "out.txt")
    assert status == 2 and "supported" in err
    status, _out, err = _main(capsys, "convert", src, src)
    assert status == 1 and "overwrite" in err
    status, _out, err = _main(capsys, "convert", src, tmp_path / "x.h5mu", "--assay", "proteins")
    assert status == 2 and "only to .h5ad" in err
