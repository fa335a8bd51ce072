"""The layers of a scptensor Parquet dataset: matrices to long rows and back, and wide layers.

Encoding builds the long-form columns of a layer tile by tile; decoding rebuilds
an :class:`~h5scp.core.structures.ScpMatrix` from long rows (reading only the
row ranges of the selected samples' tiles) or from a wide layer.  The forms
themselves are described in :mod:`h5scp.io.formats_parquet`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from scipy import sparse

from h5scp.core._rules import _take
from h5scp.core.structures import ScpMatrix
from h5scp.io._parquet_manifest import dataset_member
from h5scp.io.exceptions import IOFormatError

_MAX_RANGES = 512


# --------------------------------------------------------------------------- ids


def _id_column(ids: pl.Series, positions: np.ndarray, name: str) -> pl.Series:
    """The ids at ``positions``: an Enum (codes = positions) for String ids, else the ids' own dtype."""
    # a polars Series of indices: gathering with a numpy array is ten times slower
    index = pl.Series(positions)
    if ids.dtype == pl.String:
        return pl.Series(name, ids, dtype=pl.Enum(ids)).gather(index)
    return ids.gather(index).alias(name)


def _positions(column: pl.Series, ids: pl.Series, path: Path, what: str) -> np.ndarray:
    """Positions of a layer's id column among the container's ids; unknown ids are a format error."""
    if isinstance(column.dtype, pl.Enum):
        categories = column.dtype.categories
        if ids.dtype == pl.String and categories.len() == ids.len() and categories.equals(ids):
            return column.to_physical().to_numpy().astype(np.int64, copy=False)
        column = column.cast(pl.String)
    frame = pl.DataFrame({"id": ids, "pos": np.arange(ids.len(), dtype=np.int64)})
    if column.dtype != ids.dtype:
        raise IOFormatError(
            f"{what} ids have another dtype than the container's ids", path=path, obj=what,
            expected=str(ids.dtype), found=str(column.dtype),
        )
    looked = pl.DataFrame({"id": column}).join(frame, on="id", how="left", maintain_order="left")
    pos = looked.get_column("pos")
    if pos.null_count():
        bad = column.filter(pos.is_null()).head(3).to_list()
        raise IOFormatError(
            f"{what} names ids the dataset does not hold", path=path, obj=what,
            expected="ids of obs/var", found=f"{pos.null_count()} unknown, e.g. {bad}",
        )
    return pos.to_numpy()


# --------------------------------------------------------------------------- matrices to long rows


def _storage(values) -> str:
    if values is None:
        return "none"
    return values.format if sparse.issparse(values) else "dense"


def _canonical(values) -> bool:
    return not sparse.issparse(values) or bool(values.has_canonical_format)


