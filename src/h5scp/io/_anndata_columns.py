"""Frame columns in AnnData files: what other tools see, and the record that makes loading exact.

The element codecs store every polars dtype exactly, but some of them only
through encodings of our own, which ``anndata.read_h5ad``/``mudata.read_h5mu``
refuse (floats with nulls, Binary, Null, List, fixed-size Array, Struct), and
anndata writes back others in a form of its own (a re-save keeps a Date as its
day numbers, an Enum as a plain categorical, text as a categorical; it refuses
to write nullable strings unless a setting is changed).  In ``.h5ad``/``.h5mu``
files a frame is therefore written twice:

* the frame itself, each column under its name and at its position, in a form
  AnnData reads *and writes back under its default settings* (table below);
* under ``uns/scptensor``, in elements anndata and mudata keep through a
  re-save (:func:`frame_schema`): ``schemas/<frame>``, JSON text naming each
  column with its polars dtype (:mod:`h5stream.elements.dtypes`), a CRC-32 of
  its values as AnnData shows them and whether its NaN were nulls;
  ``frames/<frame>``, the part kept exactly as one Arrow IPC stream (a
  ``uint8`` array): the id column, and the rare columns whose AnnData form
  cannot give them back through the schema (a float column holding both nulls
  and NaN, nested values that JSON text does not carry exactly); and
  ``fingerprints/<frame>``, a 16-bit fingerprint of every other value
  (``uint16``, rows x columns), which names values replaced in rows another
  tool subset or reordered.

==========================  ==================================================
polars dtype                column as AnnData sees it
==========================  ==================================================
Float16/32/64 with nulls    the same float dtype, NaN where null
List, Array, Struct         compact JSON text of each row (nested dates, times,
                            decimals and bytes as text); null rows missing
Binary                      lowercase hex text of each value; nulls missing
Null                        every row missing
String with nulls           categorical (missing where null): AnnData writes
                            nullable strings only on request
(other dtypes)              their own encodings (nullable integer and boolean,
                            categorical, string array; Date, Datetime, Duration,
                            Time as integers, Enum as categorical, Decimal as
                            text)
==========================  ==================================================

Loading *reconciles* the frame found with its schema (:func:`reconcile_schema`):
each recorded column still there comes back in its recorded dtype when every
value found fits it (NaN back to null, hex back to bytes, JSON rows back to
nested values, day numbers back to dates ...), else as found; a column kept
exactly comes back from its copy while its values (rows matched by id) are
still the ones kept; columns added or removed are kept as found.  Values
replaced are named: by each column's CRC-32 while the rows are the recorded
ones, by the fingerprints of the rows found otherwise.  Every difference is
named for the history.
Files written before schemas hold a record of each whole frame in
``frames/<frame>`` (:func:`reconcile_frame` still reads them), and older ones
``exact_columns`` (the stand-in columns alone, by position): :func:`restore_frame`.
The ``.h5`` format keeps the exact encodings in the frame itself and never uses
this module.
"""

from __future__ import annotations

import binascii
import datetime as _dt
import decimal
import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from h5stream import checksums
from h5stream.elements.dtypes import FLOAT_DTYPES, WIDE_INTEGER_DTYPES, describe_dtype, parse_dtype
from h5scp.io.exceptions import IOFormatError

__all__ = [
    "anndata_visible", "record_frame", "read_record", "reconcile_frame", "restore_frame", "needs_stand_in",
    "EXACT_COLUMNS_KEY", "FRAMES_KEY", "SCHEMAS_KEY", "FrameNotes", "frame_schema", "read_schema",
    "reconcile_schema", "values_digest", "values_fingerprints", "FINGERPRINTS_KEY",
]

#: Key of the stand-in columns' exact copies in files written before frame records.
EXACT_COLUMNS_KEY = "exact_columns"
#: Key of the frame records under ``uns/scptensor``: the whole frame in files written before
#: schemas; with a schema, the part of the frame kept exactly (ids, columns a schema cannot restore).
FRAMES_KEY = "frames"
#: Key of the frame schemas under ``uns/scptensor`` (JSON text per frame).
SCHEMAS_KEY = "schemas"
#: Key of the frames' value fingerprints under ``uns/scptensor`` (uint16, rows x columns, per frame).
FINGERPRINTS_KEY = "fingerprints"


