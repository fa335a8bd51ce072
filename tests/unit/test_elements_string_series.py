"""String columns written straight from Arrow buffers: same values, same on-disk strings."""

from __future__ import annotations

import anndata.io
import h5py
import numpy as np
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

from h5stream.elements import read_elem, write_elem
from h5stream.elements.registry import read_with
from h5stream.elements.strings import write_string_series
from h5stream.errors import EncodingError
from h5stream.writer import WriteOptions


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


# --------------------------------------------------------------------------- fixed or variable width


def _utf8_sizes(values):
    sizes = [len(v.encode()) for v in values]
    return len(sizes), max(sizes), sum(sizes)


def _is_fixed(ds) -> bool:
    return h5py.check_string_dtype(ds.dtype).length is not None


@pytest.mark.parametrize(
    "values",
    [
        [f"P{i:05d}" for i in range(100)],  # identifiers of one length
        ["é", "日本語", "", "✓✓✓✓", "abc"],  # multi-byte text, the widest exactly filling its cell
        [""] * 7,  # width 1, every cell padding
        ["x" * 2000] + ["y"] * 99,  # one long outlier
        ["a" * 40, "b"],  # padding right at the rule's edge
    ],
)
def test_storage_width_follows_the_size_rule_and_values_survive(h5, values):
    n, widest, total = _utf8_sizes(values)
    write_elem(h5, "s", pl.Series(values, dtype=pl.String))
    ds = h5["s"]
    # Fixed width exactly when padding to the widest string costs no more than
    # variable-length storage (the text plus 32 bytes per string).
    assert _is_fixed(ds) == (n * max(1, widest) <= total + 32 * n)
    if _is_fixed(ds):
        assert ds.dtype.itemsize == max(1, widest)
    assert ds.asstr()[()].tolist() == values
    assert anndata.io.read_elem(ds).tolist() == values
    assert list(read_elem(ds)) == values
    assert read_with(ds, series=True).to_list() == values


def test_fixed_width_columns_round_trip_in_frames_with_nulls_and_compression(h5):
    rng_values = [f"gene{i % 13}" if i % 4 else None for i in range(50_000)]
    frame = pl.DataFrame({"g": rng_values, "id": [f"id{i:05d}" for i in range(50_000)]})
    write_elem(h5, "df", frame, compression="gzip", compression_opts=4)
    values = h5["df/g/values"]
    assert _is_fixed(values) and _is_fixed(h5["df/id"])
    assert values.compression == "gzip"  # fixed-width text goes through the filter
    assert_frame_equal(read_elem(h5["df"]), frame)
    theirs = anndata.io.read_elem(h5["df"])
    assert [None if pd.isna(v) else v for v in theirs["g"]] == rng_values
    assert theirs["id"].tolist() == frame["id"].to_list()


def test_fixed_width_text_that_is_not_utf8_is_a_format_error(h5):
    from h5stream.errors import FormatError

    tid = h5py.h5t.C_S1.copy()
    tid.set_size(2)
    tid.set_cset(h5py.h5t.CSET_UTF8)
    ds = h5.create_dataset("bad", shape=(2,), dtype=h5py.string_dtype("utf-8", 2))
    ds.id.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array([b"ok", b"\xff\xfe"], dtype="S2"), mtype=tid)
    ds.attrs["encoding-type"], ds.attrs["encoding-version"] = "string-array", "0.2.0"
    with pytest.raises(FormatError, match="UTF-8") as info:
        read_elem(ds)
    assert "/bad" in str(info.value)


@pytest.mark.parametrize("below", [0, 10**9])
def test_both_ways_of_gathering_the_bytes_store_the_same_strings(h5, monkeypatch, below):
    """Python strings (short columns) and Arrow buffers (long ones) give the same stored strings."""
    from h5stream.elements import strings

    monkeypatch.setattr(strings, "PYTHON_STRINGS_BELOW", below)
    for i, series in enumerate(SERIES[:2] + SERIES[3:] + [pl.Series(["é" * 3, "x" * 90, "", "日本"])]):
        ds = write_string_series(h5, f"s{i}", series, WriteOptions())
        assert ds.asstr()[()].tolist() == series.to_list()


