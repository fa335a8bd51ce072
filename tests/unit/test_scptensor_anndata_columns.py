"""Stand-in columns for AnnData readers and the exact copies that restore them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from h5scp.io._anndata_columns import (
    FrameNotes,
    anndata_visible,
    needs_stand_in,
    read_record,
    reconcile_frame,
    record_frame,
    restore_frame,
)
from h5scp.io.exceptions import IOFormatError


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        (pl.Series([1.0, None], dtype=pl.Float64), True),
        (pl.Series([1.0, float("nan")], dtype=pl.Float32), False),  # NaN alone is a plain float array
        (pl.Series([1, None], dtype=pl.Int64), False),
        (pl.Series(["a", None]), False),
        (pl.Series([[1], None]), True),
        (pl.Series([[1, 2]], dtype=pl.Array(pl.Int8, 2)), True),
        (pl.Series([{"a": 1}]), True),
        (pl.Series([b"x"]), True),
        (pl.Series([None, None], dtype=pl.Null), True),
        (pl.Series([Decimal("1.5")], dtype=pl.Decimal(4, 1)), False),
        (pl.Series([dt.datetime(2020, 1, 1)], dtype=pl.Datetime("us", "UTC")), False),
        (pl.Series(["a"], dtype=pl.Enum(["a"])), False),
    ],
)
def test_which_columns_need_a_stand_in(series, expected):
    assert needs_stand_in(series) is expected


def _old_exact_copy(frame: pl.DataFrame, names: list[str]) -> np.ndarray:
    """The exact copy files written before frame records hold: the stand-in columns alone, as IPC."""
    return record_frame(frame.select(names))


def test_readable_frames_pass_unchanged():
    frame = pl.DataFrame({"id": ["a", "b"], "n": pl.Series([1, None], dtype=pl.Int16)})
    assert anndata_visible(frame) is frame
    assert restore_frame(frame, None, path="p", obj="/obs") is frame


def _every_stand_in() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": ["a", "b", "c"],
            "f": pl.Series([float("nan"), None, 1.5], dtype=pl.Float32),
            "keep": [1, 2, 3],
            "l": pl.Series([[1, 2], None, []], dtype=pl.List(pl.Int8)),
            "s": pl.Series([{"t": dt.date(2020, 1, 2), "b": b"\x01"}, None, {"t": None, "b": None}]),
            "bin": pl.Series([b"\x00\xff", None, b""]),
            "none": pl.Series([None, None, None], dtype=pl.Null),
            "text": pl.Series(["x", None, "y"]),
        }
    )


def test_visible_forms_are_what_anndata_reads_and_writes_back():
    frame = _every_stand_in()
    visible = anndata_visible(frame)
    assert visible.columns == frame.columns
    assert visible.schema["f"] == pl.Float32 and visible["f"].null_count() == 0
    assert np.isnan(visible["f"].to_numpy()[:2]).all() and visible["f"][2] == 1.5
    # text with nulls becomes categorical: anndata writes nullable strings only on request
    assert visible.schema["l"] == pl.Categorical and visible["l"].cast(pl.String).to_list() == ["[1,2]", None, "[]"]
    assert visible["s"].cast(pl.String).to_list() == ['{"t":"2020-01-02","b":"01"}', None, '{"t":null,"b":null}']
    assert visible["bin"].cast(pl.String).to_list() == ["00ff", None, ""]
    assert visible.schema["none"] == pl.Categorical and visible["none"].null_count() == 3
    assert visible.schema["text"] == pl.Categorical
    assert_frame_equal(visible.select("id", "keep"), frame.select("id", "keep"))


def test_old_exact_copies_restore_position_and_dtype():
    frame = _every_stand_in().drop("text")
    names = ["f", "l", "s", "bin", "none"]
    visible = anndata_visible(frame)
    assert_frame_equal(restore_frame(visible, _old_exact_copy(frame, names), path="p", obj="/obs"), frame)


def test_reconcile_gives_back_the_record_by_id_through_subset_and_reorder():
    frame = _every_stand_in()
    recorded = read_record(record_frame(frame), path="p", obj="/uns")
    # what a re-save by anndata shows, rows 2 and 0 only, a column added
    found = anndata_visible(frame)[[2, 0]].with_columns(new=pl.Series([7, 8]))
    notes = FrameNotes()
    back = reconcile_frame(found, recorded, id_col="id", label="obs", notes=notes)
    assert_frame_equal(back.drop("new"), frame[[2, 0]])
    assert notes.changes == ["obs: columns added 'new'"]


def test_reconcile_keeps_replaced_values_in_the_recorded_dtype_when_they_fit():
    frame = pl.DataFrame({"id": ["a", "b"], "d": [dt.date(2020, 1, 1), dt.date(2020, 1, 2)],
                          "e": pl.Series(["x", "y"], dtype=pl.Enum(["x", "y"])), "gone": [1, 2]})
    recorded = read_record(record_frame(frame), path="p", obj="/uns")
    # anndata shows a Date as its day numbers and an Enum as a categorical; the user replaced some values
    found = pl.DataFrame({"id": ["a", "b"], "d": pl.Series([18262, 99], dtype=pl.Int32),
                          "e": pl.Series(["y", "z"], dtype=pl.Categorical)})
    notes = FrameNotes()
    back = reconcile_frame(found, recorded, id_col="id", label="obs", notes=notes)
    assert back.schema["d"] == pl.Date and back["d"].to_list() == [dt.date(2020, 1, 1), dt.date(1970, 4, 10)]
    assert back.schema["e"] == pl.Categorical and back["e"].cast(pl.String).to_list() == ["y", "z"]  # z: no fit
    assert notes.changes == [
        "obs: columns removed 'gone'", "obs: values replaced in columns 'd', 'e'",
        "obs: kept as found, values do not fit the recorded dtype: 'e' (Categorical, recorded "
        "Enum(categories=['x', 'y']))",
    ]


def test_restore_refuses_a_copy_that_does_not_fit(tmp_path):
    frame = pl.DataFrame({"id": ["a", "b"], "l": pl.Series([[1], None])})
    exact = _old_exact_copy(frame, ["l"])
    other = pl.DataFrame({"id": ["a", "b"], "x": [1, 2]})
    with pytest.raises(IOFormatError, match="does not fit") as info:
        restore_frame(other, exact, path=tmp_path / "f.h5mu", obj="/mod/p/var")
    assert "f.h5mu" in str(info.value) and "/mod/p/var" in str(info.value)
    with pytest.raises(IOFormatError, match="does not fit"):
        restore_frame(frame.head(1), exact, path="f", obj="/obs")
    with pytest.raises(IOFormatError, match="not a byte array"):
        restore_frame(frame, exact.astype(np.int16), path="f", obj="/obs")
    with pytest.raises(IOFormatError, match="not a byte array"):
        read_record(exact.astype(np.int16), path="f", obj="/uns")
