"""polars DataFrames (``dataframe`` 0.2.0) and their spec-encoded columns.

Frame layout (readable by ``anndata.io.read_elem``): a group with one element
per column, attribute ``column-order`` (the columns' member names) and
attribute ``_index`` naming the dataset of row labels.  polars has no index:

* with ``index="<column>"`` (a ``write_elem`` option) that column is stored as
  the row labels dataset;
* otherwise a synthetic ``_index`` string array "0", "1", ... is stored.

Our own attributes make the round trip exact: ``h5stream:columns`` (JSON list
of the real column names in frame order, the index column included) and
``h5stream:index-column`` (JSON: its name, or null for a synthetic index).
Member names are the column names percent-escaped (``/`` -> ``%2F``, ``%`` ->
``%25``; the reserved ``_index`` -> ``%5Findex``, except for an index column
named ``_index``, stored as ``_index`` the way AnnData stores unnamed row
labels; files that stored it as ``%5Findex`` read the same), never nested groups.

Column encodings (spec ones first, so AnnData reads them):

=====================================  ==========================================
polars dtype                           encoding
=====================================  ==========================================
Int8..Int64, UInt8..UInt64, Float*,    ``array`` (no nulls) /
Boolean                                ``nullable-integer`` / ``nullable-boolean``
Float16/32/64 with nulls               ``h5stream:nullable-float`` 0.2.0 over
                                       ``array`` (NaN where null; the nulls in a
                                       bool dataset ``<member>%null`` beside it,
                                       named by ``h5stream:null-mask``)
String                                 ``string-array`` / ``nullable-string-array``
Categorical                            ``categorical`` 0.2.0, categories derived
                                       from this column's values (first
                                       appearance), never polars' global codes
                                       (AnnData's categories of numbers or
                                       booleans read as a column of their dtype)
Enum                                   ``h5stream:enum`` over ``categorical``
                                       (all categories, in order)
Date, Datetime, Duration, Time         see :mod:`h5stream.elements.temporal`
Decimal, Int128, UInt128, Binary,      see :mod:`h5stream.elements.nested`
Null, List, Array, Struct
=====================================  ==========================================

AnnData's older ``dataframe`` 0.1.0 (plain column datasets, categorical codes
referring to ``__categories/<name>``) keeps a reader; only 0.2.0 is written.

Typed encodings layered on spec ones (Enum, temporal, Decimal, Int128,
nullable floats, Null) stay readable by AnnData, which sees their physical
values (codes and categories, integers, decimal text, floats with NaN where
null).  Binary, List, Array and Struct columns use encodings of our own only: a
frame holding them reads with ``anndata.io.read_elem`` once those columns are
left out.  Files of ``h5stream:nullable-float`` 0.1.0 (a values + mask group)
still read.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Iterator, Mapping
from typing import Any

import h5py
import numpy as np
import polars as pl

from h5stream.elements.dtypes import FLOAT_DTYPES
from h5stream.elements.mapping import escape_name
from h5stream.elements.registry import (
    ElementSpec,
    read_spec,
    read_node,
    read_spec_layer,
    register_reader,
    register_writer,
    set_text_attr,
    stamp,
    text_attr,
    write_with,
)
from h5stream.elements.snapshot import Node, describe
from h5stream.elements.strings import (
    NULLABLE_STRING_ARRAY,
    STRING_ARRAY,
    read_string_series,
    write_string_series,
    write_string_values,
)
from h5stream.errors import EncodingError, FormatError
from h5stream.writer import WriteOptions, write_array

__all__ = [
    "DATAFRAME",
    "CATEGORICAL",
    "ENUM",
    "NULLABLE_INTEGER",
    "NULLABLE_BOOLEAN",
    "NULLABLE_FLOAT",
    "write_masked_physical",
    "RESERVED_NAMES",
    "categories_read",
]

DATAFRAME = ElementSpec("dataframe", "0.2.0")
CATEGORICAL = ElementSpec("categorical", "0.2.0")
ENUM = ElementSpec("h5stream:enum", "0.1.0", layered=True)
NULLABLE_INTEGER = ElementSpec("nullable-integer", "0.1.0")
NULLABLE_BOOLEAN = ElementSpec("nullable-boolean", "0.1.0")
NULLABLE_FLOAT = ElementSpec("h5stream:nullable-float", "0.2.0", layered=True)
NULLABLE_FLOAT_0_1_0 = ElementSpec("h5stream:nullable-float", "0.1.0")
#: Attribute of a nullable-float column naming the sibling dataset of its null mask.
NULL_MASK_ATTR = "h5stream:null-mask"
#: Suffix of that sibling's name: "%n" is no escape, so no column's member name ends so.
NULL_MASK_SUFFIX = "%null"
ARRAY = ElementSpec("array", "0.2.0")

COLUMNS_ATTR = "h5stream:columns"
INDEX_COLUMN_ATTR = "h5stream:index-column"
MEMBERS_ATTR = "h5stream:members"
RESERVED_NAMES = frozenset({"_index", "__categories"})

_INTEGER_DTYPES = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)


def _is(*dtypes):
    def match(series: pl.Series) -> bool:
        return series.dtype in dtypes

    return match


def _has_nulls(series: pl.Series) -> bool:
    return series.null_count() > 0


# --------------------------------------------------------------------------- plain columns


def _series_values(series: pl.Series) -> np.ndarray:
    values = series.to_numpy()
    # to_numpy may return a read-only view of polars' buffer: fine for writing.
    return values


@register_writer(pl.Series, ARRAY, match=lambda s: s.dtype in (*_INTEGER_DTYPES, *FLOAT_DTYPES, pl.Boolean) and not _has_nulls(s))
def _write_plain_column(parent: h5py.Group, key: str, series: pl.Series, options: WriteOptions) -> h5py.Dataset:
    return write_array(parent, key, _series_values(series), options)


def write_masked_physical(parent: h5py.Group, key: str, series: pl.Series, options: WriteOptions, spec: ElementSpec) -> h5py.Group:
    """Write ``series`` as a ``values`` + ``mask`` group (mask True = null) stamped with ``spec``."""
    group = parent.create_group(key)
    fill = False if series.dtype == pl.Boolean else 0
    values = series.fill_null(fill).to_numpy()
    stamp(write_array(group, "values", values, options), ARRAY)
    stamp(write_array(group, "mask", series.is_null().to_numpy(), options), ARRAY)
    stamp(group, spec)
    return group


@register_writer(pl.Series, NULLABLE_INTEGER, match=lambda s: s.dtype in _INTEGER_DTYPES)
def _write_nullable_integer(parent, key, series, options):
    return write_masked_physical(parent, key, series, options, NULLABLE_INTEGER)


@register_writer(pl.Series, NULLABLE_BOOLEAN, match=_is(pl.Boolean))
def _write_nullable_boolean(parent, key, series, options):
    return write_masked_physical(parent, key, series, options, NULLABLE_BOOLEAN)


@register_writer(pl.Series, NULLABLE_FLOAT, match=lambda s: s.dtype in FLOAT_DTYPES)
def _write_nullable_float(parent, key, series, options):
    # The spec layer is a plain float array, NaN where null, which anndata reads;
    # the nulls (kept apart from NaN) are a bool dataset beside it, named in an attribute.
    values = stamp_array(write_array(parent, key, series.fill_null(float("nan")).to_numpy(), options))
    mask_name = key.rsplit("/", 1)[-1] + NULL_MASK_SUFFIX
    stamp_array(write_array(values.parent, mask_name, series.is_null().to_numpy(), options))
    set_text_attr(values, NULL_MASK_ATTR, mask_name)
    return values


def stamp_array(obj):
    stamp(obj, ARRAY)
    return obj


def read_masked(node: Node) -> pl.Series:
    """Read the ``values`` + ``mask`` group ``node`` describes as a polars Series with nulls."""
    held, mask_node = node.members(("values", "mask"))
    values = read_node(held, series=True)
    mask = np.asarray(read_node(mask_node), dtype=bool)
    if mask.any():
        values = values.scatter(np.flatnonzero(mask), None)
    return values


@register_reader(NULLABLE_INTEGER, NULLABLE_BOOLEAN, NULLABLE_FLOAT_0_1_0, node=True)
def _read_nullable(node: Node, *, series: bool = False):
    return read_masked(node)


@register_reader(NULLABLE_FLOAT, node=True)
def _read_nullable_float(node: Node, *, series: bool = False):
    ds = node.obj
    values = read_spec_layer(node, ARRAY)
    values = values if isinstance(values, pl.Series) else pl.Series(values=values)
    mask_name = node.attrs.get(NULL_MASK_ATTR)
    parent = ds.parent
    if mask_name is None or mask_name not in parent:
        raise FormatError(
            "null mask of a nullable-float column is missing", path=ds.file.filename, obj=node.name,
            expected=f"a bool dataset {mask_name!r} beside it", found="nothing",
        )
    # the mask is the column's sibling: described with the column's manifest
    mask_node = describe(parent[mask_name], f"{node.name.rsplit('/', 1)[0]}/{mask_name}", node.manifest)
    mask = np.asarray(read_node(mask_node), dtype=bool)
    if mask.shape != (values.len(),):
        raise FormatError(
            "null mask of a nullable-float column does not fit it", path=ds.file.filename, obj=node.name,
            expected=f"{values.len()} flags", found=f"shape {mask.shape}",
        )
    if not mask.any():
        return values
    # when/then rather than scatter, which polars 1.36 has not for Float16
    return pl.select(pl.when(pl.lit(pl.Series(~mask))).then(pl.lit(values))).to_series().alias(values.name)


# --------------------------------------------------------------------------- strings


@register_writer(pl.Series, STRING_ARRAY, match=lambda s: s.dtype == pl.String and not _has_nulls(s))
def _write_string_column(parent, key, series, options):
    # Straight from the Arrow buffers: no Python str per row.
    return write_string_series(parent, key, series, options)


@register_writer(pl.Series, NULLABLE_STRING_ARRAY, match=_is(pl.String))
def _write_nullable_string_column(parent, key, series, options):
    group = parent.create_group(key)
    mask = series.is_null().to_numpy()
    stamp(write_string_series(group, "values", series.fill_null(""), options), STRING_ARRAY)
    stamp(write_array(group, "mask", mask, options), ARRAY)
    return group


# --------------------------------------------------------------------------- categorical / enum


def _codes_dtype(n_categories: int) -> type:
    for dtype in (np.int8, np.int16, np.int32):
        if n_categories <= np.iinfo(dtype).max:
            return dtype
    return np.int64


def _write_categories(parent: h5py.Group, key: str, codes: np.ndarray, categories: list[str], ordered: bool, options: WriteOptions) -> h5py.Group:
    """``codes``: int64 local codes, -1 for missing."""
    group = parent.create_group(key)
    group.attrs["ordered"] = ordered
    dtype = _codes_dtype(len(categories))
    code_values = codes.astype(dtype)
    stamp(write_array(group, "codes", code_values, options), ARRAY)
    cats = np.array(categories, dtype=np.dtypes.StringDType())
    stamp(write_string_values(group, "categories", cats, options), STRING_ARRAY)
    return group


@register_writer(pl.Series, CATEGORICAL, match=_is(pl.Categorical))
def _write_categorical(parent, key, series, options):
    # Categories of this column only, in order of first appearance: polars'
    # physical codes are global to the process and mean nothing on disk.  They
    # are mapped to local codes through a lookup table (no string work per row).
    present = series.unique(maintain_order=True).drop_nulls()
    categories = present.cast(pl.String).to_list()
    global_codes = present.to_physical().to_numpy().astype(np.int64)
    lookup = np.full(int(global_codes.max()) + 1 if global_codes.size else 1, -1, dtype=np.int64)
    lookup[global_codes] = np.arange(global_codes.size)
    codes = lookup[series.to_physical().fill_null(0).to_numpy()]
    codes[series.is_null().to_numpy()] = -1
    return _write_categories(parent, key, codes, categories, False, options)


@register_writer(pl.Series, ENUM, match=lambda s: isinstance(s.dtype, pl.Enum))
def _write_enum(parent, key, series, options):
    categories = series.dtype.categories.to_list()
    codes = series.to_physical().cast(pl.Int64).fill_null(-1).to_numpy()
    group = _write_categories(parent, key, codes, categories, True, options)
    stamp(group, CATEGORICAL)
    return group


def _read_categories(node: Node) -> pl.Series:
    """The categories of a categorical: text, or (AnnData writes any pandas category dtype) numbers or booleans."""
    dtype = node.obj.dtype
    if h5py.check_string_dtype(dtype) is not None or dtype.kind in "OSU":
        return read_string_series(node)
    return pl.Series(values=np.asarray(read_node(node, series=False)).ravel())


#: While :func:`categories_read` is open: element path -> the categories no row of it uses.
_UNUSED_CATEGORIES: contextvars.ContextVar[dict[str, list[str]] | None] = contextvars.ContextVar(
    "h5stream_unused_categories", default=None)


@contextlib.contextmanager
def categories_read() -> Iterator[dict[str, list[str]]]:
    """Hand back, from every categorical element read inside the block, the categories no row uses.

    The mapping yielded fills as elements are read: element path (``obj.name``) -> its unused
    categories as text, in stored order (only elements that have some).  A polars Categorical keeps
    only the values present, so a reader that wants to name the others (pandas keeps them) takes them
    from here instead of reading the codes and categories a second time.
    """
    seen: dict[str, list[str]] = {}
    token = _UNUSED_CATEGORIES.set(seen)
    try:
        yield seen
    finally:
        _UNUSED_CATEGORIES.reset(token)


def _note_unused(name: str, codes: np.ndarray, categories: pl.Series) -> None:
    seen = _UNUSED_CATEGORIES.get()
    if seen is None:
        return
    used = np.zeros(categories.len(), dtype=bool)
    used[codes[(codes >= 0) & (codes < used.size)]] = True
    if not used.all():
        seen[name] = [str(c) for c in categories.to_numpy()[~used]]


def _read_category_parts(node: Node) -> tuple[pl.Series, pl.Series]:
    codes_node, categories_node = node.members(("codes", "categories"))
    codes = np.asarray(read_node(codes_node)).astype(np.int64, copy=False)
    categories = _read_categories(categories_node)
    _note_unused(node.name, codes, categories)
    index = pl.Series(values=codes).set(pl.Series(values=codes < 0), None)
    return categories, index


@register_reader(CATEGORICAL, node=True)
def _read_categorical(node: Node, *, series: bool = False):
    """Text categories as a Categorical column; categories of numbers or booleans (cluster or batch
    numbers, as pandas keeps them) as a column of their own dtype, null where the code is -1 (a polars
    Categorical holds text only)."""
    categories, index = _read_category_parts(node)
    values = categories.gather(index)
    return values.cast(pl.Categorical) if categories.dtype == pl.String else values


@register_reader(ENUM, node=True)
def _read_enum(node: Node, *, series: bool = False):
    categories, index = _read_category_parts(node)
    return categories.gather(index).cast(pl.Enum(categories.to_list()))


# --------------------------------------------------------------------------- frames


def _json_attr(obj, name, values: Mapping[str, Any] | None = None):
    value = text_attr(obj, name) if values is None else _text_value(values.get(name))
    return None if value is None else json.loads(value)


def _text_value(value):
    return value.decode() if isinstance(value, bytes) else value


@register_writer(pl.DataFrame, DATAFRAME)
def _write_dataframe(parent: h5py.Group, key: str, frame: pl.DataFrame, options: WriteOptions) -> h5py.Group:
    index_column = options.extra.get("index")
    columns = frame.columns
    if index_column is not None and index_column not in columns:
        raise EncodingError(
            "index column not in the frame",
            path=parent.file.filename,
            obj=f"{parent.name.rstrip('/')}/{key}",
            expected="one of " + ", ".join(repr(c) for c in columns[:10]),
            found=repr(index_column),
        )
    # Columns of nested elements (list values, struct fields) get no index option.
    inner = options.with_extra(index=None)
    group = parent.create_group(key)
    member = column_members(columns)
    if index_column == "_index":
        # AnnData's own name for row labels: readers show the index as the
        # id column's name instead of an escaped "%5Findex"
        member[index_column] = "_index"
    if index_column is None:
        index_member = "_index"
        labels = pl.int_range(0, frame.height, eager=True, dtype=pl.Int64).cast(pl.String)
        stamp(write_string_series(group, index_member, labels, inner), STRING_ARRAY)
    else:
        index_member = member[index_column]
    set_text_attr(group, "_index", index_member)
    order = [member[name] for name in columns if name != index_column]
    group.attrs.create("column-order", np.array(order, dtype=h5py.string_dtype("utf-8")))
    set_text_attr(group, COLUMNS_ATTR, json.dumps(columns, ensure_ascii=False))
    set_text_attr(group, INDEX_COLUMN_ATTR, json.dumps(index_column, ensure_ascii=False))
    set_text_attr(group, MEMBERS_ATTR, json.dumps([member[name] for name in columns], ensure_ascii=False))
    for name in columns:
        write_with(group, member[name], frame.get_column(name), inner)
    return group


def column_members(columns: list[str]) -> dict[str, str]:
    """Member path of each column: its name, as AnnData writes it, where that is a safe HDF5 path.

    A name holding ``/`` becomes nested groups (``a/b`` is member ``b`` of group
    ``a``), the way anndata stores it, so other tools show the real name.  Names
    that cannot be paths (empty or ``.``/``..`` segments, NUL, ``%``, a reserved
    name, or a path clashing with another column's) are percent-escaped into
    one link name (:func:`h5stream.elements.mapping.escape_name`).
    """
    members: dict[str, str] = {}
    taken: set[str] = set()  # member paths and the groups above them
    for name in columns:
        segments = name.split("/")
        plain = (
            "%" not in name and "\x00" not in name and name not in RESERVED_NAMES
            and all(seg not in ("", ".", "..") for seg in segments)
        )
        parents = {"/".join(segments[:i]) for i in range(1, len(segments))}
        if plain and name not in taken and not (parents & set(members.values())):
            members[name] = name
            taken.add(name)
            taken.update(parents)
        elif plain and "/" not in name:
            # a single link name clashing with the group of an earlier "name/...":
            # escape its first character (plain names never hold "%", so this is unique)
            members[name] = f"%{ord(name[0]):02X}{name[1:]}"
        else:
            members[name] = escape_name(name, RESERVED_NAMES)
    return members


def frame_members(group: h5py.Group, values: Mapping[str, Any] | None = None
                  ) -> tuple[list[str], list[str]] | None:
    """Column names and their member paths of a dataframe element written by us (None: another tool's).

    ``values``: all of ``group``'s attributes already read (:func:`h5stream.checksums.read_attr_values`), or
    None to read them here."""
    columns = _json_attr(group, COLUMNS_ATTR, values)
    if columns is None:
        return None
    index_member = text_attr(group, "_index") if values is None else _text_value(values.get("_index"))
    index_column = _json_attr(group, INDEX_COLUMN_ATTR, values)
    members = _json_attr(group, MEMBERS_ATTR, values)
    if members is None:  # frames written before column names could be paths
        members = [escape_name(name, RESERVED_NAMES) for name in columns]
    return columns, [index_member if name == index_column else m for name, m in zip(columns, members)]


@register_reader(DATAFRAME, node=True)
def _read_dataframe(node: Node, *, series: bool = False) -> pl.DataFrame:
    ours = frame_members(node.obj, node.values)
    if ours is None:
        # Written by another tool: the row labels become the first column.
        index_member = node.attrs.get("_index")
        order = [c.decode() if isinstance(c, bytes) else str(c) for c in node.attrs.get("column-order", [])]
        names = [index_member, *order]
        members = names
    else:
        names, members = ours
    series_list = [read_node(m, series=True).alias(n) for n, m in zip(names, node.members(members))]
    out = pl.DataFrame(series_list)
    # polars renames an empty column name while building; set the names as written.
    out.columns = names
    return out


def is_dataframe_spec(obj) -> bool:
    spec = read_spec(obj)
    return spec is not None and spec.encoding_type == "dataframe"


# --------------------------------------------------------------------------- old versions (read only)

DATAFRAME_0_1_0 = ElementSpec("dataframe", "0.1.0")


def _legacy_column(group: Node, name: str, column: Node) -> pl.Series:
    """A column of an AnnData ``dataframe`` 0.1.0 (``column``: its member ``name`` of the frame ``group``
    describes): a plain dataset, categorical when it carries a ``categories`` reference to ``__categories/<name>``."""
    ds = column.obj
    if column.spec is not None or column.spec_error is not None:
        return read_node(column, series=True)  # (a damaged pair of encoding attributes is raised there)
    if ds.dtype.kind in "OS" or h5py.check_string_dtype(ds.dtype) is not None:
        values = read_string_series(column)
    else:
        values = pl.Series(values=column.check(ds[()]))
    ref = column.attrs.get("categories")
    if ref is None:
        return values
    if isinstance(ref, h5py.Reference):
        categories = _read_categories(describe(group.obj.file[ref], manifest=group.manifest))
    else:
        categories = _read_categories(group.members([f"__categories/{name}"])[0])
    codes = values.cast(pl.Int64)
    index = codes.set(codes < 0, None)
    values = categories.gather(index)
    return values.cast(pl.Categorical) if categories.dtype == pl.String else values


@register_reader(DATAFRAME_0_1_0, node=True)
def _read_dataframe_0_1_0(node: Node, *, series: bool = False) -> pl.DataFrame:
    index_member = node.attrs.get("_index")
    order = [c.decode() if isinstance(c, bytes) else str(c) for c in node.attrs.get("column-order", [])]
    names = [index_member, *order]
    columns = node.members(names)  # every column described in one pass
    out = pl.DataFrame([_legacy_column(node, n, column).alias(n) for n, column in zip(names, columns)])
    out.columns = names
    return out
