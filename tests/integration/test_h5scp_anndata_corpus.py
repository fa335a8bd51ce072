"""What anndata's own test suite writes loads, whole and in part, equal to ``adata[rows, cols]``.

The objects come from ``anndata.tests.helpers.gen_adata``, the generator anndata's own tests
write and read back: obs and var columns of every dtype it tests (categoricals ordered and not,
integers and floats of every width, booleans, nullable integers and booleans, nullable text;
categories of numbers and booleans added as its element tests write them), ``X`` as CSR, CSC,
dense or absent and of float, integer and boolean dtypes, layers dense, dask and sparse (CSR or
CSC), ``obsm``/``varm`` holding arrays, dask arrays, sparse matrices, data frames and awkward
arrays, ``obsp``/``varp``, ``raw`` and a nested ``uns`` with record arrays, awkward arrays and
frames; shapes with zero rows or zero columns.  anndata itself writes each to ``.h5ad`` and to a
zarr store (nullable text under its ``allow_write_nullable_strings`` setting, as its tests do),
mudata several of them as the modalities of a ``.h5mu``.

For every element h5scp maps (obs, var, ``X``, ``layers``, ``uns`` values with a JSON-like
form) the container holds what anndata's own subset ``adata[rows, cols]`` holds (mudata's own
read of the file for ``.h5mu``); every element it has no place for is named in the import entry
of the history, and nothing raises.  Layer values a container cannot hold exactly (integers
beyond 2**53, complex numbers) are refused naming the layer, the other layers still loading.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import sparse

ad = pytest.importorskip("anndata")
md = pytest.importorskip("mudata")
pd = pytest.importorskip("pandas")
pytest.importorskip("awkward")
dask_array = pytest.importorskip("dask.array")
helpers = pytest.importorskip("anndata.tests.helpers")

from h5scp.io import load  # noqa: E402
from h5scp.io.exceptions import IOFormatError  # noqa: E402

# anndata warns that its awkward-array support is experimental whenever one is subset or written
pytestmark = pytest.mark.filterwarnings("ignore:Support for Awkward Arrays is currently experimental")

# Every column dtype anndata's generator makes (its defaults and the widths its tests pass).
_COLUMN_DTYPES = (
    pd.CategoricalDtype(ordered=False), pd.CategoricalDtype(ordered=True),
    *(np.dtype(t) for t in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                            "float32", "float64", "bool")),
    pd.BooleanDtype(), pd.Int8Dtype(), pd.Int16Dtype(), pd.Int32Dtype(), pd.Int64Dtype(),
    pd.UInt8Dtype(), pd.UInt16Dtype(), pd.UInt32Dtype(), pd.UInt64Dtype(), pd.StringDtype(),
)
_KEY_TYPES = (sparse.csr_matrix, sparse.csc_matrix, sparse.csr_array, sparse.csc_array, np.ndarray,
              pd.DataFrame, helpers.AwkArray, dask_array.Array)
_X_TYPES = {"csr": sparse.csr_matrix, "csc": sparse.csc_matrix, "dense": np.asarray, "none": None}


def generated(seed: int, shape: tuple[int, int], sparse_fmt: str, x_type: str, x_dtype=np.float32):
    """anndata's test object: its generator draws columns from numpy's global state, so seed both."""
    np.random.seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = helpers.gen_adata(
            shape, _X_TYPES[x_type], X_dtype=x_dtype, obs_dtypes=_COLUMN_DTYPES, var_dtypes=_COLUMN_DTYPES,
            obsm_types=_KEY_TYPES, varm_types=_KEY_TYPES, layers_types=_KEY_TYPES,
            random_state=np.random.default_rng(seed), sparse_fmt=sparse_fmt,
        )
    # categories of numbers and booleans, as anndata's own element tests write them
    rng = np.random.default_rng(seed)
    for frame, n in ((adata.obs, shape[0]), (adata.var, shape[1])):
        frame["cat_num"] = pd.Categorical(rng.integers(1, 4, n), categories=[1, 2, 3], ordered=True)
        frame["cat_bool"] = pd.Categorical(rng.integers(0, 2, n).astype(bool))
    # a mapping in uns holding an awkward array beside values (its values are kept, the array named)
    adata.uns["nested"]["awkward"] = helpers.gen_awkward((3, None))
    if adata.X is not None:
        adata.raw = adata.copy()
    return adata


def write(adata, path):
    """``adata`` written by anndata to ``path``, and anndata's own read of it (the reference: dask
    arrays read back as numpy arrays, layers in the file's order)."""
    with warnings.catch_warnings(), ad.settings.override(allow_write_nullable_strings=True):
        warnings.simplefilter("ignore")
        if path.suffix == ".zarr":
            adata.write_zarr(path)
            return ad.read_zarr(path)
        adata.write_h5ad(path)
        return ad.read_h5ad(path)


