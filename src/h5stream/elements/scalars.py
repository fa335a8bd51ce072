"""Python scalars: bool, int, float, complex, str, bytes, None.

Round trip (exact): a Python ``bool``/``int``/``float``/``complex`` is stored
as ``numeric-scalar`` 0.2.0 (numpy bool, int64 — uint64 above the int64 range
—, float64, complex128) with ``h5stream:python-type`` naming the Python type,
and comes back as that Python type; a numpy scalar has no such attribute and
comes back as a numpy scalar of the same dtype.  ``str`` is ``string`` 0.2.0
(UTF-8), ``numpy.str_`` the same plus ``h5stream:python-type = "numpy.str_"``
(likewise ``numpy.bytes_``).  numpy datetime64/timedelta64 *scalars* have no
encoding (``EncodingError``); store them as 0-d or 1-d arrays.
``None`` is ``null`` 0.1.0 (an empty dataset).  ``bytes`` (any content,
including NUL bytes and the empty string) is ``h5stream:bytes`` 0.1.0, a uint8
dataset.  Integers beyond the uint64/int64 range raise ``EncodingError``.
"""

from __future__ import annotations

import h5py
import numpy as np

from h5stream.elements.registry import ElementSpec, register_reader, register_writer
from h5stream.elements.snapshot import Node
from h5stream.errors import EncodingError
from h5stream.writer import WriteOptions

__all__ = ["STRING", "NULL", "BYTES", "PYTHON_TYPE_ATTR", "restore_python_scalar"]

STRING = ElementSpec("string", "0.2.0")
NULL = ElementSpec("null", "0.1.0")
BYTES = ElementSpec("h5stream:bytes", "0.1.0")
NUMERIC_SCALAR = ElementSpec("numeric-scalar", "0.2.0")
PYTHON_TYPE_ATTR = "h5stream:python-type"

_UTF8 = h5py.string_dtype("utf-8")


def _python_scalar_array(value) -> np.ndarray:
    if isinstance(value, bool):
        return np.asarray(value, dtype=np.bool_)
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return np.asarray(value, dtype=np.int64)
        if 0 <= value < 2**64:
            return np.asarray(value, dtype=np.uint64)
        raise EncodingError(
            "integer does not fit 64 bits",
            expected="an int in [-2**63, 2**64)",
            found=str(value),
            hint="store it as a string if it must be kept",
        )
    if isinstance(value, float):
        return np.asarray(value, dtype=np.float64)
    return np.asarray(value, dtype=np.complex128)


def _write_python_number(parent: h5py.Group, key: str, value, options: WriteOptions) -> h5py.Dataset:
    ds = parent.create_dataset(key, data=_python_scalar_array(value))
    ds.attrs[PYTHON_TYPE_ATTR] = type(value).__name__
    return ds


for _python_type in (bool, int, float, complex):
    register_writer(_python_type, NUMERIC_SCALAR)(_write_python_number)


_RESTORE = {
    "bool": bool,
    "int": int,
    "float": float,
    "complex": complex,
    "numpy.str_": np.str_,
    "numpy.bytes_": np.bytes_,
}


def restore_python_scalar(node: Node, value):
    """Turn a numpy scalar back into the Python type recorded on the element ``node`` describes, if any."""
    kind = node.attrs.get(PYTHON_TYPE_ATTR)
    if kind is None:
        return value
    convert = _RESTORE.get(kind)
    if convert is None:
        raise EncodingError(
            "unknown Python type attribute", path=node.obj.file.filename, obj=node.name,
            expected=", ".join(_RESTORE), found=kind,
        )
    return convert(value)


@register_writer(str, STRING)
def _write_string(parent: h5py.Group, key: str, value: str, options: WriteOptions) -> h5py.Dataset:
    if "\x00" in value:
        raise EncodingError(
            "the string contains a NUL character, which HDF5 strings cannot hold",
            path=parent.file.filename, obj=f"{parent.name.rstrip('/')}/{key}",
            hint="store it as bytes",
        )
    ds = parent.create_dataset(key, data=np.asarray(value, dtype=_UTF8), dtype=_UTF8)
    if isinstance(value, np.str_):
        ds.attrs[PYTHON_TYPE_ATTR] = "numpy.str_"
    return ds


@register_reader(STRING, node=True)
def _read_string(node: Node, *, series: bool = False):
    return restore_python_scalar(node, node.check(node.obj.asstr()[()]))


@register_writer(type(None), NULL)
def _write_null(parent: h5py.Group, key: str, value: None, options: WriteOptions) -> h5py.Dataset:
    return parent.create_dataset(key, data=h5py.Empty("f"))


@register_reader(NULL)
def _read_null(ds, *, series: bool = False):
    return None


@register_writer(bytes, BYTES)
def _write_bytes(parent: h5py.Group, key: str, value: bytes, options: WriteOptions) -> h5py.Dataset:
    ds = parent.create_dataset(key, data=np.frombuffer(value, dtype=np.uint8))
    if isinstance(value, np.bytes_):
        ds.attrs[PYTHON_TYPE_ATTR] = "numpy.bytes_"
    return ds


@register_reader(BYTES, node=True)
def _read_bytes(node: Node, *, series: bool = False):
    return restore_python_scalar(node, node.check(node.obj[()]).tobytes())
