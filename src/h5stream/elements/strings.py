"""String arrays: ``string-array`` 0.2.0 and ``nullable-string-array`` 0.1.0.

Strings are stored as UTF-8: numpy arrays and lists as variable-length
strings; polars String columns as fixed-width NUL-padded strings when padding
to the longest costs no more space than variable length would (identifiers,
labels: written and read as one block, and compressed by the dataset's
filter), else variable length.  Both are what h5py's ``asstr()`` and AnnData
read.  HDF5 strings end at NUL, so text holding NUL is refused.

A missing value (``None`` in an object array or list, the NA of a
``StringDType(na_object=None)`` array, a polars null) makes the element a
``nullable-string-array``: a group with ``values`` (missing entries stored as
"") and a boolean ``mask`` (True = missing).

What comes back: a numpy array of the dtype that was written (``<U``, object,
or ``StringDType``; recorded in ``h5stream:numpy-dtype``), a ``list`` of str
and None for a list (``h5stream:container = "list"``), a ``polars.Series``
for a dataframe column.  A string array written by another tool comes back as
an object array of str, as AnnData returns it.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from h5stream.elements.registry import (
    CONTAINER_ATTR,
    ElementSpec,
    read_node,
    register_reader,
    register_writer,
    stamp,
)
from h5stream.elements.snapshot import Node, file_name
from h5stream.errors import EncodingError, FormatError
from h5stream.writer import WriteOptions, layout_kwargs

__all__ = [
    "STRING_ARRAY",
    "NULLABLE_STRING_ARRAY",
    "write_string_values",
    "read_string_values",
    "read_string_series",
    "write_string_series",
    "fixed_width_for",
    "is_string_list",
]

STRING_ARRAY = ElementSpec("string-array", "0.2.0")
NULLABLE_STRING_ARRAY = ElementSpec("nullable-string-array", "0.1.0")
NUMPY_DTYPE_ATTR = "h5stream:numpy-dtype"
ARRAY = ElementSpec("array", "0.2.0")

_UTF8 = h5py.string_dtype("utf-8")
_STRING_DTYPE = np.dtypes.StringDType()


def _vlen_kwargs(shape: tuple[int, ...], options: WriteOptions) -> dict:
    """Layout keywords of a variable-length string dataset.

    Without Fletcher32, which HDF5 refuses on variable-length data (its chunks
    hold only references to the strings): the text is covered by the file's
    checksum manifest (:mod:`h5stream.checksums`) instead.
    """
    kwargs = layout_kwargs(shape, 16, options)
    kwargs.pop("fletcher32", None)
    return kwargs


def write_string_values(
    parent: h5py.Group, key: str, values: np.ndarray, options: WriteOptions, *, checked: bool = False
) -> h5py.Dataset:
    """Write a string array (``<U``, object of str, or StringDType without NA) as vlen UTF-8.

    ``checked=True`` means the caller already made sure no string holds NUL.
    """
    kwargs = _vlen_kwargs(values.shape, options)
    if values.dtype.kind != "T":
        # h5py converts StringDType directly; other string arrays need one conversion.
        values = values.astype(_STRING_DTYPE)
    if not checked and values.size and "\x00" in "".join(values.ravel().tolist()):
        # HDF5 strings end at NUL: storing would silently cut the text.
        raise EncodingError(
            "a string contains a NUL character, which HDF5 strings cannot hold",
            path=parent.file.filename,
            obj=f"{parent.name.rstrip('/')}/{key}",
            found="a NUL character",
            hint="store such values as bytes (polars Binary or a list of bytes)",
        )
    return parent.create_dataset(key, data=values, dtype=_UTF8, **kwargs)


_C_UTF8_VLEN = h5py.h5t.C_S1.copy()
_C_UTF8_VLEN.set_size(h5py.h5t.VARIABLE)
_C_UTF8_VLEN.set_cset(h5py.h5t.CSET_UTF8)


#: Bytes a variable-length string costs beyond its text: a 16-byte global-heap
#: reference in the dataset plus the heap object's own 16-byte header.
_VLEN_OVERHEAD = 32


def fixed_width_for(n: int, max_bytes: int, total_bytes: int) -> int | None:
    """The fixed width (bytes) to store ``n`` strings with, or None for variable length.

    Fixed width is chosen when it takes no more space than variable-length
    storage would: padding every string to the longest one costs
    ``n * max_bytes``; variable length costs the text plus about 32 bytes per
    string.  Fixed-width strings are written and read as one block (no global
    heap, one copy) and are compressed by the dataset's filter; variable-length
    text never is.
    """
    if n == 0:
        return None
    width = max(1, max_bytes)
    return width if n * width <= total_bytes + _VLEN_OVERHEAD * n else None


def _fixed_utf8(width: int) -> h5py.h5t.TypeID:
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(width)
    tid.set_cset(h5py.h5t.CSET_UTF8)
    tid.set_strpad(h5py.h5t.STR_NULLPAD)
    return tid


def _pack_fixed(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    """Strings given as (UTF-8 bytes, start, length) padded with NUL into an (n, width) block."""
    n = lengths.size
    block = np.zeros((n, width), dtype=np.uint8)
    if data.size:
        # Destination of every byte: its row's first cell plus its place in the string.
        row_base = np.arange(n, dtype=np.int64) * width - starts
        block.reshape(-1)[np.arange(data.size, dtype=np.int64) + np.repeat(row_base, lengths)] = data
    return block


#: Below this many strings a column's UTF-8 bytes are gathered from Python strings: cheaper than
#: importing pyarrow (about 0.08 s, paid by the first save of a process), which hands over the
#: Arrow buffers of a longer column without a Python object per string.
PYTHON_STRINGS_BELOW = 100_000


def _utf8_buffers(series) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of a String Series without nulls, and the int64 offsets of its strings in them."""
    n = series.len()
    if n < PYTHON_STRINGS_BELOW:
        encoded = [text.encode("utf-8") for text in series.to_list()]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=n), out=offsets[1:])
        return offsets, np.frombuffer(b"".join(encoded), dtype=np.uint8)
    import pyarrow as pa

    arrow = series.rechunk().to_arrow()
    if arrow.type != pa.large_string():
        arrow = arrow.cast(pa.large_string())
    _, offsets_buffer, data_buffer = arrow.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[arrow.offset : arrow.offset + n + 1]
    start, stop = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(data_buffer, dtype=np.uint8)[start:stop] if data_buffer is not None else np.empty(0, np.uint8)
    return offsets, data


