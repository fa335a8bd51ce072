"""Saving and loading containers.

``save_hdf5``/``load_hdf5`` handle the scptensor HDF5 format (2.0; 1.0 files
load with a :class:`~h5scp.core.exceptions.LegacyFormatWarning`);
``save_parquet``/``load_parquet`` handle the scptensor Parquet format (a folder
of long-form Parquet files); ``save`` picks the format by extension (the table
:data:`h5scp.io.format_table.FORMAT_TABLE`) and ``load`` by content, reading
only the parts asked for (``assays``, ``layers``, ``obs_columns``, ``samples``, ``features``).  Writes are atomic: the file appears complete or not at all, and an
existing file stays intact until its replacement is complete.

Example
-------
>>> container.save("analysis.h5")                 # doctest: +SKIP
>>> loaded = ScpContainer.load("analysis.h5")     # doctest: +SKIP
"""

from h5scp.io.exceptions import (
    IOFormatError,
    IOPasswordError,
    IOSaveInProgressError,
    IOSourceNotFoundError,
    IOTargetExistsError,
    IOWriteError,
    IOWriterClaimError,
)
from h5scp.io.exporters import save_hdf5
from h5scp.io.formats import FORMATS, format_for, load, save
from h5scp.io.formats_h5ad import load_h5ad, save_h5ad
from h5scp.io.formats_h5mu import load_h5mu, save_h5mu
from h5scp.io.formats_parquet import load_parquet, save_parquet
from h5scp.io.formats_zarr import load_anndata_zarr, save_anndata_zarr
from h5scp.io.importers import load_hdf5
from h5scp.io.serializers import (  # the original's public helpers
    deserialize_dataframe,
    serialize_dataframe,
    serialize_dense_matrix,
    serialize_sparse_matrix,
)

__all__ = [
    "IOFormatError",
    "IOPasswordError",
    "IOWriteError",
    "IOTargetExistsError",
    "IOWriterClaimError",
    "IOSourceNotFoundError",
    "IOSaveInProgressError",
    "save_hdf5",
    "load_hdf5",
    "save_h5mu",
    "load_h5mu",
    "save_h5ad",
    "load_h5ad",
    "save_parquet",
    "load_parquet",
    "save_anndata_zarr",
    "load_anndata_zarr",
    "save",
    "load",
    "format_for",
    "FORMATS",
    "deserialize_dataframe",
    "serialize_dataframe",
    "serialize_dense_matrix",
    "serialize_sparse_matrix",
]
