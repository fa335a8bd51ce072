"""Dense numpy arrays (``array`` 0.2.0) and numpy scalars (``numeric-scalar`` 0.2.0).

An array keeps its dtype, shape and memory order: a Fortran-ordered array
(not C-contiguous) is stored in logical shape, written block by block, marked
``h5stream:order = "F"`` and read back Fortran-ordered, column block by column
block, so neither side makes a full-size temporary copy.  numpy datetime64 and
timedelta64 arrays are stored as their int64 values under the layered typed
encoding ``h5stream:numpy-datetime`` 0.1.0 (attribute ``dtype``).
"""

from __future__ import annotations

import math

import h5py
import numpy as np

from h5stream import checksums
from h5stream.elements.registry import (
    CONTAINER_ATTR,
    ElementSpec,
    register_reader,
    register_writer,
    stamp,
)
from h5stream.elements.snapshot import Node, describe
from h5stream.elements.parallel_read import parallel_deflate_layout, read_deflate_parallel
from h5stream.errors import FormatError
from h5stream.writer import BLOCK_TARGET_BYTES, WriteOptions, write_array

__all__ = ["ARRAY", "NUMERIC_SCALAR", "NUMPY_DATETIME", "read_array_dataset", "read_array_node"]

ARRAY = ElementSpec("array", "0.2.0")
NUMERIC_SCALAR = ElementSpec("numeric-scalar", "0.2.0")
NUMPY_DATETIME = ElementSpec("h5stream:numpy-datetime", "0.1.0", layered=True)
ORDER_ATTR = "h5stream:order"


def _is_plain_numeric(value: np.ndarray) -> bool:
    return value.dtype.kind in "biufcS" and not value.dtype.hasobject


@register_writer(np.ndarray, ARRAY, match=_is_plain_numeric)
def _write_array(parent: h5py.Group, key: str, value: np.ndarray, options: WriteOptions) -> h5py.Dataset:
    ds = write_array(parent, key, value, options)
    if value.ndim >= 2 and value.flags.f_contiguous and not value.flags.c_contiguous:
        ds.attrs[ORDER_ATTR] = "F"
    return ds


@register_writer(np.ndarray, NUMPY_DATETIME, match=lambda v: v.dtype.kind in "mM")
def _write_numpy_datetime(parent: h5py.Group, key: str, value: np.ndarray, options: WriteOptions) -> h5py.Dataset:
    # The int64 view shares memory with the array: no copy.
    ds = _write_array(parent, key, value.view(np.int64), options)
    stamp(ds, ARRAY)
    ds.attrs["dtype"] = value.dtype.str
    return ds


def read_array_dataset(ds: h5py.Dataset) -> np.ndarray:
    """Read a dataset into an array of its dtype in the memory order it was written in (:func:`read_array_node`
    of its description)."""
    return read_array_node(describe(ds))


def read_array_node(node: Node) -> np.ndarray:
    """Read the dataset ``node`` describes into an array of its dtype in the memory order it was written in.

    A C-ordered dataset stored as one plain run of bytes whose digest the manifest records is read and
    checked in one compiled call (:func:`h5stream.checksums.read_whole_checked`); C-ordered gzip datasets
    (deflate, optionally after shuffle) are inflated in parallel by :mod:`h5stream.elements.parallel_read`;
    everything else is one h5py read into an array of the dataset's shape.  The values are then checked
    against the digest the manifest records (:meth:`Node.check`); HDF5's own checksum failures become
    :class:`~h5stream.errors.ChecksumError` naming the dataset.
    """
    ds = node.obj
    shape, dtype = ds.id.shape, ds.dtype  # (the low-level id's shape: h5py's properties cost more than a small read)
    if shape is None:
        return np.empty(0, dtype)
    try:
        order = node.attrs.get(ORDER_ATTR)
        if (order != "F" or len(shape) < 2) and math.prod(shape) * dtype.itemsize >= WHOLE_READ_BYTES:
            whole = checksums.read_whole_checked(ds, node.manifest)
            if whole is not None:  # straight into the array, every piece checked as it landed
                return whole
        return node.check(_read_array_dataset(ds, order, shape, dtype))
    except (OSError, RuntimeError) as exc:
        mapped = checksums.read_failure(exc, ds, node.name, dataset=ds)
        if mapped is None:
            raise
        raise mapped from exc


