"""Partial reads of scptensor HDF5 files: some obs columns, some samples' rows of a layer.

* ``read_frame_columns``: only the named columns' datasets of a dataframe element.
* ``read_matrix_rows``: a dense layer reads the selected rows through HDF5
  hyperslabs (only the chunks holding them); a CSR layer reads ``indptr``, then
  only the selected rows' runs of ``data`` and ``indices``; a CSC layer has no
  row layout and is read whole, then sliced.  Rows come back in the order asked.
"""

from __future__ import annotations

import h5py
import numpy as np
import polars as pl
from scipy import sparse

from h5stream import checksums
from h5stream.elements import read_elem
from h5stream.elements.dataframe import frame_members
from h5stream.elements.registry import read_spec, read_with
from h5scp.core.structures import ScpMatrix
from h5scp.io._files import root_attr
from h5scp.io.selection import metadata_rows
from h5scp.io.serializers import deserialize_matrix, normalize_sparse

__all__ = ["frame_columns", "holds_x", "read_frame_columns", "read_matrix_rows", "read_obs_part", "read_rows", "row_runs",
           "stored_shape"]


def holds_x(group: h5py.Group) -> bool:
    """True when an AnnData group has an ``X`` that holds values.

    anndata and mudata store the missing ``X`` of an object without one (a
    modality with no layers) as a dataset with an HDF5 null dataspace (stamped
    ``encoding-type: null``); that is no ``X``, as anndata reads it.  Only the
    dataspace is looked at, so no attribute of an unrequested part is read.
    """
    if "X" not in group:
        return False
    obj = group["X"]
    return not (isinstance(obj, h5py.Dataset) and obj.shape is None)


def _frame_members(group: h5py.Group) -> dict[str, str] | None:
    """Column name -> member path of a dataframe element (ours or AnnData's 0.2.0); None for others."""
    ours = frame_members(group)
    if ours is None:
        spec = read_spec(group)
        if spec is None or spec.encoding_type != "dataframe" or spec.encoding_version != "0.2.0":
            return None
        index_member = root_attr(group, "_index")
        order = [c.decode() if isinstance(c, bytes) else str(c)
                 for c in checksums.attr_value(group, "column-order", [])]
        return {name: name for name in [index_member, *order]}
    return dict(zip(*ours))


def frame_columns(group: h5py.Group) -> list[str] | None:
    """The column names of a dataframe element (first the row labels of a foreign one), without reading it."""
    members = _frame_members(group)
    return None if members is None else list(members)


def read_frame_columns(group: h5py.Group, wanted: list[str]) -> pl.DataFrame | None:
    """The ``wanted`` columns (in saved order) of a dataframe element; None when it cannot be read by column."""
    members = _frame_members(group)
    if members is None:
        return None
    keep = [n for n in members if n in wanted]
    series = [read_with(group[members[name]], series=True).alias(name) for name in keep]
    out = pl.DataFrame(series)
    out.columns = keep
    return out


def row_runs(positions: np.ndarray) -> list[tuple[int, int]]:
    """Sorted unique positions as half-open runs of consecutive rows."""
    if positions.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [positions.size]])
    return [(int(positions[a]), int(positions[b - 1]) + 1) for a, b in zip(starts, stops)]


def _dense_rows(ds: h5py.Dataset, wanted: np.ndarray) -> np.ndarray:
    out = np.empty((wanted.size, ds.shape[1]), dtype=ds.dtype)
    at = 0
    # Chunked layers are checked chunk by chunk (Fletcher32); a contiguous layer's digest covers
    # the whole dataset, so it is checked only when every row is read.
    with checksums.checked_read(ds, ds.name, dataset=ds):
        for a, b in row_runs(wanted):
            ds.read_direct(out, np.s_[a:b, :], np.s_[at : at + b - a, :])
            at += b - a
    if wanted.size == ds.shape[0] and np.array_equal(wanted, np.arange(ds.shape[0])):
        checksums.check_dataset(ds, out)
    return out


