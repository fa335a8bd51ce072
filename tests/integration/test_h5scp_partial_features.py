"""Partial loads of files other tools wrote (anndata's .h5ad and zarr store, mudata's .h5mu), checked against
those tools' own selection (``adata[rows, cols]``); a partial load of a zarr store decodes only the chunks
holding the cells asked for; requests naming what a file lacks are ``SelectionError``s naming the file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import h5scp
from h5scp.io import _zarr_store
from h5scp.io.classes import OURS
from h5scp.io.selection import SelectionError
from h5scp.testing import example_container

anndata = pytest.importorskip("anndata")
mudata = pytest.importorskip("mudata")
pytest.importorskip("zarr")



def _anndata_writes_zarr(test):
    """anndata's notices about its future defaults when it writes a zarr store are not ours to act on."""
    for text in ("ignore:Writing zarr v2 data will no longer be the default:UserWarning",
                 "ignore:zarr v3 autosharding will be the default:UserWarning",
                 "ignore:Consolidated metadata is currently not part in the Zarr format 3"):
        test = pytest.mark.filterwarnings(text)(test)
    return test


def _adata(n: int = 40, f: int = 30, seed: int = 0) -> anndata.AnnData:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    counts = sparse.random(n, f, density=0.3, random_state=seed, format="csr")
    obs = pd.DataFrame({"batch": rng.integers(0, 3, n).astype(str)}, index=[f"cell{i}" for i in range(n)])
    var = pd.DataFrame({"gene": [f"G{j}" for j in range(f)]}, index=[f"P{j}" for j in range(f)])
    return anndata.AnnData(X=X, obs=obs, var=var, layers={"counts": counts, "scaled": counts.tocsc() * 0.5})


def _dense(values):
    return values.toarray() if sparse.issparse(values) else np.asarray(values)


def _check_against_anndata(got, adata, cells, proteins) -> None:
    part = adata[cells, proteins]  # anndata's own selection
    assert got.obs.get_column(got.obs.columns[0]).to_list() == list(part.obs_names)
    assay = got.assays["main"]
    assert assay.var.get_column(assay.feature_id_col).to_list() == list(part.var_names)
    np.testing.assert_array_equal(assay.layers["X"].X, _dense(part.X))
    for name in ("counts", "scaled"):
        loaded = assay.layers[name].X
        assert loaded.format == adata.layers[name].format
        np.testing.assert_array_equal(_dense(loaded), _dense(part.layers[name]))


CELLS = ["cell7", "cell0", "cell33", "cell12"]
PROTEINS = ["P29", "P3", "P4", "P5", "P17"]


@pytest.mark.parametrize("bare", [False, True], ids=["mapping", "bare"])
def test_anndata_h5ad_loads_in_part(tmp_path, bare):
    adata = _adata()
    path = tmp_path / "scanpy.h5ad"
    adata.write_h5ad(path)
    features = PROTEINS if bare else {"main": PROTEINS}
    got = h5scp.load(path, samples=CELLS, features=features, classes=OURS)
    _check_against_anndata(got, adata, CELLS, PROTEINS)
    mask = np.arange(30) % 4 == 1
    got = h5scp.load(path, features=mask, layers=["counts"], classes=OURS)
    assert list(got.assays["main"].layers) == ["counts"]
    np.testing.assert_array_equal(_dense(got.assays["main"].layers["counts"].X),
                                  _dense(adata.layers["counts"][:, mask]))


def _zarr_format(fmt: int):
    """anndata writing zarr format ``fmt`` (format 3 needs zarr 3: skipped under zarr 2, whose tests
    tests/integration/test_scptensor_zarr3.py runs again under zarr 3)."""
    import zarr

    if fmt == 3 and int(zarr.__version__.split(".")[0]) < 3:
        pytest.skip("zarr format 3 needs zarr 3 (run by test_zarr_format_3_round_trips_under_zarr_3)")
    return anndata.settings.override(zarr_write_format=fmt)


@_anndata_writes_zarr
@pytest.mark.parametrize("fmt", [2, 3])
def test_anndata_zarr_store_loads_in_part(tmp_path, fmt):
    adata = _adata()
    path = tmp_path / "scanpy.zarr"
    with _zarr_format(fmt):
        adata.write_zarr(path, chunks=(10, 10))
    got = h5scp.load(path, samples=CELLS, features={"main": PROTEINS}, classes=OURS)
    _check_against_anndata(got, adata, CELLS, PROTEINS)


