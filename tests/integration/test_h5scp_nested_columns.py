"""List, nested-list, binary and struct obs/var columns load in every format as polars' own columns.

Each load is used in a child interpreter (``to_list``, ``explode``, ``==``, struct fields) so that a
polars that crashes on a column it was handed (polars 1.0 to 1.36 on a 64-bit-offset list of
``large_string``: a segmentation fault) fails one test instead of ending the run. The same tests run
under the oldest polars the package allows, upstream ScpTensor's pin and the newest (``.ci/run``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pytest

import h5scp
from h5scp import Assay, ScpContainer, ScpMatrix
from h5stream.elements.awkward_layout import list_series

FORMATS = [".h5", ".h5mu", ".h5ad", ".parquet", ".zarr"]

# the columns, as Python source: the child builds them again to compare with what it loaded
COLUMNS = {
    "tags": 'pl.Series([["a", "b"], [], None, ["é", None]], dtype=pl.List(pl.String))',
    "blobs": 'pl.Series([[b"a", b"\\x00"], [], None, [None]], dtype=pl.List(pl.Binary))',
    "nested": 'pl.Series([[["a"], ["b", "c"]], [[]], None, [None, ["d"]]], dtype=pl.List(pl.List(pl.String)))',
    "record": ('pl.Series([{"x": ["a"], "y": 1}, {"x": [], "y": 2}, None, {"x": None, "y": None}],'
               ' dtype=pl.Struct({"x": pl.List(pl.String), "y": pl.Int64}))'),
    "records": ('pl.Series([[{"x": ["a"], "y": 1}], [None], None, []],'
                ' dtype=pl.List(pl.Struct({"x": pl.List(pl.Binary), "y": pl.Int64})))'),
    "raw": 'pl.Series([b"a", b"", None, b"\\xff"], dtype=pl.Binary)',
    "pairs": 'pl.Series([["a", "b"], ["c", None], None, ["d", "e"]], dtype=pl.Array(pl.String, 2))',
    "levels": 'pl.Series([["x", "y"], [], None, ["x"]], dtype=pl.List(pl.Categorical))',
}

CHILD = textwrap.dedent("""
    import sys
    import polars as pl
    import h5scp
    from h5scp.io.classes import OURS
    path, name, source = sys.argv[1:4]
    expected = eval(source).alias(name)
    for frame in (h5scp.load(path, classes=OURS).obs, h5scp.load(path, classes=OURS).assays["p"].var):
        got = frame[name]
        assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
        assert got.to_list() == expected.to_list(), got.to_list()
        assert got.is_null().to_list() == expected.is_null().to_list()
        if isinstance(got.dtype, pl.List):
            assert got.explode().to_list() == expected.explode().to_list()
            assert got.list.len().to_list() == expected.list.len().to_list()
        if isinstance(got.dtype, pl.Struct):
            for field in got.dtype.fields:
                assert got.struct.field(field.name).to_list() == expected.struct.field(field.name).to_list()
        assert (got == expected).to_list() == (expected == expected).to_list()
        assert frame.filter(pl.col(name).is_not_null()).height == expected.is_not_null().sum()
    print("ok")
""")


def _container(name: str, column: pl.Series) -> ScpContainer:
    obs = pl.DataFrame({"_index": [f"s{i}" for i in range(4)]}).with_columns(column.alias(name))
    var = pl.DataFrame({"_index": [f"P{i}" for i in range(4)]}).with_columns(column.alias(name))
    return ScpContainer(obs, {"p": Assay(var, {"raw": ScpMatrix(np.arange(16.0).reshape(4, 4))})})


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_nested_columns_load_as_polars_own_columns(tmp_path, suffix, name):
    column = eval(COLUMNS[name], {"pl": pl})  # noqa: S307 (our own table above)
    path = tmp_path / f"c{suffix}"
    h5scp.save(_container(name, column), path, **({"assay": "p"} if suffix == ".h5ad" else {}))
    run = subprocess.run([sys.executable, "-c", CHILD, str(path), name, COLUMNS[name]],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"polars {pl.__version__}, exit {run.returncode}: {run.stderr[-3000:]}"
    assert run.stdout.strip() == "ok"


def test_list_series_splits_lists_past_32_bit_offsets(monkeypatch):
    """Lists are handed over with 32-bit offsets, in chunks when the values pass what one chunk holds."""
    import h5stream.elements.awkward_layout as layout

    monkeypatch.setattr(layout, "_LIST32_SPAN", 3)
    values = pl.Series(["a", "b", "c", "d", "e", "f", "g"])
    offsets = np.array([0, 2, 2, 5, 6, 7])
    valid = np.array([True, True, False, True, True])
    got = list_series(offsets, values, valid)
    assert got.to_list() == [["a", "b"], [], None, ["f"], ["g"]]
    with pytest.raises(layout.LayoutError, match="more than one Arrow list holds"):
        list_series(np.array([0, 4]), values.head(4))
    assert list_series(np.array([0]), values.head(0)).to_list() == []
