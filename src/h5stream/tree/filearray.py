"""A dataset in a file, read on access: what the tree holds for an array that lives on disk.

A staged array spilled to disk, or a dataset of a recording opened lazily, is a
:class:`FileArray`; the tree writer moves or copies it into place inside the
HDF5 library instead of reading it into memory.
"""

from __future__ import annotations

import h5py
import numpy as np

from h5stream import checksums

__all__ = ["FileArray"]


class FileArray:
    """A dataset in a file, read on access.

    ``np.asarray(file_array)`` (or :meth:`read`) loads the values; ``shape``,
    ``dtype`` and ``nbytes`` are known without reading.  ``opener`` returns the
    open ``h5py.File`` holding the dataset (shared with other references to
    the same file).

    ``digest`` is the checksum of the values (:func:`h5stream.checksums.array_digest`)
    when known: carried into the files the array is copied to, and checked on
    every :meth:`read` when ``verify`` (a :class:`~h5stream.checksums.Manifest`
    naming the source file) is set.
    """

    __slots__ = ("_opener", "name", "shape", "dtype", "spilled", "digest", "verify")

    def __init__(self, opener, name: str, shape: tuple[int, ...], dtype: np.dtype, *, spilled: bool = False,
                 digest: str | None = None, verify=None):
        self._opener = opener
        self.name = name
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.spilled = spilled
        self.digest = digest
        self.verify = verify

    @property
    def file(self) -> h5py.File:
        return self._opener()

    @property
    def dataset(self) -> h5py.Dataset:
        return self._opener()[self.name]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def read(self) -> np.ndarray:
        ds = self.dataset
        if ds.shape is None:  # an empty (null-dataspace) dataset
            return np.empty((0,), dtype=self.dtype)
        out = np.empty(self.shape, dtype=self.dtype)
        if out.size:
            with checksums.checked_read(ds, self.name, dataset=ds):
                ds.read_direct(out)
        if self.verify is not None:
            checksums.check_value(self.verify, self.name, self.digest, out)
        return out

    def __array__(self, dtype=None, copy=None):
        values = self.read()
        return values if dtype is None else values.astype(dtype, copy=False)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        where = "spilled" if self.spilled else "on disk"
        return f"FileArray({self.name!r}, shape={self.shape}, dtype={self.dtype}, {where})"
