"""Partial reads of HDF5 container files: some obs columns, some samples' rows and features' columns of a layer.

* ``column_members``: the columns of a dataframe element and their members, from its attributes;
  ``read_frame_columns``: only the named columns' datasets of it.
* ``read_part``: a dense matrix reads the selected rows, and of those the
  selected columns when they are a few runs, through HDF5 hyperslabs (only the
  chunks holding them); a CSR matrix reads ``indptr``, then only the selected
  rows' runs of ``data`` and ``indices`` (a CSC matrix likewise the selected
  columns'), the other axis cut in memory.  Rows and columns come back in the
  order asked.
* :data:`BEFORE_READ`: a hook told which rows and columns of which element a
  read is about to touch (the zarr reader fills its scratch copy so).
"""

from __future__ import annotations

import contextvars

import h5py
import numpy as np
import polars as pl
from scipy import sparse

from h5stream import checksums
from h5stream.elements import read_elem
from h5stream.elements.dataframe import frame_members
from h5stream.elements.registry import read_node
from h5stream.elements.snapshot import Node, describe, describe_members
from h5scp.core.structures import ScpMatrix
from h5scp.io.selection import metadata_part
from h5scp.io.serializers import deserialize_matrix, normalize_sparse

__all__ = ["BEFORE_READ", "column_members", "read_frame_columns", "read_matrix_part", "read_obs_part",
           "read_part", "read_rows", "row_runs", "samples_part", "stored_shape"]

#: Called as ``hook(element, rows, cols)`` (sorted unique positions, None: all) before a matrix element is read.
BEFORE_READ: contextvars.ContextVar = contextvars.ContextVar("h5scp_before_read", default=None)
#: Most blocks (row runs x column runs) a dense read makes; beyond, whole rows are read and cut in memory.
_MAX_BLOCKS = 1024
#: Bytes of whole rows read at a time when columns are cut in memory.
_BLOCK_BYTES = 32 << 20


def column_members(group: h5py.Group | Node) -> dict[str, str] | None:
    """Column name -> member path of a dataframe element (ours or AnnData's 0.2.0; first the row labels of a
    foreign one), read from its attributes only (``group``: its h5py group, or its description when the caller
    has it); None for others."""
    node = group if isinstance(group, Node) else describe(group).checked(complete=False)
    ours = frame_members(node.obj, node.values)
    if ours is None:
        spec = node.spec
        if node.spec_error is not None:
            raise node.spec_error
        if spec is None or spec.encoding_type != "dataframe" or spec.encoding_version != "0.2.0":
            return None
        order = [c.decode() if isinstance(c, bytes) else str(c) for c in node.attrs.get("column-order", [])]
        return {name: name for name in [node.attrs.get("_index"), *order]}
    return dict(zip(*ours))


def read_frame_columns(group: h5py.Group | Node, wanted: list[str], members: dict[str, str] | None = None
                       ) -> pl.DataFrame | None:
    """The ``wanted`` columns (in saved order) of a dataframe element; None when it cannot be read by column.

    ``group``: its h5py group, or its description when the caller has it (the columns' members are then
    described in one pass from it); ``members``: its :func:`column_members`, when the caller has them."""
    node = group if isinstance(group, Node) else describe(group).checked(complete=False)
    members = column_members(node) if members is None else members
    if members is None:
        return None
    keep = [n for n in members if n in wanted]
    nodes = node.members([members[name] for name in keep])
    series = [read_node(member, series=True).alias(name) for name, member in zip(keep, nodes)]
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


