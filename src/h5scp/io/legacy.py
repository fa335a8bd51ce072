"""Reader of the original scptensor "1.0" layout.

That layout stored one plain dataset per column (names come back sorted, as
HDF5 lists them), dense ``X`` as float32, CSR matrices as ``<name>_data``,
``<name>_indices``, ``<name>_indptr`` with group attributes ``<name>_format``
and ``<name>_shape``, dense masks as float32, and the history as parallel
string datasets with JSON params.  It kept no id column names (``_index`` is
assumed), no links and no matrix metadata.  Reading one emits
:class:`~h5scp.core.exceptions.LegacyFormatWarning`.
"""

from __future__ import annotations

import json
import logging
import os
import warnings

import h5py
import numpy as np
import polars as pl
from scipy import sparse

from h5stream import checksums
from h5scp.core.exceptions import LegacyFormatWarning
from h5scp.core.structures import Assay, ProvenanceLog, ScpContainer, ScpMatrix
from h5scp.io._files import guarded, root_attr
from h5scp.io.exceptions import IOFormatError

__all__ = ["LEGACY_VERSION", "read_container_v1", "read_columns_v1", "read_history_v1"]

logger = logging.getLogger(__name__)

LEGACY_VERSION = "1.0"
LEGACY_ID_COLUMN = "_index"
_SPARSE_FORMATS = {"csr": sparse.csr_matrix, "csc": sparse.csc_matrix}


def _dataset_values(ds: h5py.Dataset) -> np.ndarray:
    if h5py.check_string_dtype(ds.dtype) is not None:
        return np.asarray(ds.asstr()[()], dtype=object)
    return ds[()]


def read_columns_v1(group: h5py.Group) -> pl.DataFrame:
    """A frame from one dataset per column (the 1.0 layout); column order is HDF5's (sorted)."""
    columns = {}
    for name, ds in group.items():
        values = _dataset_values(ds)
        if values.dtype == object:
            columns[name] = pl.Series(name, values.tolist(), dtype=pl.String)
        else:
            columns[name] = pl.Series(name, values)
    return pl.DataFrame(columns)


def _read_whole(ds: h5py.Dataset) -> np.ndarray:
    """All of a dense dataset, through h5py, checked against the manifest's digest where it has one.

    Not the engine's ``read_array_dataset``: this layout is read inside h5py's ``items()`` walks,
    which hold h5py's lock, and that reader's parallel inflate calls h5py from other threads (they
    wait for the lock for ever)."""
    return checksums.check_dataset(ds, ds[()])


def _read_matrix_part(group: h5py.Group, name: str):
    if name in group:
        return _read_whole(group[name])
    if f"{name}_data" in group:
        fmt = root_attr(group, f"{name}_format", "csr")
        if fmt not in _SPARSE_FORMATS:
            raise IOFormatError(
                "unknown sparse format", obj=f"{group.name}@{name}_format",
                expected="csr or csc", found=repr(fmt),
            )
        shape = tuple(int(n) for n in group.attrs[f"{name}_shape"])
        parts = (group[f"{name}_data"][()], group[f"{name}_indices"][()], group[f"{name}_indptr"][()])
        return _SPARSE_FORMATS[fmt](parts, shape=shape)
    return None


def read_history_v1(group: h5py.Group) -> list[ProvenanceLog]:
    """History stored as parallel string datasets with JSON params."""
    if "action" not in group:
        return []
    fields = {name: group[name].asstr()[()] for name in group}
    history = []
    for i in range(len(fields["action"])):
        history.append(
            ProvenanceLog(
                timestamp=str(fields["timestamp"][i]),
                action=str(fields["action"][i]),
                params=json.loads(fields["params"][i]) if "params" in fields else {},
                software_version=str(fields["software_version"][i]) or None
                if "software_version" in fields else None,
                description=str(fields["description"][i]) or None if "description" in fields else None,
            )
        )
    return history


def read_container_v1(f: h5py.File, path: str | os.PathLike) -> ScpContainer:
    """Build a container from an open file in the 1.0 layout."""
    warnings.warn(
        f"{os.fspath(path)}: file is in the old scptensor format 1.0 (float32 values, sorted columns, "
        "no links); save it again to write format 2.0",
        LegacyFormatWarning,
        stacklevel=4,
    )
    logger.info("reading %s in the 1.0 layout", path)
    for required in ("obs", "assays"):
        if required not in f:
            raise IOFormatError(
                "required group is missing", path=path, obj=f"/{required}",
                expected=f"a group /{required} (format 1.0)", found="nothing",
            )
    with guarded(path, "/obs"):
        obs = read_columns_v1(f["obs"])
    assays = {}
    for name, group in f["assays"].items():
        with guarded(path, f"/assays/{name}"):
            var = read_columns_v1(group["var"])
            layers = {}
            for layer_name, layer in group.get("layers", {}).items():
                X = _read_matrix_part(layer, "X")
                if X is None:
                    raise IOFormatError(
                        "layer has no values", path=path, obj=layer.name,
                        expected="a dataset X or X_data/X_indices/X_indptr", found=f"{list(layer)}",
                    )
                layers[layer_name] = ScpMatrix(X, _read_matrix_part(layer, "M"))
            assays[name] = Assay(var, layers, feature_id_col=LEGACY_ID_COLUMN)
    history = []
    if "provenance" in f and "history" in f["provenance"]:
        with guarded(path, "/provenance/history"):
            history = read_history_v1(f["provenance"]["history"])
    return ScpContainer(obs, assays, history=history, sample_id_col=LEGACY_ID_COLUMN)
