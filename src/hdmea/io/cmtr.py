"""Read spike-sorted units from an MCS ``.cmtr`` file (CMOS-MEA-Tools).

Units are read in bulk: one read of the ``Units`` table, then each unit's
``Peaks`` table read once, whole, while the table before it is summarised.  A
read-ahead thread (for tables of :data:`READ_AHEAD_BYTES` or more in all; smaller
ones are read in the calling thread through the page cache) reads the next table (where the table's rows
lie in plain runs of bytes in the file's own native layout, no filter, allocated: straight from the disk with
``O_DIRECT`` unless the page cache holds most of the tables' bytes, then copied from it; otherwise one low-level h5py read into a
preallocated array, the table's type translated once, not per unit), and a
compiled kernel (``h5stream._ext._peaks``, Cython, built at install, no GIL held) checks every peak
and computes the spike times, amplitudes and mean cutout in one pass.  A unit's
spikes are the peaks with ``IncludePeak == 1``; their ``Timestamp``
(microseconds) becomes a sample index ``round(Timestamp * fs / 1e6)``; the
waveform is the mean cutout of those peaks.  Tables the kernel cannot read as
they are (byte-swapped columns, float16 or other scalar types, cutouts that are not one run of float32) are
summarised with numpy, to the same values.  Sensor id, row and column come from the ``Units`` table (or, for a unit
it does not list, the unit group's attributes) and must agree with the
column-major 65 x 65 mapping.  The ``Source`` signal
(the unit's trace over the whole recording, the largest object in the file) is
read only by :meth:`CmtrFile.read_source`.

The file's ``Acquisition`` is an HDF5 external link to the ``.cmcr``; it is
tolerated (and never followed).  Every other external link, external storage,
virtual dataset or unavailable filter is refused.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib
import logging
import os
import re
import warnings
from pathlib import Path

import h5py
import numpy as np

from hdmea.errors import ConfigError, RecordingFormatError, UnusualVendorValueWarning
from h5stream.kernels.direct_rows import CACHED_SHARE
from h5stream.pagecache import open_residency
from h5stream.tables import TableReader, aligned_buffer, plain_runs
from h5stream.walk import ANY, Entry, Layout, walk_group
from hdmea.io.cmtr_peaks import PEAK_FIELDS, _PeaksLayout, _summarise, _Table, table_columns
from hdmea.io.mcs import (
    PROGRAM_SORTER,
    McsFile,
    attr_number,
    check_mcs_root,
    guard_mcs_read,
    open_mcs_file,
    read_attr,
    require_object,
    sensor_id_to_row_col,
    vendor_acquisition_link,
)
from hdmea.io.mcs_checks import (
    PEAK_CUTOUT_COLUMN,
    PEAKS_COLUMNS,
    UNITS_COLUMNS,
    UNITS_MEASURE_COLUMN,
    check_columns,
    check_first_peak,
    check_units_rows,
    check_voltages,
)

__all__ = ["CmtrUnit", "CmtrFile", "read_units", "SORTER_GROUP", "PEAK_FIELDS"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

SORTER_GROUP = "Spike Sorter"
ACQUISITION_LINK = "Acquisition"
# A unit's Peaks table is read whole; a declared size past this is refused
# rather than allocated (a damaged or hostile header can claim any size).
MAX_TABLE_BYTES = 8 * 1024**3
#: Units whose Peaks tables hold at least this many bytes in all are read with a read-ahead thread (and
#: O_DIRECT, unless the page cache holds CACHED_SHARE of their bytes or more); smaller ones in the calling thread through the page cache (at 12 units and 1.1 MB, the thread
#: and the uncached reads made the read about 2 ms slower).
READ_AHEAD_BYTES = 16 * 1024**2
# Leading fields of the Units table that identify a unit rather than measure it.
_IDENTITY_FIELDS = {"UnitID", "SensorID", "Row", "Column", "RoiID"}
_UNIT_GROUP = re.compile(r"^Unit (\d+)$")
#: What the reader walks below the sorter group: each member (the unit groups) with its ``UnitID``, and each
#: unit's ``Peaks`` table.
_SORTER_LAYOUT = Layout(paths=[(ANY, "Peaks")], attrs={(ANY,): ("UnitID",)})


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


def _int_attribute(attrs: dict, name: str) -> int | None:
    """An integer attribute of those a walk read (:meth:`h5stream.walk.Entry.named_attrs`), else None."""
    value = attrs.get(name)
    return int(value) if isinstance(value, np.integer) else None


class CmtrFile(McsFile):
    """An open ``.cmtr``; use as a context manager."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        # The scan accepts the vendor's /Acquisition link to the sibling .cmcr and nothing else.
        self._f = open_mcs_file(self.path, check=self._check, allow_link=vendor_acquisition_link(self.path))
        self._table_index: dict[int, int] | None = None
        self._layouts: dict[np.dtype, _PeaksLayout] = {}
        self._entries: dict[int, Entry] = {}
        self._duration: tuple | None = None
        self.position_warnings: list[str] = []
        #: the units whose Row/Column were missing or disagreed with the SensorID that placed them
        self.position_warning_units: list[int] = []
        #: texts of the UnusualVendorValueWarnings read so far (kept by the recording:
        #: ``metadata/spike_sorting/unusual_values``)
        self.unusual_values: list[str] = []
        #: each unit's Peaks columns as :meth:`read_units` read them (None: not kept; see :meth:`keep_peak_columns`)
        self._peak_columns: dict[int, dict[str, np.ndarray]] | None = None
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
        check_columns(table.dtype, UNITS_COLUMNS, self.path, ds.name, other=UNITS_MEASURE_COLUMN)
        check_units_rows(table, self.path, ds.name)
        return table

    def _unit_groups(self) -> dict[int, str]:
        sorter = self._f[SORTER_GROUP]
        with guard_mcs_read(self.path, f"/{SORTER_GROUP}"):
            walked = walk_group(self._f, SORTER_GROUP, _SORTER_LAYOUT, path=self.path)
        groups: dict[int, str] = {}
        for name in walked.members:
            raw = name.encode("utf-8", "surrogateescape")
            if raw.decode("utf-8", "replace") != name:  # a name that is not UTF-8
                raise RecordingFormatError("a member name of the spike sorter group is not UTF-8 text",
                                           path=self.path, obj=f"/{SORTER_GROUP}", expected="UTF-8 member names",
                                           found=repr(raw))
            if not _UNIT_GROUP.match(name):
                continue
            full = f"/{SORTER_GROUP}/{name}"
            with guard_mcs_read(self.path, full):
                link = sorter.get(name, getlink=True)
                if not isinstance(link, h5py.HardLink):
                    raise RecordingFormatError("unit group is a link", path=self.path, obj=full,
                                               expected="a group", found=type(link).__name__)
            entry = walked.children[name]
            uid = _int_attribute(entry.attrs or {}, "UnitID")
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
            self._entries[uid] = entry
        return dict(sorted(groups.items()))

    # -- queries
    def unit_ids(self) -> list[int]:
        """UnitIDs in ascending order."""
        return list(self._groups)

    def unit_group_name(self, unit_id: int) -> str:
        """The name of the group of UnitID ``unit_id`` under ``Spike Sorter`` (``Unit 17``)."""
        return self._groups[self._require_unit(unit_id)]

    def unit_members(self, unit_id: int) -> tuple[str, ...]:
        """The member names of the unit's group, as the open-time walk listed them (no link among them)."""
        return self._entries[self._require_unit(unit_id)].members

    def peaks_table(self, unit_id: int, reader: TableReader | None = None,
                    buffers: list[np.ndarray] | None = None) -> np.ndarray | None:
        """The unit's whole ``Peaks`` table as h5py reads it (a structured array of the file's type), read
        through the entry the open walked (no h5py object or type made again); None when the walk holds no
        table of one dimension for it (then read it through :attr:`h5`).

        With a ``reader`` (a :class:`h5stream.tables.TableReader` of this file) and ``buffers`` (a list,
        empty at first), a table whose rows lie in plain runs of bytes is read straight from the file into
        ``buffers[0]`` (made, or made larger, as needed) and the table returned views it: the next call
        reuses it, so the caller copies what it keeps."""
        entry = self._entries[self._require_unit(unit_id)].children.get("Peaks")
        if entry is None or entry.kind != "dataset" or entry.dtype is None or entry.shape is None \
                or len(entry.shape) != 1:
            return None
        with guard_mcs_read(self.path, entry.path):
            runs = plain_runs(entry) if reader is not None and buffers is not None and reader.direct_reads \
                else None
            if runs is not None:
                span = reader.span(int(entry.shape[0]), entry.dtype.itemsize, runs)
                if not buffers or buffers[0].size < span:
                    buffers[:] = [aligned_buffer(span)]
                return reader.read(entry, entry.dtype, runs, buffers[0])
            table = np.empty(entry.shape, dtype=entry.dtype)
            if table.size:
                entry.read_into(table)
        return table

    def keep_peak_columns(self) -> None:
        """From now on :meth:`read_units` also copies each table's columns out (:func:`table_columns`) while the
        table is at hand, for one :meth:`take_peak_columns` each: a caller that copies a unit's ``Peaks`` columns
        after loading it then neither reads the table again nor walks it again from memory."""
        if self._peak_columns is None:
            self._peak_columns = {}

    def take_peak_columns(self, unit_id: int) -> dict[str, np.ndarray] | None:
        """The columns of the unit's ``Peaks`` table that :meth:`read_units` kept (handed over once), else None."""
        return None if self._peak_columns is None else self._peak_columns.pop(int(unit_id), None)

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
            with guard_mcs_read(self.path, group):
                attrs = self._entries[unit_id].named_attrs(("SensorID", "Row", "Column"))
            sensor, row, col = (_int_attribute(attrs, name) for name in ("SensorID", "Row", "Column"))
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

    def _peaks_layout(self, dtype: np.dtype, obj: str) -> _PeaksLayout:
        """The cutout view of a Peaks table type, its columns checked (cached per distinct type)."""
        layout = self._layouts.get(dtype)
        if layout is not None:
            return layout
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
        check_columns(dtype, PEAKS_COLUMNS, self.path, obj, other=PEAK_CUTOUT_COLUMN)
        layout = self._layouts[dtype] = _PeaksLayout.of(dtype)
        return layout

    def _open_table(self, unit_id: int) -> _Table:
        """The unit's Peaks table, its type checked and its size bounded; where its rows lie when they
        can be read straight from the file (nothing is read yet)."""
        obj = f"/{SORTER_GROUP}/{self._groups[unit_id]}/Peaks"
        entry = self._entries[unit_id].children.get("Peaks")
        if entry is None or entry.kind != "dataset":
            raise RecordingFormatError(
                "object is missing", path=self.path, obj=obj, expected="the unit's Peaks table",
                found="nothing" if entry is None else f"a {entry.kind}",
                hint="the file is incomplete or was not written by the MCS software",
            )
        with guard_mcs_read(self.path, obj):
            layout = self._peaks_layout(entry.dtype, obj)
        shape = entry.shape
        if shape is None or len(shape) != 1:
            raise RecordingFormatError("peaks table is not 1-D", path=self.path, obj=obj,
                                       expected="shape (n_peaks,)", found=str(shape))
        if shape[0] * layout.dtype.itemsize > MAX_TABLE_BYTES:
            raise RecordingFormatError(
                "peaks table is too large to read", path=self.path, obj=obj,
                expected=f"at most {MAX_TABLE_BYTES} bytes", found=f"{shape[0]} rows of {layout.dtype.itemsize} bytes",
                hint="raise hdmea.io.cmtr.MAX_TABLE_BYTES if the file is genuine",
            )
        return _Table(obj=obj, entry=entry, layout=layout, n_rows=int(shape[0]), runs=None)

    def read_unit(self, unit_id: int, sampling_rate: float, *, waveform: bool = True) -> CmtrUnit:
        """Read one unit; ``sampling_rate`` (Hz) converts timestamps to samples."""
        return self.read_units(sampling_rate, [unit_id], waveform=waveform)[0]

    def _require_unit(self, unit_id: int) -> int:
        unit_id = int(unit_id)
        if unit_id not in self._groups:
            raise RecordingFormatError(
                f"no unit with UnitID {unit_id}", path=self.path, obj=f"/{SORTER_GROUP}",
                expected="one of " + ", ".join(map(str, self._groups)), found=str(unit_id),
            )
        return unit_id

    def _unit(self, unit_id: int, table: _Table, peaks: np.ndarray, sampling_rate: float,
              waveform: bool) -> CmtrUnit:
        sensor, row, col = self._position(unit_id)
        check_first_peak(peaks, self.path, table.obj)
        spikes, amps, wave, suspects = _summarise(peaks, table.layout, sampling_rate, waveform, self, table.obj)
        check_voltages(amps, self.path, table.obj, "peak amplitude", item="included peak")
        check_voltages(wave, self.path, table.obj, "mean cutout", allow_tiny=True, item="sample")
        unusual = suspects.judge(self.path, table.obj) if suspects is not None else None
        if unusual and unusual not in self.unusual_values:  # a lone cutout sample (hdmea.io.mcs_checks)
            self.unusual_values.append(unusual)
            warnings.warn(unusual, UnusualVendorValueWarning, stacklevel=3)
        if self._peak_columns is not None and peaks.size:
            self._peak_columns[unit_id] = table_columns(peaks)
        return CmtrUnit(
            unit_id=unit_id, sensor_id=sensor, row=row, col=col, spike_times=spikes, waveform=wave,
            peak_amplitudes=amps, n_peaks=int(peaks.size), quality=self._quality(unit_id),
        )

    def _check_peaks(self, peaks: np.ndarray, obj: str) -> None:
        """Refuse a Peaks table whose flags or timestamps are implausible (no checksum protects them).

        ``IncludePeak`` is 0 or 1; ``Timestamp`` (microseconds) is finite, sorted
        and inside the recording (``0 .. LB.RecordingDuration`` when the file states it).
        (numpy; the compiled kernel finds the same rows in its one pass.)
        """
        flags = peaks["IncludePeak"]
        bad = (flags != 0) & (flags != 1)
        times = peaks["Timestamp"]
        bad_times = ~np.isfinite(times) | (times < 0) if times.size else np.zeros(0, bool)
        unsorted = times[1:] < times[:-1]
        self._refuse(peaks, obj, int(np.flatnonzero(bad)[0]) if bad.any() else -1,
                     int(np.flatnonzero(bad_times)[0]) if bad_times.any() else -1,
                     int(np.flatnonzero(unsorted)[0]) + 1 if unsorted.any() else -1)

    def _refuse(self, peaks: np.ndarray, obj: str, bad_flag: int, bad_time: int, unsorted: int) -> None:
        """Raise for the first problem found (flags, then timestamps, order, and the recording's end)."""
        if bad_flag >= 0:
            raise RecordingFormatError(
                "peak has an IncludePeak flag other than 0 or 1", path=self.path, obj=f"{obj} row {bad_flag}",
                expected="0 or 1", found=repr(peaks["IncludePeak"][bad_flag].item()), hint="the file is damaged",
            )
        times = peaks["Timestamp"]
        if not times.size:
            return
        if bad_time >= 0:
            raise RecordingFormatError(
                "peaks have negative or non-finite timestamps", path=self.path, obj=f"{obj} row {bad_time}",
                expected="microseconds >= 0", found=repr(times[bad_time].item()),
            )
        if unsorted >= 0:
            i = unsorted
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
        if self._duration is not None:
            return self._duration[0]
        duration = self.recording_duration_us()
        if duration is not None and not (np.isfinite(duration) and duration > 0):
            raise RecordingFormatError(
                "implausible recording duration", path=self.path, obj="/@LB.RecordingDuration",
                expected="a positive number of microseconds", found=repr(duration),
            )
        self._duration = (duration,)
        return duration

    def read_units(self, sampling_rate: float, unit_ids=None, *, waveform: bool = True) -> list[CmtrUnit]:
        """Read units (all by default) in ascending UnitID order.

        Each unit's Peaks table is read once; when the tables hold :data:`READ_AHEAD_BYTES` or more
        in all, the next one is read by a read-ahead thread while this one is summarised.
        """
        if sampling_rate is None or not np.isfinite(sampling_rate) or sampling_rate <= 0:
            raise ConfigError(f"sampling_rate must be a positive number of Hz, found {sampling_rate!r}")
        ids = self.unit_ids() if unit_ids is None else sorted(int(u) for u in unit_ids)
        ids = [self._require_unit(u) for u in ids]
        if not ids:
            return []
        tables = [self._open_table(u) for u in ids]
        for t in tables:
            with guard_mcs_read(self.path, t.obj):
                t.runs = plain_runs(t.entry)
        # Small tables (a short recording, a few units) are read in this thread through the page cache:
        # a read-ahead thread pays off only on tables that take a while to deliver, and O_DIRECT only on
        # tables the page cache lacks (it reads held pages from the disk again: see _held_share).
        large = sum(t.n_rows * t.layout.dtype.itemsize for t in tables) >= READ_AHEAD_BYTES
        held = _held_share(self.path, tables) if large else None
        with TableReader(self._f, self.path, direct=large and (held is None or held < CACHED_SHARE)) as reader:
            if not reader.direct_reads:
                for t in tables:
                    t.runs = None
            direct = [t for t in tables if t.runs is not None]
            buffers = ([aligned_buffer(max(t.span for t in direct)) for _ in range(2)] if direct else [None, None])
            if not large:
                return [self._unit(uid, table, self._read_table(reader, table, buffers[0]), sampling_rate, waveform)
                        for uid, table in zip(ids, tables)]
            units = []
            with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="cmtr-peaks") as ahead:
                def submit(i):
                    return ahead.submit(self._read_table, reader, tables[i], buffers[i % 2])

                pending = submit(0)
                try:
                    for i, uid in enumerate(ids):
                        peaks = pending.result()
                        pending = submit(i + 1) if i + 1 < len(ids) else None
                        units.append(self._unit(uid, tables[i], peaks, sampling_rate, waveform))
                finally:
                    if pending is not None:
                        pending.cancel()
            return units

    def _read_table(self, reader: TableReader, table: _Table, buffer: np.ndarray | None) -> np.ndarray:
        """The whole table as a structured array (viewing ``buffer`` when its rows were read straight from the file)."""
        with guard_mcs_read(self.path, table.obj):
            return reader.read(table.entry, table.layout.dtype, table.runs, buffer)

    def read_source(self, unit_id: int) -> np.ndarray:
        """The unit's ``Source`` signal (large: read only when asked)."""
        name = self._groups.get(int(unit_id))
        if name is None:
            raise RecordingFormatError(f"no unit with UnitID {unit_id}", path=self.path, obj=f"/{SORTER_GROUP}")
        ds = require_object(self._f[SORTER_GROUP][name], "Source", self.path, kind=h5py.Dataset)
        with guard_mcs_read(self.path, ds.name):
            return ds[()]


