"""Read raw data from an MCS ``.cmcr`` file (CMOS-MEA-Control).

* Light reference: ``Acquisition/Analog Data/ChannelData 1``; row 0 is the
  photodiode, row 1 the display's frame-sync signal.  Values are returned as
  float32 ``(raw - ADZero) * ConversionFactor`` (units of ``10**Exponent`` of the
  meta table's ``Unit``).
* Sampling rate: ``1e6 / Tick`` from the meta tables, else samples divided by the
  root's ``LB.RecordingDuration`` (microseconds).
* Raw sensor data: every ``Acquisition/Sensor Data/SensorData {roi} {chunk}``
  dataset, read block by block (:meth:`CmcrFile.iter_sensor_blocks`) with an
  optional overlap, as the stored dtype or scaled to float32 with the ADC zero
  removed.  The zero and dtype are checked first: a uint16 store cast straight to
  int16 would wrap.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from hdmea.errors import ConfigError, RecordingFormatError
from hdmea.io.mcs import (
    PROGRAM_RAW,
    attr_number,
    attr_text,
    check_mcs_root,
    guard_mcs_read,
    open_mcs_file,
    require_object,
)

__all__ = ["CmcrFile", "SensorDataInfo", "read_light_reference", "LIGHT_ROW", "SYNC_ROW"]

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


@dataclasses.dataclass(frozen=True)
class SensorDataInfo:
    """One raw sensor dataset: where, how big, how to scale."""

    name: str  # HDF5 path
    roi: int
    chunk: int
    shape: tuple[int, ...]  # (frames, height, width)
    dtype: np.dtype
    ad_zero: float
    conversion_factor: float
    exponent: int
    unit: str

    @property
    def n_frames(self) -> int:
        return int(self.shape[0])


def _meta_row(table: np.ndarray, key: str, value) -> np.void | None:
    """The meta row whose ``key`` is ``value``; a table without that column describes all rows by its first."""
    if table is None or table.size == 0:
        return None
    if table.dtype.names is None or key not in table.dtype.names:
        return table[0]
    hit = np.flatnonzero(table[key] == value)
    return table[hit[0]] if hit.size else None


def _field(row, name, default=None):
    if row is None or row.dtype.names is None or name not in row.dtype.names:
        return default
    value = row[name]
    if isinstance(value, (bytes, np.bytes_)):
        return attr_text(value)
    return value.item() if hasattr(value, "item") else value


class CmcrFile:
    """An open ``.cmcr``; use as a context manager."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._f = open_mcs_file(self.path, check=lambda f: check_mcs_root(f, self.path, program=PROGRAM_RAW))

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
        return attr_number(self._f.attrs.get("LB.RecordingDuration"))

    def _meta_table(self, group: str, name: str) -> np.ndarray | None:
        if group not in self._f or name not in self._f[group]:
            return None
        ds = require_object(self._f[group], name, self.path, kind=h5py.Dataset)
        with guard_mcs_read(self.path, ds.name):
            return ds[()]

    def channel_meta(self) -> np.ndarray | None:
        return self._meta_table(ANALOG_GROUP, "ChannelMeta")

    def sensor_meta(self) -> np.ndarray | None:
        return self._meta_table(SENSOR_GROUP, "SensorMeta")

    @functools.cached_property
    def sampling_rate(self) -> float:
        """Samples per second: from the meta tables' ``Tick``, else samples / recording duration."""
        for table in (self.channel_meta(), self.sensor_meta()):
            if table is not None and table.dtype.names and "Tick" in table.dtype.names and table.size:
                tick = float(table["Tick"][0])
                if tick > 0:
                    return 1e6 / tick
        duration = self.recording_duration_us()
        n = self.n_analog_samples() if self.has_analog() else None
        if duration and n:
            return n / (duration / 1e6)
        raise RecordingFormatError(
            "cannot determine the sampling rate", path=self.path, obj="/" + ANALOG_GROUP + "/ChannelMeta",
            expected="a Tick column or LB.RecordingDuration with analog data", found="neither",
        )

    def metadata(self) -> dict:
        """Recording metadata (root attributes, rates, scaling) as plain python values."""
        out: dict = {}
        for key in ("DateTime", "ProgramName", "ProgramVersion", "ID.Instance"):
            value = attr_text(self._f.attrs.get(key))
            if value is not None:
                out[key.replace(".", "_")] = value
        duration = self.recording_duration_us()
        if duration is not None:
            out["recording_duration_us"] = float(duration)
        out["sampling_rate"] = float(self.sampling_rate)
        version = attr_number(self._f.attrs.get("FileVersion"))
        if version is not None:
            out["file_version"] = int(version)
        if self.has_analog():
            meta = self.channel_meta()
            row = _meta_row(meta, "ChannelID", 1)
            out["analog"] = {
                "n_samples": int(self.n_analog_samples()),
                "ad_zero": float(_field(row, "ADZero", 0)),
                "conversion_factor": float(_field(row, "ConversionFactor", 1)),
                "exponent": int(_field(row, "Exponent", 0)),
                "unit": str(_field(row, "Unit", "")),
            }
        sensors = self.sensor_datasets()
        if sensors:
            s = sensors[0]
            out["sensor"] = {
                "n_datasets": len(sensors), "n_frames": int(s.n_frames), "dtype": str(s.dtype),
                "ad_zero": float(s.ad_zero), "conversion_factor": float(s.conversion_factor),
                "exponent": int(s.exponent), "unit": s.unit,
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
        ds = self._analog_dataset()
        meta = self.channel_meta()
        # Meta rows follow the data rows.
        mrow = None
        if meta is not None and meta.dtype.names and meta.size:
            mrow = meta[row] if row < meta.size else meta[0]
        zero = float(_field(mrow, "ADZero", 0))
        factor = float(_field(mrow, "ConversionFactor", 1))
        if ds.dtype.kind not in "iuf":
            raise RecordingFormatError("analog data is not numeric", path=self.path, obj=ds.name,
                                       expected="integer ADC counts", found=str(ds.dtype))
        n = len(range(*slice(start, stop).indices(ds.shape[1])))
        if n * 12 > MAX_READ_BYTES:  # the float64 working copy plus the float32 result
            raise RecordingFormatError(
                "analog channel is too large to read at once", path=self.path, obj=ds.name,
                expected=f"at most {MAX_READ_BYTES // 12} samples", found=f"{n} samples",
                hint="read it in parts with analog_row(row, start, stop), or raise hdmea.io.cmcr.MAX_READ_BYTES",
            )
        with guard_mcs_read(self.path, ds.name):
            raw = ds[row, start:stop]
        out = raw.astype(np.float64)
        if zero:
            out -= zero
        if factor != 1:
            out *= factor
        return out.astype(np.float32)

    def light_reference(self) -> dict[str, np.ndarray]:
        """``{"raw_ch1": photodiode, "raw_ch2": frame sync}`` at the acquisition rate."""
        return {"raw_ch1": self.analog_row(LIGHT_ROW), "raw_ch2": self.analog_row(SYNC_ROW)}

    # -- sensor data
    def sensor_datasets(self) -> list[SensorDataInfo]:
        """Every ``SensorData {roi} {chunk}`` dataset, ordered by (roi, chunk)."""
        if SENSOR_GROUP not in self._f:
            return []
        group = require_object(self._f, SENSOR_GROUP, self.path)
        meta = self.sensor_meta()
        out = []
        for name in group:
            m = _SENSOR_DATA.match(name)
            if not m:
                continue
            ds = require_object(group, name, self.path, kind=h5py.Dataset)
            roi, chunk = int(m.group(1)), int(m.group(2))
            row = _meta_row(meta, "RegionID", roi)
            if ds.ndim != 3:
                raise RecordingFormatError(
                    "sensor data has the wrong shape", path=self.path, obj=ds.name,
                    expected="(frames, height, width)", found=str(ds.shape),
                )
            if ds.dtype.kind not in "iu":
                raise RecordingFormatError(
                    "sensor data is not integer ADC counts", path=self.path, obj=ds.name,
                    expected="int16 or uint16", found=str(ds.dtype),
                )
            default_zero = 2 ** (8 * ds.dtype.itemsize - 1) if ds.dtype.kind == "u" else 0
            zero = float(_field(row, "ADZero", default_zero))
            info = np.iinfo(ds.dtype)
            if not info.min <= zero <= info.max:
                raise RecordingFormatError(
                    "ADC zero outside the range of the stored dtype", path=self.path, obj=ds.name,
                    expected=f"{info.min}..{info.max} for {ds.dtype}", found=str(zero),
                )
            out.append(SensorDataInfo(
                name=ds.name, roi=roi, chunk=chunk, shape=tuple(ds.shape), dtype=ds.dtype, ad_zero=zero,
                conversion_factor=float(_field(row, "ConversionFactor", 1)),
                exponent=int(_field(row, "Exponent", 0)), unit=str(_field(row, "Unit", "")),
            ))
        return sorted(out, key=lambda s: (s.roi, s.chunk))

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
        the first *overlap* frame.  ``scaled=True`` gives float32
        ``(raw - ADZero) * ConversionFactor``; ``False`` the stored dtype.
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
        factor = np.float32(info.conversion_factor)
        for b0 in range(start, stop, block_frames):
            b1 = min(stop, b0 + block_frames)
            lo = max(start, b0 - overlap)
            with guard_mcs_read(self.path, info.name):
                raw = ds[lo:b1]
            if scaled:
                block = raw.astype(np.float32)
                block -= zero
                if factor != 1:
                    block *= factor
                yield lo, block
            else:
                yield lo, raw

    def read_sensor_frames(self, start: int, stop: int, dataset=None, *, scaled: bool = True) -> np.ndarray:
        """Frames ``[start, stop)`` of one sensor dataset."""
        blocks = [b for _s, b in self.iter_sensor_blocks(dataset, block_frames=max(1, stop - start),
                                                          start=start, stop=stop, scaled=scaled)]
        if not blocks:
            info = self._sensor_info(dataset)
            return np.zeros((0, *info.shape[1:]), dtype=np.float32 if scaled else info.dtype)
        return blocks[0]


def read_light_reference(cmcr_path: str | os.PathLike) -> tuple[dict[str, np.ndarray], float]:
    """(light reference channels, sampling rate) of a ``.cmcr``."""
    with CmcrFile(cmcr_path) as f:
        return f.light_reference(), f.sampling_rate
