"""Exact comparison of what a reader returned for a mutated file against the original's result.

``difference(a, b)`` names the first place where two loaded values differ (None when
they are equal): numpy arrays by dtype, shape and values with NaN equal to NaN,
polars frames by schema and values, scptensor containers by
:func:`h5scp.testing.assert_container_equal`, mappings, sequences, dataclasses
and plain values by ``==`` (NaN equal to NaN).  A value polars cannot compare (a flipped date beyond
the dates it can show: its comparison panics) differs from the original's.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


def _array_difference(a: np.ndarray, b: np.ndarray, where: str) -> str | None:
    if a.dtype != b.dtype:
        return f"{where}: dtype {a.dtype} != {b.dtype}"
    if a.shape != b.shape:
        return f"{where}: shape {a.shape} != {b.shape}"
    if a.dtype.kind == "O":
        for i, (x, y) in enumerate(zip(a.ravel().tolist(), b.ravel().tolist())):
            found = difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    if a.dtype.names:  # compound rows: field by field
        for name in a.dtype.names:
            found = _array_difference(np.asarray(a[name]), np.asarray(b[name]), f"{where}.{name}")
            if found:
                return found
        return None
    equal_nan = a.dtype.kind in "fc"
    if not np.array_equal(a, b, equal_nan=equal_nan):
        same = (a == b) | (np.isnan(a) & np.isnan(b)) if equal_nan else a == b
        changed = int(a.size - np.count_nonzero(same))
        return f"{where}: {changed} of {a.size} values differ"
    return None


def difference(a, b, where: str = "") -> str | None:
    """The first difference between ``a`` and ``b`` (a short description), None when they are equal."""
    import polars as pl
    from polars.exceptions import PanicException
    from scipy import sparse

    from h5scp import ScpContainer

    where = where or "result"
    if type(a) is not type(b):
        return f"{where}: type {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, ScpContainer):
        from h5scp.testing import assert_container_equal

        try:
            assert_container_equal(a, b)
        except (AssertionError, PanicException) as exc:
            return f"{where}: {str(exc).splitlines()[0] if str(exc) else 'containers differ'}"
        return None
    if isinstance(a, np.ndarray):
        return _array_difference(a, b, where)
    if sparse.issparse(a):
        if a.format != b.format:
            return f"{where}: sparse format {a.format} != {b.format}"
        for part in ("data", "indices", "indptr"):
            found = _array_difference(getattr(a, part), getattr(b, part), f"{where}.{part}")
            if found:
                return found
        return None if a.shape == b.shape else f"{where}: shape {a.shape} != {b.shape}"
    if isinstance(a, pl.DataFrame):
        from polars.testing import assert_frame_equal

        try:
            assert_frame_equal(a, b, check_exact=True)
        except (AssertionError, PanicException) as exc:
            return f"{where}: {str(exc).splitlines()[0]}"
        return None
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{where}: keys {sorted(map(str, a))[:8]} != {sorted(map(str, b))[:8]}"
        for key in a:
            found = difference(a[key], b[key], f"{where}/{key}")
            if found:
                return found
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            found = difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    if dataclasses.is_dataclass(a):
        for field in dataclasses.fields(a):
            found = difference(getattr(a, field.name), getattr(b, field.name), f"{where}.{field.name}")
            if found:
                return found
        return None
    if isinstance(a, np.generic):
        return _array_difference(np.asarray(a), np.asarray(b), where)
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return None
    return None if a == b else f"{where}: {a!r:.80} != {b!r:.80}"