def _json_default(value: Any) -> Any:
    """Text for the values ``json`` has no form for (inside nested rows)."""
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"no JSON text for {type(value).__name__}")


def _json_rows(series: pl.Series) -> pl.Series:
    rows = [
        None if row is None else json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=_json_default)
        for row in series.to_list()
    ]
    return pl.Series(series.name, rows, dtype=pl.String)


def _nan_for_null(series: pl.Series) -> pl.Series:
    return series.fill_null(float("nan"))


def _hex(series: pl.Series) -> pl.Series:
    return series.bin.encode("hex")


def _all_missing(series: pl.Series) -> pl.Series:
    return pl.Series(series.name, [None] * series.len(), dtype=pl.String)


# (match, stand-in) in order; the first match decides.  Every other dtype has an
# encoding AnnData reads (spec ones, or typed ones layered on spec ones).
_STAND_INS: list[tuple[Callable[[pl.Series], bool], Callable[[pl.Series], pl.Series]]] = [
    (lambda s: s.dtype in FLOAT_DTYPES and s.null_count() > 0, _nan_for_null),
    (lambda s: isinstance(s.dtype, (pl.List, pl.Array, pl.Struct)), _json_rows),
    (lambda s: s.dtype == pl.Binary, _hex),
    (lambda s: s.dtype == pl.Null, _all_missing),
]


def _stand_in_for(series: pl.Series) -> Callable[[pl.Series], pl.Series] | None:
    for match, make in _STAND_INS:
        if match(series):
            return make
    return None


def needs_stand_in(series: pl.Series) -> bool:
    """True when AnnData cannot read ``series`` as the codecs store it."""
    return _stand_in_for(series) is not None


