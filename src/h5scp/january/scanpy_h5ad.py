"""The original ScpTensor's AnnData interchange: one assay's layer as an ``AnnData`` or an ``.h5ad`` file.

==========================  =====================================================
function                    layout
==========================  =====================================================
to_scanpy / from_scanpy     an ``AnnData``: one layer as ``X``, its mask as
                            ``layers["mask"]``, ids as ``_original_index`` columns
                            and as the index, history in ``uns``
write_h5ad,                 the same AnnData, as an ``.h5ad`` file (also by the
read/save/load_scanpy_h5ad  original's names ``read_h5ad``, ``save_h5ad``, ``load_h5ad``)
==========================  =====================================================

AnnData is read through the one mapping of AnnData files (:func:`h5scp.io.foreign.import_anndata`),
then the original's conventions; anndata itself is needed to make an ``AnnData``, not to read a
file.  One layer is carried; exact storage of everything: :func:`h5scp.io.save_hdf5`, or the
scptensor format's ``.h5ad`` with every layer of an assay, :func:`h5scp.io.save_h5ad`.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
from scipy import sparse as sp

from h5stream import jsonvalues
from h5scp.core.exceptions import MissingDependencyError, ValidationError
from h5scp.core.structures import Assay, MatrixMetadata, ScpContainer, ScpMatrix
from h5scp.january._common import _history_from_json, _history_to_json, _pick, _write

__all__ = ["save_h5ad", "load_h5ad", "save_scanpy_h5ad", "load_scanpy_h5ad", "read_scanpy_h5ad",
           "from_scanpy", "to_scanpy", "read_h5ad", "write_h5ad"]

# --------------------------------------------------------------------------- AnnData


def _anndata():
    try:
        import anndata
    except ImportError:
        raise MissingDependencyError("anndata") from None
    return anndata


def _to_pandas(frame: pl.DataFrame, id_col: str):
    renamed = frame.rename({"_index": "_original_index"}) if id_col == "_index" else frame
    pdf = renamed.to_pandas()
    pdf.index = [str(v) for v in frame.get_column(id_col).to_list()]
    return pdf


def to_scanpy(container: ScpContainer, assay_name: str | None = None, layer_name: str = "X"):
    """An ``anndata.AnnData`` of one assay's layer (default: the first assay, layer "X").

    obs and var keep their id columns (``_index`` is renamed ``_original_index``, as the
    original did) and the ids become the index; the mask is ``layers["mask"]``; the history
    (with exact parameters), names and id columns are in ``uns``.
    """
    ad = _anndata()
    name, assay, matrix = _pick(container, assay_name, layer_name)
    adata = ad.AnnData(X=matrix.X.copy(), obs=_to_pandas(container.obs, container.sample_id_col),
                       var=_to_pandas(assay.var, assay.feature_id_col))
    if matrix.M is not None:
        adata.layers["mask"] = matrix.M.copy()
    history = [dict(e, params=jsonvalues.dumps(e["params"], obj="history params"))
               for e in _history_to_json(container.history)]
    adata.uns["scptensor_history_json"] = json.dumps(history)
    adata.uns["scptensor_assay_name"] = name
    adata.uns["scptensor_layer_name"] = layer_name
    adata.uns["scptensor_sample_id_col"] = container.sample_id_col
    adata.uns["scptensor_feature_id_col"] = assay.feature_id_col
    info = matrix.metadata.creation_info
    if info is not None:
        adata.uns["scptensor_matrix_metadata"] = {"creation_info": info}
    return adata


def _params(text) -> dict:
    # the original wrote str(params), which is not JSON: those parameters are lost, as there
    try:
        value = jsonvalues.loads(text) if isinstance(text, str) else text
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def _frame_with_ids(frame: pl.DataFrame, id_col: str) -> tuple[pl.DataFrame, str]:
    """An AnnData frame as read (its index first) in the original's layout: an ``_original_index``
    column is the ``_index`` id column again, a named id column stays, else the index is ``_index``."""
    index, columns = frame.columns[0], frame.columns[1:]
    ids = frame.get_column(index).cast(pl.String)
    if not columns:
        return pl.DataFrame({"_index": ids}), "_index"
    body = frame.select(columns)
    if "_original_index" in columns and id_col == "_index":
        return body.rename({"_original_index": "_index"}), "_index"
    if id_col in columns:
        return body, id_col
    if "_index" not in columns:
        body = body.with_columns(ids.alias("_index"))
    return body, "_index"


def _from_anndata_file(f, source, assay_name: str, layer_name: str, provenance: bool = True,
                       stored_name: bool = False) -> ScpContainer:
    """The original's AnnData layout, read through the one mapping of AnnData files
    (:func:`h5scp.io.foreign.import_anndata`: obs and var with their index, ``X`` and ``layers``
    as layers, JSON-like ``uns`` values), then its conventions: ``layers["mask"]`` is the mask of
    ``X``, ids and history come from the ``scptensor_*`` entries of ``uns``."""
    from h5scp.io.foreign import X_LAYER, import_anndata  # the formats load on first use

    imported = import_anndata(f, Path(source), assay=assay_name)
    assay = imported.assays[assay_name]
    uns = imported.history[-1].params.get("uns", {})
    if stored_name:  # the name save_h5ad stored, else the one given
        assay_name = str(uns.get("scptensor_assay_name", assay_name))
    if X_LAYER not in assay.layers:
        raise ValidationError("the AnnData has no X", field="X", expected="a matrix", found="None")
    X = assay.layers[X_LAYER].X
    M = assay.layers["mask"].X.astype(np.int8) if "mask" in assay.layers else None
    obs, sample_id_col = _frame_with_ids(imported.obs, str(uns.get("scptensor_sample_id_col", "_index")))
    var, feature_id_col = _frame_with_ids(assay.var, str(uns.get("scptensor_feature_id_col", "_index")))
    meta = MatrixMetadata(creation_info={"source": "scanpy", "original_shape": list(X.shape),
                                         "is_sparse": bool(sp.issparse(X))}) if provenance else None
    history = []
    if "scptensor_history_json" in uns:
        try:
            entries = json.loads(uns["scptensor_history_json"])
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValidationError("uns['scptensor_history_json'] is not JSON", found=str(exc)) from None
        history = _history_from_json(entries, "AnnData uns", params_from=_params)
    matrix = ScpMatrix(X, M, meta)
    return ScpContainer(obs, {assay_name: Assay(var, {layer_name: matrix}, feature_id_col=feature_id_col)},
                        history=history, sample_id_col=sample_id_col)


def _from_anndata(adata, assay_name: str, layer_name: str) -> ScpContainer:
    """An in-memory AnnData through the same mapping: anndata writes it into an HDF5 file in memory."""
    import h5py

    try:
        from anndata.io import write_elem
    except ImportError:  # anndata before 0.11
        from anndata.experimental import write_elem

    with h5py.File(io.BytesIO(), "w") as f:
        write_elem(f, "/", adata)
        return _from_anndata_file(f, "<AnnData in memory>", assay_name, layer_name)


def from_scanpy(adata, assay_name: str = "proteins", layer_name: str = "X", copy: bool = True) -> ScpContainer:
    """A container with one assay from an ``anndata.AnnData``: ``X`` as layer ``layer_name``,
    ``layers["mask"]`` as its mask, obs and var with their ids (``_original_index`` columns
    written by :func:`to_scanpy` become ``_index`` again, else the index becomes ``_index``),
    the history from ``uns``, and a "from_scanpy" history entry.  Read through the mapping of
    AnnData files, the container never shares memory with ``adata`` (the original's ``copy=False`` did)."""
    _anndata()
    container = _from_anndata(adata, assay_name, layer_name)
    _log_from_scanpy(container, assay_name, layer_name)
    return container


def _log_from_scanpy(container: ScpContainer, assay_name: str, layer_name: str) -> None:
    X = container.assays[assay_name].layers[layer_name].X
    shape = list(X.shape)
    container.log_operation(
        "from_scanpy",
        {"assay_name": assay_name, "layer_name": layer_name, "original_shape": shape,
         "was_sparse": bool(sp.issparse(X))},
        f"Converted from Scanpy AnnData (shape: {tuple(shape)})",
    )


def _write_anndata(adata, path: str | os.PathLike, **kwargs) -> None:
    target = Path(path)
    with tempfile.TemporaryDirectory(dir=target.parent if target.parent.is_dir() else None) as tmp:
        partial = Path(tmp) / target.name
        adata.write_h5ad(partial, **kwargs)
        _write(target, partial.read_bytes())


def write_h5ad(container: ScpContainer, path: str | os.PathLike, *, assay_name: str | None = None,
               layer_name: str = "X", **kwargs) -> None:
    """:func:`to_scanpy`, written to ``path`` (``kwargs`` go to ``AnnData.write_h5ad``)."""
    _write_anndata(to_scanpy(container, assay_name=assay_name, layer_name=layer_name), path, **kwargs)


def read_scanpy_h5ad(path: str | os.PathLike, assay_name: str = "imported", layer_name: str = "X", **kwargs) -> ScpContainer:
    """:func:`from_scanpy` of the AnnData in ``path`` (read by h5scp; ``kwargs`` go to
    ``anndata.read_h5ad``, which then reads it)."""
    if kwargs:
        return from_scanpy(_anndata().read_h5ad(path, **kwargs), assay_name=assay_name, layer_name=layer_name)
    container = _read_anndata_file(path, assay_name, layer_name, stored_name=False, provenance=True)
    _log_from_scanpy(container, assay_name, layer_name)
    return container


def save_scanpy_h5ad(container: ScpContainer, path: str | os.PathLike, *, assay_name: str | None = None,
              layer_name: str = "X") -> None:
    """:func:`write_h5ad` of one assay's layer (the original's ``scptensor.core.save_h5ad``).

    (The scptensor format with every layer of an assay is :func:`h5scp.io.save_h5ad`.)
    """
    write_h5ad(container, path, assay_name=assay_name, layer_name=layer_name)


def load_scanpy_h5ad(path: str | os.PathLike, *, assay_name: str = "imported") -> ScpContainer:
    """The original's ``load_h5ad``: an ``.h5ad`` as a container with one assay (named as stored
    by :func:`save_h5ad`, else ``assay_name``) whose layer "X" holds X and the mask."""
    return _read_anndata_file(path, assay_name, "X", stored_name=True, provenance=False)


def _read_anndata_file(path, assay_name: str, layer_name: str, *, stored_name: bool, provenance: bool) -> ScpContainer:
    from h5scp.io._files import reading
    from h5scp.io.formats_h5ad import check_h5ad

    source = Path(path)
    with reading(source, check_h5ad(source), verify=False) as f:
        return _from_anndata_file(f, source, assay_name, layer_name, provenance=provenance, stored_name=stored_name)


# The original's names at its path (``scptensor.core``), for the one-layer layout above; ``h5scp.io``'s
# save_h5ad/load_h5ad are the scptensor format's.
read_h5ad = read_scanpy_h5ad
save_h5ad = save_scanpy_h5ad
load_h5ad = load_scanpy_h5ad
