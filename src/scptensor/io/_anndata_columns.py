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
* its *record* in ``uns/scptensor/frames/<frame>``: the whole frame (id column
  included) as one Arrow IPC stream, which keeps every dtype, nulls apart from
  NaN and nesting, held in a ``uint8`` ``array`` element that anndata and
  mudata keep through a re-save.

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

Loading *reconciles* the frame found with its record (:func:`reconcile_frame`):
rows are matched by id, so a subset or reordered frame still finds its values;
a column whose values are still the ones recorded (as AnnData shows them) comes
back exactly as recorded, dtype included; a column whose values changed keeps
the values found, in the recorded dtype when they fit it; columns added or
removed are kept as found.  Every difference is named for the history.
Files written before records existed hold ``exact_columns`` (the stand-in
columns alone, by position): :func:`restore_frame` still reads them.
The ``.h5`` format keeps the exact encodings in the frame itself and never uses
this module.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from scptensor.io.exceptions import IOFormatError

__all__ = [
    "anndata_visible", "record_frame", "read_record", "reconcile_frame", "restore_frame", "needs_stand_in",
    "EXACT_COLUMNS_KEY", "FRAMES_KEY", "FrameNotes",
]

#: Key of the stand-in columns' exact copies in files written before frame records.
EXACT_COLUMNS_KEY = "exact_columns"
#: Key of the frame records under ``uns/scptensor``.
FRAMES_KEY = "frames"

_FLOAT_DTYPES = (pl.Float16, pl.Float32, pl.Float64)


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
    (lambda s: s.dtype in _FLOAT_DTYPES and s.null_count() > 0, _nan_for_null),
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
    added = [c for c in found.columns if c not in recorded.columns]
    removed = [c for c in recorded.columns if c not in found.columns and c != id_col] if complete else []
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

