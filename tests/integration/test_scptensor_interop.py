"""Third-party readers (mudata, anndata) open our files and see the same values; the command line."""

from __future__ import annotations

import datetime as dt
import subprocess
import warnings
from decimal import Decimal
import sys

import h5py
import numpy as np
import polars as pl
import pytest

from h5scp import ScpContainer
from h5scp.core.structures import AggregationLink
from h5scp.io import save_hdf5
from h5scp.testing import assert_container_equal, example_container


def _dense(x):
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)


def test_mudata_reads_our_h5mu(tmp_path, container):
    import mudata

    path = tmp_path / "c.h5mu"
    container.save(path)
    assert path.read_bytes()[:6] == b"MuData"
    with mudata.set_options(pull_on_update=False):
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
    assert np.isnan(adata.obs["purity"].tolist()[1:3]).all()  # NaN, and null shown as NaN
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

    # .h5 keeps the exact encodings in the frame: a float column with nulls is ours only
    container.obs = container.obs.drop("purity")
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
        [sys.executable, "-m", "h5scp", *map(str, args)], capture_output=True, text=True, timeout=120
    )


def _main(capsys, *args):
    """The same entry point in this process (fast); returns (status, stdout, stderr)."""
    from h5scp.__main__ import main

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
    assert status == 2 and "--overwrite" in err  # an output that exists: nothing was started
    status, _out, err = _main(capsys, "convert", src, tmp_path / "x.h5mu", "--assay", "proteins")
    assert status == 2 and "only to .h5ad and .zarr" in err


# --------------------------------------------------------------------------- every polars kind


def _nulls(values: list) -> list:
    """Every third row null."""
    return [None if i % 3 == 2 else v for i, v in enumerate(values)]


def _every_kind_container() -> ScpContainer:
    """The example container with one obs column of every polars kind the codecs store."""
    c = example_container()
    n = c.n_samples
    rows = range(n)
    utc = dt.timezone.utc
    kinds = {
        "f32_nan_null": pl.Series(_nulls([float("nan") if i == 0 else i / 4 for i in rows]), dtype=pl.Float32),
        "f64": pl.Series([i / 8 for i in rows], dtype=pl.Float64),
        # older polars releases have no Float16
        **({"f16_null": pl.Series(_nulls([i / 2 for i in rows]), dtype=pl.Float16)} if hasattr(pl, "Float16") else {}),
        "i8_null": pl.Series(_nulls(list(rows)), dtype=pl.Int8),
        "u64": pl.Series([2**63 + i for i in rows], dtype=pl.UInt64),
        "bool_null": pl.Series(_nulls([i % 2 == 0 for i in rows]), dtype=pl.Boolean),
        "str_null": pl.Series(_nulls([f"é {i}" for i in rows]), dtype=pl.String),
        "list": pl.Series(_nulls([list(range(i)) for i in rows]), dtype=pl.List(pl.Int64)),
        "struct": pl.Series(_nulls([{"a": i, "b": f"x{i}"} for i in rows]),
                            dtype=pl.Struct({"a": pl.Int64, "b": pl.String})),
        "binary": pl.Series(_nulls([bytes([i, 0, 255]) for i in rows]), dtype=pl.Binary),
        "null": pl.Series([None] * n, dtype=pl.Null),
        "array": pl.Series(_nulls([[i, i + 1] for i in rows]), dtype=pl.Array(pl.Int16, 2)),
        "decimal": pl.Series(_nulls([Decimal(i) / 100 for i in rows]), dtype=pl.Decimal(10, 2)),
        "date": pl.Series(_nulls([dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in rows]), dtype=pl.Date),
        "datetime_tz": pl.Series(_nulls([dt.datetime(2024, 5, 1, tzinfo=utc) + dt.timedelta(hours=i) for i in rows]),
                                 dtype=pl.Datetime("us", "Europe/Paris")),
        "duration": pl.Series(_nulls([dt.timedelta(seconds=i) for i in rows]), dtype=pl.Duration("ms")),
        "time": pl.Series(_nulls([dt.time(i, 30) for i in rows]), dtype=pl.Time),
        "enum": pl.Series(_nulls([["a", "b"][i % 2] for i in rows]), dtype=pl.Enum(["a", "b", "c"])),
        "categorical": pl.Series(_nulls([["x", "y"][i % 2] for i in rows]), dtype=pl.Categorical),
    }
    c.obs = c.obs.with_columns(**kinds)
    proteins = c.assays["proteins"]
    proteins.var = proteins.var.with_columns(
        nested=pl.Series([[1.5], None, [], [2.0, float("nan")]], dtype=pl.List(pl.Float64)),
        blob=pl.Series([b"\x01", b"", None, b"\xff\x00"], dtype=pl.Binary),
    )
    # matrix metadata and a link column with no AnnData encoding either
    proteins.layers["log"].metadata["mixed"] = [1, "x", None]
    link = c.links[0]
    weights = pl.Series([None if i % 2 else i / 2 for i in range(link.linkage.height)], dtype=pl.Float64)
    c.links[0] = AggregationLink(link.source_assay, link.target_assay, link.linkage.with_columns(weight=weights))
    return c


