"""Property tests: random frames, sparse matrices and mappings round-trip exactly."""

from __future__ import annotations

import datetime as dt
import decimal
import tempfile
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from h5stream.elements import read_elem, write_elem

from tests.filecompare import assert_exact

SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

# Text HDF5 can hold: any Unicode except NUL and lone surrogates.
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6)
NAMES = st.text(st.characters(blacklist_categories=("Cs",)), max_size=5)


def _roundtrip(value, **options):
    with tempfile.TemporaryDirectory() as tmp:
        with h5py.File(Path(tmp) / "p.h5", "w") as f:
            write_elem(f, "v", value, **options)
        with h5py.File(Path(tmp) / "p.h5", "r") as f:
            return read_elem(f["v"])


def _nullable(strategy, nulls: bool):
    return st.one_of(st.none(), strategy) if nulls else strategy


INT_RANGES = {
    pl.Int8: (-(2**7), 2**7 - 1), pl.Int16: (-(2**15), 2**15 - 1), pl.Int32: (-(2**31), 2**31 - 1),
    pl.Int64: (-(2**63), 2**63 - 1), pl.UInt8: (0, 2**8 - 1), pl.UInt16: (0, 2**16 - 1),
    pl.UInt32: (0, 2**32 - 1), pl.UInt64: (0, 2**64 - 1),
}
# older polars releases have no UInt128 or Float16
INT_RANGES.update({getattr(pl, name): bounds for name, bounds in
                   (("Int128", (-(2**127), 2**127 - 1)), ("UInt128", (0, 2**128 - 1))) if hasattr(pl, name)})
FLOATS = {getattr(pl, name): width for name, width in (("Float16", 16), ("Float32", 32), ("Float64", 64))
          if hasattr(pl, name)}


@st.composite
def column(draw, n: int):
    kind = draw(
        st.sampled_from(
            [
                *INT_RANGES, *FLOATS, pl.Boolean, pl.String, pl.Categorical, "enum",
                pl.Date, "datetime", "duration", pl.Time, "decimal", pl.Binary, pl.Null, "list", "array", "struct",
            ]
        )
    )
    nulls = draw(st.booleans())
    values = lambda s: draw(st.lists(_nullable(s, nulls), min_size=n, max_size=n))  # noqa: E731
    if kind in INT_RANGES:
        lo, hi = INT_RANGES[kind]
        return pl.Series(values(st.integers(lo, hi)), dtype=kind)
    if kind in FLOATS:
        return pl.Series(values(st.floats(width=FLOATS[kind])), dtype=kind)
    if kind == pl.Boolean:
        return pl.Series(values(st.booleans()), dtype=pl.Boolean)
    if kind == pl.String:
        return pl.Series(values(TEXT), dtype=pl.String)
    if kind == pl.Categorical:
        return pl.Series(values(st.sampled_from(["a", "b", "ç", "long label"])), dtype=pl.Categorical)
    if kind == "enum":
        cats = draw(st.lists(TEXT, min_size=1, max_size=4, unique=True))
        return pl.Series(values(st.sampled_from(cats)), dtype=pl.Enum(cats))
    if kind == pl.Date:
        return pl.Series(values(st.dates()), dtype=pl.Date)
    if kind == "datetime":
        unit = draw(st.sampled_from(["ms", "us", "ns"]))
        tz = draw(st.sampled_from([None, "UTC", "Asia/Kolkata", "America/Sao_Paulo"]))
        ints = values(st.integers(-(2**40), 2**40))
        return pl.Series(ints, dtype=pl.Int64).cast(pl.Datetime(unit, tz))
    if kind == "duration":
        unit = draw(st.sampled_from(["ms", "us", "ns"]))
        return pl.Series(values(st.integers(-(2**50), 2**50)), dtype=pl.Int64).cast(pl.Duration(unit))
    if kind == pl.Time:
        return pl.Series(values(st.times()), dtype=pl.Time)
    if kind == "decimal":
        scale = draw(st.integers(0, 4))
        ints = values(st.integers(-(10**12), 10**12))
        return pl.Series(
            [None if i is None else decimal.Decimal(i).scaleb(-scale) for i in ints], dtype=pl.Decimal(18, scale)
        )
    if kind == pl.Binary:
        return pl.Series(values(st.binary(max_size=5)), dtype=pl.Binary)
    if kind == pl.Null:
        return pl.Series([None] * n, dtype=pl.Null)
    if kind == "list":
        inner = st.lists(_nullable(st.integers(-5, 5), True), max_size=3)
        return pl.Series(values(inner), dtype=pl.List(pl.Int32))
    if kind == "array":
        inner = st.lists(_nullable(st.floats(width=32), True), min_size=2, max_size=2)
        return pl.Series(values(inner), dtype=pl.Array(pl.Float32, 2))
    inner = st.fixed_dictionaries({"x": _nullable(st.floats(), True), "y": _nullable(TEXT, True)})
    return pl.Series(values(inner), dtype=pl.Struct({"x": pl.Float64, "y": pl.String}))


