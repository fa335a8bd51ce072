"""The raw sensor data of an MCS ``.cmcr``: the stored frame layouts, each ``SensorData`` dataset's region,
scaling and stored shape (:class:`SensorDataInfo`), and the reads of its frames in chip orientation.

:class:`hdmea.io.cmcr.CmcrFile` holds these reads (:class:`SensorDataReads`); the
orientation and scaling rules are those of :mod:`hdmea.io.cmcr`'s docstring.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import warnings
from collections.abc import Iterator

import h5py
import numpy as np

from hdmea.errors import ConfigError, RecordingFormatError, UnusualVendorValueWarning
from hdmea.io.cmcr_meta import (
    EXPONENT_RANGE,
    conversion_factors,
    meta_field,
    meta_row,
    orders_fitting_region,
    region_fields,
    sensor_region,
)
from hdmea.io.mcs import GRID_SIZE, guard_mcs_read, require_object
from hdmea.io.mcs_checks import SENSOR_DATA_TYPE, check_chunk_sizes, check_stored_dtype, unusual_gain

__all__ = ["SensorDataInfo", "SensorDataReads", "check_sensor_axis_order", "SENSOR_GROUP", "VENDOR_AXIS_ORDER",
           "SENSOR_AXIS_ORDERS", "SENSOR_AXIS_SETTINGS", "AUTO"]

logger = logging.getLogger("hdmea.io.cmcr")

SENSOR_GROUP = "Acquisition/Sensor Data"
_SENSOR_DATA = re.compile(r"^SensorData (\d+) (\d+)$")

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
        gains = self._gains_to_apply(scale, stored.dtype)
        if self.axis_order == "col_row":
            # a few frames at a time through a small reused buffer, each frame turned and scaled on the way
            # (the same products as scaling the turned array after: one pass over the images, not two)
            step = max(1, 2**20 // (GRID_SIZE * GRID_SIZE))
            turned = np.empty((step, GRID_SIZE, GRID_SIZE), dtype=stored.dtype)
            for lead in np.ndindex(stored.shape[:-3]):
                frames = stored[lead] if stored.ndim >= 3 else stored[None]  # a view, whatever the strides
                for a in range(0, frames.shape[0], step):
                    part = frames[a:a + step]
                    out = turned[:part.shape[0]]
                    np.copyto(out, part.transpose(0, 2, 1))
                    if gains is None:
                        part[...] = out
                    else:
                        np.multiply(out, gains, out=part)
        elif gains is not None:
            stored *= gains
        return stored

    def chip_frame(self, *, scale: bool = False) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(place, gains)`` giving a whole-chip region's frames in chip orientation as they are written
        (``frame_place`` and ``frame_gains`` of :func:`h5stream.kernels.eimage.iter_electrical_images`): stored
        channel ``c`` (flattened stored layout) goes to position ``place[c]`` of the flattened chip frame (None:
        ``c``), then multiplied by ``gains[position]`` (None: by none), the values :meth:`to_chip_in_place`
        gives, bit for bit.
        """
        if not self.covers_chip:
            raise ValueError(f"{self.name}: a chip-oriented frame needs a whole-chip region of {GRID_SIZE} x "
                             f"{GRID_SIZE} (found rows {self.row_offset}+{self.n_rows}, cols {self.col_offset}+"
                             f"{self.n_cols})")
        place = None
        if self.axis_order == "col_row":  # stored (col, row): channel c = col * 65 + row goes to row * 65 + col
            channel = np.arange(GRID_SIZE * GRID_SIZE, dtype=np.int64)
            place = (channel % GRID_SIZE) * GRID_SIZE + channel // GRID_SIZE
        gains = self._gains_to_apply(scale, np.float32)
        return place, None if gains is None else gains.reshape(-1)

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


class SensorDataReads:
    """The sensor data reads of :class:`hdmea.io.cmcr.CmcrFile`.

    Uses the file's ``_f`` (the open file), ``path``, ``sensor_meta()``,
    ``sensor_axis_order``, ``region_fields_swapped`` and ``_sensor_infos`` (the
    datasets' infos, None until read; cleared when the frame layout changes).
    """

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
            check_stored_dtype(ds.dtype, SENSOR_DATA_TYPE, self.path, ds.name)
            with guard_mcs_read(self.path, ds.name):
                check_chunk_sizes(ds, self.path)
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
            unusual = unusual_gain(gains, self.path, ds.name) if value_unit == "uV" else None
            if unusual and unusual not in self.unusual_values:
                self.unusual_values.append(unusual)
                warnings.warn(unusual, UnusualVendorValueWarning, stacklevel=3)
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
