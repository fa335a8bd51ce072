"""Read spike-sorted units from an MCS ``.cmtr`` file (CMOS-MEA-Tools).

Units are read in bulk with h5py: one read of the ``Units`` table, then one
low-level read of each unit's ``Peaks`` table into a preallocated array (the
table's type is translated once, not per unit).  A unit's spikes are the peaks
with ``IncludePeak == 1``; their ``Timestamp`` (microseconds) becomes a sample
index ``round(Timestamp * fs / 1e6)``; the waveform is the mean cutout of those
peaks.  Sensor id, row and column come from the ``Units`` table (or, for a unit
it does not list, the unit group's attributes) and must agree with the
column-major 65 x 65 mapping.  The ``Source`` signal
(the unit's trace over the whole recording, the largest object in the file) is
read only by :meth:`CmtrFile.read_source`.

The file's ``Acquisition`` is an HDF5 external link to the ``.cmcr``; it is
tolerated (and never followed).  Every other external link, external storage,
virtual dataset or unavailable filter is refused.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import re
from pathlib import Path

import h5py
import numpy as np
from numpy.lib import recfunctions

from hdmea.errors import ConfigError, RecordingFormatError
from hdmea.io.mcs import (
    PROGRAM_SORTER,
    attr_number,
    check_mcs_root,
    guard_mcs_read,
    open_mcs_file,
    read_attr,
    require_object,
    sensor_id_to_row_col,
    vendor_acquisition_link,
)

__all__ = ["CmtrUnit", "CmtrFile", "read_units", "SORTER_GROUP", "PEAK_FIELDS"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

SORTER_GROUP = "Spike Sorter"
ACQUISITION_LINK = "Acquisition"
PEAK_FIELDS = ("Timestamp", "PeakAmplitude", "IncludePeak")
# A unit's Peaks table is read whole; a declared size past this is refused
# rather than allocated (a damaged or hostile header can claim any size).
MAX_TABLE_BYTES = 8 * 1024**3
# Leading fields of the Units table that identify a unit rather than measure it.
_IDENTITY_FIELDS = {"UnitID", "SensorID", "Row", "Column", "RoiID"}
_UNIT_GROUP = re.compile(r"^Unit (\d+)$")


@dataclasses.dataclass
class CmtrUnit:
    """One spike-sorted unit."""

    unit_id: int
    sensor_id: int
    row: int
    col: int
    spike_times: np.ndarray  # uint64 samples, sorted
    waveform: np.ndarray  # float32 mean cutout of included peaks
    peak_amplitudes: np.ndarray  # float32, included peaks
    n_peaks: int  # all peaks, included or not
    quality: dict[str, float]

    @property
    def spike_count(self) -> int:
        return int(self.spike_times.size)


def _microseconds_to_samples(timestamps_us: np.ndarray, sampling_rate: float) -> np.ndarray:
    # Timestamps are integral microseconds; rint of the exact product gives the
    # nearest sample (the acquisition tick divides a second exactly at 20/10/5 kHz).
    return np.rint(np.asarray(timestamps_us, dtype=np.float64) * (sampling_rate / 1e6)).astype(np.uint64)


def _int_attribute(parent_id, name: bytes, attr: bytes) -> int | None:
    """An integer attribute of ``parent/name`` read through the low-level API (no Python objects per call)."""
    if not h5py.h5a.exists(parent_id, attr, obj_name=name):
        return None
    aid = h5py.h5a.open(parent_id, attr, obj_name=name)
    if aid.dtype.kind not in "iu" or aid.shape not in ((), (1,)):
        return None
    out = np.zeros(aid.shape, dtype=np.int64)
    aid.read(out)
    return int(out.reshape(-1)[0])


@dataclasses.dataclass
class _PeaksLayout:
    """How to read one Peaks table type: its dtype, its HDF5 memory type, where the cutouts lie."""

    dtype: np.dtype
    mtype: object
    cutout_names: list[str]
    cutout_offset: int | None  # byte offset of a run of float32 cutout columns, or None

    @classmethod
    def of(cls, dtype: np.dtype) -> _PeaksLayout:
        names = [n for n in dtype.names if n not in PEAK_FIELDS]
        offset = None
        if names:
            fields = [dtype.fields[n] for n in names]
            first = fields[0][1]
            contiguous = all(f[0] == np.dtype("<f4") and f[1] == first + 4 * i for i, f in enumerate(fields))
            offset = first if contiguous else None
        return cls(dtype=dtype, mtype=h5py.h5t.py_create(dtype), cutout_names=names, cutout_offset=offset)

    def mean_cutout(self, peaks: np.ndarray, include: np.ndarray) -> np.ndarray:
        k = int(np.count_nonzero(include))
        n_cut = len(self.cutout_names)
        if not n_cut:
            return np.zeros(0, dtype=np.float32)
        if k == 0:
            return np.zeros(n_cut, dtype=np.float32)
        if self.cutout_offset is not None and peaks.flags.c_contiguous:
            # The cutout columns seen in place as an (n_peaks, n_cut) float32 array.
            view = np.ndarray(shape=(peaks.size, n_cut), dtype="<f4", buffer=peaks,
                              offset=self.cutout_offset, strides=(peaks.dtype.itemsize, 4))
            total = view[include].sum(axis=0, dtype=np.float64)
        else:
            total = recfunctions.structured_to_unstructured(peaks[include][self.cutout_names],
                                                            dtype=np.float64).sum(axis=0)
        return (total / k).astype(np.float32)


class CmtrFile:
    """An open ``.cmtr``; use as a context manager."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        # The scan accepts the vendor's /Acquisition link to the sibling .cmcr and nothing else.
        self._f = open_mcs_file(self.path, check=self._check, allow_link=vendor_acquisition_link(self.path))
        self._table_index: dict[int, int] | None = None
        self._layouts: list = []
        self.position_warnings: list[str] = []
        #: the units whose Row/Column were missing or disagreed with the SensorID that placed them
        self.position_warning_units: list[int] = []
        try:
            self._units_table = self._read_units_table()
            self._groups = self._unit_groups()
        except BaseException:
            self._f.close()
            raise

    # -- opening
    def _check(self, f: h5py.File) -> None:
        check_mcs_root(f, self.path, program=PROGRAM_SORTER)
        require_object(f, SORTER_GROUP, self.path)

    def _read_units_table(self) -> np.ndarray | None:
        sorter = self._f[SORTER_GROUP]
        if "Units" not in sorter:
            return None
        ds = require_object(sorter, "Units", self.path, kind=h5py.Dataset)
        with guard_mcs_read(self.path, ds.name):
            table = ds[()]
        if table.dtype.names is None or "UnitID" not in table.dtype.names:
            raise RecordingFormatError(
                "units table has no UnitID column", path=self.path, obj=ds.name,
                expected="a compound table with UnitID", found=str(table.dtype),
            )
        for name in _IDENTITY_FIELDS & set(table.dtype.names):
            if table.dtype.fields[name][0].kind not in "iu" or table[name].ndim != 1:
                raise RecordingFormatError(
                    f"units table column {name!r} does not hold integers", path=self.path,
                    obj=f"{ds.name} column {name!r}", expected="integers", found=str(table.dtype.fields[name][0]),
                )
        return table

    def _unit_groups(self) -> dict[int, str]:
        sorter = self._f[SORTER_GROUP]
        groups: dict[int, str] = {}
        for name in sorter:
            if not _UNIT_GROUP.match(name):
                continue
            full = f"/{SORTER_GROUP}/{name}"
            with guard_mcs_read(self.path, full):
                link = sorter.get(name, getlink=True)
                if not isinstance(link, h5py.HardLink):
                    raise RecordingFormatError("unit group is a link", path=self.path, obj=full,
                                               expected="a group", found=type(link).__name__)
                uid = _int_attribute(sorter.id, name.encode(), b"UnitID")
            if uid is None:
                raise RecordingFormatError(
                    "unit group has no integer UnitID attribute", path=self.path, obj=full + "/@UnitID",
                    expected="an integer", found="nothing usable",
                )
            if uid in groups:
                raise RecordingFormatError(
                    f"two unit groups carry UnitID {uid}", path=self.path, obj=full,
                    found=f"{groups[uid]} and {name}",
                )
            groups[uid] = name
        return dict(sorted(groups.items()))

    # -- lifecycle
    def close(self) -> None:
        if self._f.id.valid:
            self._f.close()

    def __enter__(self) -> CmtrFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- queries
    @property
    def h5(self) -> h5py.File:
        return self._f

    def unit_ids(self) -> list[int]:
        """UnitIDs in ascending order."""
        return list(self._groups)

    def acquisition_link(self) -> tuple[str, str] | None:
        """(file name, path) the ``Acquisition`` link points to, without following it."""
        link = self._f.get(ACQUISITION_LINK, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            return link.filename, link.path
        return None

    def recording_duration_us(self) -> float | None:
        return attr_number(read_attr(self._f, "LB.RecordingDuration", self.path))

    def units_table(self) -> np.ndarray | None:
        return None if self._units_table is None else self._units_table.copy()

    def _quality(self, unit_id: int) -> dict[str, float]:
        row = self._table_row(unit_id)
        if row is None:
            return {}
        out = {}
        for name in row.dtype.names:
            if name in _IDENTITY_FIELDS:
                continue
            value = row[name]
            if np.ndim(value) == 0 and np.asarray(value).dtype.kind in "iuf":
                out[name] = float(value)
        return out

    def _table_row(self, unit_id: int):
        if self._table_index is None:
            table = self._units_table
            self._table_index = {} if table is None else {int(u): i for i, u in enumerate(table["UnitID"])}
        i = self._table_index.get(int(unit_id))
        return None if i is None else self._units_table[i]

    def _position(self, unit_id: int) -> tuple[int, int, int]:
        """(sensor id, row, col) from the Units table, else from the unit group's attributes."""
        group = f"/{SORTER_GROUP}/{self._groups[unit_id]}"
        rec = self._table_row(unit_id)
        names = () if rec is None else rec.dtype.names
        if rec is not None and "SensorID" in names:
            sensor = int(rec["SensorID"])
            row = int(rec["Row"]) if "Row" in names else None
            col = int(rec["Column"]) if "Column" in names else None
            where = f"/{SORTER_GROUP}/Units"
        else:
            gid = self._f[SORTER_GROUP].id
            name = self._groups[unit_id].encode()
            with guard_mcs_read(self.path, group):
                sensor = _int_attribute(gid, name, b"SensorID")
                row = _int_attribute(gid, name, b"Row")
                col = _int_attribute(gid, name, b"Column")
            where = group
            if sensor is None and row is not None and col is not None:
                # Without an id, Row/Column decide; a 0 in either means they count from 0.
                base = 0 if min(row, col) == 0 else 1
                sensor = 65 * (col - base) + (row - base) + 1
                if base == 0:
                    self._warn_positions(f"{where} has no SensorID and a zero-based Row/Column "
                                         f"({row}, {col}); read as sensor {sensor}", unit_id)
                    row, col = sensor_id_to_row_col(sensor) if 1 <= sensor <= 65 * 65 else (None, None)
                for axis, value in (("Row", row), ("Column", col)):
                    if value is not None and not 1 <= value <= 65:
                        raise RecordingFormatError(
                            f"{axis} of unit {unit_id} outside the 65 x 65 grid and no SensorID", path=self.path,
                            obj=where, expected="1..65", found=str(value), hint="the file is damaged",
                        )
        if sensor is None:
            raise RecordingFormatError(
                "unit has no sensor id", path=self.path, obj=group + "/@SensorID",
                expected="SensorID or Row/Column attributes or a Units table entry", found="none",
            )
        if not 1 <= sensor <= 65 * 65:
            raise RecordingFormatError(
                f"sensor id of unit {unit_id} outside the 65 x 65 grid", path=self.path, obj=where,
                expected="1..4225", found=str(sensor),
            )
        # The SensorID decides the position: Row/Column that are missing, 0-based, outside the grid or
        # otherwise different only earn a warning naming the unit.
        r, c = sensor_id_to_row_col(sensor)
        if row is None or col is None:
            self._warn_positions(
                f"{where}: unit {unit_id} has no Row/Column; placed by its SensorID {sensor} (row {r}, column {c})",
                unit_id)
        elif row != r or col != c:
            self._warn_positions(
                f"{where}: Row/Column of unit {unit_id} ({row}, {col}) disagree with its SensorID {sensor} "
                f"(row {r}, column {c} on the column-major 65 x 65 grid); the SensorID is used", unit_id)
        return sensor, r, c

    def _warn_positions(self, text: str, unit_id: int) -> None:
        """Log the first disagreement of Row/Column with SensorID of this file, count the rest."""
        self.position_warnings.append(text)
        self.position_warning_units.append(int(unit_id))
        if len(self.position_warnings) == 1:
            logger.warning("%s: %s (further disagreements of this file are not logged)", self.path, text)

    def _peaks_layout(self, tid, obj: str) -> _PeaksLayout:
        """Numpy dtype, memory type and cutout view of a Peaks table type (cached per distinct type)."""
        for known, layout in self._layouts:
            if tid.equal(known):
                return layout
        dtype = tid.dtype
        names = dtype.names or ()
        missing = [n for n in ("Timestamp", "IncludePeak") if n not in names]
        if missing:
            raise RecordingFormatError(
                "peaks table lacks columns", path=self.path, obj=obj,
                expected="Timestamp, PeakAmplitude, IncludePeak and cutout columns", found=", ".join(names),
            )
        bad = [n for n in names if n not in ("Timestamp",) and dtype.fields[n][0].kind not in "iuf"]
        if bad or dtype.fields["Timestamp"][0].kind not in "iuf":
            raise RecordingFormatError(
                "peaks table has non-numeric columns", path=self.path, obj=obj,
                expected="numeric Timestamp, PeakAmplitude, IncludePeak and cutouts",
                found=", ".join(f"{n}: {dtype.fields[n][0]}" for n in (bad or ["Timestamp"])),
            )
        # Cutout samples follow the named fields; a column before them that is not one of them
        # is a damaged name (a flipped byte in 'PeakAmplitude' would pass for one more sample).
        last_named = max(dtype.fields[n][1] for n in PEAK_FIELDS if n in names)
        stray = [n for n in names if n not in PEAK_FIELDS and dtype.fields[n][1] < last_named]
        if stray:
            raise RecordingFormatError(
                "peaks table has an unknown column among its named columns", path=self.path, obj=obj,
                expected="Timestamp, PeakAmplitude, IncludePeak, then the cutout samples",
                found=", ".join(names[:6]) + (", ..." if len(names) > 6 else ""),
            )
        layout = _PeaksLayout.of(dtype)
        self._layouts.append((tid, layout))
        return layout

    def _read_peaks(self, unit_id: int) -> tuple[np.ndarray, _PeaksLayout]:
        obj = f"/{SORTER_GROUP}/{self._groups[unit_id]}/Peaks"
        with guard_mcs_read(self.path, obj):
            try:
                dsid = h5py.h5d.open(self._f.id, obj.encode())
            except KeyError:
                raise RecordingFormatError(
                    "object is missing", path=self.path, obj=obj, expected="the unit's Peaks table",
                    found="nothing", hint="the file is incomplete or was not written by the MCS software",
                ) from None
            layout = self._peaks_layout(dsid.get_type(), obj)
            shape = dsid.shape
            if len(shape) != 1:
                raise RecordingFormatError("peaks table is not 1-D", path=self.path, obj=obj,
                                           expected="shape (n_peaks,)", found=str(shape))
            if shape[0] * layout.dtype.itemsize > MAX_TABLE_BYTES:
                raise RecordingFormatError(
                    "peaks table is too large to read", path=self.path, obj=obj,
                    expected=f"at most {MAX_TABLE_BYTES} bytes", found=f"{shape[0]} rows of {layout.dtype.itemsize} bytes",
                    hint="raise hdmea.io.cmtr.MAX_TABLE_BYTES if the file is genuine",
                )
            peaks = np.empty(shape[0], dtype=layout.dtype)
            if shape[0]:
                dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, peaks, mtype=layout.mtype)
        return peaks, layout

    def read_unit(self, unit_id: int, sampling_rate: float, *, waveform: bool = True) -> CmtrUnit:
        """Read one unit; ``sampling_rate`` (Hz) converts timestamps to samples."""
        unit_id = int(unit_id)
        if unit_id not in self._groups:
            raise RecordingFormatError(
                f"no unit with UnitID {unit_id}", path=self.path, obj=f"/{SORTER_GROUP}",
                expected="one of " + ", ".join(map(str, self._groups)), found=str(unit_id),
            )
        sensor, row, col = self._position(unit_id)
        peaks, layout = self._read_peaks(unit_id)
        self._check_peaks(peaks, f"/{SORTER_GROUP}/{self._groups[unit_id]}/Peaks")
        include = peaks["IncludePeak"] == 1
        timestamps = peaks["Timestamp"][include]
        spikes = _microseconds_to_samples(timestamps, sampling_rate)
        amps = (peaks["PeakAmplitude"][include].astype(np.float32) if "PeakAmplitude" in layout.dtype.names
                else np.zeros(0, np.float32))
        wave = layout.mean_cutout(peaks, include) if waveform else np.zeros(0, dtype=np.float32)
        return CmtrUnit(
            unit_id=unit_id, sensor_id=sensor, row=row, col=col, spike_times=spikes, waveform=wave,
            peak_amplitudes=amps, n_peaks=int(peaks.size), quality=self._quality(unit_id),
        )

    def _check_peaks(self, peaks: np.ndarray, obj: str) -> None:
        """Refuse a Peaks table whose flags or timestamps are implausible (no checksum protects them).

        ``IncludePeak`` is 0 or 1; ``Timestamp`` (microseconds) is finite, sorted
        and inside the recording (``0 .. LB.RecordingDuration`` when the file states it).
        """
        flags = peaks["IncludePeak"]
        bad = (flags != 0) & (flags != 1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise RecordingFormatError(
                "peak has an IncludePeak flag other than 0 or 1", path=self.path, obj=f"{obj} row {i}",
                expected="0 or 1", found=repr(flags[i].item()), hint="the file is damaged",
            )
        times = peaks["Timestamp"]
        if not times.size:
            return
        if not np.all(np.isfinite(times)) or times.min() < 0:
            bad_times = ~np.isfinite(times) | (times < 0)
            i = int(np.flatnonzero(bad_times)[0])
            raise RecordingFormatError(
                "peaks have negative or non-finite timestamps", path=self.path, obj=f"{obj} row {i}",
                expected="microseconds >= 0", found=repr(times[i].item()),
            )
        unsorted = times[1:] < times[:-1]
        if unsorted.any():
            i = int(np.flatnonzero(unsorted)[0]) + 1
            raise RecordingFormatError(
                "peak timestamps are not sorted", path=self.path, obj=f"{obj} row {i}",
                expected=f"a timestamp >= {times[i - 1].item()} (the one before it)", found=repr(times[i].item()),
                hint="the file is damaged",
            )
        duration = self._duration_us()
        if duration is not None and times[-1] > duration:
            raise RecordingFormatError(
                "peak timestamps lie past the end of the recording", path=self.path, obj=f"{obj} row {times.size - 1}",
                expected=f"at most {duration:g} us (/@LB.RecordingDuration)", found=repr(times[-1].item()),
                hint="the file is damaged, or the .cmtr belongs to another recording",
            )

    def _duration_us(self) -> float | None:
        duration = self.recording_duration_us()
        if duration is not None and not (np.isfinite(duration) and duration > 0):
            raise RecordingFormatError(
                "implausible recording duration", path=self.path, obj="/@LB.RecordingDuration",
                expected="a positive number of microseconds", found=repr(duration),
            )
        return duration

    def read_units(self, sampling_rate: float, unit_ids=None, *, waveform: bool = True) -> list[CmtrUnit]:
        """Read units (all by default) in ascending UnitID order."""
        if sampling_rate is None or not np.isfinite(sampling_rate) or sampling_rate <= 0:
            raise ConfigError(f"sampling_rate must be a positive number of Hz, found {sampling_rate!r}")
        ids = self.unit_ids() if unit_ids is None else sorted(int(u) for u in unit_ids)
        return [self.read_unit(u, sampling_rate, waveform=waveform) for u in ids]

    def read_source(self, unit_id: int) -> np.ndarray:
        """The unit's ``Source`` signal (large: read only when asked)."""
        name = self._groups.get(int(unit_id))
        if name is None:
            raise RecordingFormatError(f"no unit with UnitID {unit_id}", path=self.path, obj=f"/{SORTER_GROUP}")
        ds = require_object(self._f[SORTER_GROUP][name], "Source", self.path, kind=h5py.Dataset)
        with guard_mcs_read(self.path, ds.name):
            return ds[()]


def read_units(cmtr_path: str | os.PathLike, sampling_rate: float, unit_ids=None, *,
               waveform: bool = True) -> list[CmtrUnit]:
    """All units of a ``.cmtr`` (ascending UnitID); see :class:`CmtrFile`."""
    with CmtrFile(cmtr_path) as f:
        return f.read_units(sampling_rate, unit_ids, waveform=waveform)


# The original pipeline's functions defined at this path, handed on from where they live and loaded on
# first use: its readers (hdmea.io.lab_readers) and its steps (hdmea.steps.source_info, a layer above;
# this table is the only way this module reaches it, see tests/unit/test_import_graph.py).
_HANDED_ON = {
    "load_cmtr_data": "hdmea.io.lab_readers",
    "get_cmtr_recording_id": "hdmea.io.lab_readers",
    "validate_cmcr_cmtr_match": "hdmea.io.lab_readers",
    "add_cmtr_unit_info": "hdmea.steps.source_info",
    "update_hdf5_with_cmtr_unit_info": "hdmea.steps.source_info",
}


def __getattr__(name: str):
    module = _HANDED_ON.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ += list(_HANDED_ON)