def _entries(values, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column and value of every stored entry, in storage order."""
    n, f = shape
    if not sparse.issparse(values):
        rows = np.repeat(np.arange(n, dtype=np.int64), f)
        cols = np.tile(np.arange(f, dtype=np.int64), n)
        return rows, cols, np.asarray(values).ravel()
    outer = np.repeat(np.arange(values.shape[0] if values.format == "csr" else values.shape[1],
                                dtype=np.int64), np.diff(values.indptr))
    inner = values.indices.astype(np.int64)
    if values.format == "csr":
        return outer, inner, values.data
    return inner, outer, values.data


def _tile_order_dense(n: int, f: int, ts: int, tf: int):
    """Per tile (sample block, feature block) in order: its row bounds and column bounds."""
    for r0 in range(0, n, ts):
        for c0 in range(0, f, tf):
            yield r0, min(r0 + ts, n), c0, min(c0 + tf, f)


def _dense_long(matrix: ScpMatrix, ts: int, tf: int, observed: bool) -> tuple[dict, list[int], dict]:
    """Columns of a dense layer with a dense mask or none, built tile by tile (no index sort)."""
    X, M = matrix.X, matrix.M
    n, f = X.shape
    total = n * f
    rows = np.empty(total, dtype=np.uint32 if n < 2**32 else np.int64)
    cols = np.empty(total, dtype=np.uint32 if f < 2**32 else np.int64)
    values = np.empty(total, dtype=X.dtype)
    masks = np.zeros(total, dtype=np.int8)
    starts, at = [], 0
    sample_range = np.arange(n, dtype=rows.dtype)
    feature_range = np.arange(f, dtype=cols.dtype)
    for r0, r1, c0, c1 in _tile_order_dense(n, f, ts, tf):
        size = (r1 - r0) * (c1 - c0)
        starts.append(at)
        block = slice(at, at + size)
        values[block].reshape(r1 - r0, c1 - c0)[...] = X[r0:r1, c0:c1]
        if M is not None:
            masks[block].reshape(r1 - r0, c1 - c0)[...] = M[r0:r1, c0:c1]
        rows[block].reshape(r1 - r0, c1 - c0)[...] = sample_range[r0:r1, None]
        cols[block].reshape(r1 - r0, c1 - c0)[...] = feature_range[None, c0:c1]
        at += size
    extra: dict = {"cells": "all"}
    if observed:
        nan = np.isnan(values)
        fill = 0
        if M is not None and nan.any():
            fill = int(np.bincount(masks[nan], minlength=7).argmax())
        keep = ~(nan & (masks == fill))
        bounds = np.append(np.asarray(starts, dtype=np.int64), total)
        tile_of = np.repeat(np.arange(len(starts)), np.diff(bounds))
        kept_per_tile = np.bincount(tile_of[keep], minlength=len(starts))
        starts = (np.cumsum(kept_per_tile) - kept_per_tile).astype(int).tolist()
        rows, cols, values, masks = rows[keep], cols[keep], values[keep], masks[keep]
        extra = {"cells": "observed", "omitted": {"value": "NaN", "mask": fill}}
    return {"rows": rows, "cols": cols, "value": values, "mask": masks}, [int(s) for s in starts], extra


def _dense_tiled_frame(
    matrix: ScpMatrix, sample_ids: pl.Series, feature_ids: pl.Series, dtype, ts: int, tf: int,
) -> tuple[pl.DataFrame, list[int], dict] | None:
    """The long frame of a dense layer holding every cell, one tile per chunk of its columns.

    The same rows as :func:`_dense_long` then :func:`_long_frame` with ``observed=False``,
    without full-size index arrays: each tile's columns are made in tile-sized buffers
    and the frame's columns are their chunks (no rechunk).  None when X's dtype is not
    the value column's (the general path converts it).
    """
    X, M = matrix.X, matrix.M
    if X.dtype != (np.float32 if dtype == pl.Float32 else np.float64):
        return None
    n, f = X.shape
    index_dtype = np.uint32 if max(n, f) < 2**32 else np.int64
    sample_range = np.arange(n, dtype=index_dtype)
    feature_range = np.arange(f, dtype=index_dtype)
    as_enum = {}
    for key, ids in (("sample_id", sample_ids), ("feature_id", feature_ids)):
        as_enum[key] = pl.Series(key, ids, dtype=pl.Enum(ids)) if ids.dtype == pl.String else ids.alias(key)
    parts: dict[str, list[pl.Series]] = {"sample_id": [], "feature_id": [], "value": [], "mask": []}
    starts, at = [], 0
    for r0, r1, c0, c1 in _tile_order_dense(n, f, ts, tf):
        h, w = r1 - r0, c1 - c0
        starts.append(at)
        at += h * w
        rows = np.repeat(sample_range[r0:r1], w)
        cols = np.tile(feature_range[c0:c1], h)
        parts["sample_id"].append(as_enum["sample_id"].gather(pl.Series(rows)))
        parts["feature_id"].append(as_enum["feature_id"].gather(pl.Series(cols)))
        parts["value"].append(pl.Series("value", np.ascontiguousarray(X[r0:r1, c0:c1]).reshape(-1)))
        mask = np.zeros(h * w, np.int8) if M is None else np.ascontiguousarray(M[r0:r1, c0:c1], np.int8).reshape(-1)
        parts["mask"].append(pl.Series("mask", mask))
    if not starts:
        return None
    frame = pl.DataFrame([pl.concat(chunks, rechunk=False) for chunks in parts.values()])
    return frame, starts, {"cells": "all"}


def _general_long(matrix: ScpMatrix, ts: int, tf: int) -> tuple[dict, list[int], dict]:
    """Columns of a layer with a sparse X or M: the union of X's and M's stored entries."""
    n, f = matrix.shape
    X, M = matrix.X, matrix.M
    xr, xc, xv = _entries(X, (n, f))
    x = pl.DataFrame({"r": xr, "c": xc, "value": xv, "x_entry": np.arange(xr.size, dtype=np.int64)})
    x_ordered = not _canonical(X)
    m_ordered = M is not None and not _canonical(M)
    keys = ["r", "c"]
    if M is None:
        frame = x.with_columns(pl.lit(0, dtype=pl.Int8).alias("mask"))
    else:
        mr, mc, mv = _entries(M, (n, f))
        m = pl.DataFrame({"r": mr, "c": mc, "mask": mv, "m_entry": np.arange(mr.size, dtype=np.int64)})
        if x_ordered or m_ordered:  # duplicates pair up by their occurrence at a cell
            keys = ["r", "c", "occ"]
            x = x.with_columns(pl.int_range(pl.len()).over("r", "c").alias("occ"))
            m = m.with_columns(pl.int_range(pl.len()).over("r", "c").alias("occ"))
        frame = x.join(m, on=keys, how="full", coalesce=True)
    tile_cols = -(-f // tf) if f else 1
    frame = frame.with_columns(
        ((pl.col("r") // ts) * tile_cols + pl.col("c") // tf).alias("tile")
    ).sort(["tile", *keys])
    n_tiles = (-(-n // ts) if n else 0) * tile_cols
    counts = np.bincount(frame.get_column("tile").to_numpy(), minlength=n_tiles)[:n_tiles]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist() if n_tiles else []
    columns = {
        "rows": frame.get_column("r").to_numpy(),
        "cols": frame.get_column("c").to_numpy(),
        "value": frame.get_column("value"),
        "mask": frame.get_column("mask").cast(pl.Int8),
    }
    if x_ordered:
        columns["x_entry"] = frame.get_column("x_entry")
    if m_ordered:
        columns["m_entry"] = frame.get_column("m_entry")
    return columns, starts, {"cells": "stored", "entry_columns": x_ordered or m_ordered}


def _long_frame(columns: dict, sample_ids: pl.Series, feature_ids: pl.Series, dtype) -> pl.DataFrame:
    value = columns["value"]
    value = value.alias("value") if isinstance(value, pl.Series) else pl.Series("value", value)
    mask = columns["mask"]
    mask = mask.alias("mask") if isinstance(mask, pl.Series) else pl.Series("mask", mask)
    series = [
        _id_column(sample_ids, columns["rows"], "sample_id"),
        _id_column(feature_ids, columns["cols"], "feature_id"),
        value if value.dtype == dtype else value.cast(dtype),
        mask,
    ]
    for extra in ("x_entry", "m_entry"):
        if extra in columns:
            series.append(columns[extra].alias(extra))
    return pl.DataFrame(series)


# --------------------------------------------------------------------------- long rows to matrices


def _compressed(fmt: str, rows: np.ndarray, cols: np.ndarray, data: np.ndarray, order, shape):
    """A CSR/CSC matrix from entries; ``order`` gives storage order (None: canonical order)."""
    n, f = shape
    outer, inner, size = (rows, cols, n) if fmt == "csr" else (cols, rows, f)
    order = np.lexsort((inner if order is None else order, outer))
    outer, inner, data = outer[order], inner[order], data[order]
    indptr = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(np.bincount(outer, minlength=size), out=indptr[1:])
    index_dtype = np.int32 if max(n, f, data.size) < 2**31 else np.int64
    cls = sparse.csr_matrix if fmt == "csr" else sparse.csc_matrix
    return cls((data, inner.astype(index_dtype), indptr.astype(index_dtype)), shape=shape)


def _dense_from_long(frame, spec, value, mask, rows, cols, shape, dtype, path, obj) -> ScpMatrix:
    n, f = shape
    m_storage = spec["M"]["storage"]
    present = value.is_not_null()
    if present.all():
        x_rows, x_cols, x_values = rows, cols, value.to_numpy()
    else:  # rows a non-canonical sparse mask adds
        keep = present.to_numpy()
        x_rows, x_cols, x_values = rows[keep], cols[keep], value.filter(present).to_numpy()
    flat = x_rows * f + x_cols
    if spec.get("cells") == "observed":
        fill = int(spec["omitted"]["mask"])
        X = np.full(shape, np.nan, dtype=dtype)
        M = np.full(shape, fill, dtype=np.int8) if m_storage == "dense" else None
    else:
        if flat.size != n * f or (flat.size and np.bincount(flat, minlength=n * f).min() == 0):
            raise IOFormatError(
                "a dense layer does not list every cell once", path=path, obj=obj,
                expected=f"{n * f} cells ({n} x {f})", found=f"{flat.size} rows, not covering every cell",
            )
        X = np.empty(shape, dtype=dtype)
        M = np.empty(shape, dtype=np.int8) if m_storage == "dense" else None
    X.ravel()[flat] = x_values
    if M is not None:
        codes = mask if present.all() else mask.filter(present)
        if codes.null_count():
            raise IOFormatError("a dense mask holds nulls", path=path, obj=obj,
                                expected="a code per cell", found=f"{codes.null_count()} nulls")
        M.ravel()[flat] = codes.to_numpy()
    elif m_storage in ("csr", "csc"):
        have = mask.is_not_null().to_numpy()
        order = frame.get_column("m_entry").to_numpy()[have] if "m_entry" in frame.columns else None
        M = _compressed(m_storage, rows[have], cols[have], mask.to_numpy()[have].astype(np.int8), order, shape)
    return ScpMatrix(X, M)


def _matrix_from_long(
    frame: pl.DataFrame, spec: dict, rows: np.ndarray, cols: np.ndarray, shape, path: Path, obj: str
) -> ScpMatrix:
    x_spec, m_spec = spec["X"], spec["M"]
    dtype = np.dtype(x_spec["dtype"])
    value = frame.get_column("value")
    mask = frame.get_column("mask")
    if value.dtype != pl.Float32 and value.dtype != pl.Float64:
        raise IOFormatError("value column is not floating point", path=path, obj=obj,
                            expected=str(dtype), found=str(value.dtype))
    if x_spec["storage"] == "dense":
        return _dense_from_long(frame, spec, value, mask, rows, cols, shape, dtype, path, obj)
    present = value.is_not_null().to_numpy()
    order = frame.get_column("x_entry").to_numpy()[present] if "x_entry" in frame.columns else None
    X = _compressed(x_spec["storage"], rows[present], cols[present],
                    value.to_numpy()[present].astype(dtype, copy=False), order, shape)
    M = None
    if m_spec["storage"] == "dense":
        M = np.zeros(shape, dtype=np.int8)
        have = mask.is_not_null().to_numpy()
        M[rows[have], cols[have]] = mask.to_numpy()[have]
    elif m_spec["storage"] in ("csr", "csc"):
        have = mask.is_not_null().to_numpy()
        order = frame.get_column("m_entry").to_numpy()[have] if "m_entry" in frame.columns else None
        M = _compressed(m_spec["storage"], rows[have], cols[have],
                        mask.to_numpy()[have].astype(np.int8), order, shape)
    return ScpMatrix(X, M)


# --------------------------------------------------------------------------- reading layers


def _row_ranges(spec: dict, sample_positions: np.ndarray | None,
                feature_positions: np.ndarray | None = None) -> list[tuple[int, int]] | None:
    """Row ranges of a long layer holding ``sample_positions`` x ``feature_positions`` (None: every row)."""
    if sample_positions is None and feature_positions is None:
        return None
    n, f = spec["shape"]
    ts, tf = int(spec["tile_samples"]), int(spec["tile_features"])
    starts = list(spec["tile_rows"]) + [int(spec["n_rows"])]
    tile_cols = -(-f // tf) if f else 1
    samples = np.arange(n) if sample_positions is None else np.unique(sample_positions)
    blocks = np.unique(samples // ts)
    feature_blocks = np.arange(tile_cols) if feature_positions is None else np.unique(feature_positions // tf)
    ranges: list[tuple[int, int]] = []
    exact = spec.get("cells") == "all" and spec["X"]["storage"] == "dense"
    if exact and samples.size * feature_blocks.size <= _MAX_RANGES:
        for s in samples:
            b = s // ts
            for j in feature_blocks:
                t = b * tile_cols + j
                width = min(tf, f - j * tf)
                at = starts[t] + (s - b * ts) * width
                ranges.append((int(at), int(at + width)))
        ranges.sort()
    else:
        ranges = [(starts[b * tile_cols + j], starts[b * tile_cols + j + 1]) for b in blocks for j in feature_blocks
                  if b * tile_cols + j + 1 < len(starts)]
    merged: list[tuple[int, int]] = []
    for a, b in ranges:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        elif b > a:
            merged.append((a, b))
    return merged


#: row ranges closer than this are read as one slice and cut in memory: each slice decodes every row group it
#: touches (137 scattered rows of a wide file of one row group, 3,000 x 2,200, took 27-48 s in 137 slices)
_GAP_ROWS = 1 << 16


def _spans(ranges: list[tuple[int, int]]) -> list[list[int]]:
    """Sorted row ranges merged where less than :data:`_GAP_ROWS` rows lie between them."""
    spans = []
    for a, b in ranges:
        if spans and a - spans[-1][1] < _GAP_ROWS:
            spans[-1][1] = max(spans[-1][1], b)
        else:
            spans.append([a, b])
    return spans


def _scan_rows(path: Path, ranges: list[tuple[int, int]] | None, columns=None) -> pl.DataFrame:
    """The rows of ``ranges`` (sorted, disjoint; None: all) of a Parquet file, one range after the other."""
    if ranges is None:
        return pl.read_parquet(path, columns=columns)
    lazy = pl.scan_parquet(path)
    if columns is not None:
        lazy = lazy.select(columns)
    if not ranges:
        return lazy.head(0).collect()
    spans = _spans(ranges)
    frame = pl.concat([lazy.slice(a, b - a) for a, b in spans]).collect()
    if len(spans) == len(ranges):
        return frame
    take, at, span = [], 0, 0
    for a, b in ranges:
        while a >= spans[span][1]:
            at, span = at + spans[span][1] - spans[span][0], span + 1
        take.append(np.arange(at + a - spans[span][0], at + b - spans[span][0]))
    return frame[np.concatenate(take)]


def _new_positions(size: int, wanted: np.ndarray | None) -> np.ndarray:
    """Position in the result of each stored position (-1: not read); ``wanted`` None: all, in order."""
    if wanted is None:
        return np.arange(size, dtype=np.int64)
    out = np.full(size, -1, dtype=np.int64)
    out[wanted] = np.arange(len(wanted))
    return out


def _read_layer(
    root: Path, spec: dict, sample_ids: pl.Series, feature_ids: pl.Series, sel: np.ndarray | None, obj: str,
    digests: dict | None = None, cols: np.ndarray | None = None,
) -> ScpMatrix:
    """A layer, or its cells at the samples ``sel`` x features ``cols`` (positions in the order asked; None: all)."""
    shape = tuple(int(v) for v in spec["shape"])
    n, f = shape
    if n != sample_ids.len() or f != feature_ids.len():
        raise IOFormatError("layer shape differs from obs/var", path=root, obj=obj,
                            expected=f"({sample_ids.len()}, {feature_ids.len()})", found=str(shape))
    if spec.get("form") == "wide":
        return _read_wide(root, spec, sample_ids, sel, obj, digests, cols)
    ranges = _row_ranges(spec, sel, cols)
    if ranges is not None and 2 * sum(b - a for a, b in _spans(ranges)) > int(spec["n_rows"]):
        # most of the file is read either way: read as a whole load does (tiles placed at once), then cut
        whole = _read_layer(root, spec, sample_ids, feature_ids, None, obj, digests)
        return ScpMatrix(_take(whole.X, sel, cols, copy_data=False), _take(whole.M, sel, cols, copy_data=False))
    path = dataset_member(root, spec["file"], obj, digests, ranges)
    frame = _scan_rows(path, ranges)
    if sel is None and cols is None:
        matrix = _dense_tiles(frame, spec, sample_ids, feature_ids, shape)
        if matrix is not None:
            return matrix
    rows = _positions(frame.get_column("sample_id"), sample_ids, path, f"{obj} sample_id")
    columns = _positions(frame.get_column("feature_id"), feature_ids, path, f"{obj} feature_id")
    if sel is None and cols is None:
        return _matrix_from_long(frame, spec, rows, columns, shape, root, obj)
    new_rows, new_cols = _new_positions(n, sel)[rows], _new_positions(f, cols)[columns]
    keep = (new_rows >= 0) & (new_cols >= 0)
    if not keep.all():
        frame, new_rows, new_cols = frame.filter(pl.Series(keep)), new_rows[keep], new_cols[keep]
    out_shape = (n if sel is None else len(sel), f if cols is None else len(cols))
    return _matrix_from_long(frame, spec, new_rows, new_cols, out_shape, root, obj)


def _merge_runs(runs):
    if runs is None:
        return None
    merged: list[tuple[int, int]] = []
    for a, b in sorted(runs):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def _wide_values(frame: pl.DataFrame, f: int, dtype: np.dtype, pl_dtype, root: Path, obj: str) -> np.ndarray:
    values = frame.drop("sample_id")
    if values.width != f or any(t != pl_dtype for t in values.dtypes):
        raise IOFormatError("wide layer has the wrong columns", path=root, obj=obj,
                            expected=f"{f} columns of {pl_dtype}",
                            found=f"{values.width} columns of {sorted(set(map(str, values.dtypes)))}")
    nulls = sum(values.null_count().row(0)) if f else 0
    if nulls:
        raise IOFormatError("wide layer holds nulls", path=root, obj=obj, expected="a value per cell",
                            found=f"{nulls} nulls")
    if not f:
        return np.empty((frame.height, 0), dtype=dtype)
    return values.to_numpy().astype(dtype, copy=False)


def _enum_ok(column: pl.Series, ids: pl.Series) -> bool:
    """True when ``column`` is an Enum whose categories are the String ``ids`` (codes = positions), without nulls."""
    if not isinstance(column.dtype, pl.Enum) or ids.dtype != pl.String:
        return False
    categories = column.dtype.categories
    return categories.len() == ids.len() and categories.equals(ids) and not column.null_count()


def _codes(column: pl.Series, ids: pl.Series) -> np.ndarray | None:
    """The positions an Enum id column stores as its codes, when its categories are ``ids``."""
    if not _enum_ok(column, ids):
        return None
    return column.to_physical().to_numpy()


class _Chunks:
    """The arrays of a column's chunks (views, no copy), read in order as consecutive pieces."""

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self._arrays = [a for a in arrays if a.size]
        self._index = 0
        self._offset = 0

    def take(self, count: int):
        """Yield (position within the ``count`` items, piece) until ``count`` items were taken."""
        done = 0
        while done < count:
            array = self._arrays[self._index]
            piece = array[self._offset : self._offset + count - done]
            yield done, piece
            done += piece.size
            self._offset += piece.size
            if self._offset == array.size:
                self._index += 1
                self._offset = 0


def _place(tile: np.ndarray, start: int, piece: np.ndarray) -> None:
    """Copy ``piece``, items ``start..`` of ``tile`` in C order, into the 2-D ``tile`` (rows at most three copies)."""
    w = tile.shape[1]
    row, col = divmod(start, w)
    at = 0
    if col:
        k = min(w - col, piece.size)
        tile[row, col : col + k] = piece[:k]
        at, row = k, row + 1
    full = (piece.size - at) // w
    if full:
        tile[row : row + full] = piece[at : at + full * w].reshape(full, w)
        at, row = at + full * w, row + full
    if at < piece.size:
        tile[row, : piece.size - at] = piece[at:]


def _dense_tiles(frame: pl.DataFrame, spec: dict, sample_ids: pl.Series, feature_ids: pl.Series, shape):
    """A dense layer holding every cell in the writer's tile order, rebuilt by block copies.

    The columns' chunks (one per row group) are read in place, without making
    each column one array first.  Every tile's ids are checked against the cells
    it must hold; None (the general rebuild then runs) when the layer is not in
    that layout.
    """
    if spec["X"]["storage"] != "dense" or spec.get("cells") != "all" or spec["M"]["storage"] == "csr" \
            or spec["M"]["storage"] == "csc":
        return None
    n, f = shape
    if frame.height != n * f or "x_entry" in frame.columns or "m_entry" in frame.columns:
        return None
    sample_col, feature_col = frame.get_column("sample_id"), frame.get_column("feature_id")
    value, mask = frame.get_column("value"), frame.get_column("mask")
    dtype = np.dtype(spec["X"]["dtype"])
    if not _enum_ok(sample_col, sample_ids) or not _enum_ok(feature_col, feature_ids) \
            or value.null_count() or mask.null_count():
        return None
    with_mask = spec["M"]["storage"] == "dense"
    if value.dtype != (pl.Float32 if dtype == np.float32 else pl.Float64 if dtype == np.float64 else None):
        return None
    if with_mask and mask.dtype != pl.Int8:
        return None
    values = _Chunks([c.to_numpy() for c in value.get_chunks()])
    masks = _Chunks([c.to_numpy() for c in mask.get_chunks()]) if with_mask else None
    rows = _Chunks([c.to_numpy() for c in sample_col.to_physical().get_chunks()])
    cols = _Chunks([c.to_numpy() for c in feature_col.to_physical().get_chunks()])
    ts, tf = int(spec["tile_samples"]), int(spec["tile_features"])
    X = np.empty(shape, dtype=dtype)
    M = np.empty(shape, dtype=np.int8) if with_mask else None
    # tile-sized buffers for the ids, reused by every tile
    row_ids = np.empty(min(ts, n) * min(tf, f), dtype=np.int64)
    col_ids = np.empty_like(row_ids)
    for r0, r1, c0, c1 in _tile_order_dense(n, f, ts, tf):
        h, w = r1 - r0, c1 - c0
        r_tile, c_tile = row_ids[: h * w].reshape(h, w), col_ids[: h * w].reshape(h, w)
        for source, target in ((rows, r_tile), (cols, c_tile), (values, X[r0:r1, c0:c1]),
                               (masks, None if M is None else M[r0:r1, c0:c1])):
            if source is None:
                continue
            for start, piece in source.take(h * w):
                _place(target, start, piece)
        if not ((r_tile == np.arange(r0, r1)[:, None]).all() and (c_tile == np.arange(c0, c1)[None, :]).all()):
            return None
    return ScpMatrix(X, M)


def _wide_columns(path: Path, f: int, features: np.ndarray, root: Path, obj: str) -> list[str]:
    """The names of the ``sample_id`` column and of the columns of ``features`` (positions) of a wide file."""
    names = list(pl.read_parquet_schema(path))
    if len(names) != f + 1 or names[0] != "sample_id":
        raise IOFormatError("wide layer has the wrong columns", path=root, obj=obj,
                            expected=f"sample_id and {f} feature columns", found=f"{len(names)} columns")
    return ["sample_id", *(names[1 + j] for j in features)]


def _read_wide(
    root: Path, spec: dict, sample_ids: pl.Series, sel: np.ndarray | None, obj: str, digests: dict | None = None,
    cols: np.ndarray | None = None,
) -> ScpMatrix:
    """A wide layer: row i holds sample i, column 1 + j feature j, so a selection reads only its rows and columns."""
    n, f = (int(v) for v in spec["shape"])
    wanted = np.arange(n) if sel is None else np.unique(sel)
    features = None if cols is None else np.unique(cols)
    runs = None if sel is None else _merge_runs([(int(s), int(s) + 1) for s in wanted])
    path = dataset_member(root, spec["file"], obj, digests, runs)
    columns = None if features is None else _wide_columns(path, f, features, root, obj)
    frame = _scan_rows(path, runs, columns)
    pos = _positions(frame.get_column("sample_id"), sample_ids, path, f"{obj} sample_id")
    if not np.array_equal(pos, wanted):
        raise IOFormatError("wide layer rows are not the samples in order", path=root, obj=obj,
                            expected="row i holding sample i", found="other rows")
    dtype = np.dtype(spec["X"]["dtype"])
    width = f if features is None else features.size
    X = _wide_values(frame, width, dtype, pl.Float32 if dtype == np.float32 else pl.Float64, root, obj)
    M = None
    if "mask_file" in spec:
        mask_path = dataset_member(root, spec["mask_file"], obj, digests, runs)
        mask_columns = None if features is None else _wide_columns(mask_path, f, features, root, f"{obj} mask")
        M = _wide_values(_scan_rows(mask_path, runs, mask_columns), width, np.dtype(np.int8), pl.Int8, root,
                         f"{obj} mask")
    if sel is not None:
        order = np.searchsorted(wanted, sel)
        X, M = X[order], None if M is None else M[order]
    if cols is not None:
        order = np.searchsorted(features, cols)
        X, M = X[:, order], None if M is None else M[:, order]
    return ScpMatrix(np.ascontiguousarray(X), None if M is None else np.ascontiguousarray(M))
