"""polars temporal columns: typed encodings layered on integer arrays.

AnnData has no temporal encoding.  The values are stored as their integer
physical representation — ``array`` without nulls, ``nullable-integer`` with
nulls — so other readers still see the numbers, and our typed attributes say
what they mean:

==================  ==========================  ============================
polars dtype        typed encoding (0.1.0)      physical values, attributes
==================  ==========================  ============================
Date                ``h5stream:date``           int32 days since 1970-01-01
Datetime(unit, tz)  ``h5stream:datetime``       int64 ``unit`` since the epoch
                                                (UTC); ``unit``, ``time-zone``
                                                ("" = naive)
Duration(unit)      ``h5stream:duration``       int64 ``unit``; ``unit``
Time                ``h5stream:time``           int64 nanoseconds since midnight
==================  ==========================  ============================
"""

from __future__ import annotations

import h5py
import polars as pl

from h5stream.elements.dataframe import ARRAY, NULLABLE_INTEGER, write_masked_physical
from h5stream.elements.arrays import read_array_dataset
from h5stream.elements.registry import ElementSpec, register_reader, register_writer, stamp
from h5stream.writer import WriteOptions, write_array

__all__ = ["DATE", "DATETIME", "DURATION", "TIME"]

DATE = ElementSpec("h5stream:date", "0.1.0", layered=True)
DATETIME = ElementSpec("h5stream:datetime", "0.1.0", layered=True)
DURATION = ElementSpec("h5stream:duration", "0.1.0", layered=True)
TIME = ElementSpec("h5stream:time", "0.1.0", layered=True)


def _write_physical(parent: h5py.Group, key: str, series: pl.Series, options: WriteOptions):
    physical = series.to_physical()
    if physical.null_count():
        return write_masked_physical(parent, key, physical, options, NULLABLE_INTEGER)
    obj = write_array(parent, key, physical.to_numpy(), options)
    stamp(obj, ARRAY)
    return obj


@register_writer(pl.Series, DATE, match=lambda s: s.dtype == pl.Date)
def _write_date(parent, key, series, options):
    return _write_physical(parent, key, series, options)


@register_writer(pl.Series, DATETIME, match=lambda s: isinstance(s.dtype, pl.Datetime))
def _write_datetime(parent, key, series, options):
    obj = _write_physical(parent, key, series, options)
    obj.attrs["unit"] = series.dtype.time_unit
    obj.attrs["time-zone"] = series.dtype.time_zone or ""
    return obj


@register_writer(pl.Series, DURATION, match=lambda s: isinstance(s.dtype, pl.Duration))
def _write_duration(parent, key, series, options):
    obj = _write_physical(parent, key, series, options)
    obj.attrs["unit"] = series.dtype.time_unit
    return obj


@register_writer(pl.Series, TIME, match=lambda s: s.dtype == pl.Time)
def _write_time(parent, key, series, options):
    return _write_physical(parent, key, series, options)


def _text(obj, name: str) -> str:
    value = obj.attrs[name]
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_physical(obj) -> pl.Series:
    # Read the spec layer underneath the typed one.
    etype = _text(obj, "encoding-type")
    if etype == NULLABLE_INTEGER.encoding_type:
        from h5stream.elements.dataframe import read_masked

        from h5stream.elements.snapshot import describe

        return read_masked(describe(obj))
    return pl.Series(values=read_array_dataset(obj))


@register_reader(DATE)
def _read_date(obj, *, series: bool = False):
    return _read_physical(obj).cast(pl.Int32).cast(pl.Date)


@register_reader(DATETIME)
def _read_datetime(obj, *, series: bool = False):
    tz = _text(obj, "time-zone") or None
    return _read_physical(obj).cast(pl.Int64).cast(pl.Datetime(_text(obj, "unit"), tz))


@register_reader(DURATION)
def _read_duration(obj, *, series: bool = False):
    return _read_physical(obj).cast(pl.Int64).cast(pl.Duration(_text(obj, "unit")))


@register_reader(TIME)
def _read_time(obj, *, series: bool = False):
    return _read_physical(obj).cast(pl.Int64).cast(pl.Time)

