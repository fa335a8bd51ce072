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

from collections.abc import Iterator

import numpy as np
from h5py import h5a, h5d, h5p, h5s, h5t

from h5stream.batch_attrs import read_values
from h5stream.tables import TableReader
from hdmea.io.cmtr import SORTER_GROUP, CmtrFile
from hdmea.io.cmtr_peaks import table_columns
from hdmea.io.mcs import McsFile, guard_mcs_read

__all__ = ["file_meta", "unit_meta", "units_meta", "table_columns", "peak_samples"]


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


def units_meta(cmtr: CmtrFile, unit_ids) -> Iterator[tuple[int, dict]]:
    """``(unit_id, unit_meta(cmtr, unit_id))`` of each unit, in order; the ``Peaks`` tables whose rows lie
    in plain runs of bytes are read straight from the file (through the page cache) into one buffer, each
    table's columns copied out of it in one pass (:func:`table_columns`)."""
    buffers: list[np.ndarray] = []
    types = _StoredTypes()
    with TableReader(cmtr.h5, cmtr.path, direct=False) as reader:
        for unit_id in unit_ids:
            yield unit_id, unit_meta(cmtr, unit_id, reader=reader, buffers=buffers, types=types)


def unit_meta(cmtr: CmtrFile, unit_id: int, *, reader: TableReader | None = None,
              buffers: list[np.ndarray] | None = None, types: _StoredTypes | None = None) -> dict:
    """A unit's ``unit_meta`` dict as the original builds it (see the module); ``reader`` and ``buffers``:
    read the ``Peaks`` table as :meth:`hdmea.io.cmtr.CmtrFile.peaks_table` does with them; ``types``: the
    stored types' translations met so far (:class:`_StoredTypes`, shared by the units of one file)."""
    name = cmtr.unit_group_name(unit_id)
    obj = f"/{SORTER_GROUP}/{name}"
    group = cmtr.h5[obj]
    types = _StoredTypes() if types is None else types
    members = frozenset(cmtr.unit_members(unit_id))  # listed when the file was opened: no lookup per name
    meta: dict = {}
    with guard_mcs_read(cmtr.path, obj):
        if "Unit_Info" in members:
            table = _whole(group, "Unit_Info", types)
            if table is None:
                table = group["Unit_Info"]
            if len(table):
                info = table[0]
                for field in info.dtype.names:
                    meta[field.lower()] = _one(info[field])
        for key, value in _group_attrs(group, types).items():
            value = _value(value)
            meta[f"attr_{key.lower()}"] = value if isinstance(value, str) else _one(value)
        if "Peaks" in members:
            columns = cmtr.take_peak_columns(unit_id)
            if columns is None:
                peaks = cmtr.peaks_table(unit_id, reader, buffers)
                if peaks is None:
                    peaks = group["Peaks"][()]
                columns = table_columns(peaks) if len(peaks) else None
            if columns is not None:
                if "PeakAmplitude" in columns and "IncludePeak" in columns:
                    meta["peak_amplitudes"] = np.asarray(
                        columns["PeakAmplitude"][columns["IncludePeak"] == 1], dtype=np.float32)
                meta["peaks_data"] = {field.lower(): column for field, column in columns.items()}
        for member, key in (("RoiSTAs", "roi_stas"), ("Unmixing", "unmixing_matrix")):
            if member in members:
                values = _whole(group, member, types)
                if values is None:
                    dataset = group[member]
                    values = dataset[()] if dataset.size else None
                if values is not None and values.size:
                    meta[key] = np.asarray(values, dtype=np.float32)
    return meta


