"""What we write reads with anndata's own reader (and what anndata writes reads with ours)."""

from __future__ import annotations

import h5py
import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from h5stream.elements import read_elem, write_elem

ad_io = pytest.importorskip("anndata.io")
pd = pytest.importorskip("pandas")


def spec_frame(n: int = 6) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    return pl.DataFrame(
        {
            "cell_id": [f"c{i}" for i in range(n)],
            "i8": pl.Series(rng.integers(-100, 100, n), dtype=pl.Int8),
            "u32": pl.Series(rng.integers(0, 1000, n), dtype=pl.UInt32),
            "i64_null": pl.Series([1, None, 3, 4, None, 6][:n], dtype=pl.Int64),
            "u16_null": pl.Series([None, 2, 3, None, 5, 6][:n], dtype=pl.UInt16),
            "f32": pl.Series(rng.normal(size=n), dtype=pl.Float32),
            "f64_nan": [1.0, float("nan"), 2.0, float("inf"), -0.0, 3.0][:n],
            "flag": [True, False] * (n // 2),
            "flag_null": [True, None, False, None, True, False][:n],
            "label": ["a", None, "ç", "", "b", None][:n],
            "label_plain": ["x", "y", "z", "x", "y", "z"][:n],
            "batch": pl.Series(["b2", "b1", None, "b2", "b1", "b1"][:n], dtype=pl.Categorical),
            "a/b %": [1, 2, 3, 4, 5, 6][:n],
        }
    )


def _column_values(series: pl.Series) -> list:
    return series.to_list()


def _pandas_values(column) -> list:
    out = []
    float_column = pd.api.types.is_float_dtype(column.dtype)
    for v in list(column):
        # Missing is NA, or NaN in a categorical/object column; NaN in a float column is a value.
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v) and not float_column):
            out.append(None)
        elif isinstance(v, np.generic):
            out.append(v.item())
        else:
            out.append(v)
    return out


def _same_list(ours: list, theirs: list) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        if isinstance(a, float) and np.isnan(a):
            assert isinstance(b, float) and np.isnan(b)
        else:
            assert a == b, (ours, theirs)


@pytest.mark.parametrize("index", [None, "cell_id"])
def test_dataframe_reads_with_anndata(h5, index):
    frame = spec_frame()
    write_elem(h5, "obs", frame, index=index, compression="gzip")
    theirs = ad_io.read_elem(h5["obs"])
    assert isinstance(theirs, pd.DataFrame)
    member = {"a/b %": "a%2Fb %25"}
    expected_columns = [member.get(c, c) for c in frame.columns if c != index]
    assert list(theirs.columns) == expected_columns
    if index is None:
        assert list(theirs.index) == [str(i) for i in range(frame.height)]
    else:
        assert list(theirs.index) == frame[index].to_list()
    for name in frame.columns:
        if name == index:
            continue
        _same_list(_column_values(frame[name]), _pandas_values(theirs[member.get(name, name)]))
    assert isinstance(theirs["batch"].dtype, pd.CategoricalDtype)
    assert theirs["i8"].dtype == np.int8 and theirs["u32"].dtype == np.uint32
    assert str(theirs["i64_null"].dtype) == "Int64" and str(theirs["u16_null"].dtype) == "UInt16"
    assert str(theirs["flag_null"].dtype) == "boolean"


def test_zero_row_frame_reads_with_anndata(h5):
    frame = spec_frame().clear()
    write_elem(h5, "obs", frame)
    theirs = ad_io.read_elem(h5["obs"])
    assert theirs.shape == (0, frame.width)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4)),
        np.array([True, False]),
        np.zeros((0, 5), dtype=np.uint64),
        np.array([1 + 2j], dtype=np.complex64),
    ],
)
def test_arrays_read_with_anndata(h5, array):
    write_elem(h5, "x", array, compression="gzip", n_threads=2)
    theirs = ad_io.read_elem(h5["x"])
    assert theirs.dtype == array.dtype and np.array_equal(theirs, array)


def test_large_parallel_gzip_array_reads_with_anndata(h5):
    a = np.random.default_rng(1).lognormal(size=(2000, 300)).astype(np.float32)
    a[::7] = np.nan
    write_elem(h5, "X", a, compression="gzip", shuffle=True)
    assert np.array_equal(ad_io.read_elem(h5["X"]), a, equal_nan=True)