def _plain(value):
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def assert_frame(got, expected, id_col: str, where: str) -> None:
    assert got.columns == [id_col, *expected.columns], where
    assert got.get_column(id_col).to_list() == list(expected.index), where
    for name in expected.columns:
        want = [_plain(v) for v in expected[name].astype(object)]
        assert [_plain(v) for v in got.get_column(name).to_list()] == want, f"{where}/{name}"


def _dense(m):
    return m.toarray() if sparse.issparse(m) else np.asarray(m)


def expected_layers(adata) -> dict:
    layers = {} if adata.X is None else {"X": adata.X}
    layers.update(adata.layers)
    return layers


def assert_matrix(got, want, where: str) -> None:
    assert sparse.issparse(got) == sparse.issparse(want), where
    if sparse.issparse(want):
        assert got.format == want.format, where
    # the data model holds float32 as it is and any other real dtype as float64 (exact here)
    assert got.dtype == (np.float32 if want.dtype == np.float32 else np.float64), where
    assert got.shape == want.shape, where
    assert np.array_equal(_dense(got), _dense(want)), where


def assert_assay(assay, expected, where: str) -> None:
    assert_frame(assay.var, expected.var, assay.feature_id_col, f"{where}var")
    want = expected_layers(expected)
    assert list(assay.layers) == list(want), where
    for name, matrix in want.items():
        assert_matrix(assay.layers[name].X, matrix, f"{where}layers/{name}")


def assert_named(container, adata, prefix: str = "") -> None:
    """Every element without a place in a container is named in the import entry of the history."""
    params = container.history[-1].params
    named = " ".join(params["not_imported"])
    for axis in ("obsm", "varm", "obsp", "varp"):
        for key in getattr(adata, axis):
            assert f"{prefix}{axis}/{key} (" in named, f"{prefix}{axis}/{key}"
    for key, value in adata.uns.items():
        if key in params.get("uns", {}):
            continue
        assert f"{prefix}uns/{key} (" in named, f"{prefix}uns/{key}"
        assert "unreadable" not in named and "newer" not in named, named
    assert f"{prefix}uns/nested/awkward (awkward array of 3 rows)" in named
    if adata.raw is not None:
        assert f"{prefix}raw (" in named


def selection(rng, adata):
    """Random rows and columns (each at least one, in a random order), as ids."""
    n_obs, n_var = adata.shape
    rows = list(rng.choice(adata.obs_names, int(rng.integers(1, n_obs + 1)), replace=False))
    cols = list(rng.choice(adata.var_names, int(rng.integers(1, n_var + 1)), replace=False))
    return rows, cols


def check_anndata_file(path, adata, seed: int) -> None:
    whole = load(path)
    assert_frame(whole.obs, adata.obs, whole.sample_id_col, "obs")
    assert_assay(whole.assays["main"], adata, "")
    assert_named(whole, adata)
    uns = whole.history[-1].params.get("uns", {})
    assert uns["nested"]["scalar_int"] == 42 and uns["nested"]["scalar_str"] == "str"
    assert np.array_equal(uns["nested"]["nested_further"]["array"], np.arange(5))
    assert "awkward" not in uns["nested"]
    if 0 in adata.shape:
        return
    rng = np.random.default_rng(seed)
    for _ in range(3):
        rows, cols = selection(rng, adata)
        part = load(path, samples=rows, features=cols)
        want = adata[rows, cols]
        assert_frame(part.obs, want.obs, part.sample_id_col, f"obs of {rows}")
        assert_assay(part.assays["main"], want, f"{rows} x {cols}: ")


