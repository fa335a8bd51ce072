"""The recording reader's one pass over every unit, for the exporters: attributes, features, spike datasets.

Part of the reader (:mod:`hdmea.io.recording` opens the file; this module walks ``/units``
with the objects the open-time scan kept open, reading attributes in batches and spike
trains and waveforms with the low-level calls a whole-recording export needs).  Shared by :mod:`hdmea.interop.nwb` (Units columns) and :mod:`hdmea.interop.spikeinterface`
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
from h5py import h5a, h5d, h5g, h5o, h5s, h5t

from h5stream import checksums
from h5stream.errors import H5StreamError
from h5stream.files import guard_read
from h5stream.tree import INTERNAL_ATTRS, decode_attr, is_hidden
from h5stream.tree import batch_attrs as native_attrs
from h5stream.tree.batch_attrs import LEFT, library_lock
from hdmea.errors import RecordingFormatError
from hdmea.io import hdf5_store as store
from hdmea.io.recording import BOOKKEEPING_ATTRS

__all__ = ["UnitScan", "UnitObjects", "scan_units", "MISSING", "is_scalar", "attr_value", "column_values",
           "first_value", "BOOKKEEPING_ATTRS"]

#: Feature attributes that describe how a feature was made, not the unit: never columns.


MISSING = object()
#: Spike samples converted to seconds at a time in place (small enough that numpy's copy of an
#: input overlapping its output stays in cache).
_DIVIDE_BLOCK = 1 << 16

#: Attribute names the tree writer keeps for itself (type tags, dict keys, attribute types).
_INTERNAL = frozenset(INTERNAL_ATTRS)
#: numpy dtypes (and their h5py memory types) of plain scalar attributes, by the file type's class and layout.
_SCALAR_TYPES: dict[tuple, tuple[np.dtype, h5t.TypeID]] = {}
#: What h5py and numpy raise on damaged content (turned into the engine's typed errors).
_READ_FAILURES = (OSError, RuntimeError, KeyError, ValueError, TypeError, UnicodeError, MemoryError)


@dataclasses.dataclass
class UnitScan:
    """Every unit of a recording file in its order, read in one pass over ``/units``.

    ``attrs[i]`` holds the decoded attributes of unit ``i``; ``features[i]`` maps a feature
    name to ``(decoded attributes, {dataset name: h5py dataset})``; ``members[i]`` the
    unit group's member names.  Spike trains and waveforms stay on disk as low-level
    dataset ids with their lengths and dtypes (:meth:`spike_seconds` reads every train at
    once; :meth:`spike_datasets` and :meth:`waveform_datasets` give h5py datasets).
    """

    ids: list[str]
    attrs: list[dict]
    features: list[dict[str, tuple[dict, dict[str, h5py.Dataset]]]]
    members: list[frozenset[str]]
    spike_ids: list[h5py.h5d.DatasetID]
    spike_counts: np.ndarray
    spike_dtypes: set[np.dtype]
    waveform_ids: list[h5py.h5d.DatasetID | None]
    waveform_shapes: list[tuple[int, ...] | None]
    waveform_dtypes: set[np.dtype]
    path: Path
    manifest: checksums.Manifest | None = None

    @property
    def n_spikes(self) -> int:
        return int(self.spike_counts.sum())

    def spike_datasets(self) -> list[h5py.Dataset]:
        return [h5py.Dataset(d) for d in self.spike_ids]

    def waveform_datasets(self) -> list[h5py.Dataset | None]:
        return [None if d is None else h5py.Dataset(d) for d in self.waveform_ids]

    def spike_seconds(self, rate: float) -> np.ndarray | None:
        """Every unit's spike samples one after the other divided by ``rate`` (float64 seconds), read at once.

        ``samples / rate`` exactly as numpy divides the stored integers.  None when the
        trains are not all 64-bit integers (then read them one by one).
        """
        if not self.spike_dtypes <= {np.dtype(np.uint64), np.dtype(np.int64)} or len(self.spike_dtypes) > 1:
            return None
        dtype = next(iter(self.spike_dtypes), np.dtype(np.uint64))
        buffer = np.empty(self.n_spikes, dtype=dtype)
        mtype = h5t.py_create(dtype)
        start = 0
        uid = None
        digests = self.manifest.datasets if self.manifest is not None else {}
        try:
            for uid, dsid, count in zip(self.ids, self.spike_ids, self.spike_counts.tolist()):
                if count:
                    dsid.read(h5s.ALL, h5s.ALL, buffer[start:start + count], mtype=mtype)
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
        mtype = h5t.py_create(np.dtype(np.float32))
        uid = None
        try:
            for k, (uid, dsid) in enumerate(zip(self.ids, self.waveform_ids)):
                if dsid is None:
                    continue
                if self.waveform_dtypes == {np.dtype(np.float32)}:
                    dsid.read(h5s.ALL, h5s.ALL, out[k], mtype=mtype)
                    stored = out[k]
                else:
                    stored = h5py.Dataset(dsid)[()]
                    out[k] = stored
                name = f"/units/{uid}/waveform"
                if self.manifest is not None and name in self.manifest.datasets:
                    checksums.check_value(self.manifest, name, self.manifest.datasets[name], stored)
        except _READ_FAILURES:
            with guard_read(self.path, f"/units/{uid}/waveform"):
                raise
        return out


class UnitObjects:
    """The objects of ``/units`` that :func:`scan_units` reads, kept open by the open-time safety scan.

    Passed as ``visit`` to :func:`hdmea.io.hdf5_store.open_recording_hdf5` (see
    :data:`h5stream.files.validated.ObjectVisitor`): the scan opens every object once and
    checks it; this keeps the unit groups, their ``spike_times``, ``waveform`` and
    ``features`` and the features' groups and datasets, and records each group's member
    names in the scan's listing order, so the unit walk opens nothing again.  Anything
    it does not hold (a link the scan did not open) :func:`scan_units` opens itself.
    """

    _UNIT_DATASETS = (b"spike_times", b"waveform")

    def __init__(self) -> None:
        self.objects: dict[bytes, object] = {}
        self.members: dict[bytes, list[bytes]] = {}

    def __call__(self, full: bytes, oid) -> bool:
        if not full.startswith(b"units/"):
            return False
        parts = full.split(b"/")
        depth = len(parts) - 1  # 1: a unit, 2: its member, 3: a feature, 4: a feature's member
        if depth > 4 or (depth > 2 and parts[2] != b"features"):
            return False
        parent, _, member = full.rpartition(b"/")
        if depth > 1:
            self.members.setdefault(parent, []).append(member)
        if oid is None:
            return False
        if depth == 1 or depth == 3 or (depth == 2 and member == b"features"):
            keep = isinstance(oid, h5g.GroupID)
        else:
            keep = isinstance(oid, h5d.DatasetID) and (depth == 4 or member in self._UNIT_DATASETS)
        if keep:
            self.objects[full] = oid
        return keep

    def open(self, parent, parent_key: bytes, member: bytes):
        """The object ``member`` of group ``parent`` (full name ``parent_key``), held or opened now."""
        held = self.objects.pop(parent_key + b"/" + member, None)
        return held if held is not None else h5o.open(parent, member)

    def names(self, group, key: bytes) -> list[bytes]:
        """The member names of ``group`` (full name ``key``) in listing order."""
        held = self.members.get(key)
        if held is not None:
            return held
        names: list[bytes] = []
        group.links.iterate(names.append)
        return names

    def close(self) -> None:
        """Close what :func:`scan_units` did not take."""
        for oid in self.objects.values():
            if oid.valid:
                oid.close()
        self.objects.clear()
        self.members.clear()


def _scalar_type(tid: h5t.TypeID):
    """(numpy dtype, memory type) of a plain number or variable-length text type, else None."""
    cls = tid.get_class()
    if cls == h5t.INTEGER:
        key = (cls, tid.get_size(), tid.get_order(), tid.get_sign())
    elif cls == h5t.FLOAT:
        key = (cls, tid.get_size(), tid.get_order())
    elif cls == h5t.STRING and tid.is_variable_str():
        key = (cls, tid.get_cset())
    else:
        return None
    known = _SCALAR_TYPES.get(key)
    if known is None:
        dtype = tid.dtype
        known = _SCALAR_TYPES[key] = (dtype, h5t.py_create(dtype))
    return known


def _h5py_value(oid, raw: bytes):
    """A plain scalar attribute as h5py reads it, through h5py's low-level API, or :data:`LEFT`."""
    attr = h5a.open(oid, raw)
    if attr.get_space().get_simple_extent_type() != h5s.SCALAR:
        return LEFT
    tid = attr.get_type()
    if tid.get_class() == h5t.ENUM:
        dtype = tid.dtype  # h5py's booleans are an enum; other enums are left to the tree reader
        if dtype.kind != "b":
            return LEFT
        known = (dtype, h5t.py_create(dtype))
    else:
        known = _scalar_type(tid)
    if known is None:
        return LEFT
    dtype, mtype = known
    value = np.empty((), dtype=dtype)
    attr.read(value, mtype=mtype)
    value = value[()]
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return LEFT
    return value


