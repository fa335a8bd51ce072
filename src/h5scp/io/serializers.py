"""Element-level conversion of ``scptensor`` parts to and from HDF5 objects.

Frames, arrays and sparse matrices are written with the engine's element
codecs (:func:`h5stream.elements.write_elem`), so every element says what it is
through ``encoding-type``/``encoding-version`` and reads with
``anndata.io.read_elem`` as well as with ours.  Values keep their dtype: a
float64 matrix stays float64 and a CSC matrix stays CSC.

The history is stored as one frame of records (timestamp, action,
software_version, description; nulls kept) plus one mapping of parameters per
entry, keyed by position, so numpy scalars and arrays in parameters round-trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np
import polars as pl
from scipy import sparse

from h5stream.compression import CODECS
from h5stream.elements import read_elem, write_elem
from h5scp.core.structures import ProvenanceLog
from h5scp.io import json_values
from h5scp.io.exceptions import IOFormatError
from h5scp.io.legacy import read_columns_v1, read_history_v1

__all__ = [
    "serialize_dataframe",
    "deserialize_dataframe",
    "serialize_dense_matrix",
    "serialize_sparse_matrix",
    "deserialize_matrix",
    "normalize_sparse",
    "serialize_provenance",
    "deserialize_provenance",
    "provenance_to_element",
    "provenance_from_element",
    "compression_options",
    "AUTO",
    "is_auto",
    "matrix_options",
    "mask_level",
    "MASK_GZIP_LEVEL",
]

_RECORD_SCHEMA = {
    "timestamp": pl.String,
    "action": pl.String,
    "software_version": pl.String,
    "description": pl.String,
}


#: ``compression="auto"``, the default of h5scp's HDF5 writers (``.h5``, ``.h5ad``, ``.h5mu``): gzip at
#: this level (with the shuffle filter for matrices) for an array whose sampled chunks keep at most
#: :data:`AUTO_SHRINKS_TO` of their bytes, no compression for the others.  Only HDF5's built-in
#: filters, so plain h5py, anndata, mudata and scanpy read every file.  On a disk that writes and
#: reads 0.8-1 GB/s, deflating and inflating a byte costs about as much time as writing and reading
#: it, so compression saves time only where most bytes go away: measured intensities (float64
#: log-normal values) keep 0.7-0.93 of their bytes and sparse indices about a third, and are stored
#: plain; masks and matrices nine tenths missing shrink to a fifth or less, quickly, and are deflated.
AUTO = "auto"
AUTO_LEVEL = 1
AUTO_SHRINKS_TO = 0.25


def is_auto(compression: str | None) -> bool:
    """Whether ``compression`` is :data:`AUTO`."""
    return isinstance(compression, str) and compression.lower() == AUTO


def compression_options(compression: str | None, compression_level: int | None) -> dict[str, Any]:
    """Keyword arguments of ``write_elem`` for a compression name and level.

    gzip chunks are deflated by libdeflate when it is installed (``deflate="auto"``):
    the same zlib streams HDF5's built-in filter reads, at the same level, about
    twice as fast as zlib and at least as small.  ``"auto"``: see :data:`AUTO`.
    """
    if compression is None:
        return {"compression": None}
    if is_auto(compression):
        level = AUTO_LEVEL if compression_level is None else compression_level
        return {"compression": "gzip", "compression_opts": level, "deflate": "auto", "only_if_shrinks_to": AUTO_SHRINKS_TO}
    codec = CODECS.get(str(compression).lower())  # an unknown name is refused by write_elem
    level = compression_level if codec is None or codec.takes_level else None
    options: dict[str, Any] = {"compression": compression, "compression_opts": level}
    if codec is not None and codec.parallel_kernel == "deflate":
        options["deflate"] = "auto"
    return options


#: gzip level of mask codes (int8 ``M``) whatever the data's level, unless that is 0.  Mask codes
#: are few distinct values: at level 1 they deflate to about a fifth, three times faster than at
#: level 4 for a file about 2% of the data's size larger (5,000 x 2,000 mask with 30% missing:
#: 0.04 s and 1.9 MB at level 1, 0.11 s and 1.6 MB at level 4).
MASK_GZIP_LEVEL = 1


def mask_level(compression: str | None, compression_level: int | None) -> int | None:
    """The level a mask is written at: :data:`MASK_GZIP_LEVEL` for gzip above it, else ``compression_level``."""
    if compression is not None and str(compression).lower() == "gzip" and compression_level is not None:
        return min(int(compression_level), MASK_GZIP_LEVEL)
    return compression_level


def matrix_options(values: Any, compression: str | None, compression_level: int | None) -> dict[str, Any]:
    """``write_elem`` options for a matrix, or a mapping of matrices.

    Compressed sparse matrices get the shuffle filter (see
    :func:`serialize_sparse_matrix`); a mapping gets it when every member is sparse;
    with ``"auto"`` every matrix gets it (the byte planes of numbers: exponents and
    NaN's bits compress, the low bytes of measured values are noise).
    """
    options = compression_options(compression, compression_level)
    members = list(values.values()) if isinstance(values, Mapping) else [values]
    if compression is not None and (is_auto(compression) or (members and all(sparse.issparse(m) for m in members))):
        options["shuffle"] = True
    return options


def _replace_with_element(group: h5py.Group, value: Any, **options: Any) -> h5py.Group:
    """Write ``value`` as an element in place of the empty group ``group``."""
    if len(group):
        raise ValueError(f"group {group.name} is not empty; pass a new, empty group")
    parent, name = group.parent, group.name.rsplit("/", 1)[-1]
    attrs = dict(group.attrs)
    del parent[name]
    write_elem(parent, name, value, **options)
    for key, attr in attrs.items():
        parent[name].attrs.setdefault(key, attr)
    return parent[name]


def serialize_dataframe(df: pl.DataFrame, group: h5py.Group, *, id_col: str | None = None) -> None:
    """Write a polars DataFrame into the empty group ``group`` (AnnData ``dataframe`` encoding).

    Parameters
    ----------
    df : polars.DataFrame
        Frame to store; every dtype and the column order are kept.
    group : h5py.Group
        Empty group that becomes the dataframe element.
    id_col : str, optional
        Column stored as the AnnData row index (``_index`` attribute).  Without
        it, a column named ``_index`` (AnnData's name for row labels) is the
        index; a frame without one gets the labels "0", "1", ...
    """
    if id_col is None and "_index" in df.columns:
        id_col = "_index"
    options = {"index": id_col} if id_col is not None else {}
    _replace_with_element(group, df, **options)


def deserialize_dataframe(group: h5py.Group) -> pl.DataFrame:
    """Read a frame written by :func:`serialize_dataframe`, or a 1.0 group of plain column datasets."""
    if "encoding-type" in group.attrs:
        frame = read_elem(group)
        if not isinstance(frame, pl.DataFrame):
            raise TypeError(f"{group.name} holds {type(frame).__name__}, not a dataframe")
        return frame
    return read_columns_v1(group)


def serialize_dense_matrix(
    X: np.ndarray,
    group: h5py.Group,
    name: str = "X",
    compression: str | None = "gzip",
    compression_level: int = 4,
) -> None:
    """Write a dense array as element ``name`` of ``group``, keeping its dtype."""
    X = np.asarray(X)
    write_elem(group, name, X, **matrix_options(X, compression, compression_level))


def serialize_sparse_matrix(
    X,
    group: h5py.Group,
    name: str = "X",
    compression: str | None = "gzip",
    compression_level: int = 4,
) -> None:
    """Write a SciPy CSR or CSC matrix as element ``name`` of ``group``, keeping its format.

    Other sparse formats are stored as CSR.  Compressed sparse parts also get
    the standard shuffle filter: the sorted ``indices`` shrink by about a fifth
    and deflate faster (measured on 5% dense peptide matrices).
    """
    if X.format not in ("csr", "csc"):
        X = sparse.csr_matrix(X)
    write_elem(group, name, X, **matrix_options(X, compression, compression_level))


def normalize_sparse(value):
    """Sparse values as ``csr_matrix``/``csc_matrix`` (the model's types); anything else unchanged."""
    if sparse.issparse(value):
        if value.format == "csr" and not isinstance(value, sparse.csr_matrix):
            return sparse.csr_matrix(value)
        if value.format == "csc" and not isinstance(value, sparse.csc_matrix):
            return sparse.csc_matrix(value)
    return value


def deserialize_matrix(obj):
    """Read a dense or sparse matrix element; sparse results are ``csr_matrix``/``csc_matrix``."""
    return normalize_sparse(read_elem(obj))


def provenance_to_element(history: Sequence[ProvenanceLog], *, params_as_json: bool = False) -> dict[str, Any]:
    """The history as an element value: a frame of records and a mapping of parameters.

    ``params_as_json`` stores each entry's parameters as exact tagged JSON text
    (:mod:`h5scp.io.json_values`) instead of a mapping element, for files
    that AnnData's readers must open whole.
    """
    records = pl.DataFrame(
        {
            "timestamp": [h.timestamp for h in history],
            "action": [h.action for h in history],
            "software_version": [h.software_version for h in history],
            "description": [h.description for h in history],
        },
        schema=_RECORD_SCHEMA,
    )
    if params_as_json:
        params = {str(i): json_values.dumps(dict(h.params), obj=f"history/{i}/params") for i, h in enumerate(history)}
    else:
        params = {str(i): dict(h.params) for i, h in enumerate(history)}
    return {"records": records, "params": params}


def provenance_from_element(value: Mapping[str, Any]) -> list[ProvenanceLog]:
    """Inverse of :func:`provenance_to_element`."""
    records: pl.DataFrame = value["records"]
    params = value.get("params", {})
    history = []
    for i, row in enumerate(records.iter_rows(named=True)):
        entry_params = params.get(str(i), {})
        if isinstance(entry_params, str):
            entry_params = json_values.loads(entry_params)
        history.append(
            ProvenanceLog(
                timestamp=row["timestamp"],
                action=row["action"],
                params=dict(entry_params),
                software_version=row["software_version"],
                description=row["description"],
            )
        )
    return history


def serialize_provenance(history: Sequence[ProvenanceLog], group: h5py.Group) -> None:
    """Write the operation history into ``group`` (members ``records`` and ``params``)."""
    for key, value in provenance_to_element(history).items():
        write_elem(group, key, value)


def deserialize_provenance(group: h5py.Group) -> list[ProvenanceLog]:
    """Read a history written by :func:`serialize_provenance`, or the 1.0 layout."""
    members = list(group)  # (one listing: h5py asks the file again for each membership test)
    if "records" in members:
        unknown = sorted(repr(name) for name in members if name not in ("records", "params"))
        if unknown:
            raise IOFormatError(
                "the history holds members it never has", path=group.file.filename, obj=group.name,
                expected="'records' and 'params'", found=", ".join(unknown),
                hint="the file is damaged; restore it from a copy",
            )
        value = {"records": read_elem(group["records"])}
        if "params" in members:
            value["params"] = read_elem(group["params"])
            known = {str(i) for i in range(value["records"].height)}
            stray = sorted(repr(k) for k in value["params"] if k not in known)
            if stray:
                raise IOFormatError(
                    "parameters of entries the history does not have", path=group.file.filename,
                    obj=f"{group.name}/params", expected=f"keys '0'..'{len(known) - 1}'", found=", ".join(stray),
                    hint="the file is damaged; restore it from a copy",
                )
        return provenance_from_element(value)
    return read_history_v1(group)
