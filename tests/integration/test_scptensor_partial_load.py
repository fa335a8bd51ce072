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

from scptensor import Assay, ScpContainer, ScpMatrix
from scptensor.core.structures import values_equal
from scptensor.io import IOFormatError, load, save
from scptensor.io.selection import SelectionError
from scptensor.testing import example_container

FORMATS = [".h5", ".parquet", "wide.parquet", ".h5mu"]


@pytest.fixture(scope="module")
def container():
    return example_container(n_samples=9, n_proteins=5)


@pytest.fixture(scope="module", params=FORMATS)
def saved(request, tmp_path_factory, container):
    path = tmp_path_factory.mktemp("partial") / ("c" + request.param.replace("wide", ""))
    options = {"layout": "wide"} if request.param.startswith("wide") else {}
    save(container, path, **options)
    return path


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
    assert got.history == full.history


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


def test_h5ad_partial_load(tmp_path, container):
    path = tmp_path / "c.h5ad"
    container.save(path, assay="proteins", layer="raw")
    full = load(path)
    got = load(path, samples=["S2", "S1"], obs_columns=["batch"])
    _check(got, full, assays=None, layers=None, obs_columns=["batch"], rows=np.array([1, 0]))


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
    for name in ("c.h5", "c.parquet"):
        save(c, folder / name, compression=None)
        paths.append(folder / name)
    return c, paths


@pytest.mark.parametrize("which", [0, 1], ids=["h5", "parquet"])
def test_partial_loads_read_fewer_bytes(large, which):
    c, paths = large
    path = paths[which]
    start = _rchar()
    load(path)
    full = _rchar() - start
    start = _rchar()
    one_layer = load(path, layers=["raw"])
    layer_bytes = _rchar() - start
    start = _rchar()
    few = load(path, samples=["s5", "s3000"])
    sample_bytes = _rchar() - start
    assert layer_bytes < 0.6 * full
    assert sample_bytes < 0.1 * full
    assert np.array_equal(few.assays["p"].layers["raw"].X, c.assays["p"].layers["raw"].X[[5, 3000]])
    assert list(one_layer.assays["p"].layers) == ["raw"]


def test_unrequested_hdf5_parts_are_never_read(tmp_path, container):
    path = tmp_path / "c.h5"
    container.save(path)
    with h5py.File(path, "r+") as f:
        f["assays/peptides/layers/norm/X"].attrs["encoding-type"] = "mystery"
        member = [k for k in f["obs"] if k.startswith("purity")][0]
        f["obs"][member].attrs["encoding-type"] = "mystery"
    with pytest.raises(IOFormatError, match="mystery"):
        load(path)
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
