"""One table of every unit's features across recordings, as Parquet (the original's ``hdmea.io.parquet_export``).

A row per unit: ``dataset_id``, ``unit_id``, ``row``, ``col``, ``spike_count``
(with ``include_metadata``), then each feature flattened to columns named
``<feature>__<key>``: a scalar as it is, a vector of at most 10 values as
``<key>_0`` ... ``<key>_9``, a longer array as ``<key>_mean``/``_std``/``_min``/``_max``,
a subgroup's members as ``<feature>__<group>__<key>``, and the feature's attributes
(those not starting with ``_``).  Two columns say when and by which format
version the table was written; the file's key-value metadata repeats them with
the source files.  Needs pandas and pyarrow (``pip install "h5stream[interop]"``);
the recordings are this package's HDF5 files (the original read zarr stores).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from hdmea.errors import ConfigError, RecordingNotFoundError
from hdmea.io.recording import open_recording, read_whole

__all__ = ["export_features_to_parquet", "read_exported_features", "get_export_metadata", "EXPORT_VERSION"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

EXPORT_VERSION = "1.0.0"


def _pandas_and_parquet():
    from hdmea._extras import require

    return (require("pandas", "interop", "the Parquet feature export"),
            require("pyarrow", "interop", "the Parquet feature export"),
            require("pyarrow.parquet", "interop", "the Parquet feature export"))


def _value(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist() if v.size <= 10 else str(v.shape)
    return v


def _flatten(group, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in group.items():
        if key.startswith("_"):
            continue
        name = f"{prefix}{key}"
        if hasattr(item, "keys"):
            out.update(_flatten(item, f"{name}__"))
            continue
        data = read_whole(item)
        if data.dtype.kind in "OSU":
            out[name] = _value(data.reshape(-1)[0]) if data.size == 1 else str(data.tolist())
        elif data.ndim == 0 or data.size == 1 and data.ndim == 1:
            out[name] = data.reshape(-1)[0].item()
        elif data.ndim == 1 and data.size <= 10:
            out.update({f"{name}_{i}": v.item() for i, v in enumerate(data)})
        elif data.size:
            values = data.astype(np.float64).ravel()
            values = values[~np.isnan(values)]  # all NaN (a unit without spikes): NaN statistics
            stats = (values.mean(), values.std(), values.min(), values.max()) if values.size else (np.nan,) * 4
            out.update({f"{name}_{what}": float(v) for what, v in zip(("mean", "std", "min", "max"), stats)})
    for key, value in group.attrs.items():
        if not key.startswith("_") and not key.startswith("h5stream"):
            out[f"{prefix}{key}"] = _value(value)
    return out


def _unit_number(unit_group, key: str, default):
    if key in unit_group.attrs:
        return _value(unit_group.attrs[key])
    if key in unit_group and not hasattr(unit_group[key], "keys"):
        return read_whole(unit_group[key]).reshape(-1)[0].item()
    return default


def export_features_to_parquet(
    zarr_paths: list[str | os.PathLike],
    output_path: str | os.PathLike,
    *,
    features: list[str] | None = None,
    include_metadata: bool = True,
) -> Path:
    """Write the features of the recordings ``zarr_paths`` (our HDF5 files) to one Parquet table.

    ``features`` limits the columns to those features (a name no recording holds
    is a ConfigurationError); returns ``output_path``.
    """
    from hdmea.io import hdf5_store as store

    pd, pa, pq = _pandas_and_parquet()
    paths = [Path(p) for p in ([zarr_paths] if isinstance(zarr_paths, (str, os.PathLike)) else zarr_paths)]
    rows, seen = [], set()
    for path in paths:
        if not path.exists():
            raise RecordingNotFoundError("recording not found", path=path)
        with open_recording(path) as recording:
            root = recording.file
            dataset_id = _value(root.attrs.get("dataset_id", path.stem))
            for unit in store.list_units(root):
                group = root[f"units/{unit}"]
                row: dict[str, Any] = {}
                if include_metadata:
                    row.update(dataset_id=dataset_id, unit_id=unit, row=_unit_number(group, "row", -1),
                               col=_unit_number(group, "col", -1),
                               spike_count=int(group["spike_times"].shape[0]) if "spike_times" in group else 0)
                for name in store.list_features(root, unit):
                    seen.add(name)
                    if features is None or name in features:
                        row.update(_flatten(group[f"features/{name}"], f"{name}__"))
                rows.append(row)
    if features is not None:
        absent = sorted(set(features) - seen)
        if absent:
            raise ConfigError(f"no recording holds the features {absent}", found=", ".join(sorted(seen)) or "none")
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["dataset_id", "unit_id"])
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat()
    frame["_export_version"] = EXPORT_VERSION
    frame["_export_timestamp"] = stamp
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta.update({b"hdmea_export_version": EXPORT_VERSION.encode(), b"created_at": stamp.encode(),
                 b"source_zarrs": ",".join(str(p) for p in paths).encode()})
    out = Path(output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(meta), out, compression="snappy")
    logger.info("exported %d units of %d recordings to %s", len(frame), len(paths), out)
    return out


def read_exported_features(parquet_path: str | os.PathLike):
    """The exported table as a pandas DataFrame."""
    pd, _pa, _pq = _pandas_and_parquet()
    return pd.read_parquet(parquet_path)


def get_export_metadata(parquet_path: str | os.PathLike) -> dict[str, Any]:
    """``{"pandas_metadata", "file_metadata", "num_rows", "num_columns"}`` of an exported table."""
    _pd, _pa, pq = _pandas_and_parquet()
    parquet = pq.ParquetFile(parquet_path)
    file_meta = parquet.metadata.metadata or {}
    return {"pandas_metadata": parquet.schema_arrow.pandas_metadata or {},
            "file_metadata": {k.decode(): v.decode() for k, v in file_meta.items()},
            "num_rows": parquet.metadata.num_rows, "num_columns": parquet.metadata.num_columns}
