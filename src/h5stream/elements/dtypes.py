"""polars dtypes as small JSON values, and back.

A nested column stored in a layout that other readers understand (AnnData's
``awkward-array``) and the frame schemas kept in AnnData files both need the
exact polars dtype beside the values.  :func:`describe_dtype` gives a JSON value
(a dtype's name, or an object for the parametrised ones), :func:`parse_dtype`
the dtype back; an unknown description raises ``ValueError``.

==========================  ==================================================
polars dtype                description
==========================  ==================================================
Int8 ... UInt128, Float*,   its name: ``"Int32"``
Boolean, String, Binary,
Date, Time, Null,
Categorical
Datetime(unit, tz)          ``{"kind": "Datetime", "unit": "us", "tz": "UTC"}``
                            (``tz`` null when naive)
Duration(unit)              ``{"kind": "Duration", "unit": "ms"}``
Decimal(precision, scale)   ``{"kind": "Decimal", "precision": 12, "scale": 3}``
Enum(categories)            ``{"kind": "Enum", "categories": [...]}``
List(inner)                 ``{"kind": "List", "inner": ...}``
Array(inner, size)          ``{"kind": "Array", "inner": ..., "size": 2}``
                            (a multi-dimensional array nests)
Struct(fields)              ``{"kind": "Struct", "fields": [[name, ...], ...]}``
==========================  ==================================================
"""

from __future__ import annotations

from typing import Any

import polars as pl

__all__ = ["describe_dtype", "parse_dtype", "FLOAT_DTYPES", "WIDE_INTEGER_DTYPES"]

# older polars releases lack some kinds (Float16, UInt128, Int128): each tuple holds those this polars has
FLOAT_DTYPES = tuple(getattr(pl, name) for name in ("Float16", "Float32", "Float64") if hasattr(pl, name))
WIDE_INTEGER_DTYPES = tuple(getattr(pl, name) for name in ("Int128", "UInt128") if hasattr(pl, name))

_SIMPLE = {
    name: getattr(pl, name)
    for name in ("Int8", "Int16", "Int32", "Int64", "Int128", "UInt8", "UInt16", "UInt32", "UInt64", "UInt128",
                 "Float16", "Float32", "Float64", "Boolean", "String", "Binary", "Date", "Time", "Null",
                 "Categorical")
    if hasattr(pl, name)
}


def describe_dtype(dtype: pl.DataType) -> Any:
    """A JSON value describing ``dtype`` exactly (see the module table)."""
    if isinstance(dtype, pl.Datetime):
        return {"kind": "Datetime", "unit": dtype.time_unit, "tz": dtype.time_zone}
    if isinstance(dtype, pl.Duration):
        return {"kind": "Duration", "unit": dtype.time_unit}
    if isinstance(dtype, pl.Decimal):
        return {"kind": "Decimal", "precision": dtype.precision, "scale": dtype.scale}
    if isinstance(dtype, pl.Enum):
        return {"kind": "Enum", "categories": dtype.categories.to_list()}
    if isinstance(dtype, pl.List):
        return {"kind": "List", "inner": describe_dtype(dtype.inner)}
    if isinstance(dtype, pl.Array):
        return {"kind": "Array", "inner": describe_dtype(dtype.inner), "size": dtype.size}
    if isinstance(dtype, pl.Struct):
        return {"kind": "Struct", "fields": [[f.name, describe_dtype(f.dtype)] for f in dtype.fields]}
    if isinstance(dtype, pl.Categorical):
        return "Categorical"
    for name, simple in _SIMPLE.items():
        if dtype == simple:
            return name
    raise ValueError(f"no description for the polars dtype {dtype}")


def parse_dtype(description: Any) -> pl.DataType:
    """The polars dtype a :func:`describe_dtype` value describes."""
    if isinstance(description, str):
        if description not in _SIMPLE:
            if description in ("Float16", "Int128", "UInt128"):
                raise ValueError(f"polars {pl.__version__} has no {description}: a newer polars reads this column")
            raise ValueError(f"unknown dtype name {description!r}")
        return _SIMPLE[description]()
    if not isinstance(description, dict) or "kind" not in description:
        raise ValueError(f"a dtype description is a name or an object with 'kind', not {description!r}")
    kind = description["kind"]
    try:
        if kind == "Datetime":
            return pl.Datetime(description["unit"], description["tz"])
        if kind == "Duration":
            return pl.Duration(description["unit"])
        if kind == "Decimal":
            return pl.Decimal(description["precision"], description["scale"])
        if kind == "Enum":
            return pl.Enum(list(description["categories"]))
        if kind == "List":
            return pl.List(parse_dtype(description["inner"]))
        if kind == "Array":
            return pl.Array(parse_dtype(description["inner"]), int(description["size"]))
        if kind == "Struct":
            return pl.Struct([pl.Field(str(name), parse_dtype(inner)) for name, inner in description["fields"]])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"incomplete dtype description {description!r}: {exc}") from exc
    raise ValueError(f"unknown dtype kind {kind!r}")