def test_string_arrays_read_with_anndata(h5):
    write_elem(h5, "s", np.array(["a", "bé", ""]))
    write_elem(h5, "n", np.array(["a", None, "c"], dtype=object))
    assert list(ad_io.read_elem(h5["s"])) == ["a", "bé", ""]
    theirs = ad_io.read_elem(h5["n"])
    assert theirs[0] == "a" and theirs[1] is pd.NA and theirs[2] == "c"


@pytest.mark.parametrize("cls", [sp.csr_matrix, sp.csc_matrix, sp.csr_array, sp.csc_array])
def test_sparse_reads_with_anndata(h5, cls):
    fmt = "csr" if cls in (sp.csr_matrix, sp.csr_array) else "csc"
    m = cls(sp.random(40, 25, density=0.1, format=fmt, random_state=2, dtype=np.float32))
    m.data[0] = 0.0
    write_elem(h5, "m", m, compression="gzip")
    theirs = ad_io.read_elem(h5["m"])
    assert theirs.format == fmt and theirs.shape == m.shape and theirs.dtype == m.dtype
    assert np.array_equal(theirs.toarray(), m.toarray())
    assert theirs.nnz == m.nnz  # the explicit zero is still stored


def test_mapping_reads_with_anndata(h5):
    value = {"n": 3, "x": 1.5, "name": "pca", "arr": np.arange(3), "nested": {"k": np.float32(2)}}
    write_elem(h5, "uns", value)
    theirs = ad_io.read_elem(h5["uns"])
    assert theirs["n"] == 3 and theirs["x"] == 1.5 and theirs["name"] == "pca"
    assert np.array_equal(theirs["arr"], np.arange(3))
    assert theirs["nested"]["k"] == 2


def test_we_read_what_anndata_writes(h5):
    df = pd.DataFrame(
        {
            "i": pd.array([1, None, 3], dtype="Int32"),
            "b": pd.array([True, None, False], dtype="boolean"),
            "c": pd.Categorical(["x", "y", "x"]),
            "f": [0.5, np.nan, 1.5],
            "s": ["p", "q", "r"],
        },
        index=pd.Index(["r0", "r1", "r2"], name="obs_names"),
    )
    ad_io.write_elem(h5, "obs", df)
    ad_io.write_elem(h5, "X", sp.csr_matrix(np.eye(3, dtype=np.float32)))
    frame = read_elem(h5["obs"])
    assert frame.columns == ["obs_names", "i", "b", "c", "f", "s"]
    assert frame["obs_names"].to_list() == ["r0", "r1", "r2"]
    assert frame["i"].to_list() == [1, None, 3] and frame["i"].dtype == pl.Int32
    assert frame["b"].to_list() == [True, None, False]
    assert frame["c"].dtype == pl.Categorical and frame["c"].to_list() == ["x", "y", "x"]
    assert np.isnan(frame["f"][1]) and frame["s"].to_list() == ["p", "q", "r"]
    x = read_elem(h5["X"])
    assert isinstance(x, sp.csr_matrix) and np.array_equal(x.toarray(), np.eye(3))


def test_anndata_object_from_our_elements(tmp_path):
    anndata = pytest.importorskip("anndata")
    path = tmp_path / "a.h5ad"
    frame = spec_frame()
    var = pl.DataFrame({"gene": ["g1", "g2", "g3"], "mean": [0.1, 0.2, 0.3]})
    x = sp.csr_matrix(np.arange(18, dtype=np.float32).reshape(6, 3))
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        write_elem(f, "X", x)
        write_elem(f, "obs", frame, index="cell_id")
        write_elem(f, "var", var, index="gene")
        for key in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
            write_elem(f, key, {})
    adata = anndata.read_h5ad(path)
    assert adata.shape == (6, 3)
    assert list(adata.obs_names) == frame["cell_id"].to_list()
    assert list(adata.var_names) == ["g1", "g2", "g3"]
    assert np.array_equal(adata.X.toarray(), x.toarray())


