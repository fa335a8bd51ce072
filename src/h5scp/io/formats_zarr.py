"""AnnData's zarr store (``anndata.write_zarr`` / ``read_zarr`` layout), behind the ``zarr`` extra.

A zarr store of AnnData holds the same elements as an ``.h5ad`` file, in zarr
groups and arrays instead of HDF5 ones.  Writing builds the ``.h5ad`` layout
(:func:`h5scp.io.save_h5ad`) in a scratch file and copies it element by
element into a new store; reading copies a store into a scratch HDF5 file and
reads it as an ``.h5ad`` (:func:`h5scp.io.formats_h5ad.container_from_h5ad`).  So a
store holds exactly what the ``.h5ad`` would (our annotations and frame records
under ``uns/scptensor``), loads back as exactly, and a store that anndata wrote
or edited is imported or reconciled the same way.

zarr 2 and zarr 3 (whose API differs: ``create_array``, ``members``) are both
supported.  The copy maps text arrays to zarr's variable-length UTF-8 (under
zarr 2: object arrays with the ``VLenUTF8`` codec; under zarr 3: ``str``
arrays, ``vlen-utf8`` in format 2), attributes to
JSON values (arrays as lists), and leaves out the HDF5 checksum manifest
(zarr has its own per-chunk integrity only through its codecs).

Store mechanics (:mod:`h5stream.files.folders`, :mod:`h5scp.io._zarr_store`): a
store is written into a partial folder beside the target under the target's
writer claim (a second save of the same path gets
:class:`~h5scp.io.exceptions.IOWriterClaimError`), sealed with a checksum manifest
of every file, and published in one step: renamed onto a free path, or swapped with
the existing store in one atomic exchange (``renameat2(RENAME_EXCHANGE)``), so a
kill at any moment leaves the complete old store or the complete new one at the
path.  Where the system cannot exchange folders, replacing a store is refused (the
old one kept).  Folders killed saves left beside the target are removed (or, for an
old store moved aside by an earlier version, put back) by the next save.  An
existing store is replaced only with ``overwrite=True``.

A partial load (``samples``, ``features``, ``layers`` ...) leaves the scratch copy of
every matrix empty and copies into it only the zarr chunks holding the cells the
reader asks for (:class:`LazyMatrices`).

Reads go through :class:`h5scp.io._zarr_store.StoreFiles`: every file is checked
against the manifest before zarr or a codec sees it, declared shapes are bounded
by the stored bytes before anything is allocated, and a read that meets a
concurrent save is run again on the new store
(:func:`h5stream.files.folder_reads.read_folder`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from h5stream.errors import ChecksumError, H5StreamError
from h5stream.files.folder_reads import read_folder
from h5stream.files.folders import writing_folder
from h5scp.io._files import engine_errors
from h5scp.io._zarr_store import StoreFiles, seal_store
from h5scp.io.classes import loads_into_classes, saves_any_container
from h5scp.core.structures import ScpContainer
from h5scp.io.exceptions import IOChecksumError, IOFormatError, IOWriteError

__all__ = ["save_anndata_zarr", "load_anndata_zarr", "is_zarr_store"]

logger = logging.getLogger(__name__)

_SKIPPED_ATTRS = frozenset({"h5stream_checksums"})


def _zarr():
    try:
        import zarr
    except ImportError as exc:  # an optional dependency
        raise ImportError("AnnData zarr stores need the zarr package: pip install 'h5stream[zarr]'") from exc
    return zarr


def _zarr_major() -> int:
    """The installed zarr's major version (its API changed at 3; format 2 stores are written by both)."""
    return int(_zarr().__version__.split(".")[0])


