"""polars columns as Awkward Array buffers (AnnData's ``awkward-array`` layout), and back.

AnnData stores an Awkward Array as a group with attributes ``form`` (the
array's form, JSON) and ``length``, and one ``array`` element per buffer, named
``<form_key>-<role>``; ``anndata.io.read_elem`` rebuilds it with
``awkward.from_buffers``.  :func:`to_buffers` builds that form and those buffers
from a polars Series with numpy and polars alone (awkward is not needed to
write, nor to read back with :func:`from_buffers`), so List, Array, Struct and
Binary columns read in anndata as Awkward Arrays of the same values:

===========================  ================================================
polars                       Awkward node
===========================  ================================================
nulls (any dtype)            ``ByteMaskedArray`` (int8 mask, 1 = valid) over
                             the values, null slots filled
Null                         ``IndexedOptionArray`` (index -1) over
                             ``EmptyArray``
Boolean, integers, floats    ``NumpyArray`` of the same primitive
Date / Datetime / Duration   ``NumpyArray`` ``datetime64[D]`` /
                             ``datetime64[unit]`` (UTC) / ``timedelta64[unit]``
                             (int64 buffers)
Time                         ``NumpyArray`` ``timedelta64[ns]`` since midnight
String, Categorical, Enum,   UTF-8 ``string``: ``ListOffsetArray`` (int64
Decimal, Int128, UInt128     offsets) over ``char`` bytes (decimal text)
Binary                       ``bytestring`` over ``byte`` bytes
List                         ``ListOffsetArray`` (int64 offsets)
Array(inner, size)           ``RegularArray`` of ``size``
Struct                       ``RecordArray`` (one content per field)
===========================  ================================================

The exact polars dtype is not in the form (categories, time zones, decimal
scale, text that was a categorical): the caller keeps it beside the buffers and
passes it to :func:`from_buffers`, which needs pyarrow for the nested kinds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from h5stream.elements.dtypes import WIDE_INTEGER_DTYPES

__all__ = ["to_buffers", "from_buffers", "list_series", "LayoutError"]

_TEXT_LIKE = (pl.String, pl.Categorical, *WIDE_INTEGER_DTYPES)
# the most values one Arrow list with 32-bit offsets can hold
_LIST32_SPAN = 2**31 - 1


class LayoutError(ValueError):
    """Buffers or a form that do not describe a column (the caller names the file and object)."""


class _Buffers:
    def __init__(self) -> None:
        self.items: dict[str, np.ndarray] = {}
        self._count = 0

    def key(self) -> str:
        self._count += 1
        return f"node{self._count - 1}"


def to_buffers(series: pl.Series) -> tuple[dict, int, dict[str, np.ndarray]]:
    """The Awkward form (a JSON-ready dict), length and buffers of ``series``."""
    out = _Buffers()
    form = _node(series, out)
    return form, series.len(), out.items


def _is_text(dtype: pl.DataType) -> bool:
    return dtype in _TEXT_LIKE or isinstance(dtype, (pl.Categorical, pl.Enum, pl.Decimal))


def _node(series: pl.Series, out: _Buffers) -> dict:
    dtype = series.dtype
    if dtype == pl.Null:
        key = out.key()
        out.items[f"{key}-index"] = np.full(series.len(), -1, dtype=np.int64)
        return {"class": "IndexedOptionArray", "index": "i64", "content": {"class": "EmptyArray"}, "form_key": key}
    if series.null_count():
        key = out.key()
        out.items[f"{key}-mask"] = series.is_not_null().to_numpy().astype(np.int8)
        return {"class": "ByteMaskedArray", "mask": "i8", "valid_when": True,
                "content": _content(_filled(series), out), "form_key": key}
    return _content(series, out)


def _filled(series: pl.Series) -> pl.Series:
    """``series`` with its null rows given a placeholder of the right shape (their mask hides them)."""
    dtype = series.dtype
    if isinstance(dtype, pl.Array):
        blank = pl.Series(series.name, [[None] * dtype.size] * series.len(), dtype=dtype)
        return series.zip_with(series.is_not_null(), blank)
    if isinstance(dtype, (pl.List, pl.Struct)):
        return series  # a null list row has no values; a null struct row's fields carry their own masks
    if _is_text(dtype) or dtype == pl.Binary:
        return series
    if dtype.is_temporal():
        return series.to_physical().fill_null(0).cast(dtype)
    return series.fill_null(False if dtype == pl.Boolean else 0)


def _numpy(key: str, primitive: str, values: np.ndarray, out: _Buffers) -> dict:
    out.items[f"{key}-data"] = values
    return {"class": "NumpyArray", "primitive": primitive, "inner_shape": [], "form_key": key}


def _bytes_node(pieces: pl.Series, kind: str, out: _Buffers) -> dict:
    """UTF-8 text (``kind="string"``) or bytes (``"bytestring"``) of a Binary Series; nulls as empty."""
    key, inner = out.key(), out.key()
    lengths = pieces.bin.size().fill_null(0).cast(pl.Int64).to_numpy() if pieces.len() else np.zeros(0, np.int64)
    offsets = np.zeros(pieces.len() + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.frombuffer(b"".join(b for b in pieces.to_list() if b is not None), dtype=np.uint8)
    out.items[f"{key}-offsets"] = offsets
    out.items[f"{inner}-data"] = data
    char = "char" if kind == "string" else "byte"
    return {"class": "ListOffsetArray", "offsets": "i64", "parameters": {"__array__": kind},
            "content": {"class": "NumpyArray", "primitive": "uint8", "inner_shape": [],
                        "parameters": {"__array__": char}, "form_key": inner},
            "form_key": key}


def _content(series: pl.Series, out: _Buffers) -> dict:
    dtype = series.dtype
    if dtype == pl.Binary:
        return _bytes_node(series, "bytestring", out)
    if _is_text(dtype):
        return _bytes_node(series.cast(pl.String).cast(pl.Binary), "string", out)
    if isinstance(dtype, pl.List):
        key = out.key()
        lengths = series.list.len().fill_null(0).cast(pl.Int64)
        offsets = np.zeros(series.len() + 1, dtype=np.int64)
        np.cumsum(lengths.to_numpy(), out=offsets[1:])
        out.items[f"{key}-offsets"] = offsets
        # only rows with values, so that no polars release puts a null for an empty or null row
        values = series.filter(lengths > 0).explode()
        return {"class": "ListOffsetArray", "offsets": "i64", "content": _node(values, out), "form_key": key}
    if isinstance(dtype, pl.Array):
        key = out.key()
        values = series.arr.explode() if series.len() else pl.Series([], dtype=dtype.inner)
        return {"class": "RegularArray", "size": dtype.size, "content": _node(values, out), "form_key": key}
    if isinstance(dtype, pl.Struct):
        key = out.key()
        fields = series.struct.unnest()
        return {"class": "RecordArray", "fields": fields.columns,
                "contents": [_node(column, out) for column in fields.iter_columns()], "form_key": key}
    key = out.key()
    if dtype == pl.Date:
        return _numpy(key, "datetime64[D]", series.to_physical().cast(pl.Int64).to_numpy(), out)
    if isinstance(dtype, pl.Datetime):
        return _numpy(key, f"datetime64[{dtype.time_unit}]", series.to_physical().to_numpy(), out)
    if isinstance(dtype, pl.Duration):
        return _numpy(key, f"timedelta64[{dtype.time_unit}]", series.to_physical().to_numpy(), out)
    if dtype == pl.Time:
        return _numpy(key, "timedelta64[ns]", series.to_physical().to_numpy(), out)
    values = series.to_numpy()
    if values.dtype.kind not in "biuf":
        raise LayoutError(f"no Awkward node for the polars dtype {dtype}")
    return _numpy(key, values.dtype.name, values, out)


# --------------------------------------------------------------------------- back to polars


def from_buffers(form: dict, length: int, buffers: Callable[[str], np.ndarray], dtype: pl.DataType) -> pl.Series:
    """The Series of ``dtype`` that ``form``/``length``/``buffers`` hold (``buffers(name)`` reads one)."""
    try:
        out = _read(form, int(length), buffers, dtype)
    except (KeyError, TypeError, IndexError) as exc:
        raise LayoutError(f"the form does not match its buffers ({type(exc).__name__}: {exc})") from exc
    if out.dtype != dtype:
        out = out.cast(dtype)
    return out


def _buffer(buffers, form: dict, role: str, length: int, dtype) -> np.ndarray:
    values = np.asarray(buffers(f"{form['form_key']}-{role}"))
    if values.ndim != 1 or values.size < length:
        raise LayoutError(f"buffer {form['form_key']}-{role} holds {values.size} values where {length} are needed")
    if dtype is not None and values.dtype != dtype:
        raise LayoutError(f"buffer {form['form_key']}-{role} is {values.dtype}, not {np.dtype(dtype)}")
    return values[:length]


def _offsets(buffers, form: dict, length: int) -> np.ndarray:
    offsets = _buffer(buffers, form, "offsets", length + 1, np.int64)
    if offsets.size and (offsets[0] < 0 or np.any(np.diff(offsets) < 0)):
        raise LayoutError(f"offsets of {form['form_key']} are negative or decrease")
    return offsets


def _pyarrow():
    try:
        import pyarrow
    except ImportError as exc:
        raise ImportError("reading nested columns needs pyarrow: pip install 'h5stream[interop]'") from exc
    return pyarrow


def _arrow_safe(dtype: pl.DataType) -> pl.DataType:
    """``dtype`` with the kinds polars cannot hand to pyarrow (128-bit integers) as text; cast back at the end."""
    if dtype in WIDE_INTEGER_DTYPES:
        return pl.String
    if isinstance(dtype, pl.List):
        return pl.List(_arrow_safe(dtype.inner))
    if isinstance(dtype, pl.Array):
        return pl.Array(_arrow_safe(dtype.inner), dtype.size)
    if isinstance(dtype, pl.Struct):
        return pl.Struct([pl.Field(f.name, _arrow_safe(f.dtype)) for f in dtype.fields])
    return dtype


def list_series(offsets: np.ndarray, values: pl.Series, valid: np.ndarray | None = None) -> pl.Series:
    """The List Series whose row ``i`` is ``values[offsets[i]:offsets[i + 1]]`` (null where ``valid`` is False).

    Handed to polars as Arrow lists with 32-bit offsets, in chunks of at most 2**31 - 1 values: polars 1.0 to
    1.36 take a 64-bit-offset list whose child is not in polars' own layout (``large_string`` rather than
    ``string_view``) without converting the child, and then crash on use (``to_list()`` a segmentation fault,
    ``explode()`` a panic), while every polars release converts a 32-bit-offset list and its children.
    """
    pa = _pyarrow()
    offsets = np.asarray(offsets, dtype=np.int64)
    n = offsets.size - 1
    inner = values.to_arrow()
    if isinstance(inner, pa.ChunkedArray):
        inner = inner.combine_chunks()
    chunks = []
    row = 0
    while row < n or not chunks:
        # the last row whose values still end within 2**31 - 1 values of this chunk's first value
        stop = int(np.searchsorted(offsets, offsets[row] + _LIST32_SPAN, side="right")) - 1
        stop = min(max(stop, row), n)
        if stop == row and n > row:
            raise LayoutError(f"a list of {offsets[row + 1] - offsets[row]} values, more than one Arrow list holds")
        base = int(offsets[row])
        mask = None if valid is None else pa.array(~np.asarray(valid[row:stop], dtype=bool), type=pa.bool_())
        chunks.append(pa.ListArray.from_arrays(
            pa.array((offsets[row:stop + 1] - base).astype(np.int32), type=pa.int32()),
            inner.slice(base, int(offsets[stop]) - base), mask=mask))
        row = stop
    arrow = chunks[0] if len(chunks) == 1 else pa.chunked_array(chunks)
    return pl.Series(values=arrow)


def _masked(series: pl.Series, valid: np.ndarray) -> pl.Series:
    if valid.all():
        return series
    frame = pl.DataFrame([series.alias("value"), pl.Series("valid", valid)])
    return frame.select(pl.when(pl.col("valid")).then(pl.col("value"))).to_series().alias(series.name)


def _read(form: dict, length: int, buffers, dtype: pl.DataType, *, masked: bool = False) -> pl.Series:
    """The values of one node; ``masked=True`` (under a mask) leaves text as String until the mask is applied
    (the null slots hold empty text, which no Decimal or Enum takes)."""
    kind = form["class"]
    if kind == "IndexedOptionArray" and form["content"]["class"] == "EmptyArray":
        _buffer(buffers, form, "index", length, np.int64)
        return pl.Series([None] * length, dtype=pl.Null)
    if kind == "ByteMaskedArray":
        mask = _buffer(buffers, form, "mask", length, np.int8)
        valid = (mask != 0) == bool(form["valid_when"])
        out = _masked(_read(form["content"], length, buffers, dtype, masked=True), valid)
        return out if out.dtype == dtype else out.cast(dtype)
    parameters = form.get("parameters") or {}
    if kind == "ListOffsetArray" and parameters.get("__array__") in ("string", "bytestring"):
        pa = _pyarrow()
        offsets = _offsets(buffers, form, length)
        end = int(offsets[-1]) if offsets.size else 0
        data = _buffer(buffers, form["content"], "data", end, np.uint8)
        start = int(offsets[0]) if offsets.size else 0
        arrow = pa.LargeBinaryArray.from_buffers(pa.large_binary(), length, [None, pa.py_buffer(offsets - start),
                                                                              pa.py_buffer(data[start:end].copy())])
        raw = pl.Series(values=arrow).cast(pl.Binary)
        if dtype == pl.Binary:
            return raw
        text = raw.cast(pl.String)  # strict: bytes that are not UTF-8 raise
        return text if masked or dtype == pl.String else text.cast(dtype)
    if kind == "ListOffsetArray":
        if not isinstance(dtype, pl.List):
            raise LayoutError(f"a list node where {dtype} was recorded")
        offsets = _offsets(buffers, form, length)
        start, end = (int(offsets[0]), int(offsets[-1])) if offsets.size else (0, 0)
        values = _read(form["content"], end, buffers, _arrow_safe(dtype.inner)).slice(start, end - start)
        return list_series(offsets - start, values).cast(pl.List(_arrow_safe(dtype.inner)))
    if kind == "RegularArray":
        if not isinstance(dtype, pl.Array) or int(form["size"]) != dtype.size:
            raise LayoutError(f"a regular array of {form.get('size')} where {dtype} was recorded")
        pa = _pyarrow()
        values = _read(form["content"], length * dtype.size, buffers, _arrow_safe(dtype.inner)).to_arrow()
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        return pl.Series(values=pa.FixedSizeListArray.from_arrays(values, dtype.size)).cast(_arrow_safe(dtype))
    if kind == "RecordArray":
        if not isinstance(dtype, pl.Struct) or [f.name for f in dtype.fields] != list(form["fields"]):
            raise LayoutError(f"a record of fields {form.get('fields')} where {dtype} was recorded")
        columns = [_read(content, length, buffers, field.dtype).alias(field.name)
                   for content, field in zip(form["contents"], dtype.fields, strict=True)]
        frame = pl.DataFrame(columns)
        frame.columns = [f.name for f in dtype.fields]
        return frame.to_struct()
    if kind == "NumpyArray":
        return _primitive(form, length, buffers, dtype)
    raise LayoutError(f"unknown Awkward node class {kind!r}")


def _primitive(form: dict, length: int, buffers, dtype: pl.DataType) -> pl.Series:
    primitive = str(form["primitive"])
    if primitive.startswith(("datetime64", "timedelta64")):
        ticks = pl.Series(_buffer(buffers, form, "data", length, np.int64))
        if dtype == pl.Date:
            return ticks.cast(pl.Int32).cast(pl.Date)
        if isinstance(dtype, pl.Datetime):
            naive = ticks.cast(pl.Datetime(dtype.time_unit))
            return naive if dtype.time_zone is None else \
                naive.dt.replace_time_zone("UTC").dt.convert_time_zone(dtype.time_zone)
        if isinstance(dtype, pl.Duration):
            return ticks.cast(pl.Duration(dtype.time_unit))
        if dtype == pl.Time:
            return ticks.cast(pl.Time)
        raise LayoutError(f"a {primitive} node where {dtype} was recorded")
    values = _buffer(buffers, form, "data", length, np.dtype(primitive))
    return pl.Series(values.copy()).cast(dtype)

