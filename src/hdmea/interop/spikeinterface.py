"""SpikeInterface extractors over MCS CMOS-MEA files and our recording files (extra ``h5stream[spikeinterface]``).

* :func:`read_cmcr` -- a recording extractor over the raw sensor data of a ``.cmcr``,
  read through :class:`hdmea.io.cmcr.CmcrFile` block by block (nothing is copied).
  Channel ids are the 1-based, column-major sensor ids of the recorded regions
  (``65 * chip_col + chip_row + 1``), in sensor-id order within each region;
  properties ``chip_row``/``chip_col`` are the 0-based chip indices (the orientation
  of every chip array of ours, whatever the stored frame layout) and locations are
  ``(chip_col * pitch, chip_row * pitch)`` micrometres (:data:`PITCH_UM`, 16 um).
  Traces are the stored ADC counts, shifted to the signed type of the same width when
  they are stored unsigned (``uint16 - 32768`` as ``int16``, exact: SpikeInterface's
  filters refuse unsigned data); gains and offsets come from the file
  (``value = trace * gain + offset``, ``offset = (shift - ADZero) * gain``), so
  ``get_traces(return_in_uV=True)`` (``return_scaled=True`` before SpikeInterface 0.103) gives
  microvolts when the file's unit is volts.
  Each sweep (``SensorData {roi} {chunk}``: same chunk number) is one segment.
* :func:`read_cmtr` -- a sorting extractor of a ``.cmtr``'s units (included peaks only),
  unit ids the sorter's ``UnitID``.
* :func:`read_recording_file` -- a sorting extractor of an analysed recording (``.h5``),
  unit ids ours (``unit_000``, ...), spike trains read lazily per unit.

Sorting properties: ``row``/``col`` (1-based, the vendor's), ``chip_row``/``chip_col``
(0-based), ``sensor_id``, and for recording files every scalar unit attribute and every
scalar feature as ``{feature}__{key}`` (NaN where a unit has no such feature).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hdmea.errors import ConfigError, RecordingFormatError
from hdmea._extras import require
from hdmea.io.mcs import GRID_SIZE

__all__ = ["read_cmcr", "read_cmtr", "read_recording_file", "PITCH_UM"]

PITCH_UM = 16.0

_si = require("spikeinterface.core", "spikeinterface", "The SpikeInterface adapters")
BaseRecording, BaseRecordingSegment = _si.BaseRecording, _si.BaseRecordingSegment
BaseSorting, BaseSortingSegment = _si.BaseSorting, _si.BaseSortingSegment


# --------------------------------------------------------------------------- raw data (.cmcr)


class CmcrRecordingExtractor(BaseRecording):
    """Raw sensor data of a ``.cmcr`` as a SpikeInterface recording (see the module docstring)."""

    extractor_name = "HdmeaCmcr"
    mode = "file"
    name = "hdmea_cmcr"

    def __init__(self, file_path, sensor_axis_order: str = "auto", pitch_um: float = PITCH_UM, cmtr_path=None):
        from hdmea.io.cmcr import CmcrFile
        from hdmea.io.frame_order import decide_frame_order, logger as order_logger

        self._cmcr = CmcrFile(file_path, sensor_axis_order=sensor_axis_order)
        positions, spikes = [], []
        if cmtr_path is not None and self._cmcr.axis_order_setting == "auto":
            from hdmea.io.cmtr import CmtrFile

            with CmtrFile(cmtr_path) as cmtr:
                for unit in cmtr.read_units(self._cmcr.sampling_rate, waveform=False):
                    positions.append((unit.row - 1, unit.col - 1))
                    spikes.append(unit.spike_times)
        #: how the frames are read and why (hdmea.io.frame_order.FrameOrderDecision); None without raw data
        self.frame_order = decide_frame_order(self._cmcr, positions, spikes)
        if self.frame_order is not None and (self.frame_order.undecided or self.frame_order.swapped_fields):
            order_logger.warning(self.frame_order.warning_text(Path(file_path).name))
        infos = self._cmcr.sensor_datasets()
        path = Path(file_path)
        if not infos:
            raise RecordingFormatError("the file has no raw sensor data", path=path, obj="/Acquisition/Sensor Data",
                                       expected="SensorData {roi} {chunk} datasets", found="none")
        chunks = sorted({i.chunk for i in infos})
        rois = sorted({i.roi for i in infos if i.chunk == chunks[0]})
        layout = {}
        for chunk in chunks:
            per_roi = {i.roi: i for i in infos if i.chunk == chunk}
            if sorted(per_roi) != rois:
                raise RecordingFormatError(
                    "sweeps cover different regions", path=path, obj=f"SensorData * {chunk}",
                    expected=f"regions {rois} as in sweep {chunks[0]}", found=f"regions {sorted(per_roi)}")
            frames = {i.n_frames for i in per_roi.values()}
            if len(frames) != 1:
                raise RecordingFormatError(
                    "regions of one sweep have different lengths", path=path, obj=f"SensorData * {chunk}",
                    expected="the same number of frames in every region", found=f"{sorted(frames)} frames")
            layout[chunk] = [per_roi[r] for r in rois]
        first = layout[chunks[0]]
        dtypes = {i.dtype for i in infos}
        if len(dtypes) != 1:
            raise RecordingFormatError("regions are stored with different dtypes", path=path,
                                       obj="/Acquisition/Sensor Data", found=", ".join(map(str, dtypes)))
        rows, cols, gains, offsets = [], [], [], []
        for info in first:
            r, c = np.meshgrid(np.arange(info.n_rows) + info.row_offset, np.arange(info.n_cols) + info.col_offset,
                               indexing="ij")
            # Sensor-id order within the region: column-major on the chip.
            order_r, order_c = r.T.reshape(-1), c.T.reshape(-1)
            g = info.gains.T.reshape(-1)
            rows.append(order_r)
            cols.append(order_c)
            gains.append(g)
            offsets.append(-info.ad_zero * g)  # the unsigned shift is added below
        chip_row, chip_col = np.concatenate(rows), np.concatenate(cols)
        sensor_ids = GRID_SIZE * chip_col + chip_row + 1
        if np.unique(sensor_ids).size != sensor_ids.size:
            raise RecordingFormatError("regions overlap on the chip", path=path, obj="/Acquisition/Sensor Data",
                                       expected="each sensor in one region", found="a sensor in several regions")
        fs = float(self._cmcr.sampling_rate)
        stored = np.dtype(dtypes.pop())
        shift = 2 ** (8 * stored.itemsize - 1) if stored.kind == "u" else 0
        dtype = np.dtype(f"int{8 * stored.itemsize}") if shift else stored
        super().__init__(sampling_frequency=fs, channel_ids=sensor_ids.astype(np.int64), dtype=dtype)
        gains = np.concatenate(gains)
        self.set_channel_gains(gains.astype(np.float32))
        self.set_channel_offsets((np.concatenate(offsets) + shift * gains).astype(np.float32))
        self.set_dummy_probe_from_locations(np.column_stack([chip_col * pitch_um, chip_row * pitch_um]).astype(np.float64))
        self.set_property("chip_row", chip_row.astype(np.int64))
        self.set_property("chip_col", chip_col.astype(np.int64))
        for chunk in chunks:
            self.add_recording_segment(_CmcrSegment(self._cmcr, layout[chunk], fs, shift, dtype))
        if self.frame_order is not None:
            self.annotate(frame_order=self.frame_order.summary())
        self._kwargs = {"file_path": str(path.absolute()), "sensor_axis_order": sensor_axis_order,
                        "pitch_um": float(pitch_um),
                        "cmtr_path": None if cmtr_path is None else str(Path(cmtr_path).absolute())}
        self.extra_requirements.append("h5py")

    def __del__(self):
        cmcr = getattr(self, "_cmcr", None)
        if cmcr is not None:
            cmcr.close()


class _CmcrSegment(BaseRecordingSegment):
    def __init__(self, cmcr, infos, fs, shift, dtype):
        super().__init__(sampling_frequency=fs, t_start=None)
        self._cmcr = cmcr
        self._infos = infos
        self._shift = int(shift)
        self._dtype = dtype
        self._sizes = [i.n_rows * i.n_cols for i in infos]

    def get_num_samples(self) -> int:
        return int(self._infos[0].n_frames)

    def get_traces(self, start_frame=None, end_frame=None, channel_indices=None) -> np.ndarray:
        start = 0 if start_frame is None else int(start_frame)
        end = self.get_num_samples() if end_frame is None else int(end_frame)
        parts = []
        for info in self._infos:
            chip = self._cmcr.read_sensor_frames(start, end, info, scaled=False)  # (frames, n_rows, n_cols)
            parts.append(np.swapaxes(chip, 1, 2).reshape(chip.shape[0], -1))  # sensor-id order
        traces = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        if channel_indices is not None:
            traces = traces[:, channel_indices]
        if self._shift:
            traces = (traces.astype(np.int32) - self._shift).astype(self._dtype)
        return traces


def read_cmcr(path: str | os.PathLike, *, sensor_axis_order: str = "auto", cmtr_path: str | os.PathLike | None = None,
              pitch_um: float = PITCH_UM) -> CmcrRecordingExtractor:
    """A SpikeInterface recording over the raw data of the ``.cmcr`` at ``path`` (see the module docstring).

    ``sensor_axis_order="auto"`` decides how the frames are stored
    (:mod:`hdmea.io.frame_order`): by the regions' shapes, else by the footprints of
    the units of ``cmtr_path`` when given, else the vendor's layout with a logged
    warning; the decision is the extractor's ``frame_order`` and its annotation
    ``frame_order``.  ``"col_row"``/``"row_col"`` force it.
    """
    return CmcrRecordingExtractor(path, sensor_axis_order=sensor_axis_order, pitch_um=pitch_um, cmtr_path=cmtr_path)


# --------------------------------------------------------------------------- sortings


class _TrainsSegment(BaseSortingSegment):
    """Spike trains from ``read(unit_id) -> sorted int64 samples``; cached per unit."""

    def __init__(self, read):
        super().__init__(t_start=None)
        self._read = read
        self._cache: dict = {}

    def get_unit_spike_train(self, unit_id, start_frame=None, end_frame=None) -> np.ndarray:
        train = self._cache.get(unit_id)
        if train is None:
            train = self._cache[unit_id] = np.asarray(self._read(unit_id), dtype=np.int64)
        lo = 0 if start_frame is None else int(np.searchsorted(train, start_frame, side="left"))
        hi = train.size if end_frame is None else int(np.searchsorted(train, end_frame, side="left"))
        return train[lo:hi]


class CmtrSortingExtractor(BaseSorting):
    """Units of a ``.cmtr`` (included peaks) as a SpikeInterface sorting."""

    extractor_name = "HdmeaCmtr"
    mode = "file"
    name = "hdmea_cmtr"

    def __init__(self, file_path, sampling_frequency: float | None = None, cmcr_path=None):
        from hdmea.io.cmtr import CmtrFile

        path = Path(file_path)
        fs = sampling_frequency if sampling_frequency is not None else _rate_from_cmcr(path, cmcr_path)
        with CmtrFile(path) as cmtr:
            units = cmtr.read_units(fs, waveform=False)
        ids = np.asarray([u.unit_id for u in units], dtype=np.int64)
        super().__init__(sampling_frequency=fs, unit_ids=ids)
        trains = {u.unit_id: u.spike_times.astype(np.int64) for u in units}
        self.add_sorting_segment(_TrainsSegment(trains.__getitem__))
        self.set_property("row", np.asarray([u.row for u in units], dtype=np.int64))
        self.set_property("col", np.asarray([u.col for u in units], dtype=np.int64))
        self.set_property("chip_row", np.asarray([u.row - 1 for u in units], dtype=np.int64))
        self.set_property("chip_col", np.asarray([u.col - 1 for u in units], dtype=np.int64))
        self.set_property("sensor_id", np.asarray([u.sensor_id for u in units], dtype=np.int64))
        keys = sorted({k for u in units for k in u.quality})
        for key in keys:
            self.set_property(f"quality_{key}", np.asarray([u.quality.get(key, np.nan) for u in units], float))
        self._kwargs = {"file_path": str(path.absolute()), "sampling_frequency": float(fs),
                        "cmcr_path": None if cmcr_path is None else str(Path(cmcr_path).absolute())}


def _rate_from_cmcr(cmtr_path: Path, cmcr_path) -> float:
    from hdmea.io.cmcr import CmcrFile

    candidate = Path(cmcr_path) if cmcr_path is not None else cmtr_path.with_suffix(".cmcr")
    if not candidate.exists():
        raise ConfigError(
            "the sampling rate of the .cmtr's spikes is unknown", path=cmtr_path,
            expected=f"the raw file {candidate} or sampling_frequency=", found="neither",
            hint="pass sampling_frequency=20000.0 (or the rate of the recording) or cmcr_path=")
    with CmcrFile(candidate) as cmcr:
        return float(cmcr.sampling_rate)


def read_cmtr(path: str | os.PathLike, *, sampling_frequency: float | None = None,
              cmcr_path: str | os.PathLike | None = None) -> CmtrSortingExtractor:
    """A SpikeInterface sorting of the ``.cmtr`` at ``path``.

    The spikes' sample indices need the recording's rate: ``sampling_frequency``,
    else the rate of ``cmcr_path``, else of the ``.cmcr`` of the same name beside it.
    """
    return CmtrSortingExtractor(path, sampling_frequency=sampling_frequency, cmcr_path=cmcr_path)


class RecordingFileSortingExtractor(BaseSorting):
    """Units of an analysed recording file (``.h5``) as a SpikeInterface sorting, read lazily."""

    extractor_name = "HdmeaRecordingFile"
    mode = "file"
    name = "hdmea_recording_file"

    def __init__(self, file_path):
        from hdmea.io._unit_scan import (
            BOOKKEEPING_ATTRS, MISSING, UnitObjects, attr_value, column_values, is_scalar, scan_units,
        )
        from hdmea.io.recording import Recording

        path = Path(file_path)
        held = UnitObjects()  # the units' objects the open-time scan opened, kept for the unit walk
        self._recording = reader = Recording.open(path, visit=held)
        self._h5 = reader.file
        fs = reader.require_sampling_rate()
        scan = scan_units(self._h5, path, held)
        super().__init__(sampling_frequency=fs, unit_ids=np.asarray(scan.ids))
        self.add_sorting_segment(_TrainsSegment(lambda uid: reader.unit(uid).spike_times()))
        for key in sorted({k for a in scan.attrs for k in a if is_scalar(a[k])}):
            values = [attr_value(a[key]) if key in a else MISSING for a in scan.attrs]
            self.set_property(key, np.asarray(column_values(values)))
        if all("row" in a and "col" in a for a in scan.attrs) and scan.ids:
            self.set_property("chip_row", np.asarray([int(np.asarray(a["row"]).reshape(-1)[0]) - 1 for a in scan.attrs]))
            self.set_property("chip_col", np.asarray([int(np.asarray(a["col"]).reshape(-1)[0]) - 1 for a in scan.attrs]))
        names = sorted({n for per in scan.features for n in per})
        for name in names:
            keys = sorted({k for per in scan.features if name in per for k, v in per[name][0].items()
                           if k not in BOOKKEEPING_ATTRS and k != "movie" and is_scalar(v)})
            for key in keys:
                values = [attr_value(per[name][0][key]) if name in per and key in per[name][0] else MISSING
                          for per in scan.features]
                self.set_property(f"{name}__{key}", np.asarray(column_values(values)))
        self._kwargs = {"file_path": str(path.absolute())}

    def __del__(self):
        h5 = getattr(self, "_h5", None)
        if h5 is not None and h5.id.valid:
            h5.close()


def read_recording_file(path: str | os.PathLike) -> RecordingFileSortingExtractor:
    """A SpikeInterface sorting of the units of an analysed recording file (``.h5``)."""
    return RecordingFileSortingExtractor(path)
