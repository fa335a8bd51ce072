"""polars columns AnnData has no dtype for: Decimal, 128-bit integers, Binary, Null, List, Array, Struct.

=================  ================================  ========================================
polars dtype       encoding                          layout
=================  ================================  ========================================
Decimal(p, s)      ``h5stream:decimal`` 0.1.0,       exact decimal text as ``string-array`` /
                   layered on string arrays          ``nullable-string-array``; ``precision``,
                                                     ``scale`` attributes
Int128, UInt128    ``h5stream:int128`` 0.1.0,        exact decimal text as string arrays;
                   layered on string arrays          ``signed`` attribute
Null               ``h5stream:null-column`` 0.2.0,   a float ``array`` of NaN (0.1.0: a group
                   layered on ``array``              with attribute ``length``)
Binary             ``h5stream:binary`` 0.2.0         AnnData's ``awkward-array`` 0.1.0 (see
List(inner)        ``h5stream:list`` 0.2.0           :mod:`h5stream.elements.awkward_layout`):
Array(inner, n)    ``h5stream:fixed-list`` 0.2.0     attributes ``form`` (JSON), ``length``,
Struct(fields)     ``h5stream:struct`` 0.2.0         one ``array`` per buffer, and
                   (each layered on                  ``h5stream:dtype`` (the exact polars
                   ``awkward-array``)                dtype, JSON, see
                                                     :mod:`h5stream.elements.dtypes`)
=================  ================================  ========================================

``anndata.io.read_elem`` reads the 0.2.0 nested columns as Awkward Arrays of
the same values (with the ``awkward`` package installed); our reader rebuilds
the exact polars column from the buffers and the recorded dtype, without
awkward.  Nesting goes to any depth.

Readers of the 0.1.0 layouts (files written before) are kept:

=========================  =================================================
0.1.0 encoding             layout
=========================  =================================================
``h5stream:binary``        group: ``data`` (uint8, all values concatenated),
                           ``offsets`` (int64, n+1), ``mask`` (bool, True =
                           null)
``h5stream:list``          group: ``offsets`` (int64, n+1), ``mask``,
                           ``values`` (the flattened inner column, itself an
                           element)
``h5stream:fixed-list``    the ``h5stream:list`` layout plus ``width``
``h5stream:struct``        group: one element per field (escaped names),
                           ``mask``; ``h5stream:fields`` (JSON list of field
                           names)
=========================  =================================================
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import polars as pl

from h5stream.elements.awkward_layout import LayoutError, from_buffers, list_series, to_buffers
from h5stream.elements.dataframe import ARRAY
from h5stream.elements.dtypes import WIDE_INTEGER_DTYPES, describe_dtype, parse_dtype
from h5stream.elements.mapping import escape_name
from h5stream.elements.registry import (
    ElementSpec,
    read_node,
    read_spec_layer,
    register_reader,
    register_writer,
    set_text_attr,
    stamp,
    write_with,
)
from h5stream.elements.snapshot import Node
from h5stream.elements.strings import NULLABLE_STRING_ARRAY, STRING_ARRAY
from h5stream.errors import EncodingError, FormatError
from h5stream.writer import write_array

__all__ = ["DECIMAL", "INT128", "BINARY", "NULL_COLUMN", "LIST", "FIXED_LIST", "STRUCT", "AWKWARD_ARRAY"]

DECIMAL = ElementSpec("h5stream:decimal", "0.1.0", layered=True)
NULL_COLUMN = ElementSpec("h5stream:null-column", "0.2.0", layered=True)
NULL_COLUMN_0_1_0 = ElementSpec("h5stream:null-column", "0.1.0")
INT128 = ElementSpec("h5stream:int128", "0.1.0", layered=True)
#: AnnData's encoding of an Awkward Array (the spec layer of the nested columns)
AWKWARD_ARRAY = ElementSpec("awkward-array", "0.1.0")
BINARY = ElementSpec("h5stream:binary", "0.2.0", layered=True)
LIST = ElementSpec("h5stream:list", "0.2.0", layered=True)
FIXED_LIST = ElementSpec("h5stream:fixed-list", "0.2.0", layered=True)
STRUCT = ElementSpec("h5stream:struct", "0.2.0", layered=True)
BINARY_0_1_0 = ElementSpec("h5stream:binary", "0.1.0")
LIST_0_1_0 = ElementSpec("h5stream:list", "0.1.0")
FIXED_LIST_0_1_0 = ElementSpec("h5stream:fixed-list", "0.1.0")
STRUCT_0_1_0 = ElementSpec("h5stream:struct", "0.1.0")
FIELDS_ATTR = "h5stream:fields"
DTYPE_ATTR = "h5stream:dtype"


def _read_mask(mask: Node) -> np.ndarray:
    return np.asarray(read_node(mask), dtype=bool)


def _check_offsets(group: h5py.Group, offsets: np.ndarray, n_values: int, n_rows: int) -> None:
    """Refuse offsets that do not partition ``n_values`` values into ``n_rows`` rows."""
    problem = None
    if offsets.ndim != 1 or offsets.size != n_rows + 1:
        problem = f"{offsets.size} offsets for {n_rows} rows"
    elif offsets[0] != 0 or offsets[-1] != n_values:
        problem = f"offsets run from {offsets[0]} to {offsets[-1]} over {n_values} values"
    elif np.any(np.diff(offsets) < 0):
        problem = "offsets decrease"
    if problem is not None:
        raise FormatError(
            "ragged column offsets are inconsistent",
            path=group.file.filename, obj=group.name,
            expected="n+1 non-decreasing offsets from 0 to the number of values",
            found=problem,
        )


def _apply_mask(series: pl.Series, mask: np.ndarray) -> pl.Series:
    if not mask.any():
        return series
    frame = pl.DataFrame([series.alias("value"), pl.Series("missing", mask)])
    return frame.select(pl.when(~pl.col("missing")).then(pl.col("value"))).to_series()


# --------------------------------------------------------------------------- decimal


@register_writer(pl.Series, DECIMAL, match=lambda s: isinstance(s.dtype, pl.Decimal))
def _write_decimal(parent, key, series, options):
    # Decimal text is exact (scale digits, no exponent); the dtype lives in attributes.
    text = series.cast(pl.String)
    obj = write_with(parent, key, text, options)
    obj.attrs["precision"] = series.dtype.precision if series.dtype.precision is not None else -1
    obj.attrs["scale"] = series.dtype.scale
    return obj


def _read_text_layer(node: Node) -> pl.Series:
    """The string-array layer under a layered typed encoding, as a String Series."""
    etype = node.attrs["encoding-type"]
    spec = NULLABLE_STRING_ARRAY if etype == NULLABLE_STRING_ARRAY.encoding_type else STRING_ARRAY
    return read_spec_layer(node, spec)


@register_reader(DECIMAL, node=True)
def _read_decimal(node: Node, *, series: bool = False):
    precision = int(node.attrs["precision"])
    scale = int(node.attrs["scale"])
    return _read_text_layer(node).cast(pl.Decimal(precision if precision >= 0 else None, scale))


# --------------------------------------------------------------------------- 128-bit integers


@register_writer(pl.Series, INT128, match=lambda s: s.dtype in WIDE_INTEGER_DTYPES)
def _write_int128(parent, key, series, options):
    # numpy and HDF5 have no 128-bit integers; decimal text is exact.
    obj = write_with(parent, key, series.cast(pl.String), options)
    obj.attrs["signed"] = series.dtype == pl.Int128
    return obj


@register_reader(INT128, node=True)
def _read_int128(node: Node, *, series: bool = False):
    name = "Int128" if bool(node.attrs["signed"]) else "UInt128"
    if not hasattr(pl, name):
        raise FormatError(f"a {name} column cannot be read with polars {pl.__version__}",
                          path=node.obj.file.filename, obj=node.name, expected=f"a polars with {name}",
                          found=f"polars {pl.__version__}", hint="upgrade polars (pip install -U polars)")
    return _read_text_layer(node).cast(getattr(pl, name))


# --------------------------------------------------------------------------- binary


@register_reader(BINARY_0_1_0, node=True)
def _read_binary(node: Node, *, series: bool = False):
    data_node, offsets_node, mask_node = node.members(("data", "offsets", "mask"))
    data = np.asarray(read_node(data_node), dtype=np.uint8).tobytes()
    offsets = np.asarray(read_node(offsets_node))
    mask = _read_mask(mask_node)
    _check_offsets(node.obj, offsets, len(data), mask.size)
    items = [
        None if missing else data[offsets[i] : offsets[i + 1]] for i, missing in enumerate(mask)
    ]
    return pl.Series(values=items, dtype=pl.Binary)


# --------------------------------------------------------------------------- null


@register_writer(pl.Series, NULL_COLUMN, match=lambda s: s.dtype == pl.Null)
def _write_null_column(parent, key, series, options):
    # over a float array of NaN, so anndata reads a column of missing values (it compresses to nothing)
    ds = write_array(parent, key, np.full(series.len(), np.nan), options)
    stamp(ds, ARRAY)
    return ds


@register_reader(NULL_COLUMN, node=True)
def _read_null_column(node: Node, *, series: bool = False):
    return pl.Series(values=[None] * int(node.obj.shape[0]), dtype=pl.Null)


@register_reader(NULL_COLUMN_0_1_0, node=True)
def _read_null_column_0_1_0(node: Node, *, series: bool = False):
    return pl.Series(values=[None] * int(node.attrs["length"]), dtype=pl.Null)


# --------------------------------------------------------------------------- list


def _require_pyarrow(obj):
    try:
        import pyarrow
    except ImportError as exc:
        raise EncodingError(
            "reading list columns needs pyarrow",
            path=obj.file.filename, obj=obj.name,
            hint="pip install 'h5stream[interop]'",
        ) from exc
    return pyarrow


@register_reader(LIST_0_1_0, node=True)
def _read_list(node: Node, *, series: bool = False):
    _require_pyarrow(node.obj)
    values_node, offsets_node, mask_node = node.members(("values", "offsets", "mask"))
    values = read_node(values_node, series=True)
    offsets = np.asarray(read_node(offsets_node), dtype=np.int64)
    mask = _read_mask(mask_node)
    _check_offsets(node.obj, offsets, values.len(), mask.size)
    return list_series(offsets, values, valid=~mask).cast(pl.List(values.dtype))


# --------------------------------------------------------------------------- fixed-size arrays


@register_reader(FIXED_LIST_0_1_0, node=True)
def _read_fixed_list(node: Node, *, series: bool = False):
    values = _read_list(node)
    return values.cast(pl.Array(values.dtype.inner, int(node.attrs["width"])))


# --------------------------------------------------------------------------- struct


@register_reader(STRUCT_0_1_0, node=True)
def _read_struct(node: Node, *, series: bool = False):
    fields = json.loads(node.attrs[FIELDS_ATTR])
    *held, mask = node.members([*(escape_name(name) for name in fields), "mask"])
    columns = [read_node(member, series=True).alias(name) for name, member in zip(fields, held)]
    frame = pl.DataFrame(columns)
    frame.columns = fields
    out = frame.to_struct()
    return _apply_mask(out, _read_mask(mask))


# --------------------------------------------------------------------------- nested columns over awkward-array


def _text_attr(node: Node, name: str) -> str:
    if name not in node.attrs:
        raise FormatError(
            f"nested column lacks its attribute {name!r}", path=node.obj.file.filename, obj=node.name,
            expected=f"attributes form, length and {DTYPE_ATTR}", found=f"attributes {sorted(node.attrs)}",
        )
    return str(node.attrs[name])


def _write_awkward(parent, key, series, options):
    if isinstance(series.dtype, pl.Struct) and not series.dtype.fields:
        raise EncodingError(
            "a struct without fields cannot be stored", path=parent.file.filename,
            obj=f"{parent.name.rstrip('/')}/{key}", found=str(series.dtype),
        )
    form, length, buffers = to_buffers(series)
    group = parent.create_group(key)
    set_text_attr(group, "form", json.dumps(form, separators=(",", ":")))
    group.attrs["length"] = np.int64(length)
    set_text_attr(group, DTYPE_ATTR, json.dumps(describe_dtype(series.dtype), ensure_ascii=False))
    for name, values in buffers.items():
        stamp(write_array(group, name, np.ascontiguousarray(values), options), ARRAY)
    stamp(group, AWKWARD_ARRAY)
    return group


register_writer(pl.Series, BINARY, match=lambda s: s.dtype == pl.Binary)(_write_awkward)
register_writer(pl.Series, LIST, match=lambda s: isinstance(s.dtype, pl.List))(_write_awkward)
register_writer(pl.Series, FIXED_LIST, match=lambda s: isinstance(s.dtype, pl.Array))(_write_awkward)
register_writer(pl.Series, STRUCT, match=lambda s: isinstance(s.dtype, pl.Struct))(_write_awkward)


@register_reader(BINARY, LIST, FIXED_LIST, STRUCT, node=True)
def _read_awkward(node: Node, *, series: bool = False):
    group = node.obj
    if not isinstance(group, h5py.Group):
        raise FormatError("nested column is not a group", path=group.file.filename, obj=node.name,
                          expected="an awkward-array group", found="a dataset")
    try:
        dtype = parse_dtype(json.loads(_text_attr(node, DTYPE_ATTR)))
        form = json.loads(_text_attr(node, "form"))
        length = int(node.attrs["length"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError("nested column's form, length or dtype cannot be read", path=group.file.filename,
                          obj=node.name, expected="a JSON form, an integer length and a polars dtype description",
                          found=f"{type(exc).__name__}: {exc}") from exc
    names = list(group)
    buffers = dict(zip(names, node.members(names)))  # every buffer described in one pass

    def buffer(name: str) -> np.ndarray:
        if name not in buffers:
            raise LayoutError(f"buffer {name!r} is missing")
        return np.asarray(read_node(buffers[name]))

    try:
        return from_buffers(form, length, buffer, dtype)
    except LayoutError as exc:
        raise FormatError("nested column's buffers do not match its form", path=group.file.filename,
                          obj=node.name, expected=f"the buffers of a {dtype} column of {length} rows",
                          found=str(exc)) from exc
