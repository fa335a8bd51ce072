"""AnnData and MuData files written by other tools (anndata, scanpy, mudata), imported into containers.

A file scptensor did not write has no masks, id-column names or history of
ours, so it is mapped as far as the data model allows:

=====================================  ==============================================
AnnData / MuData                       container
=====================================  ==============================================
``obs`` (row labels = index)           ``obs``; the index becomes the id column, named
                                       after the index (``_index`` when unnamed)
``var``                                the assay's ``var``, id column likewise
``X``                                  layer ``"X"`` (dense, CSR or CSC as stored)
``layers/<name>``                      layer ``<name>``
``uns`` values with a JSON-like form   ``params["uns"]`` of an ``import`` history entry
``obsm``, ``varm``, ``obsp``,          not imported: listed in the history entry's
``varp``, ``raw``, other ``uns``       ``params["not_imported"]`` and logged
=====================================  ==============================================

An ``.h5ad`` holds one assay (named by ``assay=``, default ``"main"``); an
``.h5mu`` one assay per modality, each modality's samples
matched to the global ``obs`` by id (every modality must hold every sample).
"""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import polars as pl

from h5stream.elements import read_elem
from scptensor.core.structures import Assay, ProvenanceLog, ScpContainer, ScpMatrix
from scptensor.io._files import guarded, root_attr
from scptensor.io.exceptions import IOFormatError
from scptensor.io.serializers import deserialize_matrix, normalize_sparse

__all__ = ["import_anndata", "import_mudata", "DEFAULT_ASSAY", "X_LAYER"]

logger = logging.getLogger(__name__)

DEFAULT_ASSAY = "main"
X_LAYER = "X"
_UNMAPPED_GROUPS = ("obsm", "varm", "obsp", "varp", "raw")


def _frame(group: h5py.Group, key: str, path: Path) -> tuple[pl.DataFrame, str]:
    """A foreign data frame and the name of its id column (the AnnData index, first column)."""
    if key not in group:
        raise IOFormatError(
            "required element is missing", path=path, obj=f"{group.name.rstrip('/')}/{key}",
            expected="an AnnData dataframe", found="nothing",
        )
    with guarded(path, f"{group.name.rstrip('/')}/{key}"):
        frame = read_elem(group[key])
    if not isinstance(frame, pl.DataFrame) or not frame.columns:
        raise IOFormatError(
            "element is not a data frame with row labels", path=path, obj=f"{group.name.rstrip('/')}/{key}",
            expected="an AnnData dataframe", found=type(frame).__name__,
        )
    return frame, frame.columns[0]