def write_string_series(parent: h5py.Group, key: str, series, options: WriteOptions) -> h5py.Dataset:
    """Write a polars String Series without nulls as UTF-8, straight from its Arrow buffers.

    No Python str objects are made.  Strings of similar lengths are stored as
    fixed-width UTF-8 (NUL-padded, see :func:`fixed_width_for`): one block
    copied from the Arrow buffers and written in one call.  Otherwise they are
    variable-length UTF-8: the bytes are copied once into a buffer with a NUL
    after each string and HDF5 is handed one C pointer per string.  Both are
    the ``string-array`` encoding that h5py (``asstr()``) and AnnData read.

    Raises
    ------
    EncodingError
        A string holds NUL (HDF5 strings end at NUL).
    """
    n = series.len()
    if n == 0:
        kwargs = _vlen_kwargs((0,), options)
        return parent.create_dataset(key, shape=(0,), dtype=_UTF8, **kwargs)
    offsets, data = _utf8_buffers(series)
    start = int(offsets[0])
    if data.size and not data.all():
        raise EncodingError(
            "a string contains a NUL character, which HDF5 strings cannot hold",
            path=parent.file.filename, obj=f"{parent.name.rstrip('/')}/{key}",
            found="a NUL character", hint="store such values as bytes (polars Binary)",
        )
    lengths = np.diff(offsets)
    width = fixed_width_for(n, int(lengths.max()), data.size)
    if width is not None:
        tid = _fixed_utf8(width)
        kwargs = layout_kwargs((n,), width, options)
        ds = parent.create_dataset(key, shape=(n,), dtype=h5py.string_dtype("utf-8", width), **kwargs)
        block = _pack_fixed(data, offsets[:-1] - start, lengths, width)
        ds.id.write(h5py.h5s.ALL, h5py.h5s.ALL, block.view(f"S{width}").reshape(n), mtype=tid)
        return ds
    kwargs = _vlen_kwargs((n,), options)
    ds = parent.create_dataset(key, shape=(n,), dtype=_UTF8, **kwargs)
    # A NUL after every string, then one pointer per string into that buffer.
    terminated = np.insert(data, offsets[1:] - start, 0)
    pointers = (offsets[:-1] - start) + np.arange(n, dtype=np.int64)
    pointers += terminated.ctypes.data
    ds.id.write(h5py.h5s.ALL, h5py.h5s.ALL, pointers.view(np.uintp), mtype=_C_UTF8_VLEN)
    del terminated  # kept alive until HDF5 has copied the strings
    return ds


