"""A dataset in a file, read on access: what the tree holds for an array that lives on disk.

A staged array spilled to disk, or a dataset of a recording opened lazily, is a
:class:`FileArray`; the tree writer moves or copies it into place inside the
HDF5 library instead of reading it into memory, or, when it is small and stored
whole, reads, checks and writes it in one pass (:data:`REWRITE_LIMIT`).
"""

from __future__ import annotations

import h5py
import numpy as np

from h5stream import checksums
from h5stream.errors import ChecksumError
from h5stream.files.header_checks import plain_storage

__all__ = ["FileArray", "REWRITE_LIMIT"]

#: An on-disk array of at most this many bytes, stored whole (contiguous or compact: no chunks, no filter) and
#: checked when copied, is read, checked and written by a save as an array in memory is
#: (:meth:`FileArray.checked_values_to_rewrite`) instead of copied inside the library and read back from the
#: copy to be checked: one read of its bytes instead of two and a write through the library's object copy,
#: whose own cost (about 0.4 ms an object) exceeds a small array's read and write.
REWRITE_LIMIT = 8 << 20
#: the layouts of a dataset stored whole, without filters (:func:`~h5stream.files.header_checks.plain_storage`)
_WHOLE = (h5py.h5d.CONTIGUOUS, h5py.h5d.COMPACT)


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

    __slots__ = ("_opener", "name", "shape", "dtype", "spilled", "digest", "verify", "stored_at")

    def __init__(self, opener, name: str, shape: tuple[int, ...], dtype: np.dtype, *, spilled: bool = False,
                 digest: str | None = None, verify=None, stored_at: tuple[int, int] | None = None):
        #: ``(byte offset, byte count)`` of the values in the file, stored whole, unfiltered, in ``dtype``
        #: (as the reader that made this reference found them; None when not known): a byte copy of that
        #: file holds them at the same place
        self.stored_at = stored_at
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

    def checked_copy_digest(self, copy: h5py.Dataset) -> str | None:
        """The digest of ``copy`` (this array, just copied by the library into another file), checked
        against :attr:`digest`.

        Read back from the copy, so the check covers what the target holds: a source damaged on disk
        (or a copy gone wrong) raises :class:`~h5stream.errors.ChecksumError` naming the source file, the
        object, the digest expected and the one found, before the target is committed.  None when there
        is nothing to check against: no digest, or values taken as stored (``verify`` off, not spilled).
        """
        return self._checked_digest(copy)

    def record_copy_digest(self, recorder, path: str, copy: h5py.Dataset, checked: str | None) -> None:
        """Record in ``recorder`` (a :class:`~h5stream.checksums.Recorder`) the digest of ``copy``, this array
        copied to ``path`` (``checked``: the digest the copy was found to have, :meth:`checked_copy_digest`,
        None when not read)."""
        if recorder.headers_checksummed and copy.id.get_create_plist().get_layout() == h5py.h5d.COMPACT:
            return  # the data sit in a version-2 object header, which HDF5 checksums
        digest = checked if checked is not None else self.digest
        if digest is None:
            # Copied from a file without digests: digest what was copied.
            digest = checksums.stored_digest(copy) if copy.shape is not None else None
        if digest is not None:
            recorder.dataset(path, digest)

    def check_source(self) -> None:
        """Check the values in the source file against :attr:`digest` before they are copied (the same
        error as :meth:`checked_copy_digest`), for a save that must not start when a copy would fail."""
        self._checked_digest(self.dataset)

    @property
    def checked_on_copy(self) -> bool:
        """Whether a copy of this array is checked against :attr:`digest` (it has one, and is verified or
        spilled): a copy of one that is not carries its digest unchecked (values taken as stored)."""
        return self.digest is not None and (self.verify is not None or self.spilled)

    def checked_values(self, dsid: h5py.h5d.DatasetID, source: h5py.File | None = None) -> np.ndarray:
        """All the values, read from ``dsid`` (this array's dataset, opened by the caller) and checked against
        :attr:`digest` with the errors of :meth:`checked_copy_digest` (a writer that rewrites the values
        instead of copying them inside the library; ``source``: its open file, when the caller has it); only
        for an array :attr:`checked_on_copy`."""
        out = np.empty(self.shape, dtype=self.dtype)
        if out.size:
            with checksums.checked_read(source if source is not None else self.file, self.name, dataset=dsid):
                dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
        found = checksums.array_digest(out)
        if found != self.digest:
            self._mismatch(found)
        return out

    def checked_values_to_rewrite(self) -> np.ndarray | None:
        """All the values, read and checked (:meth:`checked_values`), for a writer that writes them as an array
        in memory instead of copying the dataset (see :data:`REWRITE_LIMIT`); None when it should copy it: the
        array is large, stored in chunks (a copy keeps its chunks and filters), in another byte order, or not
        checked on copy (its digest is then carried as stored, unchecked)."""
        dtype = self.dtype
        if not self.checked_on_copy or self.nbytes > REWRITE_LIMIT or dtype.kind not in "biuf" or not dtype.isnative:
            return None
        source = self.file
        with checksums.checked_read(source, self.name):  # a source header failing its checksum
            dsid = h5py.h5d.open(source.id, self.name.encode("utf-8"))
        # (a stored type other than ``dtype`` is converted by the read, and its values checked by the digest)
        if plain_storage(dsid) not in _WHOLE or dsid.shape != self.shape:
            return None
        return self.checked_values(dsid, source)

    def _checked_digest(self, dataset: h5py.Dataset) -> str | None:
        if not self.checked_on_copy or dataset.shape is None:
            return None
        source = self.file.filename
        with checksums.checked_read(source, self.name, dataset=dataset):
            found = checksums.stored_digest(dataset)
        if found != self.digest:
            self._mismatch(found)
        return found

    def _mismatch(self, found: str) -> None:
        """Raise the ChecksumError of a copy found with digest ``found`` (the source damaged, or replaced)."""
        source = self.file.filename
        replaced = getattr(self._opener, "replaced_since_loaded", None)
        if callable(replaced) and replaced():
            raise ChecksumError(
                "a value copied from a file differs from the digest stored with it: the source file was "
                "replaced since it was loaded (or written to: it is not the file that was loaded)",
                path=source, obj=self.name, expected=f"{checksums.ALGORITHM} {self.digest}",
                found=f"{checksums.ALGORITHM} {found}",
                hint="nothing was written over the target (an earlier file there is intact); load the file "
                     "again to work on what it holds now, or put the file that was loaded back at its path")
        raise ChecksumError(
            "a value copied from a file differs from the digest stored with it: the source is damaged",
            path=source, obj=self.name, expected=f"{checksums.ALGORITHM} {self.digest}",
            found=f"{checksums.ALGORITHM} {found}",
            hint="nothing was written over the target (an earlier file there is intact); restore the "
                 "source from a copy, or load it with verify=False to copy its values as stored")

    def __array__(self, dtype=None, copy=None):
        values = self.read()
        return values if dtype is None else values.astype(dtype, copy=False)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        where = "spilled" if self.spilled else "on disk"
        return f"FileArray({self.name!r}, shape={self.shape}, dtype={self.dtype}, {where})"
