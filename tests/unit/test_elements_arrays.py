"""Dense arrays, numpy and Python scalars, string arrays: exact round trips."""

from __future__ import annotations

import numpy as np
import pytest

from h5stream.elements import read_elem, write_elem

NUMERIC = [
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64, np.complex64, np.complex128,
]


def _same(a, b):
    assert type(a) is type(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fcmM")


@pytest.mark.parametrize("dtype", NUMERIC)
def test_every_numeric_dtype_round_trips(h5, dtype):
    rng = np.random.default_rng(1)
    a = (rng.random((7, 5)) * 100).astype(dtype)
    write_elem(h5, "a", a)
    _same(read_elem(h5["a"]), a)


@pytest.mark.parametrize("shape", [(), (0,), (0, 3), (3, 0), (1,), (2, 3, 4)])
def test_shapes_including_zero_d_and_empty(h5, shape):
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    write_elem(h5, "a", a, compression="gzip")
    back = read_elem(h5["a"])
    _same(back, a)


def test_fortran_order_is_kept_without_cast(h5):
    a = np.asfortranarray(np.arange(60, dtype=np.int16).reshape(6, 10))
    write_elem(h5, "f", a, compression="gzip", n_threads=2)
    back = read_elem(h5["f"])
    _same(back, a)
    assert back.flags.f_contiguous and not back.flags.c_contiguous
    c = np.ascontiguousarray(a)
    write_elem(h5, "c", c)
    assert read_elem(h5["c"]).flags.c_contiguous


def test_strided_view_is_written_by_value(h5):
    base = np.arange(200, dtype=np.float64).reshape(20, 10)
    view = base[::3, 1::2]
    write_elem(h5, "v", view, compression="lzf")
    _same(read_elem(h5["v"]), np.ascontiguousarray(view))


def test_fortran_3d(h5):
    a = np.asfortranarray(np.random.default_rng(0).random((4, 5, 6)))
    write_elem(h5, "a", a)
    back = read_elem(h5["a"])
    _same(back, a)
    assert back.flags.f_contiguous


def test_datetime64_and_timedelta64(h5):
    a = np.array(["2020-01-01T00:00:00.123", "NaT", "1900-05-05"], dtype="datetime64[ms]")
    d = np.array([1, -5, 0], dtype="timedelta64[s]")
    write_elem(h5, "a", a)
    write_elem(h5, "d", d)
    _same(read_elem(h5["a"]), a)
    _same(read_elem(h5["d"]), d)


def test_fixed_width_bytes(h5):
    a = np.array([b"ab", b"c", b""], dtype="S2")
    write_elem(h5, "b", a)
    _same(read_elem(h5["b"]), a)


@pytest.mark.parametrize(
    "value",
    [np.float32(1.5), np.int8(-3), np.uint64(2**64 - 1), np.bool_(True), np.complex64(1 + 2j), np.float64("nan")],
)
def test_numpy_scalars_keep_dtype(h5, value):
    write_elem(h5, "s", value)
    back = read_elem(h5["s"])
    assert type(back) is type(value)
    assert back.dtype == value.dtype
    assert back == value or (np.isnan(back) and np.isnan(value))


@pytest.mark.parametrize("value", [True, False, 0, -(2**63), 2**64 - 1, 1.25, float("inf"), 1 + 1j, "héllo ✓", "", None, b"", b"\x00a\x00"])
def test_python_scalars_keep_type(h5, value):
    write_elem(h5, "s", value)
    back = read_elem(h5["s"])
    assert type(back) is type(value)
    assert back == value


def test_numpy_str_and_bytes_scalars(h5):
    write_elem(h5, "s", np.str_("x"))
    back = read_elem(h5["s"])
    assert type(back) is np.str_ and back == "x"
    write_elem(h5, "b", np.bytes_(b"a\x00b"))
    back = read_elem(h5["b"])
    assert type(back) is np.bytes_ and back == b"a\x00b"


def test_string_arrays_keep_dtype(h5):
    u = np.array([["a", "bé"], ["", "ccc"]])
    o = np.array(["x", None, "z"], dtype=object)
    t = np.array(["x", "y"], dtype=np.dtypes.StringDType())
    tn = np.array(["x", None], dtype=np.dtypes.StringDType(na_object=None))
    for name, value in {"u": u, "o": o, "t": t}.items():
        write_elem(h5, name, value)
        back = read_elem(h5[name])
        assert back.dtype == value.dtype and back.shape == value.shape
        assert back.tolist() == value.tolist()
    write_elem(h5, "tn", tn)
    back = read_elem(h5["tn"])
    assert back.dtype.kind == "T" and back.astype(object).tolist() == ["x", None]
    assert h5["o"].attrs["encoding-type"] == "nullable-string-array"
    assert h5["u"].attrs["encoding-type"] == "string-array"


def test_lists_of_strings_with_none(h5):
    write_elem(h5, "l", ["a", None, "ü"])
    write_elem(h5, "t", ("a", "b"))
    assert read_elem(h5["l"]) == ["a", None, "ü"]
    assert read_elem(h5["t"]) == ("a", "b")


def test_small_array_contiguous_and_large_compressed_array_row_chunked(h5):
    write_elem(h5, "small", np.arange(10))
    assert h5["small"].chunks is None
    big = np.zeros((1000, 700), dtype=np.float32)
    write_elem(h5, "big", big, compression="gzip")
    rows, cols = h5["big"].chunks
    assert cols == 700 and 1 <= rows < 1000
    write_elem(h5, "mine", big, compression="gzip", chunks=(10, 70))
    assert h5["mine"].chunks == (10, 70)
    _same(read_elem(h5["mine"]), big)


@pytest.mark.parametrize("codec", [None, "gzip", "lzf", "zstd", "lz4", "blosc", "blosc2", "bitshuffle"])
def test_compression_codecs(h5, codec):
    if codec in ("zstd", "lz4", "blosc", "blosc2", "bitshuffle"):
        pytest.importorskip("hdf5plugin")
    a = np.random.default_rng(2).normal(size=(300, 40)).astype(np.float32)
    write_elem(h5, "a", a, compression=codec)
    _same(read_elem(h5["a"]), a)


def test_bad_compression_options(h5):
    with pytest.raises(ValueError, match="compression"):
        write_elem(h5, "a", np.arange(3), compression="snappy")
    with pytest.raises(ValueError, match="0-9"):
        write_elem(h5, "a", np.arange(3), compression="gzip", compression_opts=11)
    assert "a" not in h5


@pytest.mark.parametrize(
    "value",
    ["a\x00b", np.array(["ok", "x\x00y"]), ["a", "b\x00"], np.array(["\x00"], dtype=object)],
)
def test_strings_with_nul_are_refused_not_truncated(h5, value):
    from h5stream.errors import EncodingError

    with pytest.raises(EncodingError, match="NUL"):
        write_elem(h5, "s", value)
    assert "s" not in h5