def _unpack_fixed(raw: np.ndarray, *, path, obj: str):
    """Fixed-width strings (a numpy ``S`` array) as a polars String Series (text to the first NUL).

    polars reads the block as binary values (each cell's trailing NULs dropped) and checks that
    they are UTF-8 in its cast; a cell with bytes after a NUL (written by another tool) is cut at
    its first NUL first, as HDF5's null-terminated strings are.  No pyarrow: its import costs a
    process's first load about 0.25 s.  ``path``: the file's name, or an h5py object of it (its name is asked
    only for an error).
    """
    import polars as pl

    n, width = raw.size, raw.dtype.itemsize
    raw = raw.reshape(-1)
    cells = raw.view(np.uint8).reshape(n, width)
    # where no byte is NUL (identifiers of one width) one pass of one test says so (5 us against 92 for the
    # two compares of the test below, 10,000 cells of 9 bytes)
    full = bool(cells.all())
    if width > 1 and not full and np.any((cells[:, :-1] == 0) & (cells[:, 1:] != 0)):  # a NUL, then a byte
        filled = cells != 0
        lengths = np.where(filled.all(axis=1), width, filled.argmin(axis=1))
        cells = np.where(np.arange(width) < lengths[:, None], cells, 0).astype(np.uint8)
        raw = cells.view(raw.dtype).reshape(n)
    try:
        if full:
            # every cell its full width: its bytes as polars lists of bytes, each list one binary value, no
            # Python object per cell (10,000 cells of 9 bytes: 155 us against 346 through bytes objects)
            return pl.Series(cells).cast(pl.List(pl.UInt8)).cast(pl.Binary).cast(pl.String)
        return pl.Series(raw).cast(pl.String)
    except pl.exceptions.ComputeError as exc:
        path = path if isinstance(path, (str, os.PathLike)) else file_name(path)
        raise FormatError("fixed-width strings are not valid UTF-8", path=path, obj=obj,
                          expected="UTF-8 text", found=str(exc).splitlines()[0]) from exc


def _fixed_width_utf8(dtype: np.dtype) -> bool:
    """The dtype (as h5py gives it) of a fixed-width UTF-8 string dataset (what :func:`write_string_series`
    writes for similar lengths)."""
    info = h5py.check_string_dtype(dtype)
    return info is not None and info.length is not None and info.encoding == "utf-8"


def read_string_series(node: Node):
    """The 1-d string dataset ``node`` describes as a polars String Series (fixed width read without Python
    strings)."""
    import polars as pl

    ds = node.obj
    dtype, shape = ds.dtype, ds.id.shape
    if len(shape) == 1 and _fixed_width_utf8(dtype):
        raw = node.check(_read_fixed(ds, dtype))
        return _unpack_fixed(raw, path=ds.id, obj=node.name)
    if shape == (0,):  # nothing stored to convert (an empty table's column), checked as read_string_values does
        node.check(np.empty(shape, _STRING_DTYPE))
        return pl.Series(dtype=pl.String)
    return pl.Series(values=read_string_values(node, dtype).ravel(), dtype=pl.String)


def read_string_values(node: Node, dtype: np.dtype | None = None) -> np.ndarray:
    """The string dataset ``node`` describes as a StringDType array (fast path of h5py for variable length;
    ``dtype``: the dataset's, when the caller has it)."""
    ds = node.obj
    dtype = ds.dtype if dtype is None else dtype
    rank = ds.id.rank
    if rank > 0 and _fixed_width_utf8(dtype):
        raw = node.check(_read_fixed(ds, dtype))
        text = _unpack_fixed(raw, path=ds.id, obj=node.name).to_numpy()
        return text.astype(_STRING_DTYPE).reshape(raw.shape)
    if rank == 0:
        return np.asarray(node.check(ds.asstr()[()]), dtype=_STRING_DTYPE)
    return node.check(_read_variable(ds))


def _read_variable(ds: h5py.Dataset) -> np.ndarray:
    """All of a variable-length string dataset of at least one dimension as a StringDType array (h5py's fast
    path; an empty one without its set-up: nothing stored to convert)."""
    shape = ds.id.shape
    if 0 in shape:
        return np.empty(shape, _STRING_DTYPE)
    return ds.astype(_STRING_DTYPE)[()]


def _read_fixed(ds: h5py.Dataset, dtype: np.dtype) -> np.ndarray:
    """All of a fixed-width string dataset of at least one dimension as a numpy ``S`` array: what ``ds[()]``
    reads, in one low-level read (h5py's selection set-up costs more than the read of a frame's labels)."""
    out = np.empty(ds.id.shape, dtype)
    if out.size:
        ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    return out


def _has_na(values: np.ndarray) -> bool:
    if values.dtype.kind == "O":
        return any(v is None for v in values.flat)
    if values.dtype.kind == "T" and hasattr(values.dtype, "na_object"):
        return bool(_na_mask(values).any()) if values.size else False
    return False