def _held_share(path: Path, tables: list[_Table]) -> float | None:
    """The share of the bytes of the tables' plain runs that the page cache holds now (None where the
    system cannot say, or no table lies in plain runs).

    A direct read costs the disk's time whether the cache holds the pages or not: on the benchmark machine (a
    virtual machine, its disk behind virtio) the lab-sized ``.cmtr`` of 120 units (283 MB, the page cache
    holding it) took 0.42-0.57 s to read with ``O_DIRECT`` (500-680 MB/s) and 0.07-0.17 s through the cache
    (``dd``, 2 MiB requests, other work on both cores)."""
    spans = []
    for t in tables:
        if t.runs is None:
            continue
        itemsize = t.layout.dtype.itemsize
        ends = [row for row, _ in t.runs[1:]] + [t.n_rows]
        spans += [(offset, (end - row) * itemsize) for (row, offset), end in zip(t.runs, ends)]
    total = sum(n for _, n in spans)
    if not total:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        residency = open_residency(fd)
        if residency is None:
            return None
        with residency:
            return sum(residency.fraction(offset, n) * n for offset, n in spans) / total
    finally:
        os.close(fd)


def read_units(cmtr_path: str | os.PathLike, sampling_rate: float, unit_ids=None, *,
               waveform: bool = True) -> list[CmtrUnit]:
    """All units of a ``.cmtr`` (ascending UnitID); see :class:`CmtrFile`."""
    with CmtrFile(cmtr_path) as f:
        return f.read_units(sampling_rate, unit_ids, waveform=waveform)


# The original pipeline's functions at this path live in hdmea._compat (its readers and steps, which use
# this module): the table there lists them and hands them on on first use.
importlib.import_module("hdmea._compat_table").hand_on(globals())