def _shown(values) -> list:
    """Values as a pandas-backed reader shows them, missing ones (NA, NaN, None) as None."""
    import pandas as pd

    return [None if not isinstance(v, (list, dict)) and pd.isna(v) else v for v in values]


def _expected_obs(c: ScpContainer) -> dict[str, list]:
    """What AnnData shows for each obs column, derived by hand from the planted values."""
    n = c.n_samples
    rows = range(n)
    null = [i % 3 == 2 for i in rows]
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

    def masked(values):
        return [None if missing else v for v, missing in zip(values, null)]

    return {
        "batch": [f"B{i % 2}" for i in rows],
        "n_cells": [i if i % 3 else None for i in rows],
        "purity": [0.0, None, None] + [i / 10 for i in range(3, n)],  # NaN and null both NaN
        "is_blank": [i == 0 for i in rows],
        "group": [["ctrl", "treat"][i % 2] for i in rows],
        "run_date": [(dt.date(2025, 1, 1) - dt.date(1970, 1, 1)).days + i for i in rows],
        "f32_nan_null": masked([None] + [i / 4 for i in range(1, n)]),
        "f64": [i / 8 for i in rows],
        "f16_null": masked([i / 2 for i in rows]),
        "i8_null": masked(list(rows)),
        "u64": [2**63 + i for i in rows],
        "bool_null": masked([i % 2 == 0 for i in rows]),
        "str_null": masked([f"é {i}" for i in rows]),
        "list": masked(["[" + ",".join(str(k) for k in range(i)) + "]" for i in rows]),
        "struct": masked([f'{{"a":{i},"b":"x{i}"}}' for i in rows]),
        "binary": masked([f"{i:02x}00ff" for i in rows]),
        "null": [None] * n,
        "array": masked([f"[{i},{i + 1}]" for i in rows]),
        "decimal": masked([f"0.{i:02d}" for i in rows]),
        "date": masked([(dt.date(2020, 1, 1) - dt.date(1970, 1, 1)).days + i for i in rows]),
        "datetime_tz": masked([int((dt.datetime(2024, 5, 1, i, tzinfo=dt.timezone.utc) - epoch).total_seconds()) * 10**6
                               for i in rows]),
        "duration": masked([i * 1000 for i in rows]),
        "time": masked([(i * 3600 + 1800) * 10**9 for i in rows]),
        "enum": masked([["a", "b"][i % 2] for i in rows]),
        "categorical": masked([["x", "y"][i % 2] for i in rows]),
    }


def _check_obs(obs, c: ScpContainer) -> None:
    expected = _expected_obs(c)
    assert list(obs.index) == c.sample_ids.to_list()
    assert list(obs.columns) == [name for name in c.obs.columns if name != c.sample_id_col]
    for name, values in expected.items():
        if name in c.obs.columns:  # f16_null only where polars has Float16
            assert _shown(obs[name].tolist()) == values, name


@pytest.fixture
def every_kind() -> ScpContainer:
    return _every_kind_container()


def test_mudata_reads_every_column_kind(tmp_path, every_kind):
    import mudata

    path = tmp_path / "every.h5mu"
    every_kind.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stricter than the project filters: nothing at all may warn
        with mudata.set_options(pull_on_update=False):
            mdata = mudata.read_h5mu(path)
    _check_obs(mdata.obs, every_kind)
    var = mdata.mod["proteins"].var
    assert _shown(var["nested"].tolist()) == ["[1.5]", None, "[]", "[2.0,NaN]"]
    assert _shown(var["blob"].tolist()) == ["01", "", None, "ff00"]
    assert list(var["gene"]) == every_kind.assays["proteins"].var["gene"].to_list()
    link_weights = mdata.uns["scptensor"]["links"]["0"]["linkage"]["weight"].tolist()
    assert _shown(link_weights) == [None if i % 2 else i / 2 for i in range(len(link_weights))]
    metadata = mdata.mod["proteins"].uns["scptensor"]["metadata"]["log"]
    assert isinstance(metadata, str) and '"mixed": [1, "x", null]' in metadata  # exact JSON text
    assert_container_equal(ScpContainer.load(path), every_kind)