def test_fixed_width_text_is_cut_at_its_first_nul_as_hdf5_reads_it(h5):
    """A foreign fixed-width column with bytes after a NUL (plain h5py) reads as the text before it."""
    cells = np.array([b"ab\x00cd", b"\x00\x00\x00xy", b"abcde", b"", "é".encode() + b"\x00\x00z"], dtype="S5")
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(5)
    tid.set_cset(h5py.h5t.CSET_UTF8)
    ds = h5.create_dataset("odd", shape=cells.shape, dtype=h5py.string_dtype("utf-8", 5))
    ds.id.write(h5py.h5s.ALL, h5py.h5s.ALL, cells, mtype=tid)
    ds.attrs["encoding-type"], ds.attrs["encoding-version"] = "string-array", "0.2.0"
    expected = [c.split(b"\x00")[0].decode() for c in cells.tolist()]
    assert expected == ["ab", "", "abcde", "", "é"]
    assert read_with(ds, series=True).to_list() == expected
    assert list(read_elem(ds)) == expected


def test_a_first_small_save_and_load_do_not_import_pyarrow(tmp_path):
    """Importing pyarrow costs a fresh process's first load about 0.25 s (its compute module): string
    columns of a small container are written and read without it."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import sys
        import numpy as np, polars as pl
        from h5scp import Assay, ScpContainer, ScpMatrix
        from h5scp.io import load_hdf5, save_hdf5
        from h5scp.testing import assert_container_equal
        obs = pl.DataFrame({{"_index": [f"s{{i}}" for i in range(50)], "batch": ["a", "bé"] * 25,
                             "group": pl.Series(["x", "y"] * 25, dtype=pl.Categorical)}})
        var = pl.DataFrame({{"_index": [f"P{{j}}" for j in range(7)], "name": ["g" * j for j in range(7)]}})
        c = ScpContainer(obs, {{"p": Assay(var, {{"raw": ScpMatrix(np.arange(350.0).reshape(50, 7))}})}})
        save_hdf5(c, {str(tmp_path / "c.h5")!r})
        back = load_hdf5({str(tmp_path / "c.h5")!r})
        assert_container_equal(back, c)
        print(sorted(m for m in sys.modules if m.split(".")[0] == "pyarrow"))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _fixed_width_column(h5, name: str, cells: np.ndarray):
    """A fixed-width UTF-8 string-array written by plain h5py (as another tool writes one)."""
    width = cells.dtype.itemsize
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(width)
    tid.set_cset(h5py.h5t.CSET_UTF8)
    ds = h5.create_dataset(name, shape=cells.shape, dtype=h5py.string_dtype("utf-8", width))
    ds.id.write(h5py.h5s.ALL, h5py.h5s.ALL, cells, mtype=tid)
    ds.attrs["encoding-type"], ds.attrs["encoding-version"] = "string-array", "0.2.0"
    return ds


@pytest.mark.parametrize("cells", [
    [b"S00000", b"S00001", "é日".encode() + b"x", b"zzzzzz"],  # every cell full: no NUL anywhere
    [b"S00000", b"S1", b"", "é".encode(), b"abcdef"],  # padded cells beside full ones
    [b"ab\x00cdef", b"S00001", b"xyzxyz\x00"],  # a NUL then bytes in one cell only
])
def test_fixed_width_cells_read_as_h5py_decodes_them(h5, cells):
    """Identifiers of one width (no NUL at all), padded ones and damaged ones read as h5py's decoder reads
    them, up to the first NUL."""
    ds = _fixed_width_column(h5, "ids", np.array(cells, dtype=f"S{max(len(c) for c in cells)}"))
    expected = [c.split(b"\x00")[0].decode() for c in ds[()].tolist()]
    got = read_with(ds, series=True)
    assert got.dtype == pl.String and got.null_count() == 0
    assert got.to_list() == expected
    assert list(read_elem(ds)) == expected


def test_an_empty_string_column_reads_as_an_empty_string_series(h5):
    """A frame whose variable-length column holds nothing (plain h5py) reads as an empty String column; a
    fixed-width empty one too."""
    group = h5.create_group("frame")
    group.attrs["encoding-type"], group.attrs["encoding-version"] = "dataframe", "0.2.0"
    group.attrs["_index"] = "_index"
    group.attrs["column-order"] = np.array(["v", "f"], dtype=h5py.string_dtype())
    for name, dtype in (("_index", h5py.string_dtype()), ("v", h5py.string_dtype()),
                        ("f", h5py.string_dtype("utf-8", 4))):
        ds = group.create_dataset(name, shape=(0,), dtype=dtype)
        ds.attrs["encoding-type"], ds.attrs["encoding-version"] = "string-array", "0.2.0"
    frame = read_elem(group)
    assert frame.columns == ["_index", "v", "f"] and frame.height == 0
    assert frame.dtypes == [pl.String, pl.String, pl.String]
    assert read_with(group["v"], series=True).dtype == pl.String
