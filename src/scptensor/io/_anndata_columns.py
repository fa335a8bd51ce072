"""Frame columns AnnData cannot read, as readable stand-ins plus an exact copy.

The element codecs store every polars dtype exactly, but a few of them
(floats with nulls, Binary, Null, List, fixed-size Array, Struct) only through
encodings of our own, and ``anndata.read_h5ad``/``mudata.read_h5mu`` refuse a
whole file holding one such element.  In ``.h5ad``/``.h5mu`` files each such
column is therefore written twice:

* in the frame itself, at its position and under its name, as a *stand-in* of a
  kind AnnData reads (table below), so other tools see its values;
* exactly, in ``uns/scptensor/exact_columns/<frame>``: the original columns as
  one Arrow IPC stream (keeps every dtype, nulls apart from NaN, nesting), held
  in a ``uint8`` ``array`` element, which AnnData reads as a plain byte array.

==========================  ==================================================
polars dtype                stand-in column
==========================  ==================================================
Float16/32/64 with nulls    the same float dtype, NaN where null
List, Array, Struct         strings: compact JSON of each row (nested dates,
                            times, decimals and bytes as text); null rows null
Binary                      strings: lowercase hex of each value; nulls null
Null                        strings, every row null
==========================  ==================================================

Loading replaces each stand-in by its exact column, so a round trip stays
exact.  The ``.h5`` format keeps the exact encodings in the frame itself and
never uses this module.
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

__all__ = ["split_frame", "restore_frame", "needs_stand_in", "EXACT_COLUMNS_KEY"]

EXACT_COLUMNS_KEY = "exact_columns"

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


def split_frame(frame: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray | None]:
    """``frame`` with AnnData-readable stand-ins, and its exact columns as IPC bytes.

    Returns the frame unchanged and ``None`` when every column is readable.
    """
    replaced = {}
    for series in frame.iter_columns():
        make = _stand_in_for(series)
        if make is not None:
            replaced[series.name] = (series, make(series))
    if not replaced:
        return frame, None
    exact = pl.DataFrame([original for original, _ in replaced.values()])
    buffer = io.BytesIO()
    # uncompressed: the HDF5 filters of the file compress the bytes
    exact.write_ipc(buffer, compression="uncompressed")
    visible = frame.with_columns([stand_in for _, stand_in in replaced.values()])
    return visible, np.frombuffer(buffer.getbuffer(), dtype=np.uint8).copy()


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

