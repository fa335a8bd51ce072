"""Partial loads: load(path, assays=, layers=, obs_columns=, samples=) in every format.

Expectations are cut from the saved container with plain numpy/polars indexing;
"reads only what is asked" is checked with the bytes the process reads
(``rchar`` of /proc/self/io counts every read call, cached or not) and with
unrequested parts made unreadable.
"""

from __future__ import annotations

import h5py
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy import sparse

from h5scp import Assay, ScpContainer, ScpMatrix
from h5scp.core.structures import values_equal
from h5scp.io import IOFormatError, load, save
from h5scp.io.selection import SelectionError
from h5scp.testing import example_container

FORMATS = [".h5", ".parquet", "wide.parquet", ".h5mu", "foreign.h5mu"]


@pytest.fixture(scope="module")
def container():
    return example_container(n_samples=9, n_proteins=5)


@pytest.fixture(scope="module", params=FORMATS)
def saved(request, tmp_path_factory, container):
    path = tmp_path_factory.mktemp("partial") / ("c" + request.param.replace("wide", "").replace("foreign", ""))
    options = {"layout": "wide"} if request.param.startswith("wide") else {}
    save(container, path, **options)
    if request.param.startswith("foreign"):
        _make_foreign(path)
    return path


def _make_foreign(path) -> None:
    """Our file without the scptensor annotations, nor our checksum manifest: read as a file of another tool."""
    with h5py.File(path, "r+") as f:
        del f.attrs["h5stream_checksums"]
        for group in [f, *(f["mod"][m] for m in (f["mod"] if "mod" in f else []))]:
            del group["uns/scptensor"]


def _dense(values):
    return values.toarray() if sparse.issparse(values) else values


def _check(got: ScpContainer, full: ScpContainer, *, assays, layers, obs_columns, rows) -> None:
    obs = full.obs
    if obs_columns is not None:
        obs = obs.select([c for c in obs.columns if c == full.sample_id_col or c in obs_columns])
    assert_frame_equal(got.obs, obs[rows], check_dtypes=True, check_column_order=True)
    assert list(got.assays) == [a for a in full.assays if assays is None or a in assays]
    for name, assay in got.assays.items():
        source = full.assays[name]
        assert_frame_equal(assay.var, source.var)
        assert list(assay.layers) == [l for l in source.layers if layers is None or l in layers]
        for layer, matrix in assay.layers.items():
            expected = source.layers[layer]
            for part in ("X", "M"):
                a, b = getattr(matrix, part), getattr(expected, part)
                assert (a is None) == (b is None), (name, layer, part)
                if b is None:
                    continue
                assert sparse.issparse(a) == sparse.issparse(b) and a.dtype == b.dtype
                if sparse.issparse(b):
                    assert a.format == b.format
                assert np.array_equal(_dense(a), _dense(b)[rows], equal_nan=True), (name, layer, part)
            assert values_equal(matrix.metadata, expected.metadata)
    kept = set(got.assays)
    assert got.links == [l for l in full.links if {l.source_assay, l.target_assay} <= kept]
    assert [_untimed(h) for h in got.history] == [_untimed(h) for h in full.history]


def _untimed(entry):
    """A history entry; an import's timestamp (the time of the load) left out."""
    return (entry.action, entry.params) if entry.action.startswith("import_") else entry


REQUESTS = [
    {"assays": ["peptides"]},
    {"assays": "proteins", "layers": ["log"]},
    {"layers": ["raw"]},
    {"obs_columns": ["purity", "batch"]},
    {"obs_columns": []},
    {"samples": ["S3", "S1", "S9"]},
    {"samples": np.arange(9) % 3 == 0},
    {"samples": []},
    {"samples": ["S4"], "assays": ["proteins"], "layers": ["raw"], "obs_columns": ["run_date"]},
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: "-".join(sorted(r)))
def test_partial_load_matches_numpy_indexing(saved, container, request_):
    if "uns/scptensor" not in h5py.File(saved, "r") if saved.suffix == ".h5mu" else False:
        container = load(saved)  # a foreign file: compare with its full import
        request_ = {**request_, "layers": _foreign_layers(request_.get("layers"))}
        if request_["layers"] is None:
            del request_["layers"]
    got = load(saved, **request_)
    samples = request_.get("samples")
    ids = container.sample_ids.to_list()
    if samples is None:
        rows = np.arange(container.n_samples)
    elif isinstance(samples, np.ndarray):
        rows = np.flatnonzero(samples)
    else:
        rows = np.array([ids.index(s) for s in samples], dtype=np.int64)
    assays = request_.get("assays")
    _check(got, container, assays=[assays] if isinstance(assays, str) else assays,
           layers=request_.get("layers"), obs_columns=request_.get("obs_columns"), rows=rows)