_X_DTYPES = (np.float32, np.float64, np.int32, np.int64, np.bool_, np.uint16)
_SHAPES = ((0, (13, 7)), (1, (6, 11)), (2, (40, 3)))
# every shape x X kind, the sparse formats and the X dtypes taken in turn; then the empty shapes
_KINDS = [(seed, shape, ("csr", "csc")[(i + j) % 2], x) for i, (seed, shape) in enumerate(_SHAPES)
          for j, x in enumerate(_X_TYPES)]
CASES = [(*kind, _X_DTYPES[i % len(_X_DTYPES)]) for i, kind in enumerate(_KINDS)]
CASES += [(3, (0, 5), "csr", "csr", np.float32), (3, (5, 0), "csc", "dense", np.float32),
          (3, (0, 0), "csr", "dense", np.float32)]
# the default tier loads two .h5ad files; the campaign every case as .h5ad, and a zarr store of the first
# shape's and the empty shapes' (zarr's reads cost several times HDF5's, and the decoding is shared)
QUICK = {((0, (13, 7), "csr", "csr"), ".h5ad"), ((3, (0, 5), "csr", "csr"), ".h5ad")}


def _cases():
    for suffix in (".h5ad", ".zarr"):
        for seed, shape, fmt, x, dtype in CASES:
            if suffix == ".zarr" and seed not in (0, 3):
                continue
            quick = ((seed, shape, fmt, x), suffix) in QUICK
            yield pytest.param(seed, shape, fmt, x, dtype, suffix, marks=() if quick else pytest.mark.campaign,
                               id=f"{suffix[1:]}-{seed}-{shape[0]}x{shape[1]}-{fmt}-X_{x}-{np.dtype(dtype).name}")


@pytest.mark.parametrize(("seed", "shape", "fmt", "x_type", "x_dtype", "suffix"), list(_cases()))
def test_what_anndata_writes_loads_equal_to_its_subsets(tmp_path, seed, shape, fmt, x_type, x_dtype, suffix):
    if suffix == ".zarr":
        pytest.importorskip("zarr")
    path = tmp_path / f"a{suffix}"
    adata = write(generated(seed, shape, fmt, x_type, x_dtype), path)
    check_anndata_file(path, adata, seed)


def test_values_a_container_cannot_hold_are_refused_by_name(tmp_path):
    X = np.arange(15, dtype=np.int64).reshape(5, 3)
    X[2, 1] = 2 ** 60 + 1
    counts = np.random.default_rng(4).random((5, 3))
    path = tmp_path / "big.h5ad"
    for values, found in ((X, str(2 ** 60 + 1)), (X.astype(np.complex64), "complex64")):
        write(ad.AnnData(X=values, layers={"counts": counts}), path)
        with pytest.raises(IOFormatError) as info:
            load(path)
        text = str(info.value)
        assert "[/X]" in text and found in text and "layers=" in text and "corrupted" not in text
        kept = load(path, layers=["counts"])
        assert list(kept.assays["main"].layers) == ["counts"]
        assert np.array_equal(kept.assays["main"].layers["counts"].X, counts)


def _modality(seed: int, n_vars: int, cells: list[str], prefix: str, fmt: str, x_type: str):
    adata = generated(seed, (len(cells), n_vars), fmt, x_type)
    adata.obs_names = cells
    adata.var_names = [f"{prefix}{name}" for name in adata.var_names]
    return adata