@st.composite
def frames(draw):
    n = draw(st.integers(0, 6))
    names = draw(st.lists(NAMES, max_size=5, unique=True))
    return pl.DataFrame([draw(column(n)).alias(name) for name in names]) if names else pl.DataFrame()


@SETTINGS
@given(frame=frames(), compress=st.booleans())
def test_random_frames_round_trip(frame, compress):
    back = _roundtrip(frame, compression="gzip" if compress else None)
    assert_frame_equal(back, frame, check_dtypes=True, check_exact=True)


@SETTINGS
@given(
    n_rows=st.integers(0, 12),
    n_cols=st.integers(0, 12),
    density=st.floats(0, 1),
    fmt=st.sampled_from(["csr", "csc"]),
    as_array=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64, np.int16, np.uint8]),
    index_dtype=st.sampled_from([np.int32, np.int64]),
    seed=st.integers(0, 2**16),
)
def test_random_sparse_round_trip(n_rows, n_cols, density, fmt, as_array, dtype, index_dtype, seed):
    m = sp.random(n_rows, n_cols, density=density, format=fmt, random_state=seed, dtype=np.float64)
    m.data = (m.data * 10).astype(dtype)  # values that round to 0 stay as explicit zeros
    m.indices = m.indices.astype(index_dtype)
    m.indptr = m.indptr.astype(index_dtype)
    if as_array:
        m = (sp.csr_array if fmt == "csr" else sp.csc_array)(m)
        m.indices = m.indices.astype(index_dtype)
        m.indptr = m.indptr.astype(index_dtype)
    back = _roundtrip(m, compression="gzip")
    assert type(back) is type(m)
    assert back.shape == m.shape and back.dtype == m.dtype
    for name in ("data", "indices", "indptr"):
        a, b = getattr(m, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    TEXT,
    st.binary(max_size=4),
    st.builds(np.float32, st.floats(width=32)),
    st.builds(np.int16, st.integers(-(2**15), 2**15 - 1)),
    st.builds(np.bool_, st.booleans()),
)
ARRAYS = st.builds(
    lambda xs, dt_: np.array(xs, dtype=dt_),
    st.lists(st.integers(0, 100), max_size=4),
    st.sampled_from([np.int8, np.float64, np.uint32]),
)


def json_like():
    keys = st.one_of(NAMES, st.integers(-(2**40), 2**40))
    return st.recursive(
        st.one_of(SCALARS, ARRAYS),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.lists(children, max_size=3).map(tuple),
            st.dictionaries(keys, children, max_size=4),
        ),
        max_leaves=12,
    )


@SETTINGS
@given(value=st.dictionaries(st.one_of(NAMES, st.integers()), json_like(), max_size=5))
def test_random_mappings_round_trip(value):
    assert_exact(_roundtrip(value), value)


def test_dates_far_from_epoch():
    frame = pl.DataFrame({"d": [dt.date(1, 1, 1), dt.date(9999, 12, 31)]})
    assert_frame_equal(_roundtrip(frame), frame)


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_frames(n):
    frame = pl.DataFrame({"a": pl.Series([1] * n, dtype=pl.UInt8)})
    assert_frame_equal(_roundtrip(frame), frame)