def _foreign_layers(layers):
    """A foreign import names the first layer (stored as X) "X"."""
    if layers is None:
        return None
    return ["X" if layer == "raw" else layer for layer in layers]


H5AD_REQUESTS = [
    ({"samples": ["S2", "S1"], "obs_columns": ["batch"]}, [1, 0]),
    ({"layers": ["norm"], "samples": np.arange(9) >= 5}, [5, 6, 7, 8]),
    ({"layers": ["raw"], "obs_columns": []}, None),
    ({"assays": ["peptides"], "samples": ["S9", "S2", "S5"]}, [8, 1, 4]),
]


@pytest.mark.parametrize("foreign", [False, True], ids=["ours", "foreign"])
@pytest.mark.parametrize("request_,rows", H5AD_REQUESTS)
def test_h5ad_partial_load(tmp_path, container, request_, rows, foreign):
    path = tmp_path / "c.h5ad"
    container.save(path, assay="peptides", layer="raw")  # X: CSR with a mask, layers/norm: CSC
    full = load(path)
    if foreign:
        _make_foreign(path)
        full = load(path, assay="peptides")
        request_ = {**request_, "layers": _foreign_layers(request_.get("layers"))}
    got = load(path, assay="peptides", **request_)
    rows = np.arange(9) if rows is None else np.array(rows)
    _check(got, full, assays=None, layers=request_.get("layers"), obs_columns=request_.get("obs_columns"),
           rows=rows)


@pytest.mark.parametrize("request_", [
    {"assays": ["nope"]}, {"layers": ["nope"]}, {"obs_columns": ["nope"]}, {"samples": ["S1", "nope"]},
    {"samples": ["S1", "S1"]}, {"samples": np.ones(4, dtype=bool)},
    {"assays": ["proteins"], "layers": ["norm"]},  # only peptides hold "norm"
])
def test_unknown_parts_are_selection_errors(saved, request_):
    with pytest.raises(SelectionError) as info:
        load(saved, **request_)
    assert isinstance(info.value, ValueError) and str(saved) in str(info.value)


