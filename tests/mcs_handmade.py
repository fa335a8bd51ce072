"""MCS files written by hand with plain h5py, in the layout real files have, for tests that must not
trust our own synthetic writer.

Everything here is spelled out independently of :mod:`hdmea`: the vendor's type ids come from the
vendor's package table (``McsPy.McsHdf5Types``) or, when it is not installed, from literal strings;
frames are stored ``[frame, col - Region.Left, row - Region.Top]`` unless a test asks for the
transposed layout; ``Conversion Factors`` is one integer per sensor of the region in sensor-id order
(column-major: rows vary fastest), with a trailing space.
"""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np

FILE_TYPE = "cabb6cdd-47e0-417a-8e04-5664cbbc449b"
ACQUISITION_TYPE = "650d88ce-9f24-4b20-ac2b-254defd12761"
SENSOR_STREAM_TYPE = "15e5a1fe-df2f-421b-8b60-23eeb2213c45"
SENSOR_META_TYPE = "ab2aa189-2e72-4148-a2ef-978119223412"
SENSOR_DATA_TYPE = "49da47df-f397-4121-b5da-35317a93e705"
CHANNEL_STREAM_TYPE = "9217aeb4-59a0-4d7f-bdcd-0371c9fd66eb"
CHANNEL_META_TYPE = "9e8ac9cd-5571-4ee5-bbfa-8e9d9c436daa"
CHANNEL_DATA_TYPE = "5efe7932-dcfe-49ff-ba53-25accff5d622"
SORTER_TYPE = "7263d1b7-f57a-42de-8f51-5d6326d22f2a"
SORTER_UNIT_TYPE = "0e5a97df-9de0-4a22-ab8c-54845c1ff3b9"


@dataclasses.dataclass
class Region:
    """A region of interest: 1-based inclusive chip rows top..bottom and columns left..right."""

    top: int
    left: int
    bottom: int
    right: int
    factors: np.ndarray | None = None  # (rows, cols) chip orientation, integers; None: no text column value

    @property
    def n_rows(self) -> int:
        return self.bottom - self.top + 1

    @property
    def n_cols(self) -> int:
        return self.right - self.left + 1


def _stamp(obj, kind: str, type_id: str) -> None:
    obj.attrs["ID.Type"] = np.bytes_(kind.encode())
    obj.attrs["ID.TypeID"] = np.bytes_(type_id.encode())
    obj.attrs["ID.Instance"] = np.bytes_(kind.encode())
    obj.attrs["ID.InstanceID"] = np.bytes_(b"00000000-0000-0000-0000-000000000001")


def _root(f, program: str, duration_us: int) -> None:
    _stamp(f, "CMOS-MEA-File", FILE_TYPE)
    f.attrs["FileVersion"] = np.array([1], dtype=np.int32)
    f.attrs["DateTime"] = np.bytes_(b"2026-01-01 12:00:00")
    f.attrs["ProgramName"] = np.bytes_(program.encode())
    f.attrs["ProgramVersion"] = np.bytes_(b"2.6.0.0")
    f.attrs["LB.RecordingDuration"] = np.array([duration_us], dtype=np.int64)