class _StoredTypes:
    """The numpy type and h5py's memory type of each stored type met, each made once.

    h5py makes both again for every dataset and attribute it reads (``dtype``, then ``h5t.py_create``); for
    a compound type such as a unit's ``Unit_Info`` row, most of the read's time.  Numbers and fixed-length
    text are known by their class, size, byte order, sign and character set; other types by ``H5Tequal``.
    """

    def __init__(self) -> None:
        self._plain: dict[tuple, tuple[np.dtype, h5t.TypeID]] = {}
        self._others: list[tuple[h5t.TypeID, tuple[np.dtype, h5t.TypeID]]] = []

    def of(self, tid: h5t.TypeID) -> tuple[np.dtype, h5t.TypeID]:
        """(numpy dtype, memory type) of stored type ``tid``, as h5py's reads make them."""
        cls = tid.get_class()
        key = None
        if cls in (h5t.INTEGER, h5t.FLOAT):
            key = (cls, tid.get_size(), tid.get_order(), tid.get_sign() if cls == h5t.INTEGER else None)
        elif cls == h5t.STRING and not tid.is_variable_str():
            key = (cls, tid.get_size(), tid.get_cset())
        if key is not None:
            known = self._plain.get(key)
            if known is None:
                known = self._plain[key] = _translated(tid)
            return known
        for other, known in self._others:
            if tid.equal(other):
                return known
        known = _translated(tid)
        if len(self._others) < 16:
            self._others.append((tid, known))
        return known


def _translated(tid: h5t.TypeID) -> tuple[np.dtype, h5t.TypeID]:
    dtype = tid.dtype
    return dtype, h5t.py_create(dtype)


def _group_attrs(group, types: _StoredTypes) -> dict:
    """Every attribute of ``group`` as h5py's ``attrs[name]`` reads it, in h5py's order (by name, unless the
    group tracks their creation order): the scalar numbers and variable-length text read in one compiled call
    (:func:`h5stream.batch_attrs.read_values`), the rest (fixed-length text, arrays) one by one."""
    found = None
    if not group.id.get_create_plist().get_attr_creation_order() & h5p.CRT_ORDER_TRACKED:
        found = read_values([group], lambda obj, name: _one_attr(obj, name, types))[0]
    if found is None:  # no compiled reader, or the creation order: read through h5py
        found = {key: _one_attr(group, key, types) for key in group.attrs}
    return found


def _one_attr(group, name: str, types: _StoredTypes):
    """Attribute ``name`` of ``group`` as h5py's ``attrs[name]`` reads it."""
    value = _attr(group.id, name, types)
    return group.attrs[name] if value is None else value


def _attr(oid, name: str, types: _StoredTypes):
    """Attribute ``name`` of the object ``oid`` as h5py's ``attrs[name]`` reads it, for a number or fixed-length
    text of a simple or scalar dataspace (a numpy scalar for a scalar, else an array); None for anything else
    (then read it through h5py)."""
    attr = h5a.open(oid, name.encode("utf-8", "surrogateescape"))
    shape = attr.shape
    tid = attr.get_type()
    cls = tid.get_class()
    if shape is None or not (cls in (h5t.INTEGER, h5t.FLOAT) or cls == h5t.STRING and not tid.is_variable_str()):
        return None
    dtype, mtype = types.of(tid)
    values = np.zeros(shape, dtype=dtype)
    attr.read(values, mtype=mtype)
    return values[()] if values.ndim == 0 else values


def _whole(group, name: str, types: _StoredTypes | None = None) -> np.ndarray | None:
    """Dataset ``name`` of ``group`` read whole as ``group[name][()]`` reads it, through the low-level API (about
    half the CPU time of h5py's layers for the few small datasets of each unit; with ``types``, its type's
    translations made once per file, not per dataset); None for anything but a dataset of a simple dataspace
    (then read it through ``group``)."""
    try:
        dataset = h5d.open(group.id, name.encode("utf-8", "surrogateescape"))
    except (KeyError, TypeError, ValueError):
        return None
    if dataset.get_space().get_simple_extent_type() != h5s.SIMPLE:
        return None
    dtype, mtype = types.of(dataset.get_type()) if types is not None else (dataset.dtype, None)
    values = np.empty(dataset.shape, dtype=dtype)
    if values.size:
        dataset.read(h5s.ALL, h5s.ALL, values, mtype=mtype)
    return values


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