def _dense_part(node: Node, rows: np.ndarray | None, cols: np.ndarray | None) -> np.ndarray:
    """Rows ``rows`` and columns ``cols`` (sorted, unique; None: all) of the 2-D dataset ``node`` describes.

    A dataset whose digest the file's manifest holds (contiguous) is read through
    :func:`h5stream.checksums.read_runs_checked`: the pieces holding the rows are read and checked
    (the whole dataset in a file written before piece digests).  A chunked one carries Fletcher32 per
    chunk, which HDF5 checks: its columns are read as such where chunks split the columns (HDF5 then
    reads only the chunks holding them); one chunked by whole rows (ours) stores each row's values
    together, so the selected rows are read in blocks of about :data:`_BLOCK_BYTES` and cut.
    """
    ds = node.obj
    n, f = ds.shape
    r_runs = [(0, n)] if rows is None else row_runs(rows)
    out_shape = (n if rows is None else rows.size, f if cols is None else cols.size)
    if 0 in out_shape:
        return np.empty(out_shape, dtype=ds.dtype)
    checked = checksums.read_runs_checked(ds, r_runs, cols, node.manifest)
    if checked is not None:
        return checked
    c_runs = [(0, f)] if cols is None else row_runs(cols)
    by_columns = cols is None or (ds.chunks is not None and ds.chunks[1] < f
                                  and len(r_runs) * len(c_runs) <= _MAX_BLOCKS)
    out = np.empty(out_shape, dtype=ds.dtype)
    with checksums.checked_read(ds, ds.name, dataset=ds):
        at_r = 0
        for a, b in r_runs:
            if by_columns:
                at_c = 0
                for c, d in c_runs:
                    ds.read_direct(out, np.s_[a:b, c:d], np.s_[at_r : at_r + b - a, at_c : at_c + d - c])
                    at_c += d - c
            else:
                step = max(1, _BLOCK_BYTES // max(1, f * ds.dtype.itemsize))
                for lo in range(a, b, step):
                    hi = min(b, lo + step)
                    out[at_r + lo - a : at_r + hi - a] = ds[lo:hi][:, cols]
            at_r += b - a
    return out


def _identity(positions: np.ndarray | None, n: int) -> bool:
    return positions is None or (positions.size == n and np.array_equal(positions, np.arange(n)))


def _compressed_part(node: Node, fmt: str, rows: np.ndarray | None, cols: np.ndarray | None):
    """Rows ``rows`` and columns ``cols`` of the CSR or CSC group ``node`` describes: the outer axis's runs
    read, the other cut."""
    outer, inner = (rows, cols) if fmt == "csr" else (cols, rows)
    if outer is None:
        whole = deserialize_matrix(node)
    else:
        whole = _outer_runs(node, fmt, outer)
    if inner is None:
        return whole
    return whole[:, inner] if fmt == "csr" else whole[inner]


def _outer_runs(node: Node, fmt: str, wanted: np.ndarray):
    """The rows (CSR) or columns (CSC) ``wanted`` of the compressed group ``node`` describes, reading only
    their entries (its members described in one pass)."""
    group = node.obj
    indptr, data_node, indices_node = node.members(("indptr", "data", "indices"))
    with checksums.checked_read(group, indptr.name, dataset=indptr.obj):
        indptr_all = indptr.check(indptr.obj[()])
    shape = tuple(int(s) for s in node.checked(complete=False).attrs.get("shape"))
    inner_size = shape[1] if fmt == "csr" else shape[0]
    data_ds, indices_ds = data_node.obj, indices_node.obj
    outer_size = shape[0] if fmt == "csr" else shape[1]
    if indptr_all.size != outer_size + 1 or np.any(np.diff(indptr_all) < 0):
        raise ValueError(f"{group.name}: indptr is not {outer_size + 1} nondecreasing offsets")
    runs = [(int(indptr_all[a]), int(indptr_all[b])) for a, b in row_runs(wanted)]
    if runs and not (0 <= runs[0][0] and runs[-1][1] <= data_ds.shape[0] == indices_ds.shape[0]):
        raise ValueError(f"{group.name}: indptr points outside data")
    data, indices = (_runs_of(member, runs) for member in (data_node, indices_node))
    if indices.size and (indices.min() < 0 or indices.max() >= inner_size):
        raise ValueError(f"{group.name}: indices outside [0, {inner_size})")
    counts = [np.diff(indptr_all[a : b + 1]) for a, b in row_runs(wanted)]
    indptr = np.zeros(wanted.size + 1, dtype=indptr_all.dtype)
    if counts:
        np.cumsum(np.concatenate(counts), out=indptr[1:])
    if fmt == "csr":
        out = sparse.csr_matrix((data, indices, indptr), shape=(wanted.size, inner_size), copy=False)
    else:
        out = sparse.csc_matrix((data, indices, indptr), shape=(inner_size, wanted.size), copy=False)
    out.indices, out.indptr = indices, indptr  # keep the stored index dtypes
    return out


def _runs_of(node: Node, runs: list[tuple[int, int]]) -> np.ndarray:
    """The entries of ``runs`` (sorted, disjoint, half open) of the 1-D dataset ``node`` describes, one after the
    other, checked."""
    ds = node.obj
    checked = checksums.read_runs_checked(ds, runs, None, node.manifest)
    if checked is not None:
        return checked
    with checksums.checked_read(ds, ds.name, dataset=ds):
        parts = [ds[lo:hi] for lo, hi in runs]
    return np.concatenate(parts) if parts else np.empty(0, ds.dtype)


def _element_part(node: Node, rows: np.ndarray | None, cols: np.ndarray | None):
    """Rows ``rows`` and columns ``cols`` (sorted, unique; None: all) of the matrix element ``node`` describes
    (read from its description)."""
    obj = node.obj
    if node.spec_error is not None:
        raise node.spec_error
    kind = node.spec.encoding_type if node.spec is not None else None
    if kind == "array" and isinstance(obj, h5py.Dataset) and obj.ndim == 2 and obj.dtype.kind in "biuf":
        return _dense_part(node, rows, cols)
    if kind in ("csr_matrix", "csc_matrix") and isinstance(obj, h5py.Group):
        return _compressed_part(node, kind[:3], rows, cols)
    whole = deserialize_matrix(node)
    if rows is not None:
        whole = whole[rows]
    return whole if cols is None else whole[:, cols]


def _sorted(positions: np.ndarray | None):
    """Sorted unique positions and how to put them back in the order asked (None: already in order)."""
    if positions is None:
        return None, None
    wanted, back = np.unique(positions, return_inverse=True)
    return wanted, None if wanted.size == positions.size and np.array_equal(wanted, positions) else back


def read_part(obj: h5py.Dataset | h5py.Group | Node, rows: np.ndarray | None = None, cols: np.ndarray | None = None):
    """A matrix element whole (``rows`` and ``cols`` None), or its cells at ``rows`` x ``cols``, in that order.

    ``obj``: the element's h5py object, or its description (:class:`~h5stream.elements.snapshot.Node`) when the
    caller made it already (its attributes are then not read again); :data:`BEFORE_READ` is given the h5py
    object either way."""
    node = obj if isinstance(obj, Node) else describe(obj)
    r_want, r_back = _sorted(rows)
    c_want, c_back = _sorted(cols)
    hook = BEFORE_READ.get()
    if hook is not None:
        hook(node.obj, r_want, c_want)
    if rows is None and cols is None:
        return deserialize_matrix(node)
    part = _element_part(node, r_want, c_want)
    if r_back is not None:
        part = part[r_back]
    if c_back is not None:
        part = part[:, c_back]
    part = normalize_sparse(part)
    if sparse.issparse(part) and not part.has_sorted_indices:
        part.sort_indices()  # as the data model's selections give it
    return part


def read_rows(obj: h5py.Dataset | h5py.Group | Node, positions: np.ndarray | None):
    """:func:`read_part` of the rows at ``positions`` (every column)."""
    return read_part(obj, positions, None)


def read_matrix_part(group: h5py.Group, rows: np.ndarray | None, cols: np.ndarray | None) -> ScpMatrix:
    """One layer group's ``X``, ``M`` and ``metadata`` for the samples at ``rows`` and features at ``cols``."""
    present = [name for name in ("X", "M") if name in group]
    nodes = dict(zip(present, describe_members(group, present)))
    X, M = (read_part(nodes[name], rows, cols) if name in nodes else None for name in ("X", "M"))
    metadata = read_elem(group["metadata"]) if "metadata" in group else None
    shape = stored_shape(nodes["X"] if "X" in nodes else group["X"])
    return ScpMatrix(X, M, metadata_part(metadata, rows, cols, shape, path=group.file.filename, obj=group.name))


def stored_shape(obj: h5py.Dataset | h5py.Group | Node) -> tuple[int, ...]:
    """The shape of a stored matrix element (a dense dataset, or a sparse group's ``shape``); ``obj``: its h5py
    object, or its description (the ``shape`` attribute then taken from it, checked against its digest where the
    file has a manifest)."""
    node, obj = (obj, obj.obj) if isinstance(obj, Node) else (None, obj)
    if isinstance(obj, h5py.Dataset):
        return tuple(int(n) for n in obj.shape)
    if node is not None and "shape" in node.attrs:
        return tuple(int(n) for n in node.checked(complete=False).attrs["shape"])
    return tuple(int(n) for n in checksums.attr_value(obj, "shape"))


def read_obs_part(selection, group: h5py.Group, id_col: str | None, obs_columns, samples, read_whole,
                  restore=None, frame_of=None):
    """The requested columns and rows of an obs frame, and the sample positions (None: all).

    Only the requested columns' datasets are read when the frame allows it;
    otherwise ``read_whole()`` gives the frame, then it is cut.  ``restore``
    turns the columns read into their exact values (see ``read_anndata_obs``).  ``id_col``
    None means the frame's first column (the row labels of a foreign file).  ``frame_of()`` gives the
    frame's description (:func:`h5stream.elements.snapshot.describe`) when the caller holds it (looked at only when
    columns are asked for: the columns' members are then described from it, in one pass).
    """
    obs = None
    if obs_columns is not None:
        node = describe(group).checked(complete=False) if frame_of is None else frame_of()
        members = None if node is None else column_members(node)
        if members is not None:
            available = list(members)
            id_col = available[0] if id_col is None else id_col
            selection.check_obs_columns(available, list(obs_columns), id_col)
            obs = read_frame_columns(node, [id_col, *obs_columns], members)
            if restore is not None:
                obs = restore(obs).select(obs.columns)
    if obs is None:
        obs = read_whole()
        id_col = obs.columns[0] if id_col is None else id_col
        if obs_columns is not None:
            selection.check_obs_columns(obs.columns, list(obs_columns), id_col)
            obs = obs.select([c for c in obs.columns if c == id_col or c in obs_columns])
    return samples_part(selection, obs, id_col, samples)


def samples_part(selection, obs: pl.DataFrame, id_col: str, samples) -> tuple[pl.DataFrame, np.ndarray | None]:
    """The rows of ``obs`` of the ``samples`` asked for (None: all), and their positions (None: all)."""
    if samples is None:
        return obs, None
    positions = selection.sample_positions(samples, obs.get_column(id_col))
    return obs[positions], positions