def _rchar() -> int:
    with open("/proc/self/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("rchar"))


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    n, f = 4000, 500
    rng = np.random.default_rng(0)
    obs = pl.DataFrame({"_index": [f"s{i}" for i in range(n)], "a": rng.random(n), "b": rng.random(n)})
    layers = {"raw": ScpMatrix(rng.random((n, f))), "log": ScpMatrix(rng.random((n, f)))}
    c = ScpContainer(obs, {"p": Assay(pl.DataFrame({"_index": [f"f{j}" for j in range(f)]}), layers)})
    folder = tmp_path_factory.mktemp("large")
    paths = []
    for name in ("c.h5", "c.parquet", "c.h5mu", "c.h5ad", "foreign.h5ad", "foreign.h5mu"):
        save(c, folder / name, compression=None)
        if name.startswith("foreign"):
            _make_foreign(folder / name)
        paths.append(folder / name)
    return c, paths


@pytest.mark.parametrize("which", range(6), ids=["h5", "parquet", "h5mu", "h5ad", "foreign.h5ad", "foreign.h5mu"])
def test_partial_loads_read_fewer_bytes(large, which):
    c, paths = large
    path = paths[which]
    if path.name.startswith("foreign"):  # the first layer, stored as X, is imported as layer "X"
        c = ScpContainer(c.obs, {"p": Assay(c.assays["p"].var, {
            "X" if k == "raw" else k: v for k, v in c.assays["p"].layers.items()})})
    raw = list(c.assays["p"].layers)[0]
    options = {"assay": "p"} if path.suffix == ".h5ad" else {}
    start = _rchar()
    load(path, **options)
    full = _rchar() - start
    start = _rchar()
    one_layer = load(path, layers=[raw], **options)
    layer_bytes = _rchar() - start
    start = _rchar()
    few = load(path, samples=["s5", "s3000"], **options)
    sample_bytes = _rchar() - start
    assert layer_bytes < 0.6 * full
    assert sample_bytes < 0.1 * full
    for layer in ("log", raw):
        assert np.array_equal(few.assays["p"].layers[layer].X, c.assays["p"].layers[layer].X[[5, 3000]])
    assert list(one_layer.assays["p"].layers) == [raw]
    assert np.array_equal(one_layer.assays["p"].layers[raw].X, c.assays["p"].layers[raw].X)


def test_unrequested_hdf5_parts_are_never_read(tmp_path, container):
    path = tmp_path / "c.h5"
    container.save(path)
    with h5py.File(path, "r+") as f:
        f["assays/peptides/layers/norm/X"].attrs["encoding-type"] = "mystery"
        f["obs/purity"].attrs["encoding-type"] = "mystery"
    with pytest.raises(IOFormatError, match="checksum mismatch"):  # the edits themselves are caught first
        load(path)
    with pytest.raises(IOFormatError, match="mystery"):
        load(path, verify=False)
    got = load(path, layers=["raw"], obs_columns=["batch"])
    assert list(got.assays["peptides"].layers) == ["raw"] and got.obs.columns == ["_index", "batch"]


def test_unrequested_parquet_files_are_never_opened(tmp_path, container):
    path = tmp_path / "c.parquet"
    container.save(path)
    (path / "assays/peptides/layers/norm.parquet").write_bytes(b"not parquet")
    with pytest.raises(IOFormatError):
        load(path)
    got = load(path, layers=["raw"])
    assert list(got.assays["peptides"].layers) == ["raw"]


def _spoil(obj) -> None:
    obj.attrs["encoding-type"] = "mystery"


@pytest.mark.parametrize("foreign", [False, True], ids=["ours", "foreign"])
def test_unrequested_h5mu_parts_are_never_read(tmp_path, container, foreign):
    path = tmp_path / "c.h5mu"
    container.save(path)
    if foreign:
        _make_foreign(path)
    with h5py.File(path, "r+") as f:
        _spoil(f["mod/peptides/layers/norm"])  # an unrequested layer
        _spoil(f["mod/proteins/X"])  # every layer of an unrequested modality
        _spoil(f["mod/proteins/layers/log"])
        if not foreign:
            _spoil(f["mod/proteins/uns/scptensor/masks/raw"])  # a mask of an unrequested modality
        member = [k for k in f["obs"] if k.startswith("purity")][0]
        _spoil(f["obs"][member])  # an unrequested obs column
    with pytest.raises(IOFormatError, match="mystery"):
        load(path)
    full_layer = "X" if foreign else "raw"
    got = load(path, assays=["peptides"], layers=[full_layer], obs_columns=["batch"], samples=["S2", "S7"])
    assert list(got.assays) == ["peptides"] and list(got.assays["peptides"].layers) == [full_layer]
    assert got.obs.columns == ["_index", "batch"] and got.sample_ids.to_list() == ["S2", "S7"]
    expected = container.assays["peptides"].layers["raw"]
    matrix = got.assays["peptides"].layers[full_layer]
    assert np.array_equal(matrix.X.toarray(), expected.X.toarray()[[1, 6]])
    if not foreign:
        assert np.array_equal(_dense(matrix.M), _dense(expected.M)[[1, 6]])


def test_unrequested_h5ad_masks_and_layers_are_never_read(tmp_path, container):
    path = tmp_path / "c.h5ad"
    container.save(path, assay="proteins", layer="log")  # X: log, layers/raw with a mask
    with h5py.File(path, "r+") as f:
        _spoil(f["layers/raw"])
        _spoil(f["uns/scptensor/masks/raw"])
    with pytest.raises(IOFormatError, match="mystery"):
        load(path, verify=False)
    # Verified partial loads check what they read, and only that.
    got = load(path, layers=["log"], samples=np.arange(9) < 3)
    assert np.array_equal(got.assays["proteins"].layers["log"].X, container.assays["proteins"].layers["log"].X[:3],
                          equal_nan=True)


def test_foreign_h5mu_samples_follow_each_modality_own_row_order(tmp_path):
    anndata = pytest.importorskip("anndata")
    mudata = pytest.importorskip("mudata")
    import pandas as pd

    ids = [f"c{i}" for i in range(6)]
    rng = np.random.default_rng(3)
    dense = rng.random((6, 3))
    order = [4, 0, 5, 2, 1, 3]  # the second modality stores the cells in another order
    csr = sparse.random(6, 4, density=0.5, format="csr", random_state=1)
    mods = {
        "a": anndata.AnnData(X=dense, obs=pd.DataFrame(index=ids), var=pd.DataFrame(index=["f1", "f2", "f3"])),
        "b": anndata.AnnData(X=csr[order], obs=pd.DataFrame(index=[ids[i] for i in order]),
                             var=pd.DataFrame(index=["g1", "g2", "g3", "g4"])),
    }
    with mudata.set_options(pull_on_update=False):
        mdata = mudata.MuData(mods)
    path = tmp_path / "m.h5mu"
    mdata.write(path)
    full = load(path)
    wanted = ["c5", "c1", "c2"]
    got = load(path, samples=wanted)
    rows = np.array([ids.index(s) for s in wanted])
    assert got.sample_ids.to_list() == wanted
    assert np.array_equal(got.assays["a"].layers["X"].X, dense[rows])
    assert np.array_equal(got.assays["b"].layers["X"].X.toarray(), csr.toarray()[rows])
    _check(got, full, assays=None, layers=None, obs_columns=None, rows=rows)
    only_b = load(path, assays=["b"], samples=np.array([True, False, True, False, False, True]))
    assert np.array_equal(only_b.assays["b"].layers["X"].X.toarray(), csr.toarray()[[0, 2, 5]])
