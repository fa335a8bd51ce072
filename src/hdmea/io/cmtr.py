"""Read spike-sorted units from an MCS ``.cmtr`` file (CMOS-MEA-Tools).

Units are read in bulk with h5py: one read of the ``Units`` table, then one read
of each unit's ``Peaks`` table.  A unit's spikes are the peaks with
``IncludePeak == 1``; their ``Timestamp`` (microseconds) becomes a sample index
``round(Timestamp * fs / 1e6)``; the waveform is the mean cutout of those peaks.
Row, column and sensor id come from the unit's attributes (checked against the
``Units`` table and the column-major 65 x 65 mapping).  The ``Source`` signal
(the unit's trace over the whole recording, the largest object in the file) is
read only by :meth:`CmtrFile.read_source`.

The file's ``Acquisition`` is an HDF5 external link to the ``.cmcr``; it is
tolerated (and never followed).  Every other external link, external storage,
virtual dataset or unavailable filter is refused.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path

import h5py
import numpy as np
from numpy.lib import recfunctions

from h5stream.errors import FormatError, UnsafeFileError
from h5stream.files import scan_unsafe_objects
from hdmea.errors import ConfigError, RecordingFormatError
from hdmea.io.mcs import (
    PROGRAM_SORTER,
    attr_number,
    check_mcs_root,
    guard_mcs_read,
    open_mcs_file,
    require_object,
    sensor_id_to_row_col,
)

__all__ = ["CmtrUnit", "CmtrFile", "read_units", "SORTER_GROUP", "PEAK_FIELDS"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

SORTER_GROUP = "Spike Sorter"
ACQUISITION_LINK = "Acquisition"
PEAK_FIELDS = ("Timestamp", "PeakAmplitude", "IncludePeak")
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


class CmtrFile:
    """An open ``.cmtr``; use as a context manager."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._f = open_mcs_file(self.path, scan=False, check=self._check)
        try:
            self._units_table = self._read_units_table()
            self._groups = self._unit_groups()
        except BaseException:
            self._f.close()
            raise

    # -- opening
    def _check(self, f: h5py.File) -> None:
        check_mcs_root(f, self.path, program=PROGRAM_SORTER)
        for name in f:
            link = f.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                if name == ACQUISITION_LINK:
                    continue
                raise UnsafeFileError(
                    "external link to another file", path=self.path, obj="/" + name,
                    found=f"link to {link.filename}:{link.path}",
                    hint="only /Acquisition may link to the raw .cmcr file",
                )
            if isinstance(link, h5py.SoftLink):
                continue
            obj = f[name]
            if isinstance(obj, h5py.Group):
                try:
                    scan_unsafe_objects(obj, self.path)
                except FormatError as exc:
                    # The scan names objects from the scanned group; name them from the root.
                    reason = str(exc).split("]: ", 1)[-1]
                    raise type(exc)(reason, path=self.path, obj="/" + name + str(exc.obj or "")) from exc
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
        return table

    def _unit_groups(self) -> dict[int, str]:
        sorter = self._f[SORTER_GROUP]
        groups: dict[int, str] = {}
        for name in sorter:
            if not _UNIT_GROUP.match(name):
                continue
            g = require_object(sorter, name, self.path)
            uid = attr_number(g.attrs.get("UnitID"))
            if uid is None:
                raise RecordingFormatError(
                    "unit group has no UnitID attribute", path=self.path, obj=g.name + "/@UnitID",
                    expected="an integer", found=repr(g.attrs.get("UnitID")),
                )
            uid = int(uid)
            if uid in groups:
                raise RecordingFormatError(
                    f"two unit groups carry UnitID {uid}", path=self.path, obj=g.name,
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
        return attr_number(self._f.attrs.get("LB.RecordingDuration"))

    def units_table(self) -> np.ndarray | None:
        return None if self._units_table is None else self._units_table.copy()

    def _quality(self, unit_id: int) -> dict[str, float]:
        table = self._units_table
        if table is None:
            return {}
        hit = np.flatnonzero(table["UnitID"] == unit_id)
        if hit.size == 0:
            return {}
        row = table[hit[0]]
        out = {}
        for name in table.dtype.names:
            if name in _IDENTITY_FIELDS:
                continue
            value = row[name]
            if np.ndim(value) == 0 and np.asarray(value).dtype.kind in "iuf":
                out[name] = float(value)
        return out

    def _position(self, unit_id: int, g: h5py.Group) -> tuple[int, int, int]:
        sensor = attr_number(g.attrs.get("SensorID"))
        row = attr_number(g.attrs.get("Row"))
        col = attr_number(g.attrs.get("Column"))
        table = self._units_table
        if table is not None and (sensor is None or row is None or col is None):
            hit = np.flatnonzero(table["UnitID"] == unit_id)
            if hit.size:
                rec = table[hit[0]]
                names = table.dtype.names
                sensor = sensor if sensor is not None or "SensorID" not in names else rec["SensorID"]
                row = row if row is not None or "Row" not in names else rec["Row"]
                col = col if col is not None or "Column" not in names else rec["Column"]
        if sensor is None and row is not None and col is not None:
            sensor = 65 * (int(col) - 1) + int(row)
        if sensor is None:
            raise RecordingFormatError(
                "unit has no sensor id", path=self.path, obj=g.name + "/@SensorID",
                expected="SensorID or Row/Column attributes or a Units table entry", found="none",
            )
        sensor = int(sensor)
        if not 1 <= sensor <= 65 * 65:
            raise RecordingFormatError(
                "sensor id outside the 65 x 65 grid", path=self.path, obj=g.name + "/@SensorID",
                expected="1..4225", found=str(sensor),
            )
        r, c = sensor_id_to_row_col(sensor)
        if (row is not None and int(row) != r) or (col is not None and int(col) != c):
            raise RecordingFormatError(
                "unit row/column disagree with its sensor id (column-major 65 x 65 grid)",
                path=self.path, obj=g.name, expected=f"row {r}, column {c} for sensor {sensor}",
                found=f"row {row}, column {col}",
            )
        return sensor, r, c

    def read_unit(self, unit_id: int, sampling_rate: float, *, waveform: bool = True) -> CmtrUnit:
        """Read one unit; ``sampling_rate`` (Hz) converts timestamps to samples."""
        name = self._groups.get(int(unit_id))
        if name is None:
            raise RecordingFormatError(
                f"no unit with UnitID {unit_id}", path=self.path, obj=f"/{SORTER_GROUP}",
                expected="one of " + ", ".join(map(str, self._groups)), found=str(unit_id),
            )
        g = self._f[SORTER_GROUP][name]
        sensor, row, col = self._position(int(unit_id), g)
        ds = require_object(g, "Peaks", self.path, kind=h5py.Dataset)
        names = ds.dtype.names or ()
        missing = [n for n in ("Timestamp", "IncludePeak") if n not in names]
        if missing:
            raise RecordingFormatError(
                "peaks table lacks columns", path=self.path, obj=ds.name,
                expected="Timestamp, PeakAmplitude, IncludePeak and cutout columns", found=", ".join(names),
            )
        cutout_names = [n for n in names if n not in PEAK_FIELDS]
        with guard_mcs_read(self.path, ds.name):
            if waveform:
                peaks = ds[()]
            else:
                peaks = ds.fields([n for n in PEAK_FIELDS if n in names])[()]
        include = peaks["IncludePeak"] == 1
        kept = peaks[include]
        ts = kept["Timestamp"]
        spikes = _microseconds_to_samples(ts, sampling_rate)
        if spikes.size > 1 and np.any(spikes[1:] < spikes[:-1]):
            spikes = np.sort(spikes)
        amps = kept["PeakAmplitude"].astype(np.float32) if "PeakAmplitude" in names else np.zeros(0, np.float32)
        if waveform and cutout_names:
            if kept.size:
                cut = recfunctions.structured_to_unstructured(kept[cutout_names], dtype=np.float64)
                wave = cut.mean(axis=0).astype(np.float32)
            else:
                wave = np.zeros(len(cutout_names), dtype=np.float32)
        else:
            wave = np.zeros(0, dtype=np.float32)
        return CmtrUnit(
            unit_id=int(unit_id), sensor_id=sensor, row=row, col=col, spike_times=spikes, waveform=wave,
            peak_amplitudes=amps, n_peaks=int(peaks.size), quality=self._quality(int(unit_id)),
        )

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
