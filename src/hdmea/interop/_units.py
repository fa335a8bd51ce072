"""Reading a recording file's units once for the exporters: attributes, features, spike datasets.

Shared by :mod:`hdmea.interop.nwb` (Units columns) and :mod:`hdmea.interop.spikeinterface`
(unit properties): scalar unit attributes and feature attributes become one value per
unit, :data:`MISSING` where a unit has none, then one column (:func:`column_values`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np

from hdmea.errors import RecordingFormatError
from hdmea.io import hdf5_store as store

__all__ = ["UnitScan", "scan_units", "MISSING", "is_scalar", "attr_value", "column_values", "recording_metadata",
           "sampling_rate", "first_value", "BOOKKEEPING_ATTRS"]

#: Feature attributes that describe how a feature was made, not the unit: never columns.
BOOKKEEPING_ATTRS = frozenset({"name", "version", "params", "params_hash", "extracted_at", "extractor"})


MISSING = object()


@dataclasses.dataclass
class UnitScan:
    """Every unit of a recording file in its order: the group, its datasets, decoded attributes and features
    (``{feature name: (decoded attributes, {dataset name: h5py dataset})}``)."""

    ids: list[str]
    groups: list[h5py.Group]
    spikes: list[h5py.Dataset]
    waveforms: list[h5py.Dataset | None]
    attrs: list[dict]
    features: list[dict[str, tuple[dict, dict[str, h5py.Dataset]]]]


def scan_units(f: h5py.File, path: Path) -> UnitScan:
    """Read every unit's attributes and list its datasets and features (data stay on disk)."""
    ids = store.list_units(f)
    units = f["units"] if ids else None
    scan = UnitScan(ids, [], [], [], [], [])
    for uid in ids:
        group = units[uid]
        # Each member is looked up once: h5py's lookups dominate for thousands of units.
        spikes = group.get("spike_times")
        if not isinstance(spikes, h5py.Dataset):
            raise RecordingFormatError("unit has no spike_times dataset", path=path, obj=f"/units/{uid}",
                                       expected="a uint64 dataset spike_times", found=", ".join(group) or "nothing")
        waveform = group.get("waveform")
        scan.groups.append(group)
        scan.spikes.append(spikes)
        scan.waveforms.append(waveform if isinstance(waveform, h5py.Dataset) else None)
        scan.attrs.append(store.read_attrs(group)[0])
        per_unit = {}
        features = group.get("features")
        if isinstance(features, h5py.Group):
            for name, feature in features.items():
                if not isinstance(feature, h5py.Group):
                    continue
                datasets = {k: v for k, v in feature.items() if isinstance(v, h5py.Dataset)}
                per_unit[name] = (store.read_attrs(feature)[0], datasets)
        scan.features.append(per_unit)
    return scan


def is_scalar(value) -> bool:
    return isinstance(value, (bool, int, float, str, np.generic)) or (
        isinstance(value, np.ndarray) and value.ndim == 0)


def column_values(values: list):
    """One table column from per-unit values (:data:`MISSING` where a unit has none).

    Text stays text (``""`` where missing); integers and booleans stay so when every
    unit has a value, else all become float64 with NaN where missing; a mix of text
    and numbers becomes text.
    """
    present = [v for v in values if v is not MISSING]
    kinds = {("text" if isinstance(v, str) else "bool" if isinstance(v, (bool, np.bool_))
              else "int" if isinstance(v, (int, np.integer)) else "float") for v in present}
    complete = len(present) == len(values)
    if kinds == {"text"}:
        return [("" if v is MISSING else v) for v in values]
    if kinds <= {"bool"} and complete:
        return np.asarray(values, dtype=bool)
    if kinds <= {"int", "bool"} and complete:
        return np.asarray(values, dtype=np.int64)
    if kinds <= {"int", "float", "bool"}:
        return np.asarray([np.nan if v is MISSING else float(v) for v in values], dtype=np.float64)
    # Mixed text and numbers: the text form keeps every value.
    return ["" if v is MISSING else str(v) for v in values]


def attr_value(value):
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        return json.dumps(value.tolist() if isinstance(value, np.ndarray) else value)
    return value


def recording_metadata(f: h5py.File) -> dict:
    if "metadata" not in f:
        return {}
    value = store.decode_node(store.node_from_h5(f["metadata"]))
    return value if isinstance(value, dict) else {}


def sampling_rate(meta: dict, path: Path) -> float:
    rate = meta.get("sampling_rate", (meta.get("acquisition") or {}).get("sampling_rate"))
    rate = np.asarray(rate).reshape(-1)[0] if rate is not None else None
    if rate is None or not np.isfinite(rate) or rate <= 0:
        raise RecordingFormatError("the recording has no sampling rate", path=path, obj="/metadata/sampling_rate",
                                   expected="a positive number of samples per second", found=repr(rate))
    return float(rate)


def first_value(value):
    if isinstance(value, (list, tuple, np.ndarray)):
        return value[0] if len(value) else None
    return value
