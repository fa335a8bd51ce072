"""The original ScpTensor's CSV folders and NPZ archives.

==========================  =====================================================
function                    layout
==========================  =====================================================
save_csv / load_csv         a folder: ``obs.csv``, ``assay_<a>_var.csv``,
                            ``assay_<a>_<layer>.csv`` (sample ids, then one column
                            per feature), ``assay_<a>_<layer>_mask.csv``,
                            ``metadata.json`` (sample id column, assays, history)
save_npz / load_npz         one ``.npz`` whose ``_metadata`` entry is JSON text of
                            obs, every assay's var and layers, history and links
==========================  =====================================================

These read and write the original's layouts, so files it wrote load here and files written here
load in it.  CSV carries one layer and both store numbers as text (exact dtypes are lost); exact
storage of everything: :func:`h5scp.io.save_hdf5`.  Every file is written beside the target and
renamed into place (a failed write leaves the old one).  NPZ archives of the original keep their
JSON text as a pickled object array; it is read with an unpickler that admits only numpy's array
reconstruction, never arbitrary code.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import sparse as sp

from h5scp.core.exceptions import LayerNotFoundError, ValidationError
from h5scp.core.structures import AggregationLink, Assay, MatrixMetadata, ScpContainer, ScpMatrix
from h5scp.january._common import _dense, _history_from_json, _history_to_json, _plain, _write

__all__ = ["save_csv", "load_csv", "save_npz", "load_npz"]

_NPZ_KEY = "_metadata"
_NPZ_VERSION = "0.1.0"
_ARRAY_FIELDS = ("confidence_scores", "detection_limits", "imputation_quality", "outlier_scores")



def _csv_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_csv(buffer)
    return buffer.getvalue()


def _matrix_frame(ids: list, feature_ids: list, values: np.ndarray) -> pl.DataFrame:
    columns = {"_index": ids}
    for j, fid in enumerate(feature_ids):
        columns[str(fid)] = values[:, j]
    return pl.DataFrame(columns)


def save_csv(container: ScpContainer, path: str | os.PathLike, *, layer_name: str = "X", mask: bool = True) -> None:
    """Write ``container`` as the original's CSV folder at ``path`` (created if missing).

    Every assay must have layer ``layer_name``; its values (sparse ones densified) and, with
    ``mask``, its mask are written.  Each file is replaced atomically.
    """
    folder = Path(path)
    for name, assay in container.assays.items():
        if layer_name not in assay.layers:
            raise LayerNotFoundError(layer_name, name, available_layers=list(assay.layers))
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "version": _NPZ_VERSION,
        "n_samples": container.n_samples,
        "sample_id_col": container.sample_id_col,
        "assays": list(container.assays),
        "feature_id_cols": {n: a.feature_id_col for n, a in container.assays.items()},
        "history": _history_to_json(container.history),
    }
    _write(folder / "metadata.json", json.dumps(meta, indent=2, default=_plain).encode())
    _write(folder / "obs.csv", _csv_bytes(container.obs))
    ids = container.sample_ids.to_list()
    for name, assay in container.assays.items():
        _write(folder / f"assay_{name}_var.csv", _csv_bytes(assay.var))
        matrix = assay.layers[layer_name]
        features = assay.feature_ids.to_list()
        _write(folder / f"assay_{name}_{layer_name}.csv", _csv_bytes(_matrix_frame(ids, features, _dense(matrix.X))))
        if mask and matrix.M is not None:
            _write(folder / f"assay_{name}_{layer_name}_mask.csv",
                   _csv_bytes(_matrix_frame(ids, features, _dense(matrix.M))))


def _read_csv(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise ValidationError(f"{path.name} not found in {path.parent}", obj=str(path), expected="a CSV file",
                              found="nothing", hint="write the folder with save_csv")
    return pl.read_csv(path)


def _matrix_from_frame(frame: pl.DataFrame, ids: list, features: list, path: Path, dtype) -> np.ndarray:
    if frame.height != len(ids) or frame.columns[1:] != [str(f) for f in features]:
        raise ValidationError(
            "matrix CSV does not match obs and var", obj=str(path),
            expected=f"{len(ids)} rows and feature columns {[str(f) for f in features][:5]}...",
            found=f"{frame.height} rows and columns {frame.columns[1:6]}...",
        )
    if [str(v) for v in frame.get_column(frame.columns[0]).to_list()] != [str(v) for v in ids]:
        raise ValidationError("matrix CSV rows are not the samples of obs.csv in order", obj=str(path))
    return frame.select(frame.columns[1:]).to_numpy().astype(dtype)


def load_csv(path: str | os.PathLike, *, layer_name: str = "X", mask: bool = True) -> ScpContainer:
    """Read a CSV folder written by :func:`save_csv` (or by the original ScpTensor).

    Column types are inferred by polars; values become float64 and masks int8.
    """
    folder = Path(path)
    meta_path = folder / "metadata.json"
    if not meta_path.is_file():
        raise ValidationError(f"metadata.json not found in {folder}", obj=str(folder),
                              expected="a folder written by save_csv", found="no metadata.json")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError("metadata.json is not JSON", obj=str(meta_path), found=str(exc)) from None
    obs = _read_csv(folder / "obs.csv")
    sample_id_col = meta.get("sample_id_col", "_index")
    ids = obs.get_column(sample_id_col).to_list() if sample_id_col in obs.columns else []
    assays = {}
    for name in meta.get("assays", []):
        var = _read_csv(folder / f"assay_{name}_var.csv")
        feature_id_col = meta.get("feature_id_cols", {}).get(name) or ("_index" if "_index" in var.columns else var.columns[0])
        features = var.get_column(feature_id_col).to_list()
        data_path = folder / f"assay_{name}_{layer_name}.csv"
        X = _matrix_from_frame(_read_csv(data_path), ids, features, data_path, np.float64)
        M = None
        mask_path = folder / f"assay_{name}_{layer_name}_mask.csv"
        if mask and mask_path.is_file():
            M = _matrix_from_frame(pl.read_csv(mask_path), ids, features, mask_path, np.int64)
        assays[name] = Assay(var, {layer_name: ScpMatrix(X, M)}, feature_id_col=feature_id_col)
    history = _history_from_json(meta.get("history"), meta_path)
    return ScpContainer(obs, assays, history=history, sample_id_col=sample_id_col)


# --------------------------------------------------------------------------- NPZ


def _frame_json(frame: pl.DataFrame) -> dict:
    return {"columns": {c: frame.get_column(c).to_list() for c in frame.columns},
            "dtypes": {c: str(t) for c, t in frame.schema.items()}}


_SIMPLE_DTYPES = {str(t): t for t in (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32,
                                      pl.UInt64, pl.Float32, pl.Float64, pl.Boolean, pl.String)}


def _frame_from_json(data: dict) -> pl.DataFrame:
    frame = pl.DataFrame(data["columns"]) if data["columns"] else pl.DataFrame()
    casts = [pl.col(c).cast(_SIMPLE_DTYPES[t]) for c, t in data.get("dtypes", {}).items()
             if t in _SIMPLE_DTYPES and c in frame.columns and frame.schema[c] != _SIMPLE_DTYPES[t]]
    return frame.with_columns(casts) if casts else frame


def _sparse_json(matrix) -> dict:
    fmt = matrix.format if matrix.format in ("csr", "csc") else "csr"
    m = matrix.asformat(fmt)
    return {"format": fmt, "data": m.data.tolist(), "indices": m.indices.tolist(), "indptr": m.indptr.tolist(),
            "shape": list(m.shape)}


def _sparse_from_json(d: dict):
    cls = {"csr": sp.csr_matrix, "csc": sp.csc_matrix}.get(d.get("format"))
    if cls is None:
        raise ValidationError(f"Unknown sparse format: {d.get('format')}", expected="csr or csc")
    return cls((np.asarray(d["data"]), np.asarray(d["indices"]), np.asarray(d["indptr"])), shape=tuple(d["shape"]))


def _put(out: dict, key: str, value) -> None:
    if sp.issparse(value):
        out[key], out[f"{key}_is_sparse"] = _sparse_json(value), True
    else:
        out[key], out[f"{key}_is_sparse"] = np.asarray(value).tolist(), False


def _get(info: dict, key: str):
    value = info[key]
    return _sparse_from_json(value) if info.get(f"{key}_is_sparse") else np.asarray(value)


def save_npz(container: ScpContainer, path: str | os.PathLike, *, compressed: bool = True) -> None:
    """Write ``container`` as the original's NPZ archive (``.npz`` is appended when missing, as numpy does).

    obs, var, every layer (sparse kept as CSR/CSC), masks, matrix metadata, history and links
    are stored as JSON text in the ``_metadata`` entry (a plain string array, no pickle).
    """
    data: dict[str, Any] = {"_scptensor_version": _NPZ_VERSION, "obs": _frame_json(container.obs),
                            "sample_id_col": container.sample_id_col}
    for name, assay in container.assays.items():
        prefix = f"assay_{name}_"
        data[prefix + "var"] = _frame_json(assay.var)
        data[prefix + "feature_id_col"] = assay.feature_id_col
        layers = {}
        for layer, matrix in assay.layers.items():
            info: dict[str, Any] = {"shape": list(matrix.shape)}
            _put(info, "X", matrix.X)
            if matrix.M is None:
                info["M"] = None
            else:
                _put(info, "M", matrix.M)
            if matrix.metadata:
                meta: dict[str, Any] = {}
                for key, value in matrix.metadata.items():
                    if key in _ARRAY_FIELDS or isinstance(value, np.ndarray) or sp.issparse(value):
                        _put(meta, key, value)
                    else:
                        meta[key] = value
                info["metadata"] = meta
            layers[layer] = info
        data[prefix + "layers"] = layers
    data["history"] = _history_to_json(container.history)
    if container.links:
        data["links"] = [{"source_assay": l.source_assay, "target_assay": l.target_assay,
                          "linkage": _frame_json(l.linkage)} for l in container.links]
    text = json.dumps(data, default=_plain)
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **{_NPZ_KEY: np.array(text)})
    target = Path(path)
    if target.suffix != ".npz":
        target = target.with_name(target.name + ".npz")
    _write(target, buffer.getvalue())


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays of plain Python objects and nothing else."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in an NPZ archive")


def _npz_text(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            raw = archive.read(_NPZ_KEY + ".npy")
    except KeyError:
        raise ValidationError("Invalid NPZ file: missing metadata", obj=str(path),
                              expected=f"an entry {_NPZ_KEY}", found="none") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValidationError("not an NPZ archive", obj=str(path), found=str(exc)) from None
    stream = io.BytesIO(raw)
    version = np.lib.format.read_magic(stream)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(stream)
    if dtype.kind == "U":
        stream.seek(0)
        return str(np.lib.format.read_array(stream, allow_pickle=False).item())
    if dtype.kind != "O" or shape != ():
        raise ValidationError("the NPZ metadata entry is not one string", obj=f"{path} {_NPZ_KEY}",
                              found=f"dtype {dtype}, shape {shape}")
    try:
        value = _ArrayOnlyUnpickler(stream).load()
    except Exception as exc:  # any failure of a hostile or damaged pickle
        raise ValidationError("the NPZ metadata entry cannot be read safely", obj=f"{path} {_NPZ_KEY}",
                              found=str(exc)) from None
    text = value.item() if isinstance(value, np.ndarray) else value
    if not isinstance(text, str):
        raise ValidationError("the NPZ metadata entry is not text", obj=f"{path} {_NPZ_KEY}",
                              found=type(text).__name__)
    return text


def load_npz(path: str | os.PathLike) -> ScpContainer:
    """Read an NPZ archive written by :func:`save_npz` or by the original ScpTensor."""
    path = Path(path)
    text = _npz_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError("the NPZ metadata entry is not JSON", obj=f"{path} {_NPZ_KEY}", found=str(exc)) from None
    assays = {}
    for key, value in data.items():
        if not (key.startswith("assay_") and key.endswith("_var")):
            continue
        name = key[len("assay_"):-len("_var")]
        layers = {}
        for layer, info in data.get(f"assay_{name}_layers", {}).items():
            X = _get(info, "X")
            M = None if info.get("M") is None else _get(info, "M")
            meta = MatrixMetadata()
            for mkey in info.get("metadata", {}) or {}:
                if mkey.endswith("_is_sparse"):
                    continue
                meta[mkey] = _get(info["metadata"], mkey) if f"{mkey}_is_sparse" in info["metadata"] else info["metadata"][mkey]
            if M is not None and not sp.issparse(M) and M.size == 0:
                M = M.reshape(np.shape(X))
            if not sp.issparse(X) and X.size == 0:
                X = X.reshape(tuple(info.get("shape", (0, 0))))
            layers[layer] = ScpMatrix(X, M, meta)
        assays[name] = Assay(_frame_from_json(value), layers,
                             feature_id_col=data.get(f"assay_{name}_feature_id_col", "_index"))
    links = [AggregationLink(l["source_assay"], l["target_assay"], _frame_from_json(l["linkage"]))
             for l in data.get("links", [])]
    return ScpContainer(_frame_from_json(data["obs"]), assays, links, _history_from_json(data.get("history"), path),
                        data.get("sample_id_col", "_index"))