def _plain_attrs(oid) -> dict | None:
    """The attributes of a low-level object as h5py reads them when each is a plain scalar (a number, a
    text, a boolean).

    Read by direct library calls (:mod:`h5stream.tree.batch_attrs`) where they
    can be, else through h5py's low-level API.  None when any attribute needs more (an
    array, a type tag of the tree, a large attribute stored as an object, text that is not
    UTF-8): the caller reads them with :func:`h5stream.tree.read_attrs`, which also names
    any damage.
    """
    lib = native_attrs.bindings()
    if lib is not None:
        out = native_attrs.read_plain(lib, oid.id, _INTERNAL)
        if out is None:
            return None
        for name, value in out.items():
            if value is LEFT:
                value = out[name] = _h5py_value(oid, name.encode("utf-8"))
                if value is LEFT:
                    return None
        return out
    names: list[bytes] = []
    h5a.iterate(oid, names.append)
    out = {}
    for raw in names:
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if name in _INTERNAL:
            return None
        value = _h5py_value(oid, raw)
        if value is LEFT:
            return None
        out[name] = value
    return out


def _wrap(oid):
    return h5py.Group(oid) if isinstance(oid, h5py.h5g.GroupID) else h5py.Dataset(oid)


def _attrs(oid, where: str, manifest) -> dict:
    """The decoded attributes of object ``where``, each checked against its digest in ``manifest``.

    The values and checks are those of :func:`h5stream.tree.read_attrs`: h5py's values
    checked (:func:`h5stream.checksums.check_attrs`), then decoded without a type tag.
    """
    raw = _plain_attrs(oid)
    if raw is None:
        return store.read_attrs(_wrap(oid), manifest=manifest)[0]
    if manifest is not None and manifest.covers_attrs(where):
        checksums.check_attrs(_wrap(oid), raw, manifest, complete=True, where=where)
    return {name: decode_attr(value, None) for name, value in raw.items()}


