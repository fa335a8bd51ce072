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
units' footprints show.  This module and :mod:`hdmea.io.frame_order` are the only
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

import dataclasses
import functools
import importlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from h5stream.memory import small_page_array
from hdmea.errors import ConfigError, RecordingFormatError
from hdmea.io.cmcr_meta import (  # noqa: F401  (KNOWN_UNITS re-exported)
    DURATION_TOLERANCE,
    EXPONENT_RANGE,
    KNOWN_UNITS,
    check_meta_table,
    conversion_factors,
    meta_field,
    meta_row,
    orders_fitting_region,
    region_fields,
    sensor_region,
)
from hdmea.io.mcs import (
    GRID_SIZE,
    PROGRAM_RAW,
    attr_number,
    check_mcs_root,
    guard_mcs_read,
    informative_text,
    open_mcs_file,
    read_attr,
    require_object,
)

__all__ = ["CmcrFile", "SensorDataInfo", "read_light_reference", "check_sensor_axis_order", "check_meta_table",
           "LIGHT_ROW", "SYNC_ROW", "VENDOR_AXIS_ORDER", "SENSOR_AXIS_ORDERS", "SENSOR_AXIS_SETTINGS", "AUTO",
           "EXPONENT_RANGE"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

ANALOG_GROUP = "Acquisition/Analog Data"
ANALOG_DATA = "ChannelData 1"
SENSOR_GROUP = "Acquisition/Sensor Data"
LIGHT_ROW = 0
SYNC_ROW = 1
_SENSOR_DATA = re.compile(r"^SensorData (\d+) (\d+)$")
# A declared size past this is refused rather than allocated (a damaged or
# hostile header can claim any size).  A 20 kHz channel of 24 h fits.
MAX_READ_BYTES = 24 * 1024**3
#: samples of each analog channel read and converted at a time (a whole number of chunks)
ANALOG_BLOCK_SAMPLES = 1 << 20


#: The stored frame layout the vendor documents, and the one "auto" falls back to when undecided.
VENDOR_AXIS_ORDER = "col_row"
#: The two stored frame layouts: ``[col, row]`` and ``[row, col]``.
SENSOR_AXIS_ORDERS = ("col_row", "row_col")
#: Decide the layout per recording from the data (:mod:`hdmea.io.frame_order`).
AUTO = "auto"
#: What ``sensor_axis_order`` accepts.
SENSOR_AXIS_SETTINGS = (AUTO, *SENSOR_AXIS_ORDERS)


def check_sensor_axis_order(value) -> str:
    """``value`` if it is a ``sensor_axis_order`` setting, else a :class:`ConfigError` naming it and the allowed ones.

    ``"auto"`` (the default): decided per recording, by the regions' shapes, else by
    the units' spike-triggered footprints (:mod:`hdmea.io.frame_order`).
    ``"col_row"`` forces the vendor's documented layout: a stored frame is
    ``[col - Region.Left, row - Region.Top]``, so axis 1 is the column;
    ``"row_col"`` forces ``[row - Region.Top, col - Region.Left]``.
    """
    if not isinstance(value, str) or value not in SENSOR_AXIS_SETTINGS:
        raise ConfigError(
            f"sensor_axis_order {value!r} is not a known stored frame layout",
            expected=" or ".join(repr(v) for v in SENSOR_AXIS_SETTINGS), found=repr(value),
            hint=f"{AUTO!r} decides it per recording from the data; {VENDOR_AXIS_ORDER!r} is the layout the MCS "
                 f"documentation describes",
        )
    return value


@dataclasses.dataclass(frozen=True, eq=False)
class SensorDataInfo:
    """One raw sensor dataset: where it lies on the chip, how big, how to scale.

    Chip coordinates are 0-based ``(row, col)`` indices of the 65 x 65 grid (the
    vendor's 1-based Units-table ``Row``/``Column`` minus one).  The region covers
    chip rows ``row_offset .. row_offset + n_rows - 1`` and columns ``col_offset ..
    col_offset + n_cols - 1``.  ``shape`` is the stored shape; :meth:`to_chip` maps a
    stored-layout array to ``(..., n_rows, n_cols)``.  ``gains`` (float64,
    ``(n_rows, n_cols)``, chip orientation) turns ``raw - ad_zero`` into
    ``value_unit`` (``"uV"`` when the file's unit is volts).
    """

    name: str  # HDF5 path
    roi: int
    chunk: int
    shape: tuple[int, ...]  # stored: (frames, axis 1, axis 2)
    dtype: np.dtype
    ad_zero: float
    conversion_factor: float  # the single ConversionFactor (1.0 when per-sensor factors or none)
    exponent: int
    unit: str
    row_offset: int = 0
    col_offset: int = 0
    n_rows: int = GRID_SIZE
    n_cols: int = GRID_SIZE
    axis_order: str = VENDOR_AXIS_ORDER
    gains: np.ndarray | None = None
    scaling: str = "single"  # "per_sensor", "single" or "unscaled"
    value_unit: str = "uV"

    @property
    def n_frames(self) -> int:
        return int(self.shape[0])

    @property
    def chip_slices(self) -> tuple[slice, slice]:
        """(rows, cols) slices of a chip-sized ``(..., 65, 65)`` array that this region covers."""
        return (slice(self.row_offset, self.row_offset + self.n_rows),
                slice(self.col_offset, self.col_offset + self.n_cols))

    def contains(self, row: int, col: int) -> bool:
        """True when 0-based chip sensor ``(row, col)`` lies in this region."""
        return (self.row_offset <= row < self.row_offset + self.n_rows
                and self.col_offset <= col < self.col_offset + self.n_cols)

    def to_chip(self, stored: np.ndarray) -> np.ndarray:
        """A stored-layout array ``(..., axis 1, axis 2)`` as ``(..., n_rows, n_cols)`` (a view)."""
        return np.swapaxes(stored, -1, -2) if self.axis_order == "col_row" else stored

    @property
    def uniform_gain(self) -> float | None:
        """The gain when every sensor has the same one, else None."""
        g = self.gains
        if g is None or g.size == 0:
            return 1.0
        first = float(g.flat[0])
        return first if np.all(g == first) else None

    @property
    def covers_chip(self) -> bool:
        """True when this region is the whole 65 x 65 chip (its stored frames are chip-sized)."""
        return (self.row_offset, self.col_offset, self.n_rows, self.n_cols) == (0, 0, GRID_SIZE, GRID_SIZE)

    def to_chip_in_place(self, stored: np.ndarray, *, scale: bool = False) -> np.ndarray:
        """A whole-chip region's stored-layout ``(..., axis 1, axis 2)`` float array turned into chip
        orientation ``(..., rows, cols)`` in its own memory (no second array of its size); returns it.

        ``scale=True`` multiplies each sensor by its gain, as :meth:`place_on_chip` does.
        """
        if not self.covers_chip or stored.shape[-2:] != (GRID_SIZE, GRID_SIZE):
            raise ValueError(f"{self.name}: turning in place needs a whole-chip region of {GRID_SIZE} x {GRID_SIZE} "
                             f"frames (found rows {self.row_offset}+{self.n_rows}, cols {self.col_offset}+"
                             f"{self.n_cols}, frames {stored.shape[-2:]})")
        if self.axis_order == "col_row":
            step = max(1, 2**20 // (GRID_SIZE * GRID_SIZE))  # a few frames at a time: a small reused copy
            for lead in np.ndindex(stored.shape[:-3]):
                frames = stored[lead] if stored.ndim >= 3 else stored[None]  # a view, whatever the strides
                for a in range(0, frames.shape[0], step):
                    part = frames[a:a + step]
                    part[...] = part.transpose(0, 2, 1).copy()
        gains = self._gains_to_apply(scale, stored.dtype)
        if gains is not None:
            stored *= gains
        return stored

    def _gains_to_apply(self, scale: bool, dtype) -> np.ndarray | None:
        """Each sensor's gain as ``dtype`` (chip orientation) when ``scale`` asks for gains other than 1."""
        if scale and self.gains is not None and self.uniform_gain != 1.0:
            return self.gains.astype(dtype)
        return None

    def place_on_chip(self, stored: np.ndarray, chip: np.ndarray, *, scale: bool = False) -> None:
        """Write a stored-layout ``(..., axis 1, axis 2)`` array into ``chip[..., rows, cols]``.

        ``scale=True`` multiplies each sensor by its gain on the way.
        """
        values = self.to_chip(stored)
        rs, cs = self.chip_slices
        gains = self._gains_to_apply(scale, chip.dtype)
        chip[..., rs, cs] = values if gains is None else values * gains


class CmcrFile:
    """An open ``.cmcr``; use as a context manager.

    ``sensor_axis_order``: ``"col_row"`` or ``"row_col"`` force how stored frames are
    read; ``"auto"`` (the default) takes the one reading the regions' shapes allow
    (:meth:`orders_by_shape`) and otherwise reads the vendor's layout until
    :meth:`use_sensor_axis_order` sets the one the footprints decided
    (:func:`hdmea.io.frame_order.decide_frame_order`).  :attr:`axis_order_source`
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
        self._f = open_mcs_file(self.path, check=lambda f: check_mcs_root(f, self.path, program=PROGRAM_RAW))
        if self.axis_order_setting != AUTO:
            self._order, self.axis_order_source = self.axis_order_setting, "forced"

    @property
    def sensor_axis_order(self) -> str:
        """The stored frame layout this file is read with (``"col_row"`` or ``"row_col"``)."""
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
        if order != self._order or swapped_fields != self.region_fields_swapped:
            self._sensor_infos = None
        self._order, self.axis_order_source = order, source
        self.region_fields_swapped = bool(swapped_fields)

    def orders_by_shape(self) -> tuple[str, ...]:
        """The frame layouts every ``SensorData`` dataset's stored shape fits (its ``Region.*`` fields, the chip).

        Both for square regions (or none): the shapes cannot tell.  A dataset no
        reading fits, or regions that fit different readings, are a
        :class:`RecordingFormatError`.
        """
        if SENSOR_GROUP not in self._f:
            return SENSOR_AXIS_ORDERS
        group = require_object(self._f, SENSOR_GROUP, self.path)
        meta = self.sensor_meta()
        common = set(SENSOR_AXIS_ORDERS)
        decided_by: dict[str, str] = {}
        for name in sorted(self._sensor_member_names(group)):
            m = _SENSOR_DATA.match(name)
            if not m:
                continue
            ds = require_object(group, name, self.path, kind=h5py.Dataset)
            if ds.ndim != 3:
                continue  # refused with its reason when the dataset is read
            fits = orders_fitting_region(meta_row(meta, "RegionID", int(m.group(1))), ds.shape)
            if not fits:
                raise RecordingFormatError(
                    "sensor data shape fits its region in neither frame layout", path=self.path, obj=ds.name,
                    expected="(frames, columns, rows) or (frames, rows, columns) of its SensorMeta "
                             "Region.Left..Right, Region.Top..Bottom, inside the 65 x 65 chip",
                    found=str(ds.shape), hint="the file is damaged or its SensorMeta row is not this region's",
                )
            if len(fits) == 1:
                decided_by.setdefault(fits[0], ds.name)
            common &= set(fits)
        if not common:
            raise RecordingFormatError(
                "regions of interest fit different frame layouts", path=self.path,
                obj=f"{decided_by['col_row']} and {decided_by['row_col']}",
                expected="one frame layout for every SensorData dataset",
                found=f"{decided_by['col_row']} fits only [col, row], {decided_by['row_col']} only [row, col]",
                hint="the file is damaged, or its SensorMeta rows do not describe its datasets",
            )
        return tuple(o for o in SENSOR_AXIS_ORDERS if o in common)

    def close(self) -> None:
        if self._f.id.valid:
            self._f.close()

    def __enter__(self) -> CmcrFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def h5(self) -> h5py.File:
        return self._f

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
            scales.append((float(meta_field(mrow, "ADZero", 0)), float(meta_field(mrow, "ConversionFactor", 1))))
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
                    zero, factor = scales[j]
                    if zero or factor != 1 or not _exact_in_float64(raw.dtype):
                        if scratch is None:
                            scratch = np.empty(block, dtype=np.float64)
                        _scaled_into(out[j][b0:b1], raw[row - first], zero, factor, scratch[:b1 - b0])
                    else:  # one rounding to float32, as through float64
                        np.copyto(out[j][b0:b1], raw[row - first], casting="unsafe")
        return out

    def light_reference(self) -> dict[str, np.ndarray]:
        """``{"raw_ch1": photodiode, "raw_ch2": frame sync}`` at the acquisition rate (both read in one pass)."""
        light, sync = self.analog_rows((LIGHT_ROW, SYNC_ROW))
        return {"raw_ch1": light, "raw_ch2": sync}

    # -- sensor data
    def sensor_datasets(self) -> list[SensorDataInfo]:
        """Every ``SensorData {roi} {chunk}`` dataset, ordered by (roi, chunk), with its region and gains."""
        if self._sensor_infos is None:
            self._sensor_infos = self._read_sensor_datasets()
        return list(self._sensor_infos)

    def _sensor_member_names(self, group: h5py.Group) -> list[str]:
        """The names of the sensor data group's members; a name that is not UTF-8 is a typed error."""
        names = list(group)
        for name in names:
            if isinstance(name, bytes):  # h5py hands over a name that is not UTF-8 as bytes
                raise RecordingFormatError("a member name of the sensor data group is not UTF-8 text",
                                           path=self.path, obj=f"/{SENSOR_GROUP}", expected="UTF-8 member names",
                                           found=repr(name))
        return names

    def _read_sensor_datasets(self) -> list[SensorDataInfo]:
        if SENSOR_GROUP not in self._f:
            return []
        group = require_object(self._f, SENSOR_GROUP, self.path)
        meta = self.sensor_meta()
        out = []
        for name in self._sensor_member_names(group):
            m = _SENSOR_DATA.match(name)
            if not m:
                continue
            ds = require_object(group, name, self.path, kind=h5py.Dataset)
            roi, chunk = int(m.group(1)), int(m.group(2))
            row = meta_row(meta, "RegionID", roi)
            if ds.ndim != 3:
                raise RecordingFormatError(
                    "sensor data has the wrong shape", path=self.path, obj=ds.name,
                    expected="(frames, columns, rows)", found=str(ds.shape),
                )
            if ds.dtype.kind not in "iu":
                raise RecordingFormatError(
                    "sensor data is not integer ADC counts", path=self.path, obj=ds.name,
                    expected="int16 or uint16", found=str(ds.dtype),
                )
            default_zero = 2 ** (8 * ds.dtype.itemsize - 1) if ds.dtype.kind == "u" else 0
            zero = float(meta_field(row, "ADZero", default_zero))
            info = np.iinfo(ds.dtype)
            if not info.min <= zero <= info.max:
                raise RecordingFormatError(
                    "ADC zero outside the range of the stored dtype", path=self.path, obj=ds.name,
                    expected=f"{info.min}..{info.max} for {ds.dtype}", found=str(zero),
                )
            top, left, n_rows, n_cols = sensor_region(row, ds, self.sensor_axis_order, self.path,
                                                      self.region_fields_swapped)
            factors, single, scaling = conversion_factors(row, ds, n_rows * n_cols, self.path,
                                                          f"/{SENSOR_GROUP}/SensorMeta")
            exponent = meta_field(row, "Exponent", None)
            unit = str(meta_field(row, "Unit", "") or "")
            if exponent is None and scaling != "unscaled":
                # Without it the scale is unknown: defaulting to 10**0 would misscale by orders of magnitude.
                raise RecordingFormatError(
                    "sensor meta table has no Exponent for a scaled region", path=self.path,
                    obj=f"/{SENSOR_GROUP}/SensorMeta for {ds.name}",
                    expected=f"an Exponent column ({EXPONENT_RANGE[0]}..{EXPONENT_RANGE[1]})", found="none",
                    hint="the file is damaged or was not written by the MCS software",
                )
            if scaling == "unscaled":
                multiplier, value_unit = 1.0, "counts"
            elif unit == "V":
                multiplier, value_unit = 10.0 ** (int(exponent or 0) + 6), "uV"
            else:
                multiplier, value_unit = 10.0 ** int(exponent or 0), unit or "unitless"
            if factors is None:
                gains = np.full((n_rows, n_cols), single * multiplier, dtype=np.float64)
            else:
                # sensor-id order (rows fastest) whichever way the frames are stored
                gains = np.ascontiguousarray(factors.reshape(n_cols, n_rows).T) * multiplier
            out.append(SensorDataInfo(
                name=ds.name, roi=roi, chunk=chunk, shape=tuple(ds.shape), dtype=ds.dtype, ad_zero=zero,
                conversion_factor=float(single), exponent=int(exponent or 0), unit=unit,
                row_offset=top, col_offset=left, n_rows=n_rows, n_cols=n_cols,
                axis_order=self.sensor_axis_order, gains=gains, scaling=scaling, value_unit=value_unit,
            ))
        if any(i.scaling == "unscaled" for i in out):
            logger.warning(
                "%s: %s has neither 'Conversion Factors' nor 'ConversionFactor'; sensor data are unscaled ADC "
                "counts (recorded as scaling='unscaled' in the recording's metadata)",
                self.path, "/" + SENSOR_GROUP + "/SensorMeta")
        return sorted(out, key=lambda s: (s.roi, s.chunk))

    def stored_regions(self) -> list[tuple[str, tuple[int, ...], tuple]]:
        """``(HDF5 path, stored shape, 1-based (Region.Left, Region.Top, Region.Right, Region.Bottom))`` per region.

        The first sweep (chunk) of each region of interest, ordered by region; reads no
        sensor data and needs no frame layout.
        """
        if SENSOR_GROUP not in self._f:
            return []
        group = require_object(self._f, SENSOR_GROUP, self.path)
        meta = self.sensor_meta()
        first: dict[int, tuple[int, str]] = {}
        for name in self._sensor_member_names(group):
            m = _SENSOR_DATA.match(name)
            if m and (int(m.group(1)) not in first or int(m.group(2)) < first[int(m.group(1))][0]):
                first[int(m.group(1))] = (int(m.group(2)), name)
        out = []
        for roi in sorted(first):
            ds = require_object(group, first[roi][1], self.path, kind=h5py.Dataset)
            if ds.ndim != 3:
                raise RecordingFormatError("sensor data has the wrong shape", path=self.path, obj=ds.name,
                                           expected="(frames, columns, rows)", found=str(ds.shape))
            out.append((ds.name, tuple(int(n) for n in ds.shape), region_fields(meta_row(meta, "RegionID", roi))))
        return out

    def guard(self, obj: str):
        """A context in which a failed read of ``obj`` becomes a :class:`RecordingFormatError` naming it."""
        return guard_mcs_read(self.path, obj)

    def _sensor_info(self, dataset: str | SensorDataInfo | None) -> SensorDataInfo:
        infos = self.sensor_datasets()
        if not infos:
            raise RecordingFormatError(
                "no raw sensor data", path=self.path, obj="/" + SENSOR_GROUP,
                expected="SensorData {roi} {chunk} datasets", found="none",
            )
        if dataset is None:
            return infos[0]
        key = dataset.name if isinstance(dataset, SensorDataInfo) else str(dataset)
        for info in infos:
            if key in (info.name, info.name.rsplit("/", 1)[-1]):
                return info
        raise RecordingFormatError(
            "no such sensor dataset", path=self.path, obj=key,
            expected="one of " + ", ".join(i.name for i in infos), found=key,
        )

    def iter_sensor_blocks(
        self,
        dataset: str | SensorDataInfo | None = None,
        *,
        block_frames: int = 4096,
        overlap: int = 0,
        start: int = 0,
        stop: int | None = None,
        scaled: bool = True,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start_frame, block)`` over raw sensor data.

        Blocks hold ``block_frames`` new frames plus up to ``overlap`` frames
        before them (the first block has none), so a filter or window can settle
        across block edges: a block starting at ``start_frame`` covers frames
        ``start_frame .. start_frame + len(block) - 1`` and ``start_frame`` is
        the first *overlap* frame.  Blocks are ``(frames, n_rows, n_cols)`` in chip
        orientation whatever the stored layout.  ``scaled=True`` gives float32
        ``(raw - ADZero) * gain`` per sensor (microvolts when the unit is V, see
        :class:`SensorDataInfo`); ``False`` the stored dtype.
        """
        info = self._sensor_info(dataset)
        if block_frames <= 0 or overlap < 0:
            raise ConfigError(f"block_frames must be > 0 and overlap >= 0, found {block_frames}, {overlap}")
        n = info.n_frames
        stop = n if stop is None else min(int(stop), n)
        if not 0 <= start <= stop:
            raise ConfigError(f"start {start} must lie within 0..{stop}")
        ds = self._f[info.name]
        zero = np.float32(info.ad_zero)
        uniform = info.uniform_gain
        gains = None if uniform is not None else info.gains.astype(np.float32)
        factor = np.float32(1.0 if uniform is None else uniform)
        for b0 in range(start, stop, block_frames):
            b1 = min(stop, b0 + block_frames)
            lo = max(start, b0 - overlap)
            with guard_mcs_read(self.path, info.name):
                raw = ds[lo:b1]
            chip = info.to_chip(raw)
            if scaled:
                block = np.array(chip, dtype=np.float32, order="C")
                block -= zero
                if gains is not None:
                    block *= gains
                elif factor != 1:
                    block *= factor
                yield lo, block
            else:
                yield lo, np.ascontiguousarray(chip)

    def read_sensor_frames(self, start: int, stop: int, dataset=None, *, scaled: bool = True) -> np.ndarray:
        """Frames ``[start, stop)`` of one sensor dataset, ``(frames, n_rows, n_cols)`` in chip orientation."""
        blocks = [b for _s, b in self.iter_sensor_blocks(dataset, block_frames=max(1, stop - start),
                                                          start=start, stop=stop, scaled=scaled)]
        if not blocks:
            info = self._sensor_info(dataset)
            return np.zeros((0, info.n_rows, info.n_cols), dtype=np.float32 if scaled else info.dtype)
        return blocks[0]


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


# The original pipeline's functions defined at this path, handed on from where they live and loaded on
# first use: its readers (hdmea.io.lab_readers) and its steps (hdmea.steps.source_info, a layer above;
# this table is the only way this module reaches it, see tests/unit/test_import_graph.py).
_HANDED_ON = {
    "load_cmcr_data": "hdmea.io.lab_readers",
    "load_sensor_data": "hdmea.io.lab_readers",
    "load_sensor_data_chunked": "hdmea.io.lab_readers",
    "get_sensor_data_info": "hdmea.io.lab_readers",
    "find_cmcr_file_from_cmtr": "hdmea.io.lab_readers",
    "add_sys_meta_info": "hdmea.steps.source_info",
}


def __getattr__(name: str):
    module = _HANDED_ON.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ += list(_HANDED_ON)