def write_cmcr(path, regions: list[Region], chip_counts: np.ndarray, *, dtype="uint16", ad_zero: int | None = 32768,
               exponent: int | None = -9, unit: bytes = b"V", tick_us: int = 50, factors_as: str = "bytes",
               single_factor: int | None = None, transposed: bool = False) -> None:
    """A ``.cmcr`` whose sensor data are ``chip_counts`` (frames, 65, 65) in chip (row, col) plus ``ad_zero``.

    ``factors_as``: ``"bytes"`` (fixed-length ASCII), ``"str"`` (variable-length text) or ``"none"``
    (no ``Conversion Factors`` column).  ``transposed=True`` stores ``[frame, row, col]`` instead.
    """
    frames = chip_counts.shape[0]
    fields = [("GroupID", "<i4"), ("RegionID", "<i4"), ("Unit", "S4"), ("Tick", "<i8")]
    if exponent is not None:
        fields.append(("Exponent", "<i4"))
    if ad_zero is not None:
        fields.append(("ADZero", "<i4"))
    fields += [("Region.Left", "<i4"), ("Region.Top", "<i4"), ("Region.Right", "<i4"), ("Region.Bottom", "<i4")]
    texts = []
    for r in regions:
        if r.factors is not None:
            # sensor-id order: column by column, rows fastest; trailing space as in real files
            texts.append(" ".join(str(int(v)) for v in np.asarray(r.factors).T.ravel()) + " ")
        else:
            texts.append("")
    if factors_as == "bytes":
        fields.append(("Conversion Factors", f"S{max(len(t) for t in texts) + 3}"))
    elif factors_as == "str":
        fields.append(("Conversion Factors", h5py.string_dtype()))
    if single_factor is not None:
        fields.append(("ConversionFactor", "<i8"))
    meta = np.zeros(len(regions), dtype=np.dtype(fields))
    for k, r in enumerate(regions):
        meta["GroupID"][k] = 1
        meta["RegionID"][k] = k + 1
        meta["Unit"][k] = unit
        meta["Tick"][k] = tick_us
        if exponent is not None:
            meta["Exponent"][k] = exponent
        if ad_zero is not None:
            meta["ADZero"][k] = ad_zero
        meta["Region.Left"][k], meta["Region.Top"][k] = r.left, r.top
        meta["Region.Right"][k], meta["Region.Bottom"][k] = r.right, r.bottom
        if factors_as == "bytes":
            meta["Conversion Factors"][k] = (texts[k] + "  ").encode()
        elif factors_as == "str":
            meta["Conversion Factors"][k] = texts[k]
        if single_factor is not None:
            meta["ConversionFactor"][k] = single_factor
    with h5py.File(path, "w") as f:
        _root(f, "CMOS-MEA-Control", int(frames * tick_us))
        acq = f.create_group("Acquisition")
        _stamp(acq, "Acquisition", ACQUISITION_TYPE)
        sensor = acq.create_group("Sensor Data")
        _stamp(sensor, "SensorStream", SENSOR_STREAM_TYPE)
        ds = sensor.create_dataset("SensorMeta", data=meta)
        _stamp(ds, "SensorMeta", SENSOR_META_TYPE)
        zero = 0 if ad_zero is None else ad_zero
        for k, r in enumerate(regions):
            part = chip_counts[:, r.top - 1:r.bottom, r.left - 1:r.right].astype(np.int64) + zero
            stored = part if transposed else part.transpose(0, 2, 1)  # [frame, col, row]
            ds = sensor.create_dataset(f"SensorData {k + 1} 1", data=stored.astype(dtype))
            _stamp(ds, "SensorData", SENSOR_DATA_TYPE)


