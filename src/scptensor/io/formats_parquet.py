"""The scptensor Parquet format 1.0: a folder dataset that polars, pyarrow, DuckDB and R arrow read as it is.

Layout of ``cells.parquet/``::

    manifest.json                  format name and version, ids, shapes, storage of every
                                   layer, matrix metadata, links and the history (typed JSON)
    obs.parquet                    the samples, every column in its polars dtype
    assays/<a>/var.parquet         the features of assay <a>
    assays/<a>/layers/<l>.parquet  one layer in long form (or wide form, see below)
    assays/<a>/layers/<l>.mask.parquet   the mask of a wide layer
    links/<i>.parquet              peptide -> protein linkage frames

Folder names are the assay and layer names when they are plain
(``[A-Za-z0-9_-]``, not starting with ``-``, unique ignoring case), else
``assay.<i>``/``layer.<j>``;
the manifest maps names to files.

Long form (the default): columns ``sample_id, feature_id, value, mask``.

* ``sample_id``/``feature_id`` hold the ids (String ids are stored as a
  dictionary column, polars Enum, whose codes are the positions);
* ``value`` has the matrix dtype (float32 or float64); ``mask`` is the int8
  :class:`~scptensor.core.structures.MaskCode`.
* Dense layers hold every cell (``"cells": "all"``), or with
  ``dense_cells="observed"`` only the cells that are not NaN with the layer's
  most common NaN mask code; the manifest states that code
  (``"omitted": {"value": "NaN", "mask": code}``) so the matrix is rebuilt exactly.
* Sparse layers hold a row per stored entry of X or of a sparse M (explicit
  zeros included); ``value`` is null where only M stores the cell, ``mask``
  null where a sparse M stores nothing (read it as VALID).  A layer without a
  mask has ``mask`` 0 and ``"M": {"storage": "none"}``.  Matrices whose indices
  are unsorted or duplicated add ``x_entry``/``m_entry`` (storage positions).
* Rows are grouped in tiles of ``tile_samples`` x ``tile_features`` cells, in
  tile order (sample blocks, then feature blocks), sample-major inside a tile;
  the manifest lists the first row of every tile.  One sample's rows lie in one
  run per feature block, one feature's in one tile per sample block, and row
  groups are at most a tile, so reading one sample or one feature touches few
  row groups.

Wide form (``layout="wide"``, dense layers with a dense mask or none): one row
per sample, a ``sample_id`` column, then one value column per feature named by
its id; the mask goes to ``<l>.mask.parquet`` with the same shape as int8.

Writes are atomic (:mod:`scptensor.io._folders`): the dataset appears complete
or not at all, and an existing one stays whole until its replacement is.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import sparse

from h5stream import jsonvalues
from scptensor.core.exceptions import ValidationError
from scptensor.core.structures import AggregationLink, Assay, ProvenanceLog, ScpContainer, ScpMatrix
from scptensor.io._folders import writing_folder
from scptensor.io.exceptions import IOFormatError, IOSourceNotFoundError
from scptensor.io.selection import SelectionError, selection_from

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST",
    "save_parquet",
    "load_parquet",
    "is_parquet_dataset",
]

logger = logging.getLogger(__name__)

FORMAT_NAME = "scptensor-parquet"
FORMAT_VERSION = "1.0"
MANIFEST = "manifest.json"
#: Cells per tile of a long layer, and rows per Parquet row group inside a tile.
TILE_CELLS = 1 << 18
ROW_GROUP_ROWS = 1 << 16
_TILE_FEATURES = 512
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
_MANIFEST_LIMIT = 256 * 2**20
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


def _tiles(n_samples: int, n_features: int) -> tuple[int, int]:
    tf = max(1, min(n_features, _TILE_FEATURES))
    ts = max(1, TILE_CELLS // tf)
    return ts, tf


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


# --------------------------------------------------------------------------- writing


def _file_names(names: Sequence[str], prefix: str) -> list[str]:
    used: set[str] = set()
    out = []
    for i, name in enumerate(names):
        plain = _PLAIN_NAME.fullmatch(name) and name.lower() not in used
        chosen = name if plain else f"{prefix}.{i}"  # "." never occurs in a plain name
        used.add(chosen.lower())
        out.append(chosen)
    return out


def _write_frame(frame: pl.DataFrame, path: Path, options: dict, row_group_size: int | None = None) -> None:
    frame.write_parquet(path, row_group_size=row_group_size, **options)


def _parquet_options(compression: str | None, level: int | None) -> dict:
    codec = "uncompressed" if compression is None else str(compression).lower()
    options: dict[str, Any] = {"compression": codec}
    if level is not None and codec in ("zstd", "gzip", "brotli"):
        options["compression_level"] = level
    return options


def _write_layer(
    root: Path, rel: str, matrix: ScpMatrix, sample_ids: pl.Series, feature_ids: pl.Series,
    *, layout: str, dense_cells: str, options: dict,
) -> dict:
    n, f = matrix.shape
    spec: dict[str, Any] = {
        "shape": [n, f],
        "X": {"storage": _storage(matrix.X), "dtype": str(matrix.X.dtype)},
        "M": {"storage": _storage(matrix.M)},
    }
    dtype = pl.Float32 if matrix.X.dtype == np.float32 else pl.Float64
    dense = not sparse.issparse(matrix.X) and (matrix.M is None or not sparse.issparse(matrix.M))
    if layout == "wide" and dense:
        spec.update(form="wide", file=f"{rel}.parquet")
        names = [str(v) for v in feature_ids.to_list()]
        if len(set(names)) != len(names) or "sample_id" in names:
            raise ValueError(
                f"layer {rel}: the wide form names columns by feature id, which must be unique as "
                "text and differ from 'sample_id'; use layout='long'"
            )
        ids = _id_column(sample_ids, np.arange(n, dtype=np.int64), "sample_id")
        wide = pl.DataFrame([ids, *(pl.Series(name, matrix.X[:, j]) for j, name in enumerate(names))])
        _write_frame(wide, root / spec["file"], options)
        if matrix.M is not None:
            spec["mask_file"] = f"{rel}.mask.parquet"
            masks = pl.DataFrame([ids, *(pl.Series(name, matrix.M[:, j]) for j, name in enumerate(names))])
            _write_frame(masks, root / spec["mask_file"], options)
        return spec
    ts, tf = _tiles(n, f)
    if dense:
        columns, starts, extra = _dense_long(matrix, ts, tf, dense_cells == "observed")
    else:
        columns, starts, extra = _general_long(matrix, ts, tf)
    spec.update(form="long", file=f"{rel}.parquet", tile_samples=ts, tile_features=tf,
                tile_rows=starts, n_rows=int(len(columns["rows"])), **extra)
    frame = _long_frame(columns, sample_ids, feature_ids, dtype)
    del columns
    _write_frame(frame, root / spec["file"], options, row_group_size=ROW_GROUP_ROWS)
    return spec


def _history_json(history: Sequence[ProvenanceLog]) -> list:
    return [
        jsonvalues.encode(
            {"timestamp": h.timestamp, "action": h.action, "params": dict(h.params),
             "software_version": h.software_version, "description": h.description},
            obj="history",
        )
        for h in history
    ]


def save_parquet(
    container: ScpContainer,
    path: str | os.PathLike,
    *,
    compression: str | None = "zstd",
    compression_level: int | None = None,
    layout: str = "long",
    dense_cells: str = "all",
    save_obs: bool = True,
    save_assays: Sequence[str] | None = None,
    save_layers: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    save_history: bool = True,
    overwrite: bool = False,
) -> Path:
    """Save ``container`` as a scptensor Parquet dataset (a folder, ``.parquet`` by convention).

    Parameters
    ----------
    container : ScpContainer
    path : str or os.PathLike
        Target folder, e.g. ``cells.parquet``.
    compression : str or None, default "zstd"
        Parquet codec of every file (``zstd``, ``lz4``, ``snappy``, ``gzip``,
        ``brotli``, ``None``).
    compression_level : int, optional
        Level of ``zstd``, ``gzip`` or ``brotli`` (default: polars' default).
    layout : {"long", "wide"}, default "long"
        Form of dense layers (sparse layers are always long).
    dense_cells : {"all", "observed"}, default "all"
        ``"observed"`` leaves out the cells of dense layers that are NaN with the
        layer's most common NaN mask code (stated in the manifest).
    save_obs, save_assays, save_layers, save_history
        As in :func:`~scptensor.io.save_hdf5`.
    overwrite : bool, default False
        Replace an existing dataset; it stays whole until the new one is complete.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    IOTargetExistsError
        The path exists and ``overwrite`` is False.
    IOWriteError
        The directory is missing or unwritable, the path holds something other
        than a dataset of this format, the disk is full, or writing failed.
    IOWriterClaimError
        Another writer holds the path.
    ValueError
        Unknown option values, or selections naming parts the container lacks.
    """
    from scptensor import __version__
    from scptensor.io.exporters import select_parts

    if not isinstance(container, ScpContainer):
        raise TypeError(f"container must be an ScpContainer, not {type(container).__name__}")
    if layout not in ("long", "wide"):
        raise ValueError(f"layout must be 'long' or 'wide', not {layout!r}")
    if dense_cells not in ("all", "observed"):
        raise ValueError(f"dense_cells must be 'all' or 'observed', not {dense_cells!r}")
    target = Path(path)
    part = select_parts(container, save_obs, save_assays, save_layers, save_history)
    options = _parquet_options(compression, compression_level)
    with writing_folder(target, overwrite=overwrite, is_replaceable=is_parquet_dataset) as root:
        manifest: dict[str, Any] = {
            "format_name": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "scptensor_version": __version__,
            "creation_time": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "sample_id_col": part.sample_id_col,
            "obs_saved": save_obs,
            "history_saved": save_history,
            "n_samples": part.n_samples,
            "obs": "obs.parquet",
            "assays": [],
            "links": [],
            "history": _history_json(part.history),
        }
        _write_frame(part.obs, root / "obs.parquet", options)
        sample_ids = part.sample_ids
        assay_dirs = _file_names(list(part.assays), "assay")
        for (name, assay), folder in zip(part.assays.items(), assay_dirs):
            (root / "assays" / folder / "layers").mkdir(parents=True)
            entry = {"name": name, "feature_id_col": assay.feature_id_col,
                     "var": f"assays/{folder}/var.parquet", "n_features": assay.n_features, "layers": []}
            _write_frame(assay.var, root / entry["var"], options)
            for (layer, matrix), stem in zip(assay.layers.items(), _file_names(list(assay.layers), "layer")):
                spec = _write_layer(
                    root, f"assays/{folder}/layers/{stem}", matrix, sample_ids, assay.feature_ids,
                    layout=layout, dense_cells=dense_cells, options=options,
                )
                if matrix.metadata:
                    spec["metadata"] = jsonvalues.encode(dict(matrix.metadata), obj=f"{name}/{layer} metadata")
                entry["layers"].append({"name": layer, **spec})
            manifest["assays"].append(entry)
        if part.links:
            (root / "links").mkdir()
        for i, link in enumerate(part.links):
            rel = f"links/{i}.parquet"
            _write_frame(link.linkage, root / rel, options)
            manifest["links"].append(
                {"source_assay": link.source_assay, "target_assay": link.target_assay, "file": rel}
            )
        # the manifest comes last: a folder without it is never a dataset
        (root / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=True, indent=1), encoding="utf-8")
    logger.info("saved %r to %s", container, target)
    return target


# --------------------------------------------------------------------------- reading


def _read_manifest(root: Path) -> dict:
    manifest_path = root / MANIFEST
    try:
        size = manifest_path.stat().st_size
        if size > _MANIFEST_LIMIT:
            raise IOFormatError("manifest is too large", path=root, obj=MANIFEST,
                                expected=f"at most {_MANIFEST_LIMIT} bytes", found=f"{size} bytes")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IOFormatError(
            "folder is not a scptensor Parquet dataset", path=root, obj=MANIFEST,
            expected=f"a {MANIFEST} written by scptensor", found="no manifest",
            hint="save it with save_parquet, or read its files with polars",
        ) from None
    except (OSError, ValueError) as exc:
        raise IOFormatError("manifest is unreadable", path=root, obj=MANIFEST,
                            expected="JSON text", found=str(exc)) from exc
    if not isinstance(manifest, dict) or manifest.get("format_name") != FORMAT_NAME:
        found = manifest.get("format_name") if isinstance(manifest, dict) else type(manifest).__name__
        raise IOFormatError("manifest names another format", path=root, obj=MANIFEST,
                            expected=repr(FORMAT_NAME), found=repr(found))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IOFormatError(
            "unsupported scptensor Parquet format version", path=root, obj=f"{MANIFEST}/format_version",
            expected=repr(FORMAT_VERSION), found=repr(manifest.get("format_version")),
            hint="the dataset may come from a newer scptensor; upgrade to read it",
        )
    return manifest


def is_parquet_dataset(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding a scptensor Parquet manifest."""
    root = Path(path)
    if not root.is_dir():
        return False
    try:
        _read_manifest(root)
    except IOFormatError:
        return False
    return True


def _member(root: Path, rel: Any, obj: str) -> Path:
    """A file named by the manifest, refused when it would leave the dataset folder."""
    if not isinstance(rel, str) or not rel or os.path.isabs(rel) or ".." in Path(rel).parts:
        raise IOFormatError("manifest names a file outside the dataset", path=root, obj=obj,
                            expected="a relative path inside the folder", found=repr(rel))
    member = root / rel
    if not member.is_file():
        raise IOFormatError("a file of the dataset is missing", path=root, obj=rel,
                            expected="a Parquet file", found="nothing")
    return member


@contextlib.contextmanager
def _guard(root: Path, obj: str) -> Iterator[None]:
    try:
        yield
    except (IOFormatError, IOSourceNotFoundError, SelectionError):
        raise
    except ValidationError as exc:
        raise IOFormatError(f"dataset content breaks the data model: {exc}", path=root, obj=obj,
                            hint="the dataset was modified or written by another tool") from exc
    except (pl.exceptions.PolarsError, OSError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise IOFormatError(f"unreadable part of the dataset ({type(exc).__name__}: {exc})",
                            path=root, obj=obj) from exc


def _row_ranges(spec: dict, sample_positions: np.ndarray | None) -> list[tuple[int, int]] | None:
    """Row ranges of a long layer holding ``sample_positions`` (None: every row)."""
    if sample_positions is None:
        return None
    n, f = spec["shape"]
    ts, tf = int(spec["tile_samples"]), int(spec["tile_features"])
    starts = list(spec["tile_rows"]) + [int(spec["n_rows"])]
    tile_cols = -(-f // tf) if f else 1
    blocks = np.unique(sample_positions // ts)
    ranges: list[tuple[int, int]] = []
    exact = spec.get("cells") == "all" and spec["X"]["storage"] == "dense"
    if exact:
        for s in np.unique(sample_positions):
            b = s // ts
            for j in range(tile_cols):
                t = b * tile_cols + j
                width = min(tf, f - j * tf)
                at = starts[t] + (s - b * ts) * width
                ranges.append((int(at), int(at + width)))
        ranges.sort()
    if not exact or len(ranges) > _MAX_RANGES:
        ranges = [(starts[b * tile_cols], starts[min((b + 1) * tile_cols, len(starts) - 1)]) for b in blocks]
    merged: list[tuple[int, int]] = []
    for a, b in ranges:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        elif b > a:
            merged.append((a, b))
    return merged


def _scan_rows(path: Path, ranges: list[tuple[int, int]] | None, columns=None) -> pl.DataFrame:
    if ranges is None:
        return pl.read_parquet(path, columns=columns)
    lazy = pl.scan_parquet(path)
    if columns is not None:
        lazy = lazy.select(columns)
    if not ranges:
        return lazy.head(0).collect()
    return pl.concat([lazy.slice(a, b - a) for a, b in ranges]).collect()


def _read_layer(
    root: Path, spec: dict, sample_ids: pl.Series, feature_ids: pl.Series, sel: np.ndarray | None, obj: str
) -> ScpMatrix:
    shape = tuple(int(v) for v in spec["shape"])
    n, f = shape
    if n != sample_ids.len() or f != feature_ids.len():
        raise IOFormatError("layer shape differs from obs/var", path=root, obj=obj,
                            expected=f"({sample_ids.len()}, {feature_ids.len()})", found=str(shape))
    if spec.get("form") == "wide":
        return _read_wide(root, spec, sample_ids, sel, obj)
    path = _member(root, spec["file"], obj)
    frame = _scan_rows(path, _row_ranges(spec, sel))
    if sel is None:
        matrix = _dense_tiles(frame, spec, sample_ids, feature_ids, shape)
        if matrix is not None:
            return matrix
    rows = _positions(frame.get_column("sample_id"), sample_ids, path, f"{obj} sample_id")
    cols = _positions(frame.get_column("feature_id"), feature_ids, path, f"{obj} feature_id")
    if sel is None:
        return _matrix_from_long(frame, spec, rows, cols, shape, root, obj)
    new_of_old = np.full(n, -1, dtype=np.int64)
    new_of_old[sel] = np.arange(len(sel))
    keep = new_of_old[rows] >= 0
    if not keep.all():
        frame, rows, cols = frame.filter(pl.Series(keep)), rows[keep], cols[keep]
    return _matrix_from_long(frame, spec, new_of_old[rows], cols, (len(sel), f), root, obj)


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


def _codes(column: pl.Series, ids: pl.Series) -> np.ndarray | None:
    """The positions an Enum id column stores as its codes (no copy), when its categories are ``ids``."""
    if not isinstance(column.dtype, pl.Enum) or ids.dtype != pl.String:
        return None
    categories = column.dtype.categories
    if categories.len() != ids.len() or not categories.equals(ids) or column.null_count():
        return None
    return column.to_physical().to_numpy()


def _dense_tiles(frame: pl.DataFrame, spec: dict, sample_ids: pl.Series, feature_ids: pl.Series, shape):
    """A dense layer holding every cell in the writer's tile order, rebuilt by block copies.

    Every tile's ids are checked against the cells it must hold; None (the
    general rebuild then runs) when the layer is not in that layout.
    """
    if spec["X"]["storage"] != "dense" or spec.get("cells") != "all" or spec["M"]["storage"] == "csr" \
            or spec["M"]["storage"] == "csc":
        return None
    n, f = shape
    if frame.height != n * f or "x_entry" in frame.columns or "m_entry" in frame.columns:
        return None
    rows = _codes(frame.get_column("sample_id"), sample_ids)
    cols = _codes(frame.get_column("feature_id"), feature_ids)
    value, mask = frame.get_column("value"), frame.get_column("mask")
    dtype = np.dtype(spec["X"]["dtype"])
    if rows is None or cols is None or value.null_count() or mask.null_count() or value.to_numpy().dtype != dtype:
        return None
    values = value.to_numpy()
    masks = mask.to_numpy() if spec["M"]["storage"] == "dense" else None
    if masks is not None and masks.dtype != np.int8:
        return None
    ts, tf = int(spec["tile_samples"]), int(spec["tile_features"])
    X = np.empty(shape, dtype=dtype)
    M = np.empty(shape, dtype=np.int8) if masks is not None else None
    at = 0
    for r0, r1, c0, c1 in _tile_order_dense(n, f, ts, tf):
        h, w = r1 - r0, c1 - c0
        block = slice(at, at + h * w)
        if not (np.array_equal(rows[block].reshape(h, w)[:, 0], np.arange(r0, r1))
                and (rows[block].reshape(h, w) == rows[block].reshape(h, w)[:, :1]).all()
                and (cols[block].reshape(h, w) == np.arange(c0, c1)[None, :]).all()):
            return None
        X[r0:r1, c0:c1] = values[block].reshape(h, w)
        if M is not None:
            M[r0:r1, c0:c1] = masks[block].reshape(h, w)
        at += h * w
    return ScpMatrix(X, M)


def _read_wide(root: Path, spec: dict, sample_ids: pl.Series, sel: np.ndarray | None, obj: str) -> ScpMatrix:
    """A wide layer: row i holds sample i, so a selection reads only its rows."""
    n, f = (int(v) for v in spec["shape"])
    wanted = np.arange(n) if sel is None else np.unique(sel)
    runs = None if sel is None else _merge_runs([(int(s), int(s) + 1) for s in wanted])
    path = _member(root, spec["file"], obj)
    frame = _scan_rows(path, runs)
    pos = _positions(frame.get_column("sample_id"), sample_ids, path, f"{obj} sample_id")
    if not np.array_equal(pos, wanted):
        raise IOFormatError("wide layer rows are not the samples in order", path=root, obj=obj,
                            expected="row i holding sample i", found="other rows")
    dtype = np.dtype(spec["X"]["dtype"])
    X = _wide_values(frame, f, dtype, pl.Float32 if dtype == np.float32 else pl.Float64, root, obj)
    M = None
    if "mask_file" in spec:
        masks = _scan_rows(_member(root, spec["mask_file"], obj), runs)
        M = _wide_values(masks, f, np.dtype(np.int8), pl.Int8, root, f"{obj} mask")
    if sel is not None:
        order = np.searchsorted(wanted, sel)
        X, M = X[order], None if M is None else M[order]
    return ScpMatrix(np.ascontiguousarray(X), None if M is None else np.ascontiguousarray(M))


def load_parquet(
    path: str | os.PathLike,
    *,
    assays: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    obs_columns: Sequence[str] | None = None,
    samples=None,
) -> ScpContainer:
    """Load a scptensor Parquet dataset, or the parts of it named.

    Parameters
    ----------
    path : str or os.PathLike
        The dataset folder.
    assays : list of str, optional
        Assays to read (default all); links between assays not read are left out.
    layers : list of str, optional
        Layers to read in every assay read (default all).
    obs_columns : list of str, optional
        obs columns to read besides the sample id column (default all).
    samples : sequence of sample ids, or boolean mask over the samples, optional
        Samples to read, in the order given (a mask keeps the saved order).  Only
        the tiles (long form) or rows (wide form) holding them are read.

    Raises
    ------
    IOSourceNotFoundError
        Nothing at ``path``.
    IOFormatError
        Not a scptensor Parquet dataset, an unsupported version, a missing or
        unreadable file; the message names the folder and the file.
    ValueError
        A selection names parts the dataset lacks.
    """
    root = Path(path)
    if not root.exists():
        raise IOSourceNotFoundError("dataset does not exist", path=root, expected="a folder",
                                    found="nothing", hint="check the path")
    if not root.is_dir():
        raise IOFormatError("not a scptensor Parquet dataset", path=root, expected="a folder with "
                            f"{MANIFEST}", found="a file", hint="a single Parquet file reads with polars")
    manifest = _read_manifest(root)
    with _guard(root, MANIFEST):
        sample_id_col = manifest["sample_id_col"]
        assay_entries = list(manifest["assays"])
        names = [a["name"] for a in assay_entries]
    selection = selection_from(names, {a["name"]: [l["name"] for l in a["layers"]] for a in assay_entries},
                               assays=assays, layers=layers, path=root)
    with _guard(root, manifest["obs"]):
        obs_path = _member(root, manifest["obs"], "obs")
        if obs_columns is not None:
            schema = pl.read_parquet_schema(obs_path)
            selection.check_obs_columns(list(schema), obs_columns, sample_id_col)
            wanted = [sample_id_col] + [c for c in obs_columns if c != sample_id_col]
            obs = pl.read_parquet(obs_path, columns=[c for c in schema if c in wanted])
        else:
            obs = pl.read_parquet(obs_path)
        all_ids = obs.get_column(sample_id_col)
        sel = selection.sample_positions(samples, all_ids)
        if sel is not None:
            obs = obs[sel]
    container_assays = {}
    for entry in assay_entries:
        if not selection.wants_assay(entry["name"]):
            continue
        obj = f"assays/{entry['name']}"
        with _guard(root, obj):
            var = pl.read_parquet(_member(root, entry["var"], f"{obj}/var"))
            feature_ids = var.get_column(entry["feature_id_col"])
            layer_map = {}
            for spec in entry["layers"]:
                if not selection.wants_layer(entry["name"], spec["name"]):
                    continue
                lobj = f"{obj}/layers/{spec['name']}"
                matrix = _read_layer(root, spec, all_ids, feature_ids, sel, lobj)
                if "metadata" in spec:
                    matrix.metadata = dict(jsonvalues.decode(spec["metadata"]))
                layer_map[spec["name"]] = matrix
            container_assays[entry["name"]] = Assay(var, layer_map, feature_id_col=entry["feature_id_col"])
    links = []
    with _guard(root, "links"):
        for i, link in enumerate(manifest.get("links", [])):
            if link["source_assay"] in container_assays and link["target_assay"] in container_assays:
                linkage = pl.read_parquet(_member(root, link["file"], f"links/{i}"))
                links.append(AggregationLink(link["source_assay"], link["target_assay"], linkage))
    with _guard(root, "history"):
        history = [
            ProvenanceLog(
                timestamp=e["timestamp"], action=e["action"], params=dict(e["params"]),
                software_version=e["software_version"], description=e["description"],
            )
            for e in (jsonvalues.decode(raw) for raw in manifest.get("history", []))
        ]
    with _guard(root, "/"):
        container = ScpContainer(obs, container_assays, history=history, links=links,
                                 sample_id_col=sample_id_col)
    logger.info("loaded %r from %s (scptensor Parquet %s)", container, root, FORMAT_VERSION)
    return container
