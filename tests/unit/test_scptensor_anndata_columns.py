"""Stand-in columns for AnnData readers and the exact copies that restore them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from scptensor.io._anndata_columns import needs_stand_in, restore_frame, split_frame
from scptensor.io.exceptions import IOFormatError


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


def test_readable_frames_pass_unchanged():
    frame = pl.DataFrame({"id": ["a", "b"], "n": pl.Series([1, None], dtype=pl.Int16)})
    visible, exact = split_frame(frame)
    assert visible is frame and exact is None
    assert restore_frame(frame, None, path="p", obj="/obs") is frame


def test_stand_ins_and_restore_keep_position_and_dtype():
    frame = pl.DataFrame(
        {
            "id": ["a", "b", "c"],
            "f": pl.Series([float("nan"), None, 1.5], dtype=pl.Float32),
            "keep": [1, 2, 3],
            "l": pl.Series([[1, 2], None, []], dtype=pl.List(pl.Int8)),
            "s": pl.Series([{"t": dt.date(2020, 1, 2), "b": b"\x01"}, None, {"t": None, "b": None}]),
            "bin": pl.Series([b"\x00\xff", None, b""]),
            "none": pl.Series([None, None, None], dtype=pl.Null),
        }
    )
    visible, exact = split_frame(frame)
    assert visible.columns == frame.columns
    assert visible.schema["f"] == pl.Float32 and visible["f"].null_count() == 0
    assert np.isnan(visible["f"].to_numpy()[:2]).all() and visible["f"][2] == 1.5
    assert visible["l"].to_list() == ["[1,2]", None, "[]"]
    assert visible["s"].to_list() == ['{"t":"2020-01-02","b":"01"}', None, '{"t":null,"b":null}']
    assert visible["bin"].to_list() == ["00ff", None, ""]
    assert visible.schema["none"] == pl.String and visible["none"].null_count() == 3
    assert_frame_equal(visible.select("id", "keep"), frame.select("id", "keep"))
    assert exact.dtype == np.uint8 and exact.ndim == 1
    assert_frame_equal(restore_frame(visible, exact, path="p", obj="/obs"), frame, check_dtypes=True)


def test_restore_refuses_a_copy_that_does_not_fit(tmp_path):
    frame = pl.DataFrame({"id": ["a", "b"], "l": pl.Series([[1], None])})
    _visible, exact = split_frame(frame)
    other = pl.DataFrame({"id": ["a", "b"], "x": [1, 2]})
    with pytest.raises(IOFormatError, match="does not fit") as info:
        restore_frame(other, exact, path=tmp_path / "f.h5mu", obj="/mod/p/var")
    assert "f.h5mu" in str(info.value) and "/mod/p/var" in str(info.value)
    with pytest.raises(IOFormatError, match="does not fit"):
        restore_frame(frame.head(1), exact, path="f", obj="/obs")
    with pytest.raises(IOFormatError, match="not a byte array"):
        restore_frame(frame, exact.astype(np.int16), path="f", obj="/obs")
