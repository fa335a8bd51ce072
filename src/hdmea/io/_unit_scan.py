"""The recording reader's one pass over every unit, for the exporters: attributes, features, spike datasets.

Part of the reader (:mod:`hdmea.io.recording` opens the file; this module names the layout of
``/units`` it reads, and the engine's walk (:func:`h5stream.walk.walk_group`) opens each of those
objects once, taking the ones the open-time scan kept open, and reads their attributes in batches).
Shared by :mod:`hdmea.interop.nwb` (Units columns) and :mod:`hdmea.interop.spikeinterface`
(unit properties): scalar unit attributes and feature attributes become one value per
unit, :data:`MISSING` where a unit has none, then one column (:func:`column_values`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from h5stream import checksums
from h5stream.errors import H5StreamError
from h5stream.files import guard_read
from h5stream.tree import decode_attr, is_hidden
from h5stream.walk import ANY, Entry, KeptObjects, Layout, read_plain_attrs, walk_group
from hdmea.errors import RecordingFormatError
from hdmea.io import hdf5_store as store
from hdmea.io.recording import BOOKKEEPING_ATTRS

__all__ = ["UnitScan", "UnitObjects", "scan_units", "MISSING", "is_scalar", "attr_value", "column_values",
           "first_value", "BOOKKEEPING_ATTRS", "UNITS_LAYOUT"]

#: Feature attributes that describe how a feature was made, not the unit: never columns.


MISSING = object()
#: Spike samples converted to seconds at a time in place (small enough that numpy's copy of an
#: input overlapping its output stays in cache).
_DIVIDE_BLOCK = 1 << 16

#: What the scan reads below ``/units``: each unit group and its attributes, its ``spike_times`` and
#: ``waveform``, its ``features`` group, each feature group and its attributes, and the feature's datasets.
UNITS_LAYOUT = Layout(
    paths=[(ANY, "spike_times"), (ANY, "waveform"), (ANY, "features"), (ANY, "features", ANY, ANY)],
    attrs={(ANY,): None, (ANY, "features", ANY): None},
)
#: What h5py and numpy raise on damaged content (turned into the engine's typed errors).
_READ_FAILURES = (OSError, RuntimeError, KeyError, ValueError, TypeError, UnicodeError, MemoryError)


@dataclasses.dataclass
class UnitScan:
    """Every unit of a recording file in its order, read in one pass over ``/units``.

    ``attrs[i]`` holds the decoded attributes of unit ``i``; ``features[i]`` maps a feature
    name to ``(decoded attributes, {dataset name: h5py dataset})``; ``members[i]`` the
    unit group's member names.  Spike trains and waveforms stay on disk as entries of the
    engine's walk (:class:`h5stream.walk.Entry`) with their lengths and dtypes (:meth:`spike_seconds` reads every train at
    once; :meth:`spike_datasets` and :meth:`waveform_datasets` give h5py datasets).
    """

    ids: list[str]
    attrs: list[dict]
    features: list[dict[str, tuple[dict, dict[str, h5py.Dataset]]]]
    members: list[frozenset[str]]
    spike_entries: list[Entry]
    spike_counts: np.ndarray
    spike_dtypes: set[np.dtype]
    waveform_entries: list[Entry | None]
    waveform_shapes: list[tuple[int, ...] | None]
    waveform_dtypes: set[np.dtype]
    path: Path
    manifest: checksums.Manifest | None = None

    @property
    def n_spikes(self) -> int:
        return int(self.spike_counts.sum())

    def spike_datasets(self) -> list[h5py.Dataset]:
        return [e.object() for e in self.spike_entries]

    def waveform_datasets(self) -> list[h5py.Dataset | None]:
        return [None if e is None else e.object() for e in self.waveform_entries]

    def spike_seconds(self, rate: float) -> np.ndarray | None:
        """Every unit's spike samples one after the other divided by ``rate`` (float64 seconds), read at once.

        ``samples / rate`` exactly as numpy divides the stored integers.  None when the
        trains are not all 64-bit integers (then read them one by one).
        """
        if not self.spike_dtypes <= {np.dtype(np.uint64), np.dtype(np.int64)} or len(self.spike_dtypes) > 1:
            return None
        dtype = next(iter(self.spike_dtypes), np.dtype(np.uint64))
        buffer = np.empty(self.n_spikes, dtype=dtype)
        start = 0
        uid = None
        digests = self.manifest.datasets if self.manifest is not None else {}
        try:
            for uid, entry, count in zip(self.ids, self.spike_entries, self.spike_counts.tolist()):
                if count:
                    entry.read_into(buffer[start:start + count])
                name = f"/units/{uid}/spike_times"
                if name in digests:
                    checksums.check_value(self.manifest, name, digests[name], buffer[start:start + count])
                start += count
        except _READ_FAILURES:
            with guard_read(self.path, f"/units/{uid}/spike_times"):
                raise
        seconds = buffer.view(np.float64)
        signed = buffer.view(np.int64)
        if dtype == np.uint64 and buffer.size and int(signed.min()) < 0:
            # Samples past 2**63 (never written by us): the slower unsigned conversion.
            return np.divide(buffer, rate)
        # int64 to float64 is the fast conversion; every sample here is below 2**63, so the
        # values are those of dividing the unsigned samples.  In place: one buffer of memory,
        # a block at a time (numpy copies a whole input that overlaps its output first).
        for start in range(0, buffer.size, _DIVIDE_BLOCK):
            block = slice(start, start + _DIVIDE_BLOCK)
            np.divide(signed[block], rate, out=seconds[block])
        return seconds

    def stacked_waveforms(self, shape: tuple[int, ...]) -> np.ndarray:
        """Every unit's waveform (all of ``shape``) as one float32 array, NaN rows for units without one."""
        out = np.full((len(self.ids), *shape), np.nan, dtype=np.float32)
        uid = None
        try:
            for k, (uid, entry) in enumerate(zip(self.ids, self.waveform_entries)):
                if entry is None:
                    continue
                if self.waveform_dtypes == {np.dtype(np.float32)}:
                    entry.read_into(out[k])
                    stored = out[k]
                else:
                    stored = entry.object()[()]
                    out[k] = stored
                name = f"/units/{uid}/waveform"
                if self.manifest is not None and name in self.manifest.datasets:
                    checksums.check_value(self.manifest, name, self.manifest.datasets[name], stored)
        except _READ_FAILURES:
            with guard_read(self.path, f"/units/{uid}/waveform"):
                raise
        return out