def anndata_visible(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` in the form AnnData reads and writes back (the table in the module docstring)."""
    replaced = []
    for series in frame.iter_columns():
        make = _stand_in_for(series)
        shown = make(series) if make is not None else series
        if shown.dtype == pl.String and shown.null_count() > 0:
            shown = shown.cast(pl.Categorical)
        if shown is not series:
            replaced.append(shown)
    return frame.with_columns(replaced) if replaced else frame


def record_frame(frame: pl.DataFrame) -> np.ndarray:
    """The record of ``frame``: its Arrow IPC bytes as a uint8 array."""
    buffer = io.BytesIO()
    # uncompressed: the HDF5 filters of the file compress the bytes
    frame.write_ipc(buffer, compression="uncompressed")
    return np.frombuffer(buffer.getbuffer(), dtype=np.uint8).copy()


def read_record(raw: Any, *, path, obj: str) -> pl.DataFrame:
    """A frame back from its record (IPC bytes); a damaged record raises :class:`IOFormatError`."""
    raw = np.asarray(raw)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise IOFormatError(
            "frame record is not a byte array", path=path, obj=obj,
            expected="a 1-d uint8 array (Arrow IPC)", found=f"{raw.ndim}-d {raw.dtype}",
        )
    try:
        return pl.read_ipc(io.BytesIO(raw.tobytes()))
    # polars raises several kinds for damaged streams, and its Rust code may panic (a BaseException)
    except (Exception, pl.exceptions.PanicException) as exc:
        raise IOFormatError(
            "frame record cannot be read", path=path, obj=obj,
            expected="an Arrow IPC stream", found=f"{type(exc).__name__}: {exc}",
        ) from exc


def _shown_text(series: pl.Series) -> pl.Series:
    """Values as text the way AnnData holds them, to compare a column found with its record."""
    dtype = series.dtype
    if dtype in (pl.Date, pl.Time) or isinstance(dtype, (pl.Datetime, pl.Duration)):
        series = series.to_physical()
    elif dtype == pl.Boolean:
        series = series.cast(pl.Int8)
    return series.cast(pl.String)


def _numeric(series: pl.Series) -> bool:
    return series.dtype.is_numeric() or series.dtype == pl.Boolean


def _same_numbers(left: pl.Series, right: pl.Series) -> bool:
    """Equal as numbers, a missing value (null or NaN) equal to a missing value.

    mudata turns a float column whose values are whole numbers into a nullable
    integer on a re-save: the numbers are still the ones recorded.
    """
    a, b = left.cast(pl.Float64), right.cast(pl.Float64)
    a_missing, b_missing = a.is_null() | a.is_nan().fill_null(True), b.is_null() | b.is_nan().fill_null(True)
    if not a_missing.equals(b_missing):
        return False
    return bool(((a == b) | a_missing).fill_null(True).all())


def _same_values(found: pl.Series, recorded: pl.Series) -> bool:
    """True when ``found`` shows the values of ``recorded`` (both already in the same row order)."""
    shown = anndata_visible(recorded.to_frame()).to_series()
    if _numeric(found) and _numeric(shown):
        return _same_numbers(found, shown)
    left, right = _shown_text(found), _shown_text(shown)
    same = (left == right) | (left.is_null() & right.is_null())
    return bool(same.fill_null(False).all())


def _in_dtype(series: pl.Series, dtype: pl.DataType) -> pl.Series | None:
    """``series`` cast to ``dtype`` when every value fits it unchanged, else None."""
    if series.dtype == dtype:
        return series
    if dtype == pl.Null:
        return pl.Series(series.name, [None] * series.len(), dtype=pl.Null) if series.null_count() == series.len() else None
    source = series.cast(pl.String) if series.dtype == pl.Categorical or isinstance(series.dtype, pl.Enum) else series
    try:
        out = source.cast(dtype, strict=True)
        back = out.cast(source.dtype, strict=True)
    except (Exception, pl.exceptions.PanicException):
        return None
    a, b = _shown_text(back), _shown_text(source)
    return out if bool(((a == b) | (a.is_null() & b.is_null())).fill_null(False).all()) else None


class FrameNotes:
    """What reconciling a frame with its record found, in words for the history."""

    def __init__(self) -> None:
        self.changes: list[str] = []

    def add(self, text: str) -> None:
        self.changes.append(text)


def _short(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def reconcile_frame(
    found: pl.DataFrame, recorded: pl.DataFrame | None, *, id_col: str | None, label: str,
    notes: FrameNotes, complete: bool = True,
) -> pl.DataFrame:
    """The frame ``found`` in a file, with each column its record still describes given back exactly.

    ``id_col`` names the column matching rows (None: rows match by position and
    must be as many as recorded).  ``complete=False`` (some columns were read)
    leaves recorded columns that are absent unmentioned.  Differences are added
    to ``notes`` under ``label``.
    """
    if recorded is None:
        return found
    if (id_col is not None and found.width and id_col not in found.columns and id_col in recorded.columns
            and found.columns[0] not in recorded.columns):
        # the index was renamed in pandas (AnnData shows row labels first): keep the id column's name
        notes.add(f"{label}: index {found.columns[0]!r} taken as the id column {id_col!r}")
        found = found.rename({found.columns[0]: id_col})
    if id_col is not None and id_col in found.columns and id_col in recorded.columns:
        position = {v: i for i, v in enumerate(recorded.get_column(id_col).to_list())}
        rows = [position.get(v, -1) for v in found.get_column(id_col).to_list()]
        all_found = all(r >= 0 for r in rows)
        index = pl.Series(rows, dtype=pl.Int64)
        gather = None if rows == list(range(recorded.height)) else index.set(index < 0, None)
    elif found.height == recorded.height:
        all_found, gather = True, None
    else:
        notes.add(f"{label}: {found.height} rows where {recorded.height} were recorded and no ids to match "
                  "them; kept as found")
        return found
    columns, replaced, unfit = [], [], []
    for series in found.iter_columns():
        name = series.name
        if name not in recorded.columns:
            columns.append(series)
            continue
        mine = recorded.get_column(name)
        mine = mine if gather is None else mine.gather(gather)
        if all_found and _same_values(series, mine):
            columns.append(mine)
            continue
        if name != id_col:
            replaced.append(name)
        fitted = _in_dtype(series, mine.dtype)
        if fitted is None:
            unfit.append(f"{name!r} ({series.dtype}, recorded {mine.dtype})")
        columns.append(series if fitted is None else fitted.alias(name))
    return _noted_frame(found, columns, list(recorded.columns), id_col, complete, label, notes, replaced, unfit)


# --------------------------------------------------------------------------- schemas (format of today)


def _missing(series: pl.Series) -> pl.Series:
    missing = series.is_null()
    return missing | series.is_nan().fill_null(True) if series.dtype.is_float() else missing


def _canonical(series: pl.Series) -> tuple[str, Any]:
    """A column's values as AnnData shows them: ("n", float64 array, one NaN for every missing value)
    or ("t", list of text or None).  The same whatever form a re-save gives them (mudata turns whole
    floats into nullable integers, anndata strings into categoricals)."""
    if series.dtype.is_temporal():
        series = series.to_physical()  # anndata shows (and re-saves) the integers
    elif isinstance(series.dtype, pl.Decimal) or series.dtype in WIDE_INTEGER_DTYPES:
        series = series.cast(pl.String)  # stored as text (anndata shows text)
    if _numeric(series):
        values = series.cast(pl.Float64)
        values = values.set(_missing(values), float("nan")) if values.len() else values
        return "n", np.ascontiguousarray(values.to_numpy(), dtype=np.float64)
    return "t", _shown_text(series).to_list()


def values_digest(series: pl.Series) -> str:
    """CRC-32 of a column's values as AnnData shows them (see :func:`_canonical`)."""
    kind, values = _canonical(series)
    if kind == "n":
        return checksums.parts_digest([b"n", values.tobytes()])
    return checksums.parts_digest([b"t", json.dumps(values, ensure_ascii=False).encode()])


def values_fingerprints(series: pl.Series) -> np.ndarray:
    """A 16-bit fingerprint of each value as AnnData shows it (uint16, one per row).

    Kept per row, they tell values replaced in rows another tool subset or
    reordered (matched by id) from values left as they were, at two bytes a value.
    """
    kind, values = _canonical(series)
    if kind == "n":
        bits = values.view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing; wraps on purpose
        return (bits >> np.uint64(48)).astype(np.uint16)
    return np.fromiter((0xFFFF if v is None else binascii.crc32(v.encode()) & 0xFFFF for v in values),
                       dtype=np.uint16, count=len(values))


def _same_text(a: pl.Series, b: pl.Series) -> bool:
    return a.len() == b.len() and bool(((a == b) | (a.is_null() & b.is_null())).fill_null(False).all())


def _decoded(series: pl.Series, dtype: pl.DataType, entry: dict) -> pl.Series | None:
    """``series`` as found in a file, in its recorded ``dtype`` when every value fits it, else None.

    Undoes the forms of the table in the module docstring: NaN back to null
    (columns recorded with nulls and without NaN), hex text back to bytes, JSON
    rows back to nested values, missing values back to a Null column.
    """
    if series.dtype == dtype:
        return series
    if dtype == pl.Null:
        return pl.Series(series.name, [None] * series.len(), dtype=pl.Null) if _missing(series).all() else None
    if dtype in FLOAT_DTYPES:
        out = _in_dtype(series, dtype)
        return out.fill_nan(None) if out is not None and entry.get("nan_is_null") else out
    if dtype == pl.Binary or isinstance(dtype, (pl.List, pl.Array, pl.Struct)):
        if series.dtype not in (pl.String, pl.Categorical) and not isinstance(series.dtype, pl.Enum):
            return None
        text = series.cast(pl.String)
        try:
            if dtype == pl.Binary:
                out = text.str.decode("hex", strict=True)
                back = _hex(out)
            else:
                target = pl.List(dtype.inner) if isinstance(dtype, pl.Array) else dtype
                out = text.str.json_decode(target)
                out = out.cast(dtype, strict=True) if isinstance(dtype, pl.Array) else out
                back = _json_rows(out)
        except (Exception, pl.exceptions.PanicException):
            return None
        return out.alias(series.name) if _same_text(back, text) else None
    return _in_dtype(series, dtype)


def _identical(a: pl.Series, b: pl.Series) -> bool:
    """Same dtype and values, null apart from NaN and -0.0 apart from 0.0."""
    return a.dtype == b.dtype and a.len() == b.len() and repr(a.to_list()) == repr(b.to_list())


def frame_schema(frame: pl.DataFrame, id_col: str | None) -> tuple[str, pl.DataFrame | None, np.ndarray]:
    """The schema of ``frame`` (JSON text), the part of it kept exactly (None: nothing) and the
    fingerprints of its values (:func:`values_fingerprints`, one column per frame column).

    The schema names each column with its polars dtype (:mod:`h5stream.elements.dtypes`),
    a digest of its values as AnnData shows them (:func:`values_digest`) and
    whether its NaN were nulls.  The part kept exactly holds the id column (the
    recorded ids, which masks and subsets are matched by) and any column whose
    AnnData form does not give it back exactly through the schema (a float column
    with both nulls and NaN, nested values JSON text cannot carry exactly).
    """
    shown = anndata_visible(frame)
    columns, exact, prints = [], [], []
    for series, visible in zip(frame.iter_columns(), shown.iter_columns(), strict=True):
        entry: dict[str, Any] = {"name": series.name, "dtype": describe_dtype(series.dtype),
                                 "digest": values_digest(visible)}
        if series.dtype in FLOAT_DTYPES and series.null_count() and not series.is_nan().fill_null(False).any():
            entry["nan_is_null"] = True
        back = _decoded(visible, series.dtype, entry)
        if series.name == id_col or back is None or not _identical(back, series):
            exact.append(series.name)  # compared with its values kept, no fingerprints needed
        else:
            entry["prints"] = len(prints)
            prints.append(values_fingerprints(visible))
        columns.append(entry)
    text = json.dumps({"rows": frame.height, "columns": columns}, ensure_ascii=False, separators=(",", ":"))
    matrix = np.stack(prints, axis=1) if prints else np.zeros((frame.height, 0), dtype=np.uint16)
    return text, (frame.select(exact) if exact else None), matrix


def _replaced(series: pl.Series, entry: dict, rows_same: bool, located: np.ndarray | None,
              prints: np.ndarray | None) -> bool:
    """True when ``series`` holds other values than recorded in the rows it shares with the record."""
    if rows_same:
        return values_digest(series) != entry["digest"]
    if prints is None or located is None or "prints" not in entry:
        return False  # nothing tells which recorded row a value belongs to
    here = located >= 0
    return bool((values_fingerprints(series)[here] != prints[located[here], int(entry["prints"])]).any())


def read_schema(raw: Any, *, path, obj: str) -> dict:
    """A schema back from its JSON text; a damaged one raises :class:`IOFormatError`."""
    try:
        schema = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
        for entry in schema["columns"]:
            entry["parsed"] = parse_dtype(entry["dtype"])
            str(entry["name"]), str(entry["digest"])
        int(schema["rows"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IOFormatError(
            "frame schema cannot be read", path=path, obj=obj,
            expected="JSON text with rows and columns (name, dtype, digest)", found=f"{type(exc).__name__}: {exc}",
        ) from exc
    return schema


def reconcile_schema(
    found: pl.DataFrame, schema: dict, kept: pl.DataFrame | None, prints: np.ndarray | None, *,
    id_col: str | None, label: str, notes: FrameNotes, complete: bool = True,
) -> pl.DataFrame:
    """The frame ``found`` in a file, each column its ``schema`` still describes in its recorded dtype.

    ``kept`` is the part of the frame kept exactly (:func:`frame_schema`): its
    columns come back from it while their values are the ones kept (rows matched
    by id).  Other recorded columns come back in their recorded dtype when every
    value found fits it.  Values replaced are named: by each column's digest while
    the rows are the recorded ones, by the fingerprints ``prints`` of the rows
    found by id otherwise.
    """
    entries = {e["name"]: e for e in schema["columns"]}
    n_prints = sum("prints" in e for e in schema["columns"])
    if prints is not None and (prints.ndim != 2 or prints.shape != (int(schema["rows"]), n_prints)):
        prints = None  # (a damaged or foreign array names nothing; the values are still those found)
    if (id_col is not None and found.width and id_col not in found.columns and id_col in entries
            and found.columns[0] not in entries):
        notes.add(f"{label}: index {found.columns[0]!r} taken as the id column {id_col!r}")
        found = found.rename({found.columns[0]: id_col})
    rows_same, gather, all_found = found.height == int(schema["rows"]), None, True
    located = np.arange(found.height) if rows_same else None
    if kept is not None and id_col is not None and id_col in found.columns and id_col in kept.columns:
        position = {v: i for i, v in enumerate(kept.get_column(id_col).to_list())}
        rows = [position.get(v, -1) for v in found.get_column(id_col).to_list()]
        all_found = all(r >= 0 for r in rows)
        rows_same = rows == list(range(kept.height))
        located = np.asarray(rows, dtype=np.int64)
        index = pl.Series(rows, dtype=pl.Int64)
        gather = None if rows_same else index.set(index < 0, None)
    elif kept is not None and found.height != kept.height:
        all_found = False
    columns, replaced, unfit = [], [], []
    for series in found.iter_columns():
        name = series.name
        entry = entries.get(name)
        if entry is None:
            columns.append(series)
            continue
        dtype = entry["parsed"]
        if kept is not None and name in kept.columns and all_found:
            mine = kept.get_column(name)
            mine = mine if gather is None else mine.gather(gather)
            if _same_values(series, mine):
                columns.append(mine)
                continue
            if name != id_col:
                replaced.append(name)
        elif name != id_col and _replaced(series, entry, rows_same, located, prints):
            replaced.append(name)
        fitted = _decoded(series, dtype, entry)
        if fitted is None:
            unfit.append(f"{name!r} ({series.dtype}, recorded {dtype})")
        columns.append(series if fitted is None else fitted.alias(name))
    return _noted_frame(found, columns, list(entries), id_col, complete, label, notes, replaced, unfit)


def _noted_frame(found: pl.DataFrame, columns: list, recorded: list, id_col, complete: bool, label: str, notes,
                 replaced: list, unfit: list) -> pl.DataFrame:
    """The frame of ``columns`` (named as ``found``), with a note of each column added, removed,
    replaced or kept as found against the ``recorded`` names."""
    added = [c for c in found.columns if c not in recorded]
    removed = [c for c in recorded if c not in found.columns and c != id_col] if complete else []
    if added:
        notes.add(f"{label}: columns added {_short(added)}")
    if removed:
        notes.add(f"{label}: columns removed {_short(removed)}")
    if replaced:
        notes.add(f"{label}: values replaced in columns {_short(replaced)}")
    if unfit:
        notes.add(f"{label}: kept as found, values do not fit the recorded dtype: {', '.join(unfit)}")
    out = pl.DataFrame(columns)
    out.columns = found.columns  # polars renames an empty column name while building
    return out


def restore_frame(frame: pl.DataFrame, exact_bytes: Any, *, path, obj: str) -> pl.DataFrame:
    """``frame`` with each stand-in replaced by its exact column (position kept)."""
    if exact_bytes is None:
        return frame
    raw = np.asarray(exact_bytes)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise IOFormatError(
            "exact column copy is not a byte array", path=path, obj=obj,
            expected="a 1-d uint8 array (Arrow IPC)", found=f"{raw.ndim}-d {raw.dtype}",
        )
    try:
        exact = pl.read_ipc(io.BytesIO(raw.tobytes()))
    # polars raises several kinds for damaged streams, and its Rust code may panic (a BaseException)
    except (Exception, pl.exceptions.PanicException) as exc:
        raise IOFormatError(
            "exact column copy cannot be read", path=path, obj=obj,
            expected="an Arrow IPC stream", found=f"{type(exc).__name__}: {exc}",
        ) from exc
    missing = [name for name in exact.columns if name not in frame.columns]
    if missing or exact.height != frame.height:
        raise IOFormatError(
            "exact column copy does not fit its frame", path=path, obj=obj,
            expected=f"{frame.height} rows of columns among {frame.columns}",
            found=f"{exact.height} rows of columns {exact.columns}",
        )
    # with_columns replaces same-named columns in place: the column order is kept
    return frame.with_columns(exact.get_columns())