def scan_units(f: h5py.File, path: Path, held: UnitObjects | None = None,
               listed: Callable[[UnitScan], None] | None = None) -> UnitScan:
    """Read every unit's attributes and features' attributes, list its datasets (data stay on disk).

    Through h5py's low-level API: each unit group and each feature group is opened once
    (or taken from ``held``, what the open-time scan kept open), its attributes read
    directly (see :func:`_plain_attrs`); h5py's high-level objects cost more than the
    library's own work for thousands of units.  A first pass lists every unit's spike
    train and waveform, a second reads the attributes and features; ``listed(scan)``, when
    given, runs between the two (the NWB export reads the spike trains there, so their
    compression runs while the attributes are read).
    """
    ids = store.list_units(f)
    manifest = checksums.manifest_for(f)
    scan = UnitScan(ids, [], [], [], [], np.zeros(len(ids), dtype=np.int64), set(), [], [], set(), Path(path),
                    manifest)
    if held is None:
        held = UnitObjects()
    try:
        if ids:
            groups = _list_datasets(f, scan, held)
            if listed is not None:
                listed(scan)
            _read_attributes(scan, groups, held)
        elif listed is not None:
            listed(scan)
    finally:
        held.close()
    return scan


def _list_datasets(f: h5py.File, scan: UnitScan, held: UnitObjects) -> list:
    """Fill ``scan``'s spike trains, waveforms and members; the unit groups (low-level ids), in order."""
    path = scan.path
    where = "/units"
    dtypes: dict = {}
    lib = native_attrs.bindings()
    groups = []
    try:
        with library_lock:
            units = h5g.open(f.id, b"units")
            counts = scan.spike_counts
            for i, uid in enumerate(scan.ids):
                where = f"/units/{uid}"
                raw_uid = uid.encode("utf-8", "surrogateescape")
                key = b"units/" + raw_uid
                group = held.open(units, b"units", raw_uid)
                members = held.names(group, key)
                names = frozenset(m.decode("utf-8", "surrogateescape") for m in members)
                spikes = held.open(group, key, b"spike_times") if "spike_times" in names else None
                if not isinstance(spikes, h5d.DatasetID):
                    raise RecordingFormatError("unit has no spike_times dataset", path=path, obj=where,
                                               expected="a uint64 dataset spike_times",
                                               found=", ".join(sorted(names)) or "nothing")
                shape, dtype = _shape_and_dtype(lib, spikes, dtypes)
                if len(shape) != 1:
                    raise RecordingFormatError("spike times are not a 1-D array", path=path,
                                               obj=f"{where}/spike_times", expected="one sample index per spike",
                                               found=f"shape {shape}")
                counts[i] = shape[0]
                scan.spike_ids.append(spikes)
                scan.spike_dtypes.add(dtype)
                waveform = held.open(group, key, b"waveform") if "waveform" in names else None
                if isinstance(waveform, h5d.DatasetID):
                    shape, dtype = _shape_and_dtype(lib, waveform, dtypes)
                    scan.waveform_ids.append(waveform)
                    scan.waveform_shapes.append(shape)
                    scan.waveform_dtypes.add(dtype)
                else:
                    scan.waveform_ids.append(None)
                    scan.waveform_shapes.append(None)
                scan.members.append(names)
                groups.append(group)
    except H5StreamError:
        raise
    except _READ_FAILURES:
        with guard_read(path, where):  # the engine's typed error (damage, a missing filter, a checksum)
            raise
    return groups