class UnitObjects(KeptObjects):
    """The objects of ``/units`` that :func:`scan_units` reads (:data:`UNITS_LAYOUT`), kept open by the
    open-time safety scan: pass it as ``visit`` to :func:`hdmea.io.hdf5_store.open_recording_hdf5`
    (see :class:`h5stream.walk.KeptObjects`), then to :func:`scan_units`."""

    def __init__(self) -> None:
        super().__init__("units", UNITS_LAYOUT)


def _attrs(entry: Entry, manifest) -> dict:
    """The decoded attributes of a walked object, each checked against its digest in ``manifest``.

    The values and checks are those of :func:`h5stream.tree.read_attrs`: h5py's values
    checked (:func:`h5stream.checksums.check_attrs`), then decoded without a type tag.
    """
    raw = entry.attrs
    if raw is None:
        return store.read_attrs(entry.object(), manifest=manifest)[0]
    if manifest is not None and manifest.covers_attrs(entry.path):
        checksums.check_attrs(entry.object(), raw, manifest, complete=True, where=entry.path)
    return {name: decode_attr(value, None) for name, value in raw.items()}


def scan_units(f: h5py.File, path: Path, held: UnitObjects | None = None,
               listed: Callable[[UnitScan], None] | None = None) -> UnitScan:
    """Read every unit's attributes and features' attributes, list its datasets (data stay on disk).

    One walk of ``/units`` (:data:`UNITS_LAYOUT`, :func:`h5stream.walk.walk_group`) opens each
    object once (or takes it from ``held``, what the open-time scan kept open) and lists every
    unit's spike train and waveform; ``listed(scan)``, when given, runs next (the NWB export
    reads the spike trains there, so their compression runs while the attributes are read),
    then the attributes of the units and features are read in batches and decoded.
    """
    ids = store.list_units(f)
    manifest = checksums.manifest_for(f)
    scan = UnitScan(ids, [], [], [], [], np.zeros(len(ids), dtype=np.int64), set(), [], [], set(), Path(path),
                    manifest)
    if not ids:
        if held is not None:
            held.close()
        if listed is not None:
            listed(scan)
        return scan
    units = walk_group(f, "units", UNITS_LAYOUT, kept=held, attrs=False, path=path)
    groups = _list_datasets(scan, units)
    if listed is not None:
        listed(scan)
    read_plain_attrs(units, path)
    _read_attributes(scan, groups)
    return scan


