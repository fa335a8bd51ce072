"""Choice of file format: by extension for writing, by content for reading.

``save`` writes the format the extension names; ``load`` reads any of them by
content: a folder holding a scptensor Parquet manifest, else one of the three
HDF5 formats (like ``load_hdf5``), whatever the name.  ``load`` takes the
partial-load options of every format (``assays``, ``layers``, ``obs_columns``,
``samples``, ``features``; see :mod:`h5scp.io.selection`).

The extensions, their formats and the functions that write and read each are one table,
:data:`h5scp.io.format_table.FORMAT_TABLE`; :data:`FORMATS` holds its formats that h5scp writes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from h5scp.io.classes import OURS, loads_into_classes, saves_any_container
from h5scp.core.structures import ScpContainer
from h5scp.io.exporters import save_hdf5
from h5scp.io.format_table import FORMAT_TABLE
from h5scp.io.formats_h5ad import load_h5ad, save_h5ad
from h5scp.io.formats_h5mu import load_h5mu, save_h5mu
from h5scp.io.formats_parquet import is_parquet_dataset, load_parquet, save_parquet
from h5scp.io.formats_zarr import is_zarr_store, load_anndata_zarr, save_anndata_zarr
from h5scp.io.importers import load_hdf5

__all__ = ["FileFormat", "FORMATS", "format_for", "save", "load", "supported_extensions"]


@dataclasses.dataclass(frozen=True)
class FileFormat:
    """A file format: its name, writer and reader."""

    name: str
    save: Callable[..., Path]
    load: Callable[..., ScpContainer]


#: the writers and readers the table names, by name
_FUNCTIONS = {function.__name__: function for function in (
    save_hdf5, load_hdf5, save_h5mu, load_h5mu, save_h5ad, load_h5ad, save_parquet, load_parquet,
    save_anndata_zarr, load_anndata_zarr)}
#: extension -> the format h5scp writes there (the rows of the table with a writer)
FORMATS: dict[str, FileFormat] = {
    extension: FileFormat(row.name, _FUNCTIONS[row.writer], _FUNCTIONS[row.reader])
    for extension, row in FORMAT_TABLE.items() if row.writer is not None
}


def supported_extensions() -> list[str]:
    return list(FORMATS)


def format_for(path: str | os.PathLike) -> FileFormat:
    """The format a path's extension names; ``ValueError`` naming the supported ones otherwise."""
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        raise ValueError(
            f"{os.fspath(path)}: unsupported file extension {suffix or '(none)'!r}; "
            f"supported: {', '.join(FORMATS)}"
        ) from None


@saves_any_container
def save(container: ScpContainer, path: str | os.PathLike, **options) -> Path:
    """Save ``container`` in the format of ``path``'s extension (options go to that writer)."""
    return format_for(path).save(container, path, **options)


@loads_into_classes
def load(path: str | os.PathLike, **options) -> ScpContainer:
    """Load a container from any of the four formats, chosen by content (not by the name).

    A zarr store by :func:`load_anndata_zarr`, a folder with a scptensor
    Parquet manifest by :func:`load_parquet`, anything else by :func:`load_hdf5`.  Options: ``assays``, ``layers``,
    ``obs_columns``, ``samples``, ``features`` (every format), ``assay`` (AnnData files of other tools), ``verify``
    (every format; ``False`` reads data as stored, without the checksums).
    """
    if is_zarr_store(path):
        return load_anndata_zarr(path, classes=OURS, **options)
    if Path(path).is_dir():
        options.pop("assay", None)
        return load_parquet(path, classes=OURS, **options)
    return load_hdf5(path, classes=OURS, **options)