def _read_attributes(scan: UnitScan, groups: list, held: UnitObjects) -> None:
    """Fill ``scan``'s attributes and features from the unit groups of :func:`_list_datasets`."""
    path, manifest = scan.path, scan.manifest
    where = "/units"
    try:
        with library_lock:
            for uid, group, names in zip(scan.ids, groups, scan.members):
                where = f"/units/{uid}"
                key = b"units/" + uid.encode("utf-8", "surrogateescape")
                scan.attrs.append(_attrs(group, where, manifest))
                per_unit = {}
                features = held.open(group, key, b"features") if "features" in names else None
                if isinstance(features, h5g.GroupID):
                    features_key = key + b"/features"
                    for raw in held.names(features, features_key):
                        name = raw.decode("utf-8", "surrogateescape")
                        if is_hidden(name):
                            continue
                        where = f"/units/{uid}/features/{name}"
                        feature_key = features_key + b"/" + raw
                        feature = held.open(features, features_key, raw)
                        if not isinstance(feature, h5g.GroupID):
                            continue
                        datasets = {}
                        for member in held.names(feature, feature_key):
                            key_name = member.decode("utf-8", "surrogateescape")
                            if is_hidden(key_name):
                                continue  # a large attribute of the feature, read with its attributes
                            obj = held.open(feature, feature_key, member)
                            if isinstance(obj, h5d.DatasetID):
                                datasets[key_name] = h5py.Dataset(obj)
                        per_unit[name] = (_attrs(feature, where, manifest), datasets)
                scan.features.append(per_unit)
    except H5StreamError:
        raise
    except _READ_FAILURES:
        with guard_read(path, where):  # the engine's typed error (damage, a missing filter, a checksum)
            raise


def _shape_and_dtype(lib, dsid: h5d.DatasetID, known: dict) -> tuple[tuple[int, ...], np.dtype]:
    """A dataset's shape and numpy dtype, by direct library calls where they can tell (see :func:`_dtype`)."""
    if lib is not None:
        shape, dtype = native_attrs.dataset_shape_and_dtype(lib, dsid.id)
        return shape, (dtype if dtype is not None else _dtype(dsid, known))
    return dsid.shape, _dtype(dsid, known)


def _dtype(dsid: h5d.DatasetID, known: dict) -> np.dtype:
    """A dataset's numpy dtype, converted once per distinct file type."""
    tid = dsid.get_type()
    key = (tid.get_class(), tid.get_size(), tid.get_order(),
           tid.get_sign() if tid.get_class() == h5t.INTEGER else None)
    if key[0] not in (h5t.INTEGER, h5t.FLOAT):
        return tid.dtype
    dtype = known.get(key)
    if dtype is None:
        dtype = known[key] = tid.dtype
    return dtype


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