def _chunk_reads(monkeypatch) -> list[str]:
    """The chunk files (not metadata) a load asks the store for, as ``<array>/<i>.<j>`` in either zarr format."""
    read: list[str] = []
    original = _zarr_store.StoreFiles.__getitem__

    def recording(self, key):
        folder, _, name = key.rpartition("/")
        if name not in _zarr_store._METADATA:
            array, sep, grid = key.partition("/c/")  # format 3: <array>/c/<i>/<j>
            read.append(f"{array}/{grid.replace('/', '.')}" if sep else key)
        return original(self, key)

    monkeypatch.setattr(_zarr_store.StoreFiles, "__getitem__", recording)
    return read


@_anndata_writes_zarr
@pytest.mark.parametrize("fmt", [2, 3])
def test_a_partial_zarr_load_decodes_only_the_chunks_it_needs(tmp_path, monkeypatch, fmt):
    import zarr

    adata = _adata(n=60, f=50)
    path = tmp_path / "scanpy.zarr"
    with _zarr_format(fmt):
        adata.write_zarr(path, chunks=(20, 10))
    assert tuple(zarr.open_array(str(path / "X"), mode="r").chunks) == (20, 10)
    read = _chunk_reads(monkeypatch)
    h5scp.load(path, classes=OURS)
    whole = [k for k in read if k.startswith("X/")]
    assert len(whole) == 3 * 5  # every chunk of X
    read.clear()
    # cells 3 and 45 (row chunks 0 and 2), proteins 12 and 14 (column chunk 1): two chunks of X
    got = h5scp.load(path, samples=["cell45", "cell3"], features={"main": ["P14", "P12"]}, layers=["X"],
                     classes=OURS)
    np.testing.assert_array_equal(got.assays["main"].layers["X"].X, adata.X[[45, 3]][:, [14, 12]])
    assert sorted(k for k in read if k.startswith("X/")) == ["X/0.1", "X/2.1"]
    # of the layers not asked only the sparse matrices' indptr (an entry per row) is read
    assert not [k for k in read if k.startswith("layers/") and "/indptr/" not in k], read
    read.clear()
    # a CSR layer: only the chunks of data/indices holding the selected rows' entries
    got = h5scp.load(path, samples=["cell0"], layers=["counts"], classes=OURS)
    np.testing.assert_array_equal(_dense(got.assays["main"].layers["counts"].X), _dense(adata.layers["counts"][[0]]))
    data_chunks = zarr.open_array(str(path / "layers" / "counts" / "data"), mode="r").chunks[0]
    end = adata.layers["counts"].indptr[1]
    expected = max(1, -(-int(end) // data_chunks))
    assert len([k for k in read if k.startswith("layers/counts/data/")]) == expected


def test_mudata_h5mu_loads_in_part(tmp_path):
    rna, prot = _adata(n=12, f=8, seed=1), _adata(n=12, f=5, seed=2)
    prot.var_names = [f"Q{j}" for j in range(5)]
    mdata = mudata.MuData({"rna": rna, "prot": prot})
    path = tmp_path / "muon.h5mu"
    mdata.write(path)
    got = h5scp.load(path, samples=["cell4", "cell1"], features={"prot": ["Q3", "Q0"]}, classes=OURS)
    assert got.assays["rna"].n_features == 8
    assert got.assays["prot"].feature_ids.to_list() == ["Q3", "Q0"]
    np.testing.assert_array_equal(got.assays["prot"].layers["X"].X, prot.X[[4, 1]][:, [3, 0]])
    np.testing.assert_array_equal(got.assays["rna"].layers["X"].X, rna.X[[4, 1]])


@pytest.mark.parametrize("suffix", [".h5", ".h5mu", ".parquet"])
@pytest.mark.parametrize("features,words", [
    ({"nope": ["P1"]}, "features names assays the load does not read"),
    ({"proteins": ["P1", "nope"]}, "features['proteins'] names ids the file lacks"),
    ({"proteins": ["P1", "P1"]}, "names ids more than once"),
    ({"proteins": np.ones(3, dtype=bool)}, "mask does not match"),
    (["P1"], "features without assay names needs a load of one assay"),
])
def test_features_naming_what_the_file_lacks(tmp_path, suffix, features, words):
    path = tmp_path / f"c{suffix}"
    h5scp.save(example_container(n_samples=6, n_proteins=4), path)
    with pytest.raises(SelectionError) as info:
        h5scp.load(path, features=features, classes=OURS)
    assert str(path) in str(info.value) and words in str(info.value)


def test_features_of_an_assay_not_read_is_refused(tmp_path):
    path = tmp_path / "c.h5"
    h5scp.save(example_container(n_samples=6, n_proteins=4), path)
    with pytest.raises(SelectionError, match="does not read"):
        h5scp.load(path, assays=["peptides"], features={"proteins": ["P1"]}, classes=OURS)
    got = h5scp.load(path, assays=["proteins"], features=["P2"], classes=OURS)  # one assay read: bare
    assert got.assays["proteins"].feature_ids.to_list() == ["P2"]


def _rchar() -> int:
    """Bytes this process has read by read calls (cached or not)."""
    with open("/proc/self/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("rchar"))


def _wide_container(n: int = 2000, f: int = 400):
    from h5scp import Assay, ScpContainer, ScpMatrix
    import polars as pl

    rng = np.random.default_rng(3)
    return ScpContainer(pl.DataFrame({"_index": [f"s{i}" for i in range(n)]}),
                        {"p": Assay(pl.DataFrame({"_index": [f"f{j}" for j in range(f)]}),
                                    {"raw": ScpMatrix(rng.random((n, f)))}), })


def _bytes_read(path, **options) -> tuple[int, object]:
    start = _rchar()
    got = h5scp.load(path, classes=OURS, **options)
    return _rchar() - start, got


@pytest.mark.parametrize("name,options,verify,share", [
    # one column per feature: polars reads three columns (the digests cover whole row groups: with verify,
    # the file's bytes are read once to check them, instead of twice)
    ("wide.parquet", {"layout": "wide"}, False, 0.1),
    ("wide.parquet", {"layout": "wide"}, True, 0.6),
    # a row's values lie together (contiguous, or chunks of whole rows): rows read, then cut
    ("c.h5", {}, True, 1.1), ("c.h5ad", {}, True, 1.1), ("c.h5mu", {}, True, 1.1),
])
def test_a_few_features_read_what_the_layout_allows(tmp_path, name, options, verify, share):
    c = _wide_container()
    path = tmp_path / name
    h5scp.save(c, path, compression=None, **options)
    whole, _ = _bytes_read(path, verify=verify)
    few, got = _bytes_read(path, features={"p": ["f310", "f7", "f8"]}, verify=verify)
    np.testing.assert_array_equal(got.assays["p"].layers["raw"].X, c.assays["p"].layers["raw"].X[:, [310, 7, 8]])
    assert whole > 2000 * 400 * 8
    assert few < share * whole, (few, whole)


def test_a_few_features_of_anndata_chunks_read_only_their_chunks(tmp_path):
    """anndata's compressed X is chunked across columns too: only the chunks holding the columns are read."""
    adata = anndata.AnnData(np.random.default_rng(4).random((2000, 400)))
    path = tmp_path / "scanpy.h5ad"
    adata.write_h5ad(path, compression="gzip")
    # what any load of the file reads besides its matrices (the checks at opening included)
    fixed, _ = _bytes_read(path, layers=[])
    whole, _ = _bytes_read(path)
    few, got = _bytes_read(path, features=["7", "8", "310"])
    np.testing.assert_array_equal(got.assays["main"].layers["X"].X, adata.X[:, [7, 8, 310]])
    assert whole - fixed > 0.9 * adata.X.nbytes
    assert few - fixed < 0.15 * (whole - fixed), (few, fixed, whole)  # 2 of 16 columns of chunks


def test_a_file_of_the_original_layout_loads_in_part():
    """The 1.0 golden file (the original's layout) is read whole, then cut: the planted values at the selection."""
    from pathlib import Path

    from h5scp.core.exceptions import LegacyFormatWarning

    golden = Path(__file__).resolve().parents[1] / "data" / "scptensor_legacy_v1.h5"
    x_raw = np.array([[1.5, np.nan, 3.25], [2.0, 4.0, np.nan], [0.5, 1.0, 2.0], [np.nan, 8.0, 16.0]], dtype=np.float32)
    m_pep = np.array([[0, 0, 0, 0, 2], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 4, 0]], dtype=np.int8)
    keep = np.array([True, False, False, True, True])
    with pytest.warns(LegacyFormatWarning):
        got = h5scp.load(golden, samples=["S3", "S1"], features={"proteins": ["P3", "P1"], "peptides": keep},
                         classes=OURS)
    raw = got.assays["proteins"].layers["raw"]
    np.testing.assert_array_equal(raw.X, x_raw[[2, 0]][:, [2, 0]])
    assert got.assays["proteins"].feature_ids.to_list() == ["P3", "P1"]
    assert got.assays["peptides"].feature_ids.to_list() == ["PEP1", "PEP4", "PEP5"]
    np.testing.assert_array_equal(_dense(got.assays["peptides"].layers["raw"].M), m_pep[[2, 0]][:, keep])