#: a whole C-ordered dataset of at least this many bytes is offered to :func:`h5stream.checksums.read_whole_checked`
#: (smaller ones are read by h5py and then checked: the layout queries cost more than the second pass).  A CSR
#: layer's 4 MB of int32 indices: 301 against 480 us read alone (min of 60, warm); 20 kB: 75 against 53 us.
WHOLE_READ_BYTES = 1 << 20


def _read_array_dataset(ds: h5py.Dataset, order: str | None, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if order != "F" or len(shape) < 2:
        if not shape:
            return ds[()]
        out = np.empty(shape, dtype)
        if out.size:
            layout = parallel_deflate_layout(ds) if ds.chunks is not None else None
            if layout is not None:
                # gzip chunks inflated on all cores instead of h5py's one.
                return read_deflate_parallel(ds, out, layout=layout)
            # h5py's read_direct of the whole dataset, without its selection set-up
            ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
        return out
    out = np.empty(shape, dtype, order="F")
    # Column blocks keep the temporary copy bounded.
    col_bytes = math.prod(ds.shape[:-1]) * ds.dtype.itemsize
    step = max(1, BLOCK_TARGET_BYTES // max(col_bytes, 1))
    for start in range(0, ds.shape[-1], step):
        stop = min(ds.shape[-1], start + step)
        out[..., start:stop] = ds[..., start:stop]
    return out


def _refuse_unrepresentable_column(ds: h5py.Dataset) -> None:
    """A frame column of compound values or object references has no polars dtype that any writer takes
    back (polars would hold Python objects): refused by name, with what to do."""
    fields = ds.dtype.names
    if fields is None and h5py.check_ref_dtype(ds.dtype) is None and ds.dtype.kind != "V":
        return
    found = (f"compound values with fields {list(fields)}" if fields else
             "HDF5 object references" if ds.dtype.kind == "O" else f"opaque values ({ds.dtype})")
    column = ds.name.rsplit("/", 1)[-1]
    raise FormatError(
        f"column {column!r} cannot be a column of a data frame", path=ds.file.filename, obj=ds.name,
        expected="numbers, booleans, text, categories or dates in each row", found=found,
        hint=f"load the other columns (obs_columns= lists them), or rewrite the file with {column!r} "
             "as one plain column per field (or the referenced values themselves)",
    )


@register_reader(ARRAY, node=True)
def _read_array(node: Node, *, series: bool = False):
    ds = node.obj
    if series:
        _refuse_unrepresentable_column(ds)
    value = read_array_node(node)
    if not series and CONTAINER_ATTR in node.attrs:
        from h5stream.elements.mapping import restore_container

        return restore_container(node, value)
    if ds.id.rank == 0:
        # A 0-d array stays a 0-d array.
        value = np.asarray(value, dtype=ds.dtype)
    if series:
        import polars as pl

        return pl.Series(values=value)
    return value


@register_reader(NUMPY_DATETIME, node=True)
def _read_numpy_datetime(node: Node, *, series: bool = False):
    dtype = node.attrs["dtype"]
    value = np.asarray(read_array_node(node))
    return value.view(np.dtype(dtype))


def _is_numpy_number(value) -> bool:
    return isinstance(value, (np.number, np.bool_))


@register_writer(np.generic, NUMERIC_SCALAR, match=_is_numpy_number)
def _write_numpy_scalar(parent: h5py.Group, key: str, value, options: WriteOptions) -> h5py.Dataset:
    return parent.create_dataset(key, data=np.asarray(value))


@register_reader(NUMERIC_SCALAR, node=True)
def _read_numeric_scalar(node: Node, *, series: bool = False):
    from h5stream.elements.scalars import restore_python_scalar

    return restore_python_scalar(node, node.check(node.obj[()]))