def write_analog(path, codes: np.ndarray, *, ad_zero: int = 0, adc_bits: int = 24, tick_us: int = 50,
                 chunk_samples: int | None = None) -> None:
    """Add the analog channels to the ``.cmcr`` at ``path``: ``codes`` (channels, samples) as the stored 32-bit
    ADC codes of ``Acquisition/Analog Data/ChannelData 1`` (row 0 the photodiode, row 1 the frame sync), with a
    ``ChannelMeta`` row per channel; the root's ``LB.RecordingDuration`` becomes samples x ``tick_us``.  Chunks
    hold every channel and ``chunk_samples`` samples (all by default)."""
    codes = np.asarray(codes)
    meta = np.zeros(codes.shape[0], dtype=[("ChannelID", "<i4"), ("GroupID", "<i4"), ("Label", "S32"), ("Unit", "S8"),
                                           ("Exponent", "<i4"), ("ADZero", "<i4"), ("Tick", "<i8"),
                                           ("ConversionFactor", "<i8"), ("ADCBits", "<i4")])
    meta["ChannelID"] = np.arange(1, codes.shape[0] + 1)
    meta["GroupID"] = 1
    meta["Unit"] = b"V"
    meta["Exponent"] = -9
    meta["ADZero"] = ad_zero
    meta["Tick"] = tick_us
    meta["ConversionFactor"] = 1
    meta["ADCBits"] = adc_bits
    with h5py.File(path, "a") as f:
        f.attrs["LB.RecordingDuration"] = np.array([codes.shape[1] * tick_us], dtype=np.int64)
        analog = f["Acquisition"].create_group("Analog Data")
        _stamp(analog, "ChannelStream", CHANNEL_STREAM_TYPE)
        ds = analog.create_dataset("ChannelMeta", data=meta)
        _stamp(ds, "ChannelMeta", CHANNEL_META_TYPE)
        ds = analog.create_dataset("ChannelData 1", data=codes.astype("<i4"),
                                   chunks=(codes.shape[0], min(codes.shape[1], chunk_samples or codes.shape[1])))
        _stamp(ds, "ChannelData", CHANNEL_DATA_TYPE)


def write_cmtr(path, units: list[dict], *, tick_us: int = 50, duration_us: int | None = None) -> None:
    """A ``.cmtr``: ``units`` are dicts with unit_id, sensor_id, row, col (as written) and spike samples, and
    optionally ``cutouts`` (one row of samples per spike: the vendor's ``Cutout i`` float32 columns, the
    amplitude the most negative sample).

    ``duration_us`` defaults to one tick past the last spike (peaks must lie inside the recording).
    """
    if duration_us is None:
        last = max((int(np.max(u["spikes"])) for u in units if np.size(u["spikes"])), default=0)
        duration_us = (last + 1) * tick_us
    table = np.zeros(len(units), dtype=[("UnitID", "<i4"), ("SensorID", "<i4"), ("Row", "<i4"), ("Column", "<i4"),
                                        ("SNR", "<f8")])
    peaks_dtype = np.dtype([("Timestamp", "<i8"), ("PeakAmplitude", "<f4"), ("IncludePeak", "u1")])
    with h5py.File(path, "w") as f:
        _root(f, "CMOS-MEA-Tools", duration_us)
        sorter = f.create_group("Spike Sorter")
        _stamp(sorter, "SpikeSorter", SORTER_TYPE)
        for i, u in enumerate(units):
            table[i] = (u["unit_id"], u["sensor_id"], u["row"], u["col"], 10.0)
            g = sorter.create_group(f"Unit {u['unit_id']}")
            _stamp(g, "SpikeSorterUnit", SORTER_UNIT_TYPE)
            g.attrs["UnitID"] = np.int32(u["unit_id"])
            g.attrs["SensorID"] = np.int32(u["sensor_id"])
            g.attrs["Row"] = np.int32(u["row"])
            g.attrs["Column"] = np.int32(u["col"])
            spikes = np.asarray(u["spikes"], dtype=np.int64)
            cutouts = np.asarray(u.get("cutouts", np.zeros((spikes.size, 0))), dtype="<f4")
            peaks = np.zeros(spikes.size, dtype=peaks_dtype.descr + [(f"Cutout {j}", "<f4")
                                                                       for j in range(cutouts.shape[1])])
            peaks["Timestamp"] = spikes * tick_us
            peaks["IncludePeak"] = 1
            for j in range(cutouts.shape[1]):
                peaks[f"Cutout {j}"] = cutouts[:, j]
            if cutouts.shape[1]:
                peaks["PeakAmplitude"] = cutouts.min(axis=1)
            g.create_dataset("Peaks", data=peaks)
        sorter.create_dataset("Units", data=table)


def sensor_id(row: int, col: int) -> int:
    """1-based column-major id of 1-based (row, col), written out here rather than imported."""
    return 65 * (col - 1) + row
