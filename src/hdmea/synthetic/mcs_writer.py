"""Write ``.cmcr``/``.cmtr`` files in the MCS CMOS-MEA layout.

String attributes are fixed-length byte strings (the vendor's reader calls
``.decode`` on them), numeric root attributes are 1-element arrays and unit
attributes scalars, as the vendor's reader expects.  Raw sensor data is written
in blocks so any duration fits in bounded memory, in the vendor's layout: one
``SensorData {k} 1`` per region, each frame stored ``[col - Left, row - Top]``
(axis 1 the column), with a ``SensorMeta`` row per region carrying ``Region.Left``,
``Region.Top``, ``Region.Right``, ``Region.Bottom`` (1-based), ``ADZero``,
``Exponent``, ``Tick``, ``Unit`` and the per-sensor ``Conversion Factors`` text
(sensor-id order, trailing space).  The ground truth stays in chip (row, col).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import h5py
import numpy as np

from hdmea.io.mcs import GRID_SIZE, PROGRAM_RAW, PROGRAM_SORTER, TYPE_IDS
from hdmea.synthetic.config import SyntheticConfig
from hdmea.synthetic.model import DisplayTimeline, PlantedUnit

__all__ = ["write_cmcr", "write_cmtr", "sensor_factors", "noise_bank", "CHANNEL_META_DTYPE", "SENSOR_META_DTYPE", "UNITS_DTYPE",
           "peaks_dtype"]

CHANNEL_META_DTYPE = np.dtype([
    ("ChannelID", "<i4"), ("GroupID", "<i4"), ("Label", "S32"), ("Unit", "S8"), ("Exponent", "<i4"),
    ("ADZero", "<i4"), ("Tick", "<i8"), ("ConversionFactor", "<i8"), ("ADCBits", "<i4"),
])
SENSOR_META_DTYPE = np.dtype([
    ("GroupID", "<i4"), ("RegionID", "<i4"), ("Label", "S32"), ("Unit", "S8"), ("Exponent", "<i4"),
    ("ADZero", "<i4"), ("Tick", "<i8"), ("ADCBits", "<i4"), ("Region.Left", "<i4"), ("Region.Top", "<i4"),
    ("Region.Right", "<i4"), ("Region.Bottom", "<i4"), ("Conversion Factors", h5py.string_dtype("ascii")),
])
UNITS_DTYPE = np.dtype([
    ("UnitID", "<i4"), ("SensorID", "<i4"), ("Row", "<i4"), ("Column", "<i4"), ("RoiID", "<i4"),
    ("SNR", "<f8"), ("Separability", "<f8"), ("IsoINN", "<f8"), ("IsoIBg", "<f8"), ("RSTD", "<f8"),
    ("PeakCount", "<f8"),
])


def peaks_dtype(cutout_samples: int) -> np.dtype:
    fields = [("Timestamp", "<i8"), ("PeakAmplitude", "<f4"), ("IncludePeak", "u1")]
    fields += [(f"Cutout {i}", "<f4") for i in range(cutout_samples)]
    return np.dtype(fields)


def _text(value: str) -> np.bytes_:
    return np.bytes_(value.encode("utf-8"))


def _stamp(obj, mcs_type: str, instance: str, seed_text: str) -> None:
    obj.attrs["ID.Type"] = _text(mcs_type)
    obj.attrs["ID.TypeID"] = _text(TYPE_IDS[mcs_type])
    obj.attrs["ID.Instance"] = _text(instance)
    obj.attrs["ID.InstanceID"] = _text(str(uuid.uuid5(uuid.NAMESPACE_URL, seed_text + "/" + instance)))


def _root(f: h5py.File, name: str, program: str, duration_us: int, seed_text: str) -> None:
    _stamp(f, "CMOS-MEA-File", name, seed_text)
    f.attrs["FileVersion"] = np.array([1], dtype=np.int32)
    f.attrs["DateTime"] = _text("2026-01-01 12:00:00")
    f.attrs["ProgramName"] = _text(program)
    f.attrs["ProgramVersion"] = _text("2.6.0.0")
    f.attrs["LB.RecordingDuration"] = np.array([duration_us], dtype=np.int64)


def _footprint_window(u: PlantedUnit, threshold: float = 0.01) -> tuple[slice, slice, np.ndarray]:
    """The part of a footprint above ``threshold`` microvolts (the rest rounds to zero counts)."""
    rows, cols = np.nonzero(np.abs(u.footprint) >= threshold)
    if rows.size == 0:
        return slice(0, 0), slice(0, 0), np.zeros((0, 0), np.float32)
    rs, cs = slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)
    return rs, cs, u.footprint[rs, cs].astype(np.float32)


def noise_bank(rng: np.random.Generator, frames: int, sigma_uv: float) -> np.ndarray:
    """``frames`` frames of sensor noise, int16 (frames, 65, 65): normal of ``sigma_uv``, rounded to microvolts.

    Each value is a uniform 16-bit integer looked up in a table of the rounded
    normal's quantiles (levels at probabilities ``(i + 0.5) / 65536``): the
    same distribution as ``rint(sigma * standard_normal())`` up to tails
    beyond about 4.3 sigma, at a fifth of the cost of drawing normals.
    """
    from statistics import NormalDist

    shape = (frames, GRID_SIZE, GRID_SIZE)
    if sigma_uv <= 0 or frames == 0:
        return np.zeros(shape, np.int16)
    span = int(np.ceil(6.0 * sigma_uv))
    levels = np.arange(-span, span + 1)
    normal = NormalDist(0.0, float(sigma_uv))
    upper = np.array([normal.cdf(k + 0.5) for k in levels])  # P(rounded value <= level)
    codes = (np.arange(1 << 16) + 0.5) / (1 << 16)
    table = levels[np.minimum(np.searchsorted(upper, codes), levels.size - 1)].astype(np.int16)
    return np.take(table, rng.integers(0, 1 << 16, size=shape, dtype=np.uint16))


def _add_spikes(block: np.ndarray, start: int, stop: int, units: list[PlantedUnit], spikes: list[np.ndarray],
                windows: list, cfg: SyntheticConfig, limits: tuple[int, int] | None) -> None:
    """Add every unit's footprint to ``block``, frames [start, stop) stored ``[frame, col, row]``, in place.

    Only the frames a unit's waveform reaches and its footprint's window are
    touched, in int32, clipped to ``limits`` (the stored type's range) when given.
    """
    n = stop - start
    pre, length = cfg.cutout_pre_samples, cfg.cutout_samples
    waveform_cache: dict[int, np.ndarray] = {}
    for u, s, (rs, cs, local) in zip(units, spikes, windows):
        lo, hi = np.searchsorted(s, [start - length, stop + length])
        if hi <= lo or local.size == 0:
            continue
        train = np.zeros(n + 2 * length, dtype=np.float32)
        np.add.at(train, s[lo:hi] - start + length, 1.0)
        w = waveform_cache.setdefault(id(u.waveform), u.waveform.astype(np.float32))
        trace = np.convolve(train, w)[pre + length:pre + length + n]
        busy = np.flatnonzero(trace)
        if busy.size:
            window = block[busy, cs, rs].astype(np.int32)
            window += np.rint(trace[busy, None, None] * local.T[None]).astype(np.int32)
            if limits is not None:
                np.clip(window, *limits, out=window)
            block[busy, cs, rs] = window


def _bank_frames(start: int, n: int, bank_frames: int) -> slice | np.ndarray:
    """Which bank frames a block of ``n`` frames starting at bank frame ``start`` takes (wrapping around)."""
    if start + n <= bank_frames:
        return slice(start, start + n)
    return (start + np.arange(n)) % bank_frames


def sensor_factors(cfg: SyntheticConfig) -> np.ndarray:
    """Per-sensor integer conversion factors of a configuration, chip (row, col) float64 (65, 65).

    Drawn from their own generator (seeded by ``cfg.seed``) so they do not shift the
    rest of the recording's random draws.
    """
    if not cfg.sensor_gain_spread:
        return np.ones((GRID_SIZE, GRID_SIZE))
    rng = np.random.default_rng([cfg.seed, 65])
    return np.rint(1000.0 * (1.0 + cfg.sensor_gain_spread * rng.uniform(-1, 1, (GRID_SIZE, GRID_SIZE))))


def write_cmcr(path: Path, tl: DisplayTimeline, units: list[PlantedUnit], spikes: list[np.ndarray],
               cfg: SyntheticConfig, rng: np.random.Generator) -> int:
    """Write the raw file; returns the number of raw frames written."""
    fs = cfg.sampling_rate
    tick_us = int(round(1e6 / fs))
    duration_us = int(round(tl.n_samples * 1e6 / fs))
    seed_text = f"{path.name}-{cfg.seed}"
    with h5py.File(path, "w") as f:
        _root(f, path.name, PROGRAM_RAW, duration_us, seed_text)
        acq = f.create_group("Acquisition")
        _stamp(acq, "Acquisition", "Acquisition", seed_text)

        # Analog data: row 0 photodiode, row 1 frame sync.
        analog = acq.create_group("Analog Data")
        _stamp(analog, "ChannelStream", "Analog Data", seed_text)
        analog.attrs["SubType"] = _text("Analog")
        meta = np.zeros(2, dtype=CHANNEL_META_DTYPE)
        meta["ChannelID"] = [1, 2]
        meta["GroupID"] = 1
        meta["Label"] = [b"Light", b"FrameSync"]
        meta["Unit"] = b"V"
        meta["Exponent"] = -6
        meta["ADZero"] = 0
        meta["Tick"] = tick_us
        meta["ConversionFactor"] = 1
        meta["ADCBits"] = 24
        ds = analog.create_dataset("ChannelMeta", data=meta)
        _stamp(ds, "ChannelMeta", "ChannelMeta", seed_text)
        light = analog.create_dataset("ChannelData 1", shape=(2, tl.n_samples), dtype="<i4",
                                      chunks=(2, min(tl.n_samples, 1 << 16)))
        _stamp(light, "ChannelData", "ChannelData 1", seed_text)
        edges = np.append(tl.frame_samples, tl.frame_samples[-1] + int(round(cfg.frame_period_samples)))
        pulse_width = max(2, int(cfg.frame_period_samples * cfg.sync_pulse_fraction))
        block = 1 << 20
        for b0 in range(0, tl.n_samples, block):
            b1 = min(tl.n_samples, b0 + block)
            t = np.arange(b0, b1)
            frame = np.searchsorted(edges, t, side="right") - 1
            inside = (frame >= 0) & (frame < tl.luminance.size)
            lum = np.where(inside, tl.luminance[np.clip(frame, 0, tl.luminance.size - 1)], 0.0)
            photodiode = np.rint(lum * 20000 + rng.normal(0, 40, t.size)).astype(np.int32)
            p = np.searchsorted(tl.sync_pulse_samples, t, side="right") - 1
            high = (p >= 0) & (t - tl.sync_pulse_samples[np.clip(p, 0, None)] < pulse_width)
            sync = np.rint(high * 30000.0 + rng.normal(0, 20, t.size)).astype(np.int32)
            light[0, b0:b1] = photodiode
            light[1, b0:b1] = sync

        # Sensor data: one dataset per region, frames stored [col - Left, row - Top], with an ADC zero.
        sensor = acq.create_group("Sensor Data")
        _stamp(sensor, "SensorStream", "Sensor Data", seed_text)
        sensor.attrs["SubType"] = _text("Sensor")
        raw_frames = int(round(cfg.raw_seconds * fs))
        dtype = np.dtype(cfg.raw_dtype)
        ad_zero = 32768 if dtype == np.uint16 else 0
        regions = cfg.sensor_regions or ((1, 1, GRID_SIZE, GRID_SIZE),)
        factors = sensor_factors(cfg)  # chip (row, col)
        exponent = -9 if cfg.sensor_gain_spread else -6
        gains_uv = factors * 10.0 ** (exponent + 6)
        smeta = np.zeros(len(regions), dtype=SENSOR_META_DTYPE)
        for k, (top, left, bottom, right) in enumerate(regions):
            region_factors = factors[top - 1:bottom, left - 1:right].T.ravel()  # sensor-id order
            smeta[k] = (1, k + 1, f"ROI {k + 1}".encode(), b"V", exponent, ad_zero, tick_us, 16, left, top,
                        right, bottom, " ".join(str(int(v)) for v in region_factors) + " ")
        ds = sensor.create_dataset("SensorMeta", data=smeta)
        _stamp(ds, "SensorMeta", "SensorMeta", seed_text)
        chunk_frames = max(1, min(raw_frames, 256))
        datasets = []
        for k, (top, left, bottom, right) in enumerate(regions):
            shape = (raw_frames, right - left + 1, bottom - top + 1)
            name = f"SensorData {k + 1} 1"
            raw = sensor.create_dataset(name, shape=shape, dtype=dtype,
                                        chunks=(chunk_frames, *shape[1:]) if raw_frames else None)
            _stamp(raw, "SensorData", name, seed_text)
            datasets.append(raw)
        if raw_frames:
            # Noise frames come from a bank (stored [frame, col, row] like the datasets), each block of
            # frames from a random place in it, so a recording longer than the bank does not repeat it
            # with one period; the planted units' footprints are added where their spikes are.
            bank_frames = min(cfg.noise_bank_frames, raw_frames)
            bank = noise_bank(rng, bank_frames, cfg.noise_uv)
            windows = [_footprint_window(u) for u in units]
            info = np.iinfo(dtype)
            if cfg.sensor_gain_spread:
                inverse = (1.0 / gains_uv).T.astype(np.float32)  # [col, row]
                stored_bank = None
            else:
                # One count per microvolt: the bank in the stored type with the ADC zero added once
                # (exact: int16 noise plus 32768 always fits uint16, the cast and sum wrap modulo 2**16).
                stored_bank = bank.astype(dtype) + dtype.type(ad_zero) if ad_zero else bank.astype(dtype)
            for b0 in range(0, raw_frames, cfg.raw_block_frames):
                b1 = min(raw_frames, b0 + cfg.raw_block_frames)
                frames = _bank_frames(int(rng.integers(0, bank_frames)), b1 - b0, bank_frames)
                if stored_bank is not None:
                    block = stored_bank[frames].copy() if isinstance(frames, slice) else stored_bank[frames]
                    _add_spikes(block, b0, b1, units, spikes, windows, cfg, (int(info.min), int(info.max)))
                else:
                    microvolts = bank[frames].astype(np.int32)
                    _add_spikes(microvolts, b0, b1, units, spikes, windows, cfg, None)
                    counts = np.rint(microvolts.astype(np.float32) * inverse).astype(np.int32)
                    counts += ad_zero
                    np.clip(counts, info.min, info.max, out=counts)
                    block = counts.astype(dtype)
                for raw, (top, left, bottom, right) in zip(datasets, regions):
                    raw[b0:b1] = block[:, left - 1:right, top - 1:bottom]
    return raw_frames


def write_cmtr(path: Path, cmcr_name: str, tl: DisplayTimeline, units: list[PlantedUnit],
               spikes: list[np.ndarray], excluded: list[np.ndarray], cfg: SyntheticConfig,
               rng: np.random.Generator, raw_frames: int) -> None:
    fs = cfg.sampling_rate
    duration_us = int(round(tl.n_samples * 1e6 / fs))
    seed_text = f"{path.name}-{cfg.seed}"
    pdtype = peaks_dtype(cfg.cutout_samples)
    cutout_names = [f"Cutout {i}" for i in range(cfg.cutout_samples)]
    with h5py.File(path, "w") as f:
        _root(f, path.name, PROGRAM_SORTER, duration_us, seed_text)
        # The vendor software links the raw file's acquisition into the sorter's file.
        f["Acquisition"] = h5py.ExternalLink(cmcr_name, "/Acquisition")
        sorter = f.create_group("Spike Sorter")
        _stamp(sorter, "SpikeSorter", "Spike Sorter", seed_text)
        table = np.zeros(len(units), dtype=UNITS_DTYPE)
        for i, (u, s) in enumerate(zip(units, spikes)):
            table[i] = (u.mcs_unit_id, u.sensor_id, u.row, u.col, 1, u.snr, u.separability,
                        0.5 + 0.01 * i, 0.4 + 0.01 * i, 1.0 / (1 + u.snr), float(s.size))
        ds = sorter.create_dataset("Units", data=table)
        _stamp(ds, "SpikeSorterUnits", "Units", seed_text)
        for i, (u, s, x) in enumerate(zip(units, spikes, excluded)):
            g = sorter.create_group(f"Unit {u.mcs_unit_id}")
            _stamp(g, "SpikeSorterUnit", f"Unit {u.mcs_unit_id}", seed_text)
            g.attrs["UnitID"] = np.int32(u.mcs_unit_id)
            g.attrs["SensorID"] = np.int32(u.sensor_id)
            g.attrs["Row"] = np.int32(u.row)
            g.attrs["Column"] = np.int32(u.col)
            times = np.concatenate([s, x])
            include = np.concatenate([np.ones(s.size, np.uint8), np.zeros(x.size, np.uint8)])
            order = np.argsort(times, kind="stable")
            times, include = times[order], include[order]
            peaks = np.zeros(times.size, dtype=pdtype)
            peaks["Timestamp"] = np.rint(times * 1e6 / fs).astype(np.int64)
            peaks["IncludePeak"] = include
            amp = float(u.footprint[u.row - 1, u.col - 1])
            noise = rng.standard_normal((times.size, cfg.cutout_samples), dtype=np.float32) * np.float32(cfg.noise_uv)
            scale = np.where(include == 1, amp, 0.3 * amp).astype(np.float32)
            cut = scale[:, None] * u.waveform.astype(np.float32)[None, :] + noise
            peaks["PeakAmplitude"] = cut[:, cfg.cutout_pre_samples]
            for j, name in enumerate(cutout_names):
                peaks[name] = cut[:, j]
            ds = g.create_dataset("Peaks", data=peaks, chunks=(max(1, min(peaks.size, 4096)),) if peaks.size else None,
                                  maxshape=(None,))
            _stamp(ds, "Peaks", "Peaks", seed_text)
            r0, c0 = u.row - 1, u.col - 1
            roi = u.footprint[r0 - 2:r0 + 3, c0 - 2:c0 + 3]
            ds = g.create_dataset("RoiSTAs", data=(u.waveform[:, None, None] * roi[None]).astype(np.float32))
            _stamp(ds, "RoiSTAs", "RoiSTAs", seed_text)
            if cfg.write_source:
                # The unit's source signal over the raw window; its first sample is no sensor id.
                source = rng.standard_normal(raw_frames, dtype=np.float32) * np.float32(cfg.noise_uv)
                lo = np.searchsorted(s, raw_frames - cfg.cutout_samples)
                for t in s[:lo]:
                    t0 = t - cfg.cutout_pre_samples
                    source[t0:t0 + cfg.cutout_samples] += amp * u.waveform.astype(np.float32)
                ds = g.create_dataset("Source", data=source)
                _stamp(ds, "Source", "Source", seed_text)
            ds = g.create_dataset("Unit_Info", data=table[i:i + 1])
            _stamp(ds, "UnitInfo", "Unit_Info", seed_text)
            ds = g.create_dataset("Unmixing", data=(roi / max(np.abs(roi).max(), 1e-9)).astype(np.float32).reshape(-1))
            _stamp(ds, "Unmixing", "Unmixing", seed_text)


def relative_link_target(cmtr_path: Path, cmcr_path: Path) -> str:
    """Name the .cmcr relative to the .cmtr's directory (HDF5 looks there first)."""
    return os.path.relpath(cmcr_path, cmtr_path.parent)
