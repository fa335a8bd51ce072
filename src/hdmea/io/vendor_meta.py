"""The vendor's metadata in the form the original pipeline copies into the lab's files.

- :func:`file_meta`: a ``.cmcr``'s or ``.cmtr``'s root attributes under the vendor's own names
  (``ID.InstanceID``, ``FileVersion``, ``LB.RecordingDuration``, ...), text as ``str``, one-value arrays
  as their value; ``recording_duration_s`` added for a ``.cmcr`` (``/metadata/cmcr_meta``,
  ``/metadata/cmtr_meta``);
- :func:`unit_meta`: a unit's ``/units/<unit>/unit_meta``: each field of its ``Unit_Info`` row lowercased
  as a 1-element array (int64 or float64), each attribute of its ``Unit {n}`` group as ``attr_<name>``
  (lowercased; text as ``str``, numbers as 1-element arrays), ``peak_amplitudes`` (float32, the included
  peaks' amplitudes), ``peaks_data`` (every column of ``Peaks``, lowercased, all rows), ``roi_stas``
  and ``unmixing_matrix`` (float32).

The lab's scripts read these (``unit_meta/row``, ``unit_meta/column``, ``cmcr_meta/LB.RecordingDuration``);
the layout is the original's (``tests/data/lab_layout``).
"""

from __future__ import annotations

import numpy as np

from hdmea.io.cmtr import SORTER_GROUP, CmtrFile
from hdmea.io.mcs import McsFile, guard_mcs_read

__all__ = ["file_meta", "unit_meta", "peak_samples"]


def _value(value):
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="ignore")
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, np.generic):
        return value.item()
    return value


def file_meta(mcs: McsFile, *, duration_seconds: bool) -> dict:
    """The file's root attributes under the vendor's names (see the module)."""
    f = mcs.h5
    with guard_mcs_read(mcs.path, "/"):
        meta = {name: _value(f.attrs[name]) for name in f.attrs}
    if duration_seconds and isinstance(meta.get("LB.RecordingDuration"), (int, float)):
        meta["recording_duration_s"] = float(meta["LB.RecordingDuration"]) / 1e6
    return meta


def _one(value) -> np.ndarray:
    value = _value(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float)):
        return np.asarray(value)
    return np.array([value], dtype=np.int64 if isinstance(value, int) else np.float64)


def unit_meta(cmtr: CmtrFile, unit_id: int) -> dict:
    """A unit's ``unit_meta`` dict as the original builds it (see the module)."""
    name = cmtr.unit_group_name(unit_id)
    obj = f"/{SORTER_GROUP}/{name}"
    group = cmtr.h5[obj]
    meta: dict = {}
    with guard_mcs_read(cmtr.path, obj):
        if "Unit_Info" in group and len(group["Unit_Info"]):
            info = group["Unit_Info"][0]
            for field in info.dtype.names:
                meta[field.lower()] = _one(info[field])
        for key in group.attrs:
            value = _value(group.attrs[key])
            meta[f"attr_{key.lower()}"] = value if isinstance(value, str) else _one(value)
        if "Peaks" in group:
            peaks = cmtr.peaks_table(unit_id)
            if peaks is None:
                peaks = group["Peaks"][()]
            if len(peaks):
                if "PeakAmplitude" in peaks.dtype.names and "IncludePeak" in peaks.dtype.names:
                    meta["peak_amplitudes"] = np.asarray(peaks["PeakAmplitude"][peaks["IncludePeak"] == 1],
                                                         dtype=np.float32)
                meta["peaks_data"] = {field.lower(): np.array(peaks[field]) for field in peaks.dtype.names}
        for member, key in (("RoiSTAs", "roi_stas"), ("Unmixing", "unmixing_matrix")):
            if member in group and group[member].size:
                meta[key] = np.asarray(group[member][()], dtype=np.float32)
    return meta


def peak_samples(cmtr: CmtrFile, unit_id: int, fs: float, *, included_only: bool = False) -> np.ndarray:
    """A unit's peaks as sample indices (``round(Timestamp_us * fs / 1e6)``), in table order: every row of
    its ``Peaks`` table, or only those with ``IncludePeak == 1``."""
    obj = f"/{SORTER_GROUP}/{cmtr.unit_group_name(unit_id)}/Peaks"
    with guard_mcs_read(cmtr.path, obj):
        table = cmtr.h5[obj]
        stamps = table.fields("Timestamp")[()]
        if included_only:
            stamps = stamps[table.fields("IncludePeak")[()] == 1]
    return np.round(np.asarray(stamps, dtype=np.float64) * (float(fs) / 1e6)).astype(np.int64)