def test_mudata_default_options_warn_only_about_its_own_future_default(tmp_path, every_kind):
    import mudata

    path = tmp_path / "every.h5mu"
    every_kind.save(path)
    # mudata 0.3 announces (FutureWarning, from MuData.update) that 0.4 stops pulling
    # modality columns; that is the only warning reading our file gives
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mdata = mudata.read_h5mu(path)
    assert caught, "mudata no longer warns about pull_on_update: drop this test's expectation"
    for w in caught:
        assert w.category is FutureWarning and "will not pull obs/var columns" in str(w.message), str(w.message)
    _check_obs(mdata.obs, every_kind)


def test_anndata_reads_every_column_kind(tmp_path, every_kind):
    import anndata

    path = tmp_path / "every.h5ad"
    every_kind.save(path, assay="proteins", layer="log")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adata = anndata.read_h5ad(path)
    _check_obs(adata.obs, every_kind)
    assert _shown(adata.var["nested"].tolist()) == ["[1.5]", None, "[]", "[2.0,NaN]"]
    assert adata.X.dtype == np.float64
    assert np.array_equal(adata.X, every_kind.assays["proteins"].layers["log"].X)
    loaded = ScpContainer.load(path)
    expected = ScpContainer(
        every_kind.obs, {"proteins": every_kind.assays["proteins"]}, history=every_kind.history
    )
    assert_container_equal(loaded, expected)


def test_exact_columns_restore_position_and_dtype(tmp_path, every_kind):
    from h5scp.io.exceptions import IOFormatError

    path = tmp_path / "every.h5mu"
    every_kind.save(path)
    loaded = ScpContainer.load(path)
    assert loaded.obs.columns == every_kind.obs.columns
    assert loaded.obs.schema == every_kind.obs.schema
    # NaN and null stay apart although the readable column shows both as NaN
    assert loaded.obs["f32_nan_null"].is_nan().to_list()[:3] == [True, False, None]
    # a damaged frame record is refused by name
    with h5py.File(path, "r+") as f:
        del f["uns/scptensor/frames/obs"]
        f["uns/scptensor/frames"].create_dataset("obs", data=np.arange(5, dtype=np.uint8))
        f["uns/scptensor/frames/obs"].attrs["encoding-type"] = "array"
        f["uns/scptensor/frames/obs"].attrs["encoding-version"] = "0.2.0"
    with pytest.raises(IOFormatError, match="frame record cannot be read") as info:
        ScpContainer.load(path, verify=False)  # the edit also breaks the checksum, checked by default
    assert str(path) in str(info.value) and "/obs" in str(info.value)


def test_the_original_anndata_layout_reads_through_the_one_mapping_without_anndata(tmp_path, monkeypatch):
    # files of the original's to_scanpy/write_h5ad layout read through h5scp.io.foreign's mapping of
    # AnnData files: anndata itself is needed to write them, not to read them
    anndata = pytest.importorskip("anndata")
    from h5scp.january.scanpy_h5ad import load_scanpy_h5ad, read_scanpy_h5ad, save_scanpy_h5ad, write_h5ad

    c = example_container()
    c.obs = c.obs.drop("run_date")  # anndata writes no date column
    write_h5ad(c, tmp_path / "w.h5ad", assay_name="proteins", layer_name="raw")
    save_scanpy_h5ad(c, tmp_path / "s.h5ad", assay_name="proteins", layer_name="raw")
    by_anndata = anndata.read_h5ad(tmp_path / "w.h5ad")
    monkeypatch.setitem(sys.modules, "anndata", None)  # import anndata now fails
    got = read_scanpy_h5ad(tmp_path / "w.h5ad", assay_name="p", layer_name="raw")
    again = load_scanpy_h5ad(tmp_path / "s.h5ad")
    raw = c.assays["proteins"].layers["raw"]
    for loaded, layer in ((got.assays["p"].layers["raw"], "raw"), (again.assays["proteins"].layers["X"], "X")):
        np.testing.assert_array_equal(loaded.X, raw.X)
        np.testing.assert_array_equal(loaded.M, raw.M)
        assert loaded.M.dtype == np.int8
    np.testing.assert_array_equal(got.assays["p"].layers["raw"].X, by_anndata.X)
    assert got.sample_ids.to_list() == c.sample_ids.to_list() == by_anndata.obs_names.tolist()
    assert [h.action for h in got.history] == [h.action for h in c.history] + ["from_scanpy"]
    assert again.history == c.history  # parameters exact, numpy values included
