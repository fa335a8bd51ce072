"""Read raw data from an MCS ``.cmcr`` file (CMOS-MEA-Control).

* Light reference: ``Acquisition/Analog Data/ChannelData 1``; row 0 is the
  photodiode, row 1 the display's frame-sync signal.  Values are returned as
  float32 ``(raw - ADZero) * ConversionFactor`` (units of ``10**Exponent`` of the
  meta table's ``Unit``).
* Sampling rate: ``1e6 / Tick`` from the meta tables, else samples divided by the
  root's ``LB.RecordingDuration`` (microseconds).
* Raw sensor data: every ``Acquisition/Sensor Data/SensorData {roi} {chunk}``
  dataset (one per region of interest ``roi``; ``chunk`` numbers sweeps), read
  block by block (:meth:`CmcrFile.iter_sensor_blocks`) with an optional overlap,
  as the stored dtype or scaled to float32 with the ADC zero removed.  The zero
  and dtype are checked first: a uint16 store cast straight to int16 would wrap.

Orientation.  Everything this module returns is in chip orientation
``(..., row, col)``: 0-based indices of the 65 x 65 grid, where ``row``/``col``
are the vendor's 1-based Units-table ``Row``/``Column`` minus one.  The vendor's
reader documents a stored frame as ``[col - Region.Left, row - Region.Top]``
(``"col_row"``: axis 1 the column, flattening gives sensor-id order); the original
lab pipeline reads ``[row, col]`` (``"row_col"``).  The evidence disagrees, so
``sensor_axis_order="auto"`` (the default) takes the one reading a non-square
region's shape allows (:meth:`CmcrFile.orders_by_shape`) and otherwise the
vendor's until :func:`hdmea.io.frame_order.decide_frame_order` sets the order the
units' footprints show.  This module (with :mod:`hdmea.io.cmcr_sensors`) and :mod:`hdmea.io.frame_order` are the only
places that know the stored order:
:class:`SensorDataInfo` gives each dataset's region on the chip
(:attr:`~SensorDataInfo.chip_slices`), maps a stored-layout array to chip
orientation (:meth:`~SensorDataInfo.to_chip`, :meth:`~SensorDataInfo.place_on_chip`)
and holds per-sensor gains in chip orientation (``Conversion Factors`` are in
sensor-id order whichever way the frames are stored).  ``"col_row"``/``"row_col"``
force a reading (see :func:`check_sensor_axis_order`).

Scaling.  Value = ``(raw - ADZero) * factor * 10**Exponent`` in ``Unit``; when the
unit is ``V`` it is returned in microvolts (``* 10**(Exponent + 6)``).  ``factor``
is, per sensor, the ``SensorMeta`` text column ``Conversion Factors`` (one
number per sensor of the region in sensor-id order, bytes or str, trailing
spaces allowed; a wrong count is a :class:`RecordingFormatError`), else the
single ``ConversionFactor``, else 1 with one logged warning per file and
``scaling = "unscaled"`` (values are ADC counts) in :meth:`CmcrFile.metadata`.
``ADZero`` defaults to mid-range for unsigned data and 0 for signed data.
The meta tables' plausibility checks and the parsing of regions and
conversion factors are in :mod:`hdmea.io.cmcr_meta`.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import warnings
from pathlib import Path

import h5py
import numpy as np

from h5stream.memory import small_page_array
from hdmea.errors import ConfigError, RecordingFormatError, UnusualVendorValueWarning
from hdmea.io.cmcr_meta import (  # noqa: F401  (EXPONENT_RANGE, KNOWN_UNITS, check_meta_table re-exported)
    DURATION_TOLERANCE,
    EXPONENT_RANGE,
    KNOWN_UNITS,
    check_meta_table,
    fields_swapped_to_fit,
    meta_field,
)
from hdmea.io.cmcr_sensors import (  # the sensor data and its frame layouts, re-exported
    AUTO,
    SENSOR_AXIS_ORDERS,
    SENSOR_AXIS_SETTINGS,
    SENSOR_GROUP,
    VENDOR_AXIS_ORDER,
    SensorDataInfo,
    SensorDataReads,
    check_sensor_axis_order,
)
from hdmea.io.mcs import (
    PROGRAM_RAW,
    McsFile,
    attr_number,
    check_mcs_root,
    guard_mcs_read,
    informative_text,
    open_mcs_file,
    read_attr,
    require_object,
)
from hdmea.io.mcs_checks import ANALOG_DATA_TYPE, AnalogChannelCheck, check_chunk_sizes, check_stored_dtype

__all__ = ["CmcrFile", "SensorDataInfo", "read_light_reference", "check_sensor_axis_order", "check_meta_table",
           "LIGHT_ROW", "SYNC_ROW", "VENDOR_AXIS_ORDER", "SENSOR_AXIS_ORDERS", "SENSOR_AXIS_SETTINGS", "AUTO",
           "EXPONENT_RANGE"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

ANALOG_GROUP = "Acquisition/Analog Data"
ANALOG_DATA = "ChannelData 1"
LIGHT_ROW = 0
SYNC_ROW = 1
# A declared size past this is refused rather than allocated (a damaged or
# hostile header can claim any size).  A 20 kHz channel of 24 h fits.
MAX_READ_BYTES = 24 * 1024**3
#: samples of each analog channel read and converted at a time (a whole number of chunks)
ANALOG_BLOCK_SAMPLES = 1 << 20


class CmcrFile(SensorDataReads, McsFile):
    """An open ``.cmcr``; use as a context manager.

    ``sensor_axis_order``: ``"col_row"`` or ``"row_col"`` force how stored frames are
    read; ``"auto"`` (the default) takes the one reading the regions' shapes allow
    (:meth:`orders_by_shape`) and otherwise reads the vendor's layout until
    :meth:`use_sensor_axis_order` sets the one the footprints decided
    (:func:`hdmea.io.frame_order.decide_frame_order`); a forced order reads the
    ``Region.*`` fields swapped where only so does it fit the regions' shapes
    (:func:`~hdmea.io.cmcr_meta.fields_swapped_to_fit`).  :attr:`axis_order_source`
    says which: ``"forced"``, ``"shape"`` or None (not decided yet).
    """

    def __init__(self, path: str | os.PathLike, *, sensor_axis_order: str = AUTO) -> None:
        self.path = Path(path)
        self.axis_order_setting = check_sensor_axis_order(sensor_axis_order)
        self._sensor_infos: list[SensorDataInfo] | None = None
        self._order: str | None = None
        self.axis_order_source: str | None = None
        #: True when the footprints showed the Region.* fields swapped (Left/Right holding the rows)
        self.region_fields_swapped = False
        #: texts of the UnusualVendorValueWarnings read so far (kept by the recording: metadata()["unusual_values"])
        self.unusual_values: list[str] = []
        self._analog_chunks_checked = False
        self._f = open_mcs_file(self.path, check=lambda f: check_mcs_root(f, self.path, program=PROGRAM_RAW))
        #: a forced order reads the Region.* fields the way its shapes admit, settled at the first read
        self._forced_fields_pending = self.axis_order_setting != AUTO
        if self.axis_order_setting != AUTO:
            self._order, self.axis_order_source = self.axis_order_setting, "forced"

    @property
    def sensor_axis_order(self) -> str:
        """The stored frame layout this file is read with (``"col_row"`` or ``"row_col"``)."""
        if self._forced_fields_pending:
            self._forced_fields_pending = False
            self.region_fields_swapped = fields_swapped_to_fit(
                self._order, [(fields, shape) for _name, shape, fields in self.stored_regions()])
        if self._order is None:
            fitting = self.orders_by_shape()
            if len(fitting) == 1:
                self._order, self.axis_order_source = fitting[0], "shape"
            else:
                self._order = VENDOR_AXIS_ORDER
        return self._order

    def use_sensor_axis_order(self, order: str, source: str, *, swapped_fields: bool = False) -> None:
        """Read the stored frames as ``order`` from now on (``source``: what decided it).

        ``swapped_fields``: take ``Region.Left/Right`` as the region's rows and
        ``Region.Top/Bottom`` as its columns (a file whose fields are swapped).
        """
        if order not in SENSOR_AXIS_ORDERS:
            raise ConfigError(f"a stored frame layout must be one of {SENSOR_AXIS_ORDERS}, found {order!r}")
        self._forced_fields_pending = False
        if order != self._order or swapped_fields != self.region_fields_swapped:
            self._sensor_infos = None
        self._order, self.axis_order_source = order, source
        self.region_fields_swapped = bool(swapped_fields)

    # -- metadata
    def recording_duration_us(self) -> float | None:
        return attr_number(read_attr(self._f, "LB.RecordingDuration", self.path))

    def _meta_table(self, group: str, name: str) -> np.ndarray | None:
        if group not in self._f or name not in self._f[group]:
            return None
        ds = require_object(self._f[group], name, self.path, kind=h5py.Dataset)
        with guard_mcs_read(self.path, ds.name):
            table = ds[()]
        return check_meta_table(np.atleast_1d(table), self.path, ds.name)

    def channel_meta(self) -> np.ndarray | None:
        return self._meta_table(ANALOG_GROUP, "ChannelMeta")

    def sensor_meta(self) -> np.ndarray | None:
        return self._meta_table(SENSOR_GROUP, "SensorMeta")

    @functools.cached_property
    def sampling_rate(self) -> float:
        """Samples per second: from the meta tables' ``Tick``, else samples / recording duration.

        Every ``Tick`` of the meta tables must agree, and with analog data and
        ``LB.RecordingDuration`` both known, samples x Tick must match the
        duration within :data:`DURATION_TOLERANCE` (a damaged Tick would
        otherwise silently rescale every time).
        """
        ticks = []
        for name, table in ((f"/{ANALOG_GROUP}/ChannelMeta", self.channel_meta()),
                            (f"/{SENSOR_GROUP}/SensorMeta", self.sensor_meta())):
            if table is not None and "Tick" in table.dtype.names and table.size:
                ticks += [(name, row, float(tick)) for row, tick in enumerate(table["Tick"])]
        if ticks:
            name, row, tick = ticks[0]
            for other_name, other_row, other in ticks[1:]:
                if other != tick:
                    raise RecordingFormatError(
                        "meta tables disagree on the sampling tick", path=self.path,
                        obj=f"{other_name} row {other_row} column 'Tick'",
                        expected=f"{tick:g} us, as {name} row {row}", found=f"{other:g} us",
                        hint="the file is damaged; restore it from the acquisition computer",
                    )
            self._check_duration(tick, name)
            return 1e6 / tick
        duration = self.recording_duration_us()
        if duration is not None and not (np.isfinite(duration) and duration > 0):
            raise RecordingFormatError(
                "implausible recording duration", path=self.path, obj="/@LB.RecordingDuration",
                expected="a positive number of microseconds", found=repr(duration),
            )
        n = self.n_analog_samples() if self.has_analog() else None
        if duration and n:
            return n / (duration / 1e6)
        raise RecordingFormatError(
            "cannot determine the sampling rate", path=self.path, obj="/" + ANALOG_GROUP + "/ChannelMeta",
            expected="a Tick column or LB.RecordingDuration with analog data", found="neither",
        )

    def _check_duration(self, tick: float, where: str) -> None:
        duration = self.recording_duration_us()
        if duration is None or not self.has_analog():
            return
        if not (np.isfinite(duration) and duration > 0):
            raise RecordingFormatError(
                "implausible recording duration", path=self.path, obj="/@LB.RecordingDuration",
                expected="a positive number of microseconds", found=repr(duration),
            )
        spanned = self.n_analog_samples() * tick
        if abs(spanned - duration) > max(2 * tick, DURATION_TOLERANCE * duration):
            raise RecordingFormatError(
                "sampling tick disagrees with the recording's duration", path=self.path,
                obj=f"{where} column 'Tick'",
                expected=(f"samples x Tick = {self.n_analog_samples()} x Tick within {DURATION_TOLERANCE:.0%} of "
                          f"/@LB.RecordingDuration {duration:g} us"),
                found=f"Tick {tick:g} us ({spanned:g} us)",
                hint="the file is damaged; restore it from the acquisition computer",
            )

    def metadata(self) -> dict:
        """Recording metadata (root attributes, rates, scaling) as plain python values."""
        out: dict = {}
        for key in ("DateTime", "ProgramName", "ProgramVersion", "ID.Instance"):
            value = informative_text(read_attr(self._f, key, self.path), self.path, f"/@{key}")
            if value is not None:
                out[key.replace(".", "_")] = value
        duration = self.recording_duration_us()
        if duration is not None:
            out["recording_duration_us"] = float(duration)
        out["sampling_rate"] = float(self.sampling_rate)
        version = attr_number(read_attr(self._f, "FileVersion", self.path))
        if version is not None:
            out["file_version"] = int(version)
        if self.has_analog():
            meta = self.channel_meta()
            row = meta[LIGHT_ROW] if meta is not None and meta.size > LIGHT_ROW else None  # rows follow data rows
            out["analog"] = {
                "n_samples": int(self.n_analog_samples()),
                "ad_zero": float(meta_field(row, "ADZero", 0)),
                "conversion_factor": float(meta_field(row, "ConversionFactor", 1)),
                "exponent": None if meta_field(row, "Exponent") is None else int(meta_field(row, "Exponent")),
                "unit": str(meta_field(row, "Unit", "")),
            }
        sensors = self.sensor_datasets()
        if sensors:
            s = sensors[0]
            scaling = ("unscaled" if any(i.scaling == "unscaled" for i in sensors)
                       else "per_sensor" if any(i.scaling == "per_sensor" for i in sensors) else "single")
            out["sensor"] = {
                "n_datasets": len(sensors), "n_frames": int(s.n_frames), "dtype": str(s.dtype),
                "ad_zero": float(s.ad_zero), "conversion_factor": float(s.conversion_factor),
                "exponent": int(s.exponent), "unit": s.unit, "scaling": scaling, "value_unit": s.value_unit,
                "orientation": "chip arrays (..., row, col), 0-based; stored frames " + (
                    "[col - Region.Left, row - Region.Top]" if self.sensor_axis_order == "col_row"
                    else "[row - Region.Top, col - Region.Left]"),
                "sensor_axis_order": self.sensor_axis_order,
                "sensor_axis_order_setting": self.axis_order_setting,
                "region_fields_swapped": bool(self.region_fields_swapped),
                "regions": {
                    i.name.rsplit("/", 1)[-1]: {
                        "roi": i.roi, "chunk": i.chunk, "row_offset": i.row_offset, "col_offset": i.col_offset,
                        "n_rows": i.n_rows, "n_cols": i.n_cols, "ad_zero": float(i.ad_zero), "scaling": i.scaling,
                        "exponent": int(i.exponent), "unit": i.unit, "value_unit": i.value_unit,
                        "gain_min": float(i.gains.min()), "gain_max": float(i.gains.max()),
                    } for i in sensors
                },
            }
        if self.unusual_values:  # values the format allows but recordings rarely hold (each warned once)
            out["unusual_values"] = list(self.unusual_values)
        return out

    # -- analog data
    def has_analog(self) -> bool:
        """True when the file holds the analog channels (light reference, frame sync)."""
        return ANALOG_GROUP in self._f and ANALOG_DATA in self._f[ANALOG_GROUP]

    def _analog_dataset(self) -> h5py.Dataset:
        group = require_object(self._f, ANALOG_GROUP, self.path)
        ds = require_object(group, ANALOG_DATA, self.path, kind=h5py.Dataset)
        if ds.ndim != 2 or ds.shape[0] <= SYNC_ROW:
            raise RecordingFormatError(
                "analog data has the wrong shape", path=self.path, obj=ds.name,
                expected="(channels >= 2, samples)", found=str(ds.shape),
            )
        if ds.dtype.kind in "iuf":  # a non-numeric one is refused where it is read
            check_stored_dtype(ds.dtype, ANALOG_DATA_TYPE, self.path, ds.name)
        if not self._analog_chunks_checked:
            with guard_mcs_read(self.path, ds.name):
                check_chunk_sizes(ds, self.path)
            self._analog_chunks_checked = True
        return ds

    def n_analog_samples(self) -> int:
        return int(self._analog_dataset().shape[1])

    def analog_row(self, row: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """One analog channel as float32 ``(raw - ADZero) * ConversionFactor``."""
        return self.analog_rows((row,), start, stop)[0]

    def analog_rows(self, rows, start: int = 0, stop: int | None = None) -> list[np.ndarray]:
        """Analog channels ``rows`` as float32 ``(raw - ADZero) * ConversionFactor``, each as :meth:`analog_row`.

        The rows from the first to the last asked for are read together, block by block, so
        a chunk holding several channels is read once; each block is converted into the
        results as it arrives (the float64 arithmetic, when there is any, runs on one block
        at a time), so nothing but the results is the channels' length.
        """
        rows = [int(r) for r in rows]
        ds = self._analog_dataset()
        if ds.dtype.kind not in "iuf":
            raise RecordingFormatError("analog data is not numeric", path=self.path, obj=ds.name,
                                       expected="integer ADC counts", found=str(ds.dtype))
        meta = self.channel_meta()
        scales = []
        for row in rows:
            # Meta rows follow the data rows.
            mrow = None
            if meta is not None and meta.dtype.names and meta.size:
                mrow = meta[row] if row < meta.size else meta[0]
            scales.append((float(meta_field(mrow, "ADZero", 0)), float(meta_field(mrow, "ConversionFactor", 1)),
                           meta_field(mrow, "ADCBits", None)))
        span = range(*slice(start, stop).indices(ds.shape[1]))
        n = len(span)
        if n * 4 > MAX_READ_BYTES:  # each channel's float32 result
            raise RecordingFormatError(
                "analog channel is too large to read at once", path=self.path, obj=ds.name,
                expected=f"at most {MAX_READ_BYTES // 4} samples", found=f"{n} samples",
                hint="read it in parts with analog_row(row, start, stop), or raise hdmea.io.cmcr.MAX_READ_BYTES",
            )
        out = [small_page_array(n, np.float32, populate=True) for _ in rows]  # written once, front to back
        if not rows or not n:
            return out
        first, last = min(rows), max(rows)
        if first < 0 or last >= ds.shape[0]:
            raise RecordingFormatError("no such analog channel", path=self.path, obj=ds.name,
                                       expected=f"rows 0..{ds.shape[0] - 1}", found=f"rows {rows}")
        checks = [AnalogChannelCheck(bits, self.path, f"{ds.name} row {row}")
                  for row, (_z, _f, bits) in zip(rows, scales)]
        width = ds.chunks[1] if ds.chunks else 1
        block = max(width, ANALOG_BLOCK_SAMPLES // width * width)
        scratch = None
        buffer = np.empty((last + 1 - first, min(block, n)), dtype=ds.dtype)  # reused by every block
        with guard_mcs_read(self.path, ds.name):
            for b0 in range(0, n, block):
                b1 = min(n, b0 + block)
                raw = buffer[:, :b1 - b0]
                ds.read_direct(buffer, np.s_[first:last + 1, span.start + b0:span.start + b1], np.s_[:, :b1 - b0])
                for j, row in enumerate(rows):
                    zero, factor, _bits = scales[j]
                    checks[j].feed(raw[row - first], span.start + b0)
                    if zero or factor != 1 or not _exact_in_float64(raw.dtype):
                        if scratch is None:
                            scratch = np.empty(block, dtype=np.float64)
                        _scaled_into(out[j][b0:b1], raw[row - first], zero, factor, scratch[:b1 - b0])
                    else:  # one rounding to float32, as through float64
                        np.copyto(out[j][b0:b1], raw[row - first], casting="unsafe")
        for check in checks:  # values the format allows but recordings rarely hold: read, warned once, kept
            unusual = check.unusual()
            if unusual and unusual not in self.unusual_values:
                self.unusual_values.append(unusual)
                warnings.warn(unusual, UnusualVendorValueWarning, stacklevel=3)
        return out

    def light_reference(self) -> dict[str, np.ndarray]:
        """``{"raw_ch1": photodiode, "raw_ch2": frame sync}`` at the acquisition rate (both read in one pass)."""
        light, sync = self.analog_rows((LIGHT_ROW, SYNC_ROW))
        return {"raw_ch1": light, "raw_ch2": sync}


def _exact_in_float64(dtype: np.dtype) -> bool:
    """Whether every value of ``dtype`` is a float64 exactly: then float32(float64(v)) is float32(v)."""
    return dtype.kind == "f" or (dtype.kind in "iu" and dtype.itemsize <= 4)


def _scaled_into(out: np.ndarray, raw: np.ndarray, zero: float, factor: float, scratch: np.ndarray) -> None:
    """``out[:] = float32((float64(raw) - zero) * factor)``, the float64 steps in ``scratch`` (raw's length)."""
    np.copyto(scratch, raw, casting="unsafe")
    if zero:
        scratch -= zero
    if factor != 1:
        scratch *= factor
    np.copyto(out, scratch, casting="same_kind")


def read_light_reference(cmcr_path: str | os.PathLike) -> tuple[dict[str, np.ndarray], float]:
    """(light reference channels, sampling rate) of a ``.cmcr``."""
    with CmcrFile(cmcr_path) as f:
        return f.light_reference(), f.sampling_rate


# The original pipeline's functions at this path live in hdmea._compat (its readers and steps, which use
# this module): the table there lists them and hands them on on first use.
importlib.import_module("hdmea._compat_table").hand_on(globals())