def _csr_rows(group: h5py.Group, wanted: np.ndarray):
    indptr = group["indptr"]
    with checksums.checked_read(group, indptr.name, dataset=indptr):
        indptr_all = checksums.check_dataset(indptr, indptr[()])
    shape = tuple(int(s) for s in checksums.attr_value(group, "shape"))
    data_ds, indices_ds = group["data"], group["indices"]
    parts_data, parts_indices, counts = [], [], []
    for a, b in row_runs(wanted):
        lo, hi = int(indptr_all[a]), int(indptr_all[b])
        if not (0 <= lo <= hi <= data_ds.shape[0]):
            raise ValueError(f"{group.name}: indptr points outside data")
        with checksums.checked_read(group, data_ds.name, dataset=data_ds):
            parts_data.append(data_ds[lo:hi])
        with checksums.checked_read(group, indices_ds.name, dataset=indices_ds):
            parts_indices.append(indices_ds[lo:hi])
        counts.append(np.diff(indptr_all[a : b + 1]))
    data = np.concatenate(parts_data) if parts_data else np.empty(0, data_ds.dtype)
    indices = np.concatenate(parts_indices) if parts_indices else np.empty(0, indices_ds.dtype)
    if indices.size and (indices.min() < 0 or indices.max() >= shape[1]):
        raise ValueError(f"{group.name}: indices outside [0, {shape[1]})")
    indptr = np.zeros(wanted.size + 1, dtype=indptr_all.dtype)
    if counts:
        np.cumsum(np.concatenate(counts), out=indptr[1:])
    out = sparse.csr_matrix((data, indices, indptr), shape=(wanted.size, shape[1]), copy=False)
    out.indices, out.indptr = indices, indptr  # keep the stored index dtypes
    return out


def _element_rows(obj, wanted: np.ndarray):
    """Rows ``wanted`` (sorted, unique) of a matrix element."""
    spec = read_spec(obj)
    kind = spec.encoding_type if spec is not None else None
    if kind == "array" and isinstance(obj, h5py.Dataset) and obj.ndim == 2 and obj.dtype.kind in "biuf":
        return _dense_rows(obj, wanted)
    if kind == "csr_matrix" and isinstance(obj, h5py.Group):
        return _csr_rows(obj, wanted)
    whole = deserialize_matrix(obj)
    return whole[wanted]


def read_rows(obj, positions: np.ndarray | None):
    """A matrix element whole (``positions`` None) or its rows at ``positions``, in that order."""
    if positions is None:
        return deserialize_matrix(obj)
    wanted, back = np.unique(positions, return_inverse=True)
    rows = _element_rows(obj, wanted)
    if not (wanted.size == positions.size and np.array_equal(wanted, positions)):
        rows = rows[back]
    return normalize_sparse(rows)


def read_matrix_rows(group: h5py.Group, positions: np.ndarray) -> ScpMatrix:
    """One layer group's ``X``, ``M`` and ``metadata`` for the samples at ``positions`` (in that order)."""
    X, M = (read_rows(group[name], positions) if name in group else None for name in ("X", "M"))
    metadata = read_elem(group["metadata"]) if "metadata" in group else None
    shape = stored_shape(group["X"])
    return ScpMatrix(X, M, metadata_rows(metadata, positions, shape, path=group.file.filename, obj=group.name))


def stored_shape(obj) -> tuple[int, ...]:
    """The shape of a stored matrix element (a dense dataset, or a sparse group's ``shape``)."""
    if isinstance(obj, h5py.Dataset):
        return tuple(int(n) for n in obj.shape)
    return tuple(int(n) for n in checksums.attr_value(obj, "shape"))


def read_obs_part(selection, group: h5py.Group, id_col: str | None, obs_columns, samples, read_whole,
                  restore=None):
    """The requested columns and rows of an obs frame, and the sample positions (None: all).

    Only the requested columns' datasets are read when the frame allows it;
    otherwise ``read_whole()`` gives the frame, then it is cut.  ``restore``
    turns the columns read into their exact values (see ``read_anndata_obs``).  ``id_col``
    None means the frame's first column (the row labels of a foreign file).
    """
    obs = None
    if obs_columns is not None:
        available = frame_columns(group)
        if available is not None:
            id_col = available[0] if id_col is None else id_col
            selection.check_obs_columns(available, list(obs_columns), id_col)
            obs = read_frame_columns(group, [id_col, *obs_columns])
            if restore is not None:
                obs = restore(obs).select(obs.columns)
    if obs is None:
        obs = read_whole()
        id_col = obs.columns[0] if id_col is None else id_col
        if obs_columns is not None:
            selection.check_obs_columns(obs.columns, list(obs_columns), id_col)
            obs = obs.select([c for c in obs.columns if c == id_col or c in obs_columns])
    positions = None
    if samples is not None:
        positions = selection.sample_positions(samples, obs.get_column(id_col))
        obs = obs[positions]
    return obs, positions
