"""The scptensor Parquet format 1.0: a folder dataset that polars, pyarrow, DuckDB and R arrow read as it is.

Layout of ``cells.parquet/``::

    manifest.json                  format name and version, ids, shapes, storage of every
                                   layer, matrix metadata, links, the history (typed JSON)
                                   and the CRC-32 digests of every other file
    manifest.json.crc32            the CRC-32 and size of manifest.json
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
  :class:`~h5scp.core.structures.MaskCode`.
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

Writes are atomic (:mod:`h5stream.files.folders`): the dataset appears complete
or not at all, and an existing one stays whole until its replacement is.

Reads check the manifest and the bytes of every file they read against the
digests before polars parses them (per row group for layers, so a partial load
checks only what it reads); ``verify=False`` skips it.  See
:mod:`h5scp.io._parquet_manifest` for the digests.

The manifest lives in :mod:`h5scp.io._parquet_manifest`, the encoding and
decoding of layers in :mod:`h5scp.io._parquet_layers`; this module writes and
reads the folder.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import sparse

from h5stream import jsonvalues
from h5scp.io import json_values
from h5stream.files.folder_reads import read_folder
from h5stream.files.folders import writing_folder
from h5scp.io.classes import loads_into_classes, saves_any_container
from h5scp.core.structures import AggregationLink, Assay, ProvenanceLog, ScpContainer, ScpMatrix
from h5scp.io._files import engine_errors as _engine_errors
from h5scp.io._parquet_layers import (  # noqa: F401  (the helpers stay importable from here)
    _MAX_RANGES,
    _canonical,
    _codes,
    _compressed,
    _dense_from_long,
    _dense_long,
    _dense_tiled_frame,
    _dense_tiles,
    _entries,
    _general_long,
    _id_column,
    _long_frame,
    _matrix_from_long,
    _merge_runs,
    _positions,
    _read_layer,
    _read_wide,
    _row_ranges,
    _scan_rows,
    _storage,
    _tile_order_dense,
    _wide_values,
)
from h5scp.io._parquet_manifest import (  # noqa: F401  (the helpers stay importable from here)
    _MANIFEST_LIMIT,
    _PLAIN_NAME,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    MANIFEST_DIGEST,
    _file_names,
    _guard,
    _history_json,
    dataset_member,
    _read_manifest,
    check_member,
    file_digests,
    is_parquet_dataset,
    seal_folder,
)
from h5scp.io.exceptions import IOFormatError, IOSourceNotFoundError, IOWriteError
from h5scp.io.selection import SelectionError, links_part, metadata_part, selection_from  # noqa: F401

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST",
    "save_parquet",
    "load_parquet",
    "is_parquet_dataset",
    "verify_parquet",
]

logger = logging.getLogger(__name__)

#: Cells per tile of a long layer, and rows per Parquet row group inside a tile.
TILE_CELLS = 1 << 18
ROW_GROUP_ROWS = 1 << 16
_TILE_FEATURES = 512


# --------------------------------------------------------------------------- writing


def _tiles(n_samples: int, n_features: int) -> tuple[int, int]:
    tf = max(1, min(n_features, _TILE_FEATURES))
    ts = max(1, TILE_CELLS // tf)
    return ts, tf


def _write_frame(frame: pl.DataFrame, path: Path, options: dict, row_group_size: int | None = None) -> None:
    frame.write_parquet(path, row_group_size=row_group_size, **options)


def _holds_object(dtype) -> bool:
    if dtype == pl.Object:
        return True
    if isinstance(dtype, (pl.List, pl.Array)):
        return _holds_object(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(_holds_object(field.dtype) for field in dtype.fields)
    return False


def _check_frames(part: ScpContainer, target: Path) -> None:
    """Refuse, before anything is written, a column Parquet cannot hold (polars ``Object``)."""
    frames = [("obs", part.obs)] + [(f"assays/{n}/var", a.var) for n, a in part.assays.items()]
    frames += [(f"links/{i}", link.linkage) for i, link in enumerate(part.links)]
    for where, frame in frames:
        for name, dtype in frame.schema.items():
            if _holds_object(dtype):
                raise IOWriteError(
                    "a column holds Python objects, which Parquet cannot store", path=target,
                    obj=f"{where}/{name}", expected="a column of a Parquet type (numbers, text, dates, lists, structs)",
                    found=f"dtype {dtype}", hint="cast the column to a Parquet type (e.g. .cast(pl.String)) or drop it",
                )


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
    tiled = _dense_tiled_frame(matrix, sample_ids, feature_ids, dtype, ts, tf) \
        if dense and dense_cells != "observed" else None
    if tiled is not None:
        frame, starts, extra = tiled
    else:
        if dense:
            columns, starts, extra = _dense_long(matrix, ts, tf, dense_cells == "observed")
        else:
            columns, starts, extra = _general_long(matrix, ts, tf)
        frame = _long_frame(columns, sample_ids, feature_ids, dtype)
        del columns
    spec.update(form="long", file=f"{rel}.parquet", tile_samples=ts, tile_features=tf,
                tile_rows=starts, n_rows=int(frame.height), **extra)
    _write_frame(frame, root / spec["file"], options, row_group_size=ROW_GROUP_ROWS)
    return spec


@saves_any_container
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
        As in :func:`~h5scp.io.save_hdf5`.
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
    from h5scp._version import __version__
    from h5scp.io.exporters import select_parts

    if layout not in ("long", "wide"):
        raise ValueError(f"layout must be 'long' or 'wide', not {layout!r}")
    if dense_cells not in ("all", "observed"):
        raise ValueError(f"dense_cells must be 'all' or 'observed', not {dense_cells!r}")
    target = Path(path)
    part = select_parts(container, save_obs, save_assays, save_layers, save_history)
    _check_frames(part, target)
    options = _parquet_options(compression, compression_level)
    with _engine_errors(target), writing_folder(
        target, overwrite=overwrite, is_replaceable=is_parquet_dataset,
        kind="a scptensor Parquet dataset folder (with its manifest)",
        other_folder="a folder without a scptensor Parquet manifest",
    ) as root:
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
                    json_values.check_metadata(matrix.metadata, obj=f"assays/{name}/layers/{layer}/metadata")
                    spec["metadata"] = jsonvalues.encode(dict(matrix.metadata),
                                                         obj=f"assays/{name}/layers/{layer}/metadata")
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
        # the manifest comes last, with the digests of every file written before it
        seal_folder(root, manifest)
    logger.info("saved %r to %s", container, target)
    return target


# --------------------------------------------------------------------------- reading


@loads_into_classes
def load_parquet(
    path: str | os.PathLike,
    *,
    assays: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    obs_columns: Sequence[str] | None = None,
    samples=None,
    features=None,
    verify: bool = True,
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
    features : mapping of assay name to feature ids or boolean mask, optional
        Features to read per assay (see :func:`h5scp.io.load_hdf5`); only the
        tiles (long form) or columns (wide form) holding them are read.
    verify : bool, default True
        Check the manifest and every file read against the digests written with
        them, before parsing (whole files, also for partial loads).  ``False``
        reads what is stored.  Datasets written before checksums load without
        verification (an INFO log record says so).

    Raises
    ------
    IOSourceNotFoundError
        Nothing at ``path``.
    IOSaveInProgressError
        A concurrent save replaced the dataset while it was read, on every try
        (a read that meets a save is run again on the new dataset, a few times
        within about two seconds); the dataset is not damaged.
    IOFormatError
        Not a scptensor Parquet dataset, an unsupported version, a missing or
        unreadable file; the message names the folder and the file.
    IOChecksumError
        (with ``verify``) the manifest or a file read differs from its digest;
        the message names the folder, the file and both digests.
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
    with _engine_errors():  # a save that replaces the folder meanwhile: read again (see h5stream.files.folder_reads)
        return read_folder(root, lambda: _load(root, assays, layers, obs_columns, samples, features, verify))


def _load(root: Path, assays, layers, obs_columns, samples, features, verify: bool) -> ScpContainer:
    manifest = _read_manifest(root, verify=verify)
    digests = file_digests(root, manifest, verify=verify)
    with _guard(root, MANIFEST):
        sample_id_col = manifest["sample_id_col"]
        assay_entries = list(manifest["assays"])
        names = [a["name"] for a in assay_entries]
    selection = selection_from(names, {a["name"]: [l["name"] for l in a["layers"]] for a in assay_entries},
                               assays=assays, layers=layers, features=features, path=root)
    with _guard(root, manifest["obs"]):
        obs_path = dataset_member(root, manifest["obs"], "obs", digests)
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
            var = pl.read_parquet(dataset_member(root, entry["var"], f"{obj}/var", digests))
            feature_ids = var.get_column(entry["feature_id_col"])
            cols = selection.feature_positions(entry["name"], feature_ids)
            layer_map = {}
            for spec in entry["layers"]:
                if not selection.wants_layer(entry["name"], spec["name"]):
                    continue
                lobj = f"{obj}/layers/{spec['name']}"
                matrix = _read_layer(root, spec, all_ids, feature_ids, sel, lobj, digests, cols)
                if "metadata" in spec:
                    matrix.metadata = metadata_part(dict(jsonvalues.decode(spec["metadata"])), sel, cols,
                                                    (all_ids.len(), feature_ids.len()), path=root, obj=lobj)
                layer_map[spec["name"]] = matrix
            container_assays[entry["name"]] = Assay(var if cols is None else var[cols], layer_map,
                                                    feature_id_col=entry["feature_id_col"])
    links = []
    with _guard(root, "links"):
        for i, link in enumerate(manifest.get("links", [])):
            if link["source_assay"] in container_assays and link["target_assay"] in container_assays:
                linkage = pl.read_parquet(dataset_member(root, link["file"], f"links/{i}", digests))
                links.append(AggregationLink(link["source_assay"], link["target_assay"], linkage))
        links = links_part(links, container_assays, list(selection.features))
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


def verify_parquet(path: str | os.PathLike) -> dict:
    """Check a whole scptensor Parquet dataset against its digests, without parsing any Parquet file.

    Returns ``{"manifest": bool, "files": n, "bytes": n}`` (``manifest``: the
    dataset carries checksums; ``files``: files checked, the manifest included).
    Raises :class:`~h5scp.io.exceptions.IOChecksumError` at the first file
    that differs from its digest, naming it, and
    :class:`~h5scp.io.exceptions.IOFormatError` when a file the manifest
    lists is missing.
    """
    root = Path(path)
    if not root.is_dir():
        raise IOFormatError("not a scptensor Parquet dataset", path=root, expected=f"a folder with {MANIFEST}",
                            found="a file" if root.exists() else "nothing")
    with _engine_errors():  # a save that replaces the folder meanwhile: checked again
        return read_folder(root, lambda: _verify(root))


def _verify(root: Path) -> dict:
    manifest = _read_manifest(root)
    digests = file_digests(root, manifest)
    stats = {"manifest": digests is not None, "files": 0, "bytes": 0}
    if digests is None:
        return stats
    stats["files"] = 1
    stats["bytes"] = (root / MANIFEST).stat().st_size
    for rel in digests:
        stats["bytes"] += check_member(root, rel, dataset_member(root, rel, rel), digests)
        stats["files"] += 1
    return stats


def verify_summary(path, stats: dict, seconds: float) -> str:
    """One line saying what :func:`verify_parquet` checked (for ``python -m h5scp verify``)."""
    if not stats["manifest"]:
        return (f"{os.fspath(path)}: no checksums (written before checksums or by another tool); "
                "nothing checked")
    return (f"{os.fspath(path)}: OK, {stats['files']} files checked by CRC-32, "
            f"{stats['bytes'] / 1e6:.1f} MB read in {seconds:.2f} s")