def test_layered_typed_columns_read_with_anndata_as_physical_values(h5):
    import datetime as dt
    import decimal

    frame = pl.DataFrame(
        {
            "day": [dt.date(1970, 1, 2), dt.date(2000, 1, 1)],
            "when": pl.Series([0, 1500], dtype=pl.Int64).cast(pl.Datetime("ms", "UTC")),
            "took": pl.Series([3, None], dtype=pl.Int64).cast(pl.Duration("us")),
            "level": pl.Series(["lo", "hi"], dtype=pl.Enum(["lo", "mid", "hi"])),
            "price": pl.Series([decimal.Decimal("1.50"), decimal.Decimal("-2.25")], dtype=pl.Decimal(6, 2)),
        }
    )
    write_elem(h5, "obs", frame)
    theirs = ad_io.read_elem(h5["obs"])
    assert theirs["day"].tolist() == [1, 10957]
    assert theirs["when"].tolist() == [0, 1500]
    assert list(theirs["took"]) == [3, pd.NA]
    assert list(theirs["level"]) == ["lo", "hi"] and list(theirs["level"].cat.categories) == ["lo", "mid", "hi"]
    assert theirs["price"].tolist() == ["1.50", "-2.25"]


# --------------------------------------------------------------------------- random frames

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=5)
_INTS = {
    pl.Int8: (-(2**7), 2**7 - 1), pl.Int32: (-(2**31), 2**31 - 1), pl.Int64: (-(2**63), 2**63 - 1),
    pl.UInt8: (0, 255), pl.UInt16: (0, 2**16 - 1), pl.UInt64: (0, 2**64 - 1),
}


@st.composite
def spec_frames(draw):
    n = draw(st.integers(0, 5))
    names = draw(st.lists(_TEXT.filter(lambda s: s not in ("", "_index")), max_size=4, unique=True))
    columns = []
    for name in names:
        kind = draw(st.sampled_from([*_INTS, pl.Float32, pl.Float64, pl.Boolean, pl.String, pl.Categorical]))
        nulls = draw(st.booleans()) and kind not in (pl.Float32, pl.Float64)
        strategies = {
            pl.Float32: st.floats(width=32), pl.Float64: st.floats(), pl.Boolean: st.booleans(),
            pl.String: _TEXT, pl.Categorical: st.sampled_from(["a", "b", "é"]),
        }
        item = strategies[kind] if kind in strategies else st.integers(*_INTS[kind])
        if nulls:
            item = st.one_of(st.none(), item)
        columns.append(pl.Series(name, draw(st.lists(item, min_size=n, max_size=n)), dtype=kind))
    return pl.DataFrame(columns)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=spec_frames())
def test_random_spec_frames_read_with_anndata(tmp_path_factory, frame):
    from h5stream.elements.mapping import escape_name
    from h5stream.elements.dataframe import RESERVED_NAMES

    path = tmp_path_factory.mktemp("interop") / "f.h5"
    with h5py.File(path, "w") as f:
        write_elem(f, "obs", frame)
    with h5py.File(path, "r") as f:
        theirs = ad_io.read_elem(f["obs"])
    assert theirs.shape == frame.shape
    for name in frame.columns:
        # a name with "/" between non-empty parts is stored as anndata stores it (nested groups), so
        # anndata reads the name itself; any other name that no link can carry is escaped
        nested = "/" in name and all(name.split("/")) and name not in RESERVED_NAMES
        stored = name if nested else escape_name(name, RESERVED_NAMES)
        _same_list(frame[name].to_list(), _pandas_values(theirs[stored]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.tuples(st.integers(0, 9), st.integers(0, 9)),
    dtype=st.sampled_from([np.float32, np.float64, np.int8, np.uint16, np.int64, np.bool_]),
    fmt=st.sampled_from(["dense", "dense_f", "csr", "csc"]),
    gzip=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_random_arrays_and_sparse_read_with_anndata(tmp_path_factory, shape, dtype, fmt, gzip, seed):
    rng = np.random.default_rng(seed)
    dense = (rng.random(shape) * 10 * (rng.random(shape) < 0.4)).astype(dtype)
    value = {
        "dense": dense,
        "dense_f": np.asfortranarray(dense),
        "csr": sp.csr_matrix(dense),
        "csc": sp.csc_matrix(dense),
    }[fmt]
    path = tmp_path_factory.mktemp("interop") / "a.h5"
    with h5py.File(path, "w") as f:
        write_elem(f, "x", value, compression="gzip" if gzip else None)
    with h5py.File(path, "r") as f:
        theirs = ad_io.read_elem(f["x"])
    if fmt.startswith("dense"):
        assert theirs.dtype == dense.dtype and np.array_equal(theirs, dense)
    else:
        assert theirs.format == fmt and theirs.dtype == dense.dtype
        assert np.array_equal(theirs.toarray(), dense)
