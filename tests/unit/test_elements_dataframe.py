"""polars DataFrames: every dtype, names, index handling, edge shapes."""

from __future__ import annotations

import datetime as dt
import decimal

import h5py
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

from h5stream.elements import read_elem, write_elem
from h5stream.errors import EncodingError


def _newer_kinds() -> dict[str, pl.Series]:
    """Columns of the kinds older polars releases lack (Float16, UInt128), those this polars has."""
    kinds = {}
    if hasattr(pl, "Float16"):
        kinds["f16"] = pl.Series([0.5, float("nan"), None], dtype=pl.Float16)
        kinds["f16_plain"] = pl.Series([0.5, -2.0, float("inf")], dtype=pl.Float16)
    kinds["i128"] = pl.Series([-(2**120), None, 2**126], dtype=pl.Int128)
    if hasattr(pl, "UInt128"):
        kinds["u128"] = pl.Series([2**128 - 1, 0, None], dtype=pl.UInt128)
    return kinds


def every_dtype_frame() -> pl.DataFrame:
    ints = {
        f"{t.__name__}": pl.Series([1, None, 3], dtype=t)
        for t in (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
    }
    extremes = {
        "u64max": pl.Series([2**64 - 1, 0, 1], dtype=pl.UInt64),
        "i64min": pl.Series([-(2**63), 0, 2**63 - 1], dtype=pl.Int64),
    }
    return pl.DataFrame(
        {
            **ints,
            **extremes,
            **_newer_kinds(),
            "arr": pl.Series([[1, 2], None, [3, None]], dtype=pl.Array(pl.Int16, 2)),
            "arr2d": pl.Series([[[1.0], [2.0]], [[3.0], [None]], None], dtype=pl.Array(pl.Float32, (2, 1))),
            "f32": pl.Series([1.5, float("nan"), None], dtype=pl.Float32),
            "f64": [float("inf"), float("nan"), None],
            "f64_plain": [0.1, -0.0, float("nan")],
            "bool": [True, None, False],
            "bool_plain": [True, False, True],
            "str": ["a", None, ""],
            "str_plain": ["x", "ÿ", "漢字"],
            "cat": pl.Series(["b", None, "b"], dtype=pl.Categorical),
            "enum": pl.Series(["lo", None, "hi"], dtype=pl.Enum(["lo", "mid", "hi"])),
            "date": [dt.date(2020, 2, 29), None, dt.date(1900, 1, 1)],
            "dt_us": [dt.datetime(2020, 1, 1, 12), None, dt.datetime(1969, 12, 31)],
            "dt_ns_tz": pl.Series([dt.datetime(2020, 6, 1), None, dt.datetime(2021, 1, 1)]).cast(
                pl.Datetime("ns", "America/New_York")
            ),
            "dt_ms_utc": pl.Series([0, 1, 2]).cast(pl.Datetime("ms", "UTC")),
            "dur": pl.Series([dt.timedelta(days=1), None, dt.timedelta(microseconds=-3)]),
            "dur_ms": pl.Series([1, 2, 3]).cast(pl.Duration("ms")),
            "time": [dt.time(23, 59, 59, 999999), None, dt.time(0)],
            "dec": pl.Series([decimal.Decimal("1.23"), None, decimal.Decimal("-99999.99")], dtype=pl.Decimal(7, 2)),
            "bin": [b"\x00\x01", None, b""],
            "null": pl.Series([None, None, None], dtype=pl.Null),
            "list_i": [[1, 2], None, []],
            "list_s": [["a", None], [], None],
            "list_list": [[[1.0], []], None, [[2.5, None]]],
            "struct": [{"a": 1, "b": "x"}, None, {"a": None, "b": "z"}],
            "struct_list": [{"k": [1], "d": dt.date(2020, 1, 1)}, {"k": None, "d": None}, None],
        }
    )


def test_every_dtype_round_trips_exactly(h5):
    frame = every_dtype_frame()
    write_elem(h5, "df", frame)
    assert_frame_equal(read_elem(h5["df"]), frame, check_dtypes=True, check_exact=True)


def test_every_dtype_with_compression_and_index(h5):
    frame = every_dtype_frame()
    write_elem(h5, "df", frame, compression="gzip", index="str_plain")
    assert h5["df"].attrs["_index"] == "str_plain"
    assert "str_plain" not in list(h5["df"].attrs["column-order"])
    assert_frame_equal(read_elem(h5["df"]), frame, check_exact=True)


def test_null_and_nan_are_kept_apart(h5):
    frame = pl.DataFrame({"x": [float("nan"), None, 1.0]})
    write_elem(h5, "df", frame)
    back = read_elem(h5["df"])["x"]
    assert back.is_null().to_list() == [False, True, False]
    assert back.is_nan().to_list() == [True, None, False]


def test_categories_are_per_column_not_global_codes(h5):
    # Populate polars' global category pool so physical codes are far from 0.
    pl.Series([f"noise{i}" for i in range(500)], dtype=pl.Categorical)
    frame = pl.DataFrame({"c": pl.Series(["z", "y", None, "z"], dtype=pl.Categorical)})
    write_elem(h5, "df", frame)
    cats = h5["df/c/categories"].asstr()[()].tolist()
    assert sorted(cats) == ["y", "z"]
    codes = h5["df/c/codes"][()]
    assert codes.dtype == np.int8 and codes.tolist()[2] == -1 and codes.max() < 2
    assert_frame_equal(read_elem(h5["df"]), frame)


def test_enum_keeps_unused_categories(h5):
    dtype = pl.Enum(["a", "b", "c"])
    frame = pl.DataFrame({"e": pl.Series(["c"], dtype=dtype)})
    write_elem(h5, "df", frame)
    back = read_elem(h5["df"])
    assert back["e"].dtype == dtype
    assert h5["df/e"].attrs["ordered"]


@pytest.mark.parametrize(
    "names",
    [
        ["a/b", "a%2Fb", "%", "_index"],
        ["", ".", ".."],
        ["__categories", "名前", "emoji 🧬", "tab\tnew\nline"],
    ],
)
def test_hostile_column_names_round_trip(h5, names):
    frame = pl.DataFrame({n: [i, i + 1] for i, n in enumerate(names)})
    write_elem(h5, "df", frame)
    group = h5["df"]
    # only "a/b" is a path (a dataset inside group "a", as anndata stores it); the others are single links
    nested = {m for m in group if isinstance(group[m], h5py.Group)}
    assert nested == ({"a"} if "a/b" in names else set())
    assert_frame_equal(read_elem(group), frame)


@pytest.mark.parametrize(
    "names, flat",
    [
        (["a/b", "a"], ["a/b", "%61"]),  # "a" clashes with the group of "a/b"
        (["a", "a/b"], ["a", "a%2Fb"]),
        (["a/b/c", "a/b", "x//y", "/x", "y/"], ["a/b/c", "a%2Fb", "x%2F%2Fy", "%2Fx", "y%2F"]),
    ],
)
def test_column_paths_that_clash_are_escaped(h5, names, flat):
    frame = pl.DataFrame({n: [i] for i, n in enumerate(names)})
    write_elem(h5, "df", frame)
    assert list(h5["df"].attrs["column-order"]) == flat
    assert_frame_equal(read_elem(h5["df"]), frame)


def test_slash_column_names_are_written_the_way_anndata_writes_them(tmp_path):
    anndata = pytest.importorskip("anndata")
    pd = pytest.importorskip("pandas")
    ours, theirs = tmp_path / "ours.h5", tmp_path / "theirs.h5"
    with h5py.File(ours, "w") as f:
        write_elem(f, "obs", pl.DataFrame({"_index": ["r1", "r2"], "qc/n_genes": [3, 4]}), index="_index")
    with h5py.File(theirs, "w") as f:
        anndata.io.write_elem(f, "obs", pd.DataFrame({"qc/n_genes": [3, 4]}, index=["r1", "r2"]))
    with h5py.File(ours) as a, h5py.File(theirs) as b:
        assert list(a["obs"].attrs["column-order"]) == list(b["obs"].attrs["column-order"]) == ["qc/n_genes"]
        assert isinstance(a["obs/qc"], h5py.Group) and isinstance(b["obs/qc"], h5py.Group)
        shown = anndata.io.read_elem(a["obs"])
    assert list(shown.columns) == ["qc/n_genes"] and shown["qc/n_genes"].tolist() == [3, 4]


def test_index_column_may_have_reserved_name(h5):
    frame = pl.DataFrame({"_index": ["r1", "r2"], "v": [1, 2]})
    write_elem(h5, "df", frame, index="_index")
    assert_frame_equal(read_elem(h5["df"]), frame)


def test_missing_index_column_is_an_error(h5):
    with pytest.raises(EncodingError, match="index column"):
        write_elem(h5, "df", pl.DataFrame({"a": [1]}), index="b")
    assert "df" not in h5


def test_zero_rows_keep_dtypes(h5):
    frame = every_dtype_frame().clear()
    write_elem(h5, "df", frame)
    assert_frame_equal(read_elem(h5["df"]), frame)


def test_zero_columns(h5):
    frame = pl.DataFrame()
    write_elem(h5, "df", frame)
    back = read_elem(h5["df"])
    assert back.shape == (0, 0)


def test_object_column_is_refused(h5):
    frame = pl.DataFrame({"o": pl.Series([object(), object()], dtype=pl.Object)})
    with pytest.raises(EncodingError, match="Object"):
        write_elem(h5, "df", frame)
    assert "df" not in h5


def test_standalone_series_round_trips(h5):
    for i, series in enumerate(
        [
            pl.Series("ints", [1, None], dtype=pl.Int16),
            pl.Series("plain", [1.0, 2.0]),
            pl.Series("s", ["a", "b"]),
            pl.Series("c", ["a", "b"], dtype=pl.Categorical),
            pl.Series("t", [dt.date(2000, 1, 1)]),
        ]
    ):
        write_elem(h5, f"s{i}", series)
        assert_series_equal(read_elem(h5[f"s{i}"]), series)


def test_frame_inside_mapping(h5):
    value = {"obs": pl.DataFrame({"a": [1, 2]}), "n": 3}
    write_elem(h5, "m", value)
    back = read_elem(h5["m"])
    assert_frame_equal(back["obs"], value["obs"])
    assert back["n"] == 3


def test_old_anndata_dataframe_version_still_reads(h5):
    # The AnnData 0.7 layout: plain datasets, categorical codes referring to
    # __categories/<name>; only a reader exists for this version.
    group = h5.create_group("obs")
    group.attrs["encoding-type"] = "dataframe"
    group.attrs["encoding-version"] = "0.1.0"
    group.attrs["_index"] = "cell"
    group.attrs["column-order"] = np.array(["n", "kind"], dtype=h5py.string_dtype())
    group.create_dataset("cell", data=np.array(["a", "b", "c"], dtype=h5py.string_dtype()))
    group.create_dataset("n", data=np.array([1, 2, 3], dtype=np.int32))
    cats = group.create_group("__categories").create_dataset(
        "kind", data=np.array(["x", "y"], dtype=h5py.string_dtype())
    )
    codes = group.create_dataset("kind", data=np.array([1, -1, 0], dtype=np.int8))
    codes.attrs["categories"] = cats.ref
    frame = read_elem(group)
    expected = pl.DataFrame(
        {"cell": ["a", "b", "c"], "n": pl.Series([1, 2, 3], dtype=pl.Int32),
         "kind": pl.Series(["y", None, "x"], dtype=pl.Categorical)}
    )
    assert_frame_equal(frame, expected)


def _plain_categorical(parent: h5py.Group, key: str, codes, categories) -> None:
    """A categorical column as anndata lays it out, written with plain h5py."""
    group = parent.create_group(key)
    group.attrs["encoding-type"] = "categorical"
    group.attrs["encoding-version"] = "0.2.0"
    group.attrs["ordered"] = False
    codes = group.create_dataset("codes", data=np.asarray(codes, dtype=np.int8))
    cats = group.create_dataset("categories", data=categories)
    codes.attrs["encoding-type"], codes.attrs["encoding-version"] = "array", "0.2.0"
    cats.attrs["encoding-type"] = "string-array" if cats.dtype.kind in "OS" else "array"
    cats.attrs["encoding-version"] = "0.2.0"


def test_categories_read_hands_back_the_categories_no_row_uses(h5):
    from h5stream.elements.dataframe import categories_read

    obs = h5.create_group("obs")
    obs.attrs["encoding-type"] = "dataframe"
    obs.attrs["encoding-version"] = "0.2.0"
    obs.attrs["_index"] = "_index"
    obs.attrs["column-order"] = np.array(["text", "batch", "full"], dtype=h5py.string_dtype())
    index = obs.create_dataset("_index", data=np.array(["c0", "c1", "c2", "c3"], dtype=h5py.string_dtype()))
    index.attrs["encoding-type"], index.attrs["encoding-version"] = "string-array", "0.2.0"
    text_categories = np.array(["a", "b", "never", "c"], dtype=h5py.string_dtype())
    _plain_categorical(obs, "text", [0, 1, 3, -1], text_categories)
    _plain_categorical(obs, "batch", [2, 2, 0, 0], np.array([10, 20, 30, 40], dtype=np.int64))
    _plain_categorical(obs, "full", [1, 0, 1, 0], np.array(["x", "y"], dtype=h5py.string_dtype()))
    # the reference: each column's categories without a code pointing at them, counted here with numpy
    expected = {}
    for name in ("text", "batch", "full"):
        codes = obs[name]["codes"][()]
        cats = [c.decode() if isinstance(c, bytes) else str(c) for c in obs[name]["categories"][()]]
        unused = [c for i, c in enumerate(cats) if i not in set(codes.tolist())]
        if unused:
            expected[f"/obs/{name}"] = unused
    assert expected == {"/obs/text": ["never"], "/obs/batch": ["20", "40"]}

    with categories_read() as seen:
        frame = read_elem(obs)
    assert seen == expected
    assert frame.get_column("text").to_list() == ["a", "b", "c", None]
    assert frame.get_column("batch").to_list() == [30, 30, 10, 10]
    with categories_read() as again:
        pass
    assert again == {}
    read_elem(obs)  # outside a block: nothing noted anywhere, and the open block's mapping is untouched
    assert again == {} and seen == expected