def _jsonable(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biufcUS"
    if isinstance(value, (list, tuple)):
        return all(_jsonable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _jsonable(v) for k, v in value.items())
    return False


def _uns(group: h5py.Group, path: Path, prefix: str, skipped: list[str]) -> dict[str, Any]:
    """The ``uns`` entries that map to history parameters; the others go to ``skipped``."""
    if "uns" not in group:
        return {}
    kept = {}
    for key in group["uns"]:
        where = f"{prefix}uns/{key}"
        try:
            with guarded(path, f"{group.name.rstrip('/')}/uns/{key}"):
                value = read_elem(group["uns"][key])
        except IOFormatError as exc:
            skipped.append(f"{where} (unreadable: {exc.args[0] if exc.args else exc})")
            continue
        if _jsonable(value):
            kept[key] = value
        else:
            skipped.append(f"{where} ({type(value).__name__})")
    return kept


def _assay(group: h5py.Group, path: Path, prefix: str, skipped: list[str]) -> Assay:
    var, feature_id_col = _frame(group, "var", path)
    layers: dict[str, ScpMatrix] = {}
    with guarded(path, f"{group.name.rstrip('/')}/X"):
        if "X" in group:
            layers[X_LAYER] = ScpMatrix(deserialize_matrix(group["X"]))
        if "layers" in group:
            for name, value in read_elem(group["layers"]).items():
                if name in layers:
                    skipped.append(f"{prefix}layers/{name} (name taken by X)")
                    continue
                layers[name] = ScpMatrix(normalize_sparse(value))
    for name in _UNMAPPED_GROUPS:
        if name in group:
            member = group[name]
            members = list(member) if isinstance(member, h5py.Group) and name != "raw" else [""]
            skipped.extend(f"{prefix}{name}/{m}".rstrip("/") for m in members)
    with guarded(path, group.name):
        return Assay(var, layers, feature_id_col=feature_id_col)


def _history(kind: str, path: Path, uns: dict[str, Any], skipped: list[str]) -> list[ProvenanceLog]:
    if skipped:
        logger.warning("%s: imported from a %s file not written by scptensor; not imported: %s",
                       path, kind, ", ".join(skipped))
    params: dict[str, Any] = {"source": str(path), "format": kind, "not_imported": list(skipped)}
    if uns:
        params["uns"] = uns
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat()
    from scptensor import __version__

    return [ProvenanceLog(stamp, f"import_{kind.lower()}", params, __version__,
                          f"imported from {path.name}; {len(skipped)} element(s) not imported")]


def import_anndata(f: h5py.File, path: Path, *, assay: str | None = None) -> ScpContainer:
    """A one-assay container from an AnnData file of another tool (see the module docstring)."""
    skipped: list[str] = []
    obs, sample_id_col = _frame(f, "obs", path)
    data = _assay(f, path, "", skipped)
    uns = _uns(f, path, "", skipped)
    with guarded(path, "/"):
        return ScpContainer(obs, {assay or DEFAULT_ASSAY: data}, history=_history("AnnData", path, uns, skipped),
                            sample_id_col=sample_id_col)


def _aligned(assay: Assay, mod_obs: pl.DataFrame, ids: pl.Series, path: Path, name: str) -> Assay:
    """The assay's layers in the order of the global sample ids."""
    own = mod_obs.get_column(mod_obs.columns[0])
    if own.len() == ids.len() and own.equals(ids):
        return assay
    position = {v: i for i, v in enumerate(own.to_list())}
    missing = [v for v in ids.to_list() if v not in position]
    if missing or own.len() != ids.len():
        raise IOFormatError(
            "modality does not hold every sample", path=path, obj=f"/mod/{name}/obs",
            expected=f"the {ids.len()} samples of /obs", found=f"{own.len()} samples, {len(missing)} of /obs missing",
            hint="a container's assays share their samples; subset the MuData object to common samples first",
        )
    order = np.array([position[v] for v in ids.to_list()], dtype=np.int64)
    layers = {k: ScpMatrix(m.X[order]) for k, m in assay.layers.items()}
    return Assay(assay.var, layers, feature_id_col=assay.feature_id_col)


def import_mudata(f: h5py.File, path: Path) -> ScpContainer:
    """A container from a MuData file of another tool: one assay per modality, in ``mod-order``."""
    if root_attr(f, "axis", 0) not in (0, None):
        raise IOFormatError(
            "MuData file shares features instead of samples", path=path, obj="/@axis",
            expected="axis 0 (modalities share samples)", found=repr(root_attr(f, "axis")),
        )
    skipped: list[str] = []
    obs, sample_id_col = _frame(f, "obs", path)
    ids = obs.get_column(sample_id_col)
    if "mod" not in f:
        raise IOFormatError("MuData file has no modalities", path=path, obj="/mod",
                            expected="a group /mod", found="nothing")
    mods = f["mod"]
    order = [m.decode() if isinstance(m, bytes) else str(m) for m in mods.attrs.get("mod-order", [])] or list(mods)
    assays = {}
    for name in order:
        group = mods[name]
        mod_obs, _ = _frame(group, "obs", path)
        assays[name] = _aligned(_assay(group, path, f"mod/{name}/", skipped), mod_obs, ids, path, name)
        skipped.extend(f"mod/{name}/obs/{c}" for c in mod_obs.columns[1:])
    for name in _UNMAPPED_GROUPS:  # obsmap/varmap are MuData's own bookkeeping
        if name in f and isinstance(f[name], h5py.Group):
            skipped.extend(f"{name}/{m}" for m in f[name])
    uns = _uns(f, path, "", skipped)
    with guarded(path, "/"):
        return ScpContainer(obs, assays, history=_history("MuData", path, uns, skipped), sample_id_col=sample_id_col)