def is_zarr_store(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding a zarr group (format 2 or 3)."""
    p = Path(path)
    return p.is_dir() and ((p / ".zgroup").is_file() or (p / "zarr.json").is_file())


def _json_attr(value):
    """An HDF5 attribute value as a JSON value for zarr."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return [_json_attr(v) for v in value.tolist()] if value.dtype.kind in "OS" else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return [_json_attr(v) for v in value]
    return value


def _h5_attr(value):
    """A zarr (JSON) attribute value as an HDF5 attribute value."""
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return np.array(value, dtype=h5py.string_dtype())
        return np.array(value)
    if isinstance(value, dict):
        import json

        return json.dumps(value)
    return value


def _is_text(ds: h5py.Dataset) -> bool:
    return h5py.check_string_dtype(ds.dtype) is not None


def _to_zarr(source: h5py.Group, target, zarr_format: int) -> None:
    zarr = _zarr()
    # h5py's item and attribute iterators hold its global lock between items, and zarr 3 writes
    # from its own threads, whose garbage collection may free an h5py object and wait for that
    # lock: a deadlock.  Lists first, then the writes.
    for key, value in list(source.attrs.items()):
        if key not in _SKIPPED_ATTRS:
            target.attrs[key] = _json_attr(value)
    for name, item in list(source.items()):
        if isinstance(item, h5py.Group):
            _to_zarr(item, target.create_group(name), zarr_format)
            continue
        if _is_text(item):
            data = np.asarray(item.asstr()[()], dtype=object)
            if _zarr_major() < 3:
                import numcodecs

                array = target.create_dataset(name, data=data, shape=data.shape, dtype=object,
                                              object_codec=numcodecs.VLenUTF8())
            else:  # zarr 3 API, either format: variable-length UTF-8 (vlen-utf8 in format 2)
                array = target.create_array(name, shape=data.shape, dtype=str)
                if data.size:
                    array[...] = data.astype(str)
        else:
            data = np.asarray(item[()])
            if _zarr_major() < 3:
                array = target.create_dataset(name, data=data, shape=data.shape, dtype=item.dtype)
            else:
                array = target.create_array(name, data=data)
        for key, value in list(item.attrs.items()):
            array.attrs[key] = _json_attr(value)
    del zarr


# --------------------------------------------------------------------------- partial loads
# A partial load of an AnnData zarr store decodes only the chunks of the cells it reads.
#
# A store is read through a scratch HDF5 copy.  For a partial load the copy of every matrix (``X``, ``layers/*`` and our masks under
# ``uns/scptensor/masks``) is left empty: a dense matrix becomes an HDF5 dataset of
# its shape chunked like the zarr array, a CSR/CSC matrix a group with its ``indptr``
# copied and ``data``/``indices`` left empty.  The reader announces each read
# (:data:`h5scp.io.partial_hdf5.BEFORE_READ`, with the rows and columns it will use);
# :class:`LazyMatrices` then copies the zarr chunks that hold them, and only those:
# for a dense matrix the chunks crossing the selected rows and columns, for a
# compressed one the chunks of ``data``/``indices`` holding the selected rows (CSR) or
# columns (CSC).  Cells outside them are never decoded; the reader never uses them.

_COMPRESSED = ("csr_matrix", "csc_matrix")


def _matrix_path(path: str) -> bool:
    """True when the element at ``path`` (``/X``, ``/layers/a`` ...) of an AnnData group is a matrix it reads by cells."""
    parent, _, name = path.rpartition("/")
    return bool(name) and (path == "/X" or parent in ("/layers", "/uns/scptensor/masks"))


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value if isinstance(value, str) else None


def _chunk_slices(size: int, chunk: int, wanted: np.ndarray | None) -> list[slice]:
    """The chunk-aligned slices of an axis of ``size`` holding the positions ``wanted`` (None: all)."""
    if size == 0:
        return []
    blocks = np.arange(-(-size // chunk)) if wanted is None else np.unique(np.asarray(wanted) // chunk)
    return [slice(int(b) * chunk, min((int(b) + 1) * chunk, size)) for b in blocks]


class LazyMatrices:
    """The matrices of a scratch copy left empty, and the zarr arrays that fill them on demand."""

    def __init__(self, on_error: Callable[[Exception], Exception]) -> None:
        self._dense: dict[str, tuple[object, set]] = {}
        self._compressed: dict[str, tuple[object, object, set]] = {}
        self._on_error = on_error
        self.chunks_copied = 0

    def copy(self, item, target: h5py.Group, name: str, attrs: Callable[[object, object], None]) -> bool:
        """Leave the copy of zarr element ``item`` (a dense array or a CSR/CSC group) empty in ``target``;
        False when it is neither (the caller copies it whole)."""
        kind = _text(item.attrs.get("encoding-type"))
        if kind == "array" and hasattr(item, "chunks") and len(item.shape) == 2 and 0 not in item.shape:
            dtype = np.dtype(item.dtype)
            if dtype.kind not in "biuf":
                return False
            chunks = tuple(max(1, min(int(c), int(s))) for c, s in zip(item.chunks, item.shape))
            ds = target.create_dataset(name, shape=tuple(int(s) for s in item.shape), dtype=dtype, chunks=chunks)
            attrs(item, ds)
            self._dense[ds.name] = (item, set())
            return True
        if kind in _COMPRESSED and not hasattr(item, "chunks"):
            members = {k: item[k] for k in ("data", "indices", "indptr") if k in item}
            if len(members) != 3 or any(len(m.shape) != 1 for m in members.values()):
                return False
            group = target.create_group(name)
            attrs(item, group)
            for key, array in members.items():
                if key == "indptr" or array.shape[0] == 0:
                    ds = group.create_dataset(key, data=np.asarray(array[...]))
                else:
                    ds = group.create_dataset(key, shape=array.shape, dtype=np.dtype(array.dtype),
                                              chunks=(max(1, min(int(array.chunks[0]), int(array.shape[0]))),))
                attrs(array, ds)
            self._compressed[group.name] = (members["data"], members["indices"], set())
            return True
        return False

    def __call__(self, obj, rows: np.ndarray | None, cols: np.ndarray | None) -> None:
        """:data:`h5scp.io.partial_hdf5.BEFORE_READ`: copy the chunks the read of ``rows`` x ``cols`` of ``obj`` uses."""
        try:
            if obj.name in self._dense:
                self._fill_dense(obj, rows, cols)
            elif obj.name in self._compressed:
                self._fill_compressed(obj, rows, cols)
        except Exception as exc:  # a damaged chunk: named as the store's
            raise self._on_error(exc) from exc

    def _fill_dense(self, ds: h5py.Dataset, rows, cols) -> None:
        array, done = self._dense[ds.name]
        cr, cc = ds.chunks
        for r in _chunk_slices(ds.shape[0], cr, rows):
            for c in _chunk_slices(ds.shape[1], cc, cols):
                key = (r.start, c.start)
                if key not in done:
                    ds[r, c] = np.asarray(array[r, c])
                    done.add(key)
                    self.chunks_copied += 1

    def _fill_compressed(self, group: h5py.Group, rows, cols) -> None:
        data, indices, done = self._compressed[group.name]
        outer = rows if _text(group.attrs.get("encoding-type")) == "csr_matrix" else cols
        indptr = np.asarray(group["indptr"][()], dtype=np.int64)
        size = int(data.shape[0])
        for key, array in (("data", data), ("indices", indices)):
            ds = group[key]
            if ds.chunks is None:
                continue
            chunk = ds.chunks[0]
            blocks = None
            if outer is not None:  # the chunks holding the entries of the selected rows (CSR) or columns (CSC)
                at = np.asarray(outer, dtype=np.int64)
                at = at[(at >= 0) & (at + 1 < indptr.size)]
                lo, hi = np.clip(indptr[at], 0, size), np.clip(indptr[at + 1], 0, size)
                lo, hi = lo[hi > lo], hi[hi > lo]
                first, last = lo // chunk, (hi - 1) // chunk
                blocks = np.unique(np.concatenate([np.arange(a, b + 1) for a, b in zip(first, last)]
                                                  or [np.zeros(0, dtype=np.int64)])) * chunk
            for s in _chunk_slices(size, chunk, blocks):
                if (key, s.start) not in done:
                    ds[s] = np.asarray(array[s])
                    done.add((key, s.start))
                    self.chunks_copied += 1


def _copy_attrs(item, target) -> None:
    for key, value in item.attrs.asdict().items():
        target.attrs[key] = _h5_attr(value)


def _h5_records(data: np.ndarray) -> np.ndarray:
    """A record array with its text fields (fixed-width or objects, which HDF5 cannot store) as HDF5 text."""
    fields = data.dtype.fields
    text = [n for n in data.dtype.names if fields[n][0].kind in "OUT"]
    if not text:
        return data
    dtype = np.dtype([(n, h5py.string_dtype() if n in text else fields[n][0]) for n in data.dtype.names])
    out = np.empty(data.shape, dtype=dtype)
    for name in data.dtype.names:
        out[name] = np.asarray(data[name], dtype=object).astype(str) if name in text else data[name]
    return out


def _to_h5(source, target: h5py.Group, lazy: LazyMatrices | None = None) -> None:
    """Copy zarr group ``source`` into HDF5 group ``target``; with ``lazy``, its matrices are left to it."""
    zarr = _zarr()
    _copy_attrs(source, target)
    members = source.items() if _zarr_major() < 3 else source.members()
    for name, item in members:
        where = f"{target.name.rstrip('/')}/{name}"
        if lazy is not None and _matrix_path(where) and lazy.copy(item, target, name, _copy_attrs):
            continue
        if isinstance(item, zarr.hierarchy.Group if _zarr_major() < 3 else zarr.Group):
            _to_h5(item, target.create_group(name), lazy)
            continue
        data = np.asarray(item[...])  # zarr 3 gives a 0-d text array as str
        if data.dtype.names:  # a record array (anndata's rec-array): its text fields as HDF5 text
            data = _h5_records(data)
        if data.dtype.kind in "OUT":
            text = np.asarray(data, dtype=object)
            ds = target.create_dataset(name, data=text.astype(str).astype(object) if text.size else text,
                                       dtype=h5py.string_dtype(), shape=text.shape)
        else:
            ds = target.create_dataset(name, data=data)
        _copy_attrs(item, ds)


def _open_store(zarr, store: StoreFiles):
    """The root group of a checked store, read through ``store`` (zarr 2: a KVStore; zarr 3: a MemoryStore)."""
    if _zarr_major() < 3:
        return zarr.open_group(store=zarr.storage.KVStore(store), mode="r")
    from zarr.core.buffer import default_buffer_prototype

    class _Buffers(dict):  # zarr 3's MemoryStore asks a mapping of Buffers
        def __getitem__(self, key):
            return default_buffer_prototype().buffer.from_bytes(store[key])

        def __contains__(self, key):
            return key in store

        def __iter__(self):
            return iter(store)

        def __len__(self):
            return len(store)

        def keys(self):
            return list(store)

    return zarr.open_group(store=zarr.storage.MemoryStore(_Buffers(), read_only=True), mode="r")


@contextlib.contextmanager
def _scratch_errors(target: Path):
    """Errors of the scratch ``.h5ad`` (in the temporary folder) name the store being saved."""
    try:
        yield
    except IOWriteError as exc:
        folder = os.path.dirname(os.path.dirname(exc.path or "")) or tempfile.gettempdir()
        raise IOWriteError(
            f"writing failed while the store was prepared in the temporary folder ({exc}); "
            "any earlier store is intact", path=target,
            hint=f"free space in the temporary folder {folder}, or point TMPDIR elsewhere",
        ) from exc


@saves_any_container
def save_anndata_zarr(
    container: ScpContainer,
    path: str | os.PathLike,
    *,
    assay: str | None = None,
    layer: str | None = None,
    zarr_format: int = 2,
    overwrite: bool = False,
    **options,
) -> Path:
    """Save one assay of ``container`` as an AnnData zarr store (what ``anndata.read_zarr`` opens).

    ``assay``, ``layer`` and the other options mean what they mean for
    :func:`h5scp.io.save_h5ad`; ``zarr_format`` is 2 or 3.  zarr 2 and zarr 3
    both write format 2; format 3 needs zarr 3 (``ImportError`` naming the install
    otherwise, before anything is written).

    The store appears complete or not at all, and an existing one stays whole
    until it is swapped for the new one in one step (see the module text).

    Raises
    ------
    IOTargetExistsError
        The path exists and ``overwrite`` is False.
    IOWriterClaimError
        Another save of the same path is running.
    IOWriteError
        The directory is missing or read-only, the disk (or the temporary folder)
        is full, the path holds something other than a zarr store, or the system
        cannot replace a folder in one step; any earlier store is intact.
    """
    from h5scp.io.formats_h5ad import save_h5ad

    zarr = _zarr()
    target = Path(path)
    if zarr_format not in (2, 3):
        raise ValueError(f"zarr_format must be 2 or 3, not {zarr_format!r}")
    if zarr_format == 3 and _zarr_major() < 3:
        raise ImportError(f"zarr format 3 needs zarr 3 or newer (installed: zarr {zarr.__version__}): "
                          "pip install 'zarr>=3'")
    with engine_errors(), writing_folder(
        target, overwrite=overwrite, is_replaceable=is_zarr_store, kind="a zarr store",
        other_folder="a folder that is not a zarr store", one_step=True, former_names=True,
    ) as partial, tempfile.TemporaryDirectory(prefix="scptensor-zarr-") as scratch:
        h5ad = Path(scratch) / "store.h5ad"
        with _scratch_errors(target):
            save_h5ad(container, h5ad, assay=assay, layer=layer, compression=None, **options)
        kwargs = {"zarr_format": zarr_format} if _zarr_major() >= 3 else {}
        root = zarr.open_group(str(partial), mode="w", **kwargs)
        with h5py.File(h5ad, "r") as f:
            _to_zarr(f, root, zarr_format)
        seal_store(root, partial, zarr_format)
        del root
    logger.info("saved %r to %s (AnnData zarr, format %d)", container, target, zarr_format)
    return target


@loads_into_classes
def load_anndata_zarr(
    path: str | os.PathLike,
    *,
    assay: str | None = None,
    assays=None,
    layers=None,
    obs_columns=None,
    samples=None,
    features=None,
    verify: bool = True,
) -> ScpContainer:
    """Load a container, or part of it, from an AnnData zarr store (ours, or anndata's own; see
    :func:`h5scp.io.load_h5ad`).

    The partial options (``assays``, ``layers``, ``obs_columns``, ``samples``,
    ``features``) mean what they mean for :func:`h5scp.io.load_hdf5`.  A partial
    load decodes only the zarr chunks holding the selected cells of each matrix
    read (the chunks crossing the selected rows and columns of a dense one; those
    of ``data``/``indices`` holding the selected rows of a CSR or columns of a CSC
    one), and no chunk of a layer not read.

    With ``verify`` (the default) every file of a store written here is checked
    against the checksum manifest written with it before it is decoded; a missing,
    extra, truncated or changed file is an
    :class:`~h5scp.io.exceptions.IOChecksumError` naming it.  Stores written by
    other tools have no manifest and are read without digests.  Every store's
    declared shapes are bounded by its stored bytes first
    (:class:`~h5scp.io.exceptions.IOFormatError`).  A read that meets a concurrent
    save is read again on the new store (:class:`~h5scp.io.exceptions.IOSaveInProgressError`
    when every try met one).
    """
    source = Path(path)
    if not is_zarr_store(source):
        raise IOFormatError("not a zarr store", path=source, obj="/", expected="a folder with .zgroup or zarr.json",
                            found="a file" if source.is_file() else "no zarr group")
    request = {"assays": assays, "layers": layers, "obs_columns": obs_columns, "samples": samples,
               "features": features}
    with engine_errors():
        return read_folder(source, lambda: _load_store(source, assay, verify, request), what="store")


def _load_store(source: Path, assay: str | None, verify: bool, request: dict) -> ScpContainer:
    from h5scp.io.formats_h5ad import container_from_h5ad
    from h5scp.io.partial_hdf5 import BEFORE_READ
    from h5scp.io.selection import SelectionError

    zarr = _zarr()
    store = StoreFiles(source, verify=verify)
    try:
        root = _open_store(zarr, store)
    except H5StreamError:
        raise
    except Exception as exc:
        raise IOFormatError("zarr store cannot be opened", path=source, obj=store.last, expected="a zarr group",
                            found=f"{type(exc).__name__}: {exc}") from exc
    kind = root.attrs.get("encoding-type")
    if kind != "anndata":
        raise IOFormatError("not an AnnData zarr store", path=source, obj="/@encoding-type",
                            expected="'anndata'", found=repr(kind))

    def unreadable(exc: Exception) -> Exception:
        if isinstance(exc, H5StreamError):
            return exc
        return IOFormatError(f"a member of the store is unreadable ({type(exc).__name__}: {exc})",
                             path=source, obj=store.last, hint="the store is damaged; restore it from a copy")

    lazy = LazyMatrices(unreadable) if any(v is not None for v in request.values()) else None
    with tempfile.TemporaryDirectory(prefix="scptensor-zarr-") as scratch:
        copy = Path(scratch) / "store.h5ad"
        with h5py.File(copy, "w") as f:
            try:
                _to_h5(root, f, lazy)
            except H5StreamError:
                raise
            except Exception as exc:  # a codec or zarr on a store without digests
                raise unreadable(exc) from exc
            token = BEFORE_READ.set(lazy)
            try:
                return container_from_h5ad(f, source, assay=assay, request=request)
            except H5StreamError as exc:  # found in the scratch copy: named as the store's
                text = str(exc)
                text = text[len(str(copy)):] if text.startswith(str(copy)) else f": {text}"
                kind = IOChecksumError if isinstance(exc, ChecksumError) else IOFormatError
                if isinstance(exc, SelectionError):  # names the store and the request already
                    raise
                raise kind(f"{source}{text}", path=source, obj=exc.obj, expected=exc.expected, found=exc.found,
                           hint=exc.hint, composed=True) from exc
            finally:
                BEFORE_READ.reset(token)