def _is_string_array(value: np.ndarray) -> bool:
    kind = value.dtype.kind
    if kind in "UT":
        return True
    if kind == "O":
        return all(isinstance(v, str) or v is None for v in value.flat)
    return False


def _na_mask(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "T":
        values = values.astype(object)
    return np.frompyfunc(lambda v: v is None, 1, 1)(values).astype(bool)


def _write_masked(parent: h5py.Group, key: str, values: np.ndarray, mask: np.ndarray, options: WriteOptions) -> h5py.Group:
    group = parent.create_group(key)
    filled = values.astype(object)
    filled[mask] = ""
    filled = filled.astype(_STRING_DTYPE)
    ds = write_string_values(group, "values", filled, options)
    stamp(ds, STRING_ARRAY)
    from h5stream.writer import write_array

    mds = write_array(group, "mask", np.ascontiguousarray(mask), options)
    stamp(mds, ARRAY)
    return group


@register_writer(np.ndarray, STRING_ARRAY, match=lambda v: _is_string_array(v) and not _has_na(v))
def _write_string_array(parent: h5py.Group, key: str, value: np.ndarray, options: WriteOptions) -> h5py.Dataset:
    ds = write_string_values(parent, key, value, options)
    ds.attrs[NUMPY_DTYPE_ATTR] = "T" if value.dtype.kind == "T" else value.dtype.str
    return ds


@register_writer(np.ndarray, NULLABLE_STRING_ARRAY, match=lambda v: _is_string_array(v) and _has_na(v))
def _write_nullable_string_array(parent: h5py.Group, key: str, value: np.ndarray, options: WriteOptions) -> h5py.Group:
    group = _write_masked(parent, key, value, _na_mask(value), options)
    group.attrs[NUMPY_DTYPE_ATTR] = "T" if value.dtype.kind == "T" else value.dtype.str
    return group


def is_string_list(value) -> bool:
    """True for a non-empty list or tuple whose items are all str or None, at least one str."""
    return (
        len(value) > 0
        and all(isinstance(v, str) or v is None for v in value)
        and any(isinstance(v, str) for v in value)
    )


def write_string_list(parent: h5py.Group, key: str, value, options: WriteOptions):
    """Write a list or tuple of str/None; returns (object, spec)."""
    values = np.array(value, dtype=object)
    if any(v is None for v in value):
        obj = _write_masked(parent, key, values, _na_mask(values), options)
        spec = NULLABLE_STRING_ARRAY
    else:
        obj = write_string_values(parent, key, values.astype(_STRING_DTYPE), options)
        spec = STRING_ARRAY
    obj.attrs[CONTAINER_ATTR] = type(value).__name__
    return obj, spec


def _as_numpy(values: np.ndarray, mask: np.ndarray | None, dtype_str: str | None) -> np.ndarray:
    if dtype_str == "T":
        if mask is not None and mask.any():
            out = values.astype(np.dtypes.StringDType(na_object=None))
            out[mask] = None
            return out
        return values
    out = values.astype(object)
    if mask is not None and mask.any():
        out[mask] = None
    if dtype_str is None or dtype_str in ("|O", "O"):
        return out
    return out.astype(np.dtype(dtype_str))


def _finish(node: Node, values: np.ndarray, mask: np.ndarray | None, series: bool):
    if series:
        import polars as pl

        out = values if isinstance(values, pl.Series) else pl.Series(values=values.ravel(), dtype=pl.String)
        if mask is not None and mask.any():
            out = out.scatter(np.flatnonzero(mask.ravel()), None)
        return out
    container = node.attrs.get(CONTAINER_ATTR)
    if container in ("list", "tuple"):
        items = values.astype(object)
        if mask is not None:
            items[mask] = None
        items = items.tolist()
        return items if container == "list" else tuple(items)
    return _as_numpy(values, mask, node.attrs.get(NUMPY_DTYPE_ATTR))


@register_reader(STRING_ARRAY, node=True)
def _read_string_array(node: Node, *, series: bool = False):
    values = read_string_series(node) if series and node.obj.id.rank == 1 else read_string_values(node)
    return _finish(node, values, None, series)


@register_reader(NULLABLE_STRING_ARRAY, node=True)
def _read_nullable_string_array(node: Node, *, series: bool = False):
    held, mask_node = node.members(("values", "mask"))
    values = read_string_series(held) if series and held.obj.id.rank == 1 else read_string_values(held)
    mask = np.asarray(read_node(mask_node), dtype=bool)
    return _finish(node, values, mask, series)
