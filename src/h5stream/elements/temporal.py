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
from h5stream.elements.arrays import read_array_node
from h5stream.elements.registry import ElementSpec, register_reader, register_writer, stamp
from h5stream.elements.snapshot import Node
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


def _text(node: Node, name: str) -> str:
    return str(node.attrs[name])


def _read_physical(node: Node) -> pl.Series:
    """The spec layer underneath the typed one, read from the element's description."""
    if _text(node, "encoding-type") == NULLABLE_INTEGER.encoding_type:
        from h5stream.elements.dataframe import read_masked

        return read_masked(node)
    return pl.Series(values=read_array_node(node))


@register_reader(DATE, node=True)
def _read_date(node: Node, *, series: bool = False):
    return _read_physical(node).cast(pl.Int32).cast(pl.Date)


@register_reader(DATETIME, node=True)
def _read_datetime(node: Node, *, series: bool = False):
    tz = _text(node, "time-zone") or None
    return _read_physical(node).cast(pl.Int64).cast(pl.Datetime(_text(node, "unit"), tz))


@register_reader(DURATION, node=True)
def _read_duration(node: Node, *, series: bool = False):
    return _read_physical(node).cast(pl.Int64).cast(pl.Duration(_text(node, "unit")))


@register_reader(TIME, node=True)
def _read_time(node: Node, *, series: bool = False):
    return _read_physical(node).cast(pl.Int64).cast(pl.Time)