def _list_datasets(scan: UnitScan, units: Entry) -> list[Entry]:
    """Fill ``scan``'s spike trains, waveforms and members; the unit groups' entries, in order."""
    path = scan.path
    groups = []
    counts = scan.spike_counts
    for i, uid in enumerate(scan.ids):
        where = f"/units/{uid}"
        group = units.children.get(uid)
        if group is None or group.kind != "group":
            raise RecordingFormatError("unit is not a group", path=path, obj=where, expected="a group",
                                       found="nothing" if group is None else f"a {group.kind}")
        names = frozenset(group.members)
        spikes = group.children.get("spike_times")
        if spikes is None or spikes.kind != "dataset":
            raise RecordingFormatError("unit has no spike_times dataset", path=path, obj=where,
                                       expected="a uint64 dataset spike_times",
                                       found=", ".join(sorted(names)) or "nothing")
        if spikes.shape is None or len(spikes.shape) != 1:
            raise RecordingFormatError("spike times are not a 1-D array", path=path,
                                       obj=f"{where}/spike_times", expected="one sample index per spike",
                                       found=f"shape {spikes.shape}")
        counts[i] = spikes.shape[0]
        scan.spike_entries.append(spikes)
        scan.spike_dtypes.add(spikes.dtype)
        waveform = group.children.get("waveform")
        if waveform is not None and waveform.kind == "dataset":
            scan.waveform_entries.append(waveform)
            scan.waveform_shapes.append(waveform.shape)
            scan.waveform_dtypes.add(waveform.dtype)
        else:
            scan.waveform_entries.append(None)
            scan.waveform_shapes.append(None)
        scan.members.append(names)
        groups.append(group)
    return groups


def _read_attributes(scan: UnitScan, groups: list[Entry]) -> None:
    """Fill ``scan``'s attributes and features from the unit groups of :func:`_list_datasets`."""
    path, manifest = scan.path, scan.manifest
    where = "/units"
    try:
        for group in groups:
            where = group.path
            scan.attrs.append(_attrs(group, manifest))
            per_unit = {}
            features = group.children.get("features")
            if features is not None and features.kind == "group":
                for name, feature in features.children.items():
                    if is_hidden(name) or feature.kind != "group":
                        continue
                    where = feature.path
                    datasets = {key: member.object() for key, member in feature.children.items()
                                if not is_hidden(key) and member.kind == "dataset"}
                    per_unit[name] = (_attrs(feature, manifest), datasets)
            scan.features.append(per_unit)
    except H5StreamError:
        raise
    except _READ_FAILURES:
        with guard_read(path, where):  # the engine's typed error (damage, a missing filter, a checksum)
            raise


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
    # The kinds of the values' types (a few), not of every value.
    kinds = {_value_kind(t) for t in {type(v) for v in present}}
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


def _value_kind(kind: type) -> str:
    """What :func:`column_values` makes of a value of type ``kind``: text, bool, int or float."""
    if issubclass(kind, str):
        return "text"
    if issubclass(kind, (bool, np.bool_)):
        return "bool"
    if issubclass(kind, (int, np.integer)):
        return "int"
    return "float"


#: Types :func:`attr_value` returns as they are.
_PLAIN_VALUES = frozenset({bool, int, float, str})


def attr_value(value):
    if type(value) in _PLAIN_VALUES:
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        return json.dumps(value.tolist() if isinstance(value, np.ndarray) else value)
    return value


def first_value(value):
    if isinstance(value, (list, tuple, np.ndarray)):
        return value[0] if len(value) else None
    return value