def generated_mudata(seed: int, n_obs: int, fmt: str):
    """mudata of anndata's test objects: modalities of every X kind, some lacking samples."""
    rng = np.random.default_rng(seed)
    cells = [f"cell{i}" for i in range(n_obs)]
    some = sorted(rng.choice(n_obs, n_obs * 2 // 3, replace=False))
    mods = {
        "prot": _modality(seed, 6, cells, "P", fmt, "dense"),
        "pep": _modality(seed + 1, 9, [cells[i] for i in some], "p", fmt, "csr"),
        "rna": _modality(seed + 2, 5, cells[::-1], "g", fmt, "csc"),
        "none": _modality(seed + 3, 4, cells[1:], "n", fmt, "none"),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mdata = md.MuData(mods)
        for name, values in generated(seed, (n_obs, 2), fmt, "none").obs.items():
            mdata.obs[name] = values  # aligned by id
    return mdata


def check_mudata(container, mdata, where: str) -> None:
    # the global obs; mudata shows the modalities' obs columns there too ("mod:column"), which
    # h5scp leaves in the modalities, named in the history (checked by the caller)
    own = [c for c in mdata.obs.columns if not any(c.startswith(f"{m}:") for m in mdata.mod)]
    assert_frame(container.obs, mdata.obs[own], container.sample_id_col, f"{where}obs")
    ids = container.sample_ids.to_list()
    for name, modality in mdata.mod.items():
        assay = container.assays[name]
        cols = assay.var.get_column(assay.feature_id_col).to_list()
        want = modality[:, cols]
        held = list(want.obs_names)
        at = [ids.index(i) for i in held]
        assert_frame(assay.var, want.var, assay.feature_id_col, f"{where}mod/{name}/var")
        layers = expected_layers(want)
        assert list(assay.layers) == list(layers), f"{where}mod/{name}"
        lacking = np.setdiff1d(np.arange(len(ids)), at)
        for layer, matrix in layers.items():
            got = assay.layers[layer]
            values = _dense(got.X)
            assert np.array_equal(values[at], _dense(matrix)), f"{where}mod/{name}/layers/{layer}"
            assert np.isnan(values[lacking]).all(), f"{where}mod/{name}/layers/{layer}"
            if lacking.size:
                assert (_dense(got.M)[lacking] != 0).all()


@pytest.mark.campaign  # mudata's own write and read of five such objects take most of its 5-15 s
@pytest.mark.parametrize(("seed", "fmt"), [(0, "csr"), (1, "csc")])
def test_what_mudata_writes_of_anndatas_objects_loads_equal_to_its_subsets(tmp_path, seed, fmt):
    mdata = generated_mudata(seed, 12, fmt)
    path = tmp_path / "m.h5mu"
    with warnings.catch_warnings(), ad.settings.override(allow_write_nullable_strings=True):
        warnings.simplefilter("ignore")
        mdata.write(path)
        # the reference is mudata's own read of the file (it leaves out of the global obs the
        # columns it copied there from the modalities)
        mdata = md.read_h5mu(path)
    whole = load(path)
    check_mudata(whole, mdata, "")
    named = " ".join(whole.history[-1].params["not_imported"])
    for name, modality in mdata.mod.items():
        assert all(f"mod/{name}/obs/{c}" in named for c in modality.obs.columns)
        for axis in ("obsm", "varm", "obsp", "varp"):
            for key in getattr(modality, axis):
                assert f"mod/{name}/{axis}/{key} (" in named, f"mod/{name}/{axis}/{key}"
    rng = np.random.default_rng(seed)
    for _ in range(3):
        rows = list(rng.choice(mdata.obs_names, int(rng.integers(1, mdata.n_obs + 1)), replace=False))
        features = {name: list(rng.choice(m.var_names, int(rng.integers(1, m.n_vars + 1)), replace=False))
                    for name, m in mdata.mod.items()}
        part = load(path, samples=rows, features=features)
        want = mdata[rows]
        assert part.sample_ids.to_list() == rows
        for name in mdata.mod:
            assert part.assays[name].var.get_column(part.assays[name].feature_id_col).to_list() == features[name]
        check_mudata(part, want, f"{rows}: ")
