"""String columns written straight from Arrow buffers: same values, same on-disk strings."""

from __future__ import annotations

import anndata.io
import h5py
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

from h5stream.elements import read_elem, write_elem
from h5stream.elements.strings import write_string_series
from h5stream.errors import EncodingError
from h5stream.writer import WriteOptions


@pytest.fixture
def h5(tmp_path):
    with h5py.File(tmp_path / "t.h5", "w") as f:
        yield f


SERIES = [
    pl.Series(["a", "", "héllo ✓", "日本語", "x" * 300, ""]),
    pl.Series([""] * 5),
    pl.Series([], dtype=pl.String),
    pl.Series(["only"]),
    # A slice: Arrow offsets do not start at zero.
    pl.Series([f"s{i}" for i in range(50)]).slice(7, 20),
    # Several chunks.
    pl.concat([pl.Series(["a", "bb"]), pl.Series(["ccc", "", "dddd"])], rechunk=False),
]


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("compression", [None, "gzip"])
def test_values_equal_h5py_string_read(h5, series, compression):
    ds = write_string_series(h5, "s", series, WriteOptions.build(compression=compression))
    assert h5py.check_string_dtype(ds.dtype).encoding == "utf-8"
    # Read back by h5py's own decoder: the stored strings are the series' strings.
    assert ds.asstr()[()].tolist() == series.to_list()


def test_nul_is_refused_before_anything_is_lost(h5):
    with pytest.raises(EncodingError, match="NUL") as info:
        write_string_series(h5, "s", pl.Series(["ok", "a\x00b"]), WriteOptions())
    assert "/s" in str(info.value)
    with pytest.raises(EncodingError, match="NUL"):
        write_elem(h5, "frame", pl.DataFrame({"t": ["x", None, "y\x00"]}))


def test_frame_string_columns_round_trip_and_read_with_anndata(h5):
    frame = pl.DataFrame(
        {
            "plain": ["a", "bé", "", "d"],
            "nullable": [None, "x", "", None],
            "all_null": pl.Series([None, None, None, None], dtype=pl.String),
        }
    )
    write_elem(h5, "df", frame)
    assert_frame_equal(read_elem(h5["df"]), frame)
    theirs = anndata.io.read_elem(h5["df"])
    assert list(theirs.index) == ["0", "1", "2", "3"]
    assert theirs["plain"].tolist() == ["a", "bé", "", "d"]
    assert [None if pd.isna(v) else v for v in theirs["nullable"]] == [None, "x", "", None]


def test_index_column_option_keeps_labels(h5):
    frame = pl.DataFrame({"id": ["p1", "p2", "p3"], "v": [1, 2, 3]})
    write_elem(h5, "df", frame, index="id")
    assert anndata.io.read_elem(h5["df"]).index.tolist() == ["p1", "p2", "p3"]
    assert_series_equal(read_elem(h5["df"])["id"], frame["id"])
