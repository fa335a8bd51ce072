"""The original pipeline's reader functions for ``.cmcr``/``.cmtr`` files, over our readers.

``hdmea.io.cmcr`` and ``hdmea.io.cmtr`` export these under the original's names
(``load_cmcr_data``, ``load_cmtr_data``, ``load_sensor_data``, ...); every read
goes through :class:`~hdmea.io.cmcr.CmcrFile` and :class:`~hdmea.io.cmtr.CmtrFile`,
so the files are checked as everywhere else.  Where the original was wrong the
results are corrected: unit rows and columns come from the unit table (the
original divided the sensor id by 220), and raw samples have the ADC's zero
removed before they are narrowed to int16 (the original cast uint16 samples to
int16, which wraps).  Spike times here are in microseconds, as the original's
functions returned them.  The original's steps that copy what these find into a
recording (``add_sys_meta_info``, ``add_cmtr_unit_info``) are steps:
:mod:`hdmea._compat.source_info`.
"""

from __future__ import annotations

import logging

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hdmea.io.lab_series import block_mean

from hdmea.errors import RecordingNotFoundError
from hdmea.io.unit_names import original_name, unit_name

__all__ = [
    "load_cmcr_data",
    "load_sensor_data",
    "load_sensor_data_chunked",
    "get_sensor_data_info",
    "find_cmcr_file_from_cmtr",
    "load_cmtr_data",
    "get_cmtr_recording_id",
    "validate_cmcr_cmtr_match",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

_STEM_SUFFIXES = ("_sorted", "_spikes", "_raw")


def _existing(path, label: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise RecordingNotFoundError(f"{label} file not found", path=path)
    return path


def load_cmcr_data(cmcr_path) -> dict[str, Any]:
    """``{"light_reference", "metadata", "acquisition_rate", "source_path"}`` of a ``.cmcr``.

    ``light_reference`` holds both channels at the acquisition rate (``raw_ch1``,
    ``raw_ch2``) and as means over 100 ms and 1 ms blocks (``10hz_ch*``,
    ``1khz_ch*``); ``metadata`` is the file's metadata with ``recording_duration_s``.
    """
    from hdmea.io.cmcr import CmcrFile

    path = _existing(cmcr_path, "CMCR")
    with CmcrFile(path) as f:
        fs = float(f.sampling_rate)
        metadata = dict(f.metadata())
        light = dict(f.light_reference()) if f.has_analog() else {}
        duration_us = f.recording_duration_us()
    if duration_us:
        metadata["recording_duration_s"] = float(duration_us) / 1e6
    for channel in ("ch1", "ch2"):
        raw = light.get(f"raw_{channel}")
        if raw is not None:
            light[f"10hz_{channel}"] = block_mean(raw, int(fs / 10))
            light[f"1khz_{channel}"] = block_mean(raw, int(fs / 1000))
    return {"light_reference": light, "metadata": metadata, "acquisition_rate": fs, "source_path": str(path)}


def _sensor_info(f, cmcr_path):
    from hdmea.errors import RecordingFormatError

    infos = f.sensor_datasets()
    if not infos:
        raise RecordingFormatError("no raw sensor data", path=cmcr_path, obj="Acquisition/Sensor Data",
                                   expected="a SensorData dataset", found="none")
    return infos[0]


def get_sensor_data_info(cmcr_path) -> dict[str, Any]:
    """``{"shape", "dtype", "n_samples", "n_electrodes", "duration_s"}`` of the first raw sensor dataset.

    ``shape`` is ``(n_samples, n_rows, n_cols)`` in chip orientation; the duration
    uses the file's sampling rate.
    """
    from hdmea.io.cmcr import CmcrFile

    path = _existing(cmcr_path, "CMCR")
    with CmcrFile(path) as f:
        info = _sensor_info(f, path)
        fs = float(f.sampling_rate)
    n = int(info.n_frames)
    return {"shape": (n, int(info.n_rows), int(info.n_cols)), "dtype": np.dtype(info.dtype), "n_samples": n,
            "n_electrodes": int(info.n_rows) * int(info.n_cols), "duration_s": n / fs}


def _as_int16(block: np.ndarray, ad_zero: float, path) -> np.ndarray:
    centred = np.asarray(block, dtype=np.int32) - int(round(ad_zero))
    if centred.size and (centred.min() < -32768 or centred.max() > 32767):
        logger.warning("%s: raw samples minus the ADC zero do not fit int16; returned as int32", path)
        return centred
    return centred.astype(np.int16)


def load_sensor_data(cmcr_path, duration_samples: int | None = None, duration_s: float | None = None) -> np.ndarray:
    """The first ``duration_samples`` (or ``duration_s`` seconds, or all) raw frames, ``(time, rows, cols)`` int16.

    Values are ADC counts with the ADC's zero removed (``raw - ADZero``).
    """
    from hdmea.io.cmcr import CmcrFile

    path = _existing(cmcr_path, "CMCR")
    with CmcrFile(path) as f:
        info = _sensor_info(f, path)
        n = info.n_frames
        if duration_samples is not None:
            n = min(n, int(duration_samples))
        elif duration_s is not None:
            n = min(n, int(round(float(duration_s) * f.sampling_rate)))
        raw = f.read_sensor_frames(0, n, info, scaled=False)
    return _as_int16(raw, info.ad_zero, path)


def load_sensor_data_chunked(cmcr_path, chunk_duration_s: float = 60.0, sampling_rate: float = 20000.0,
                             max_samples: int | None = None) -> Iterator[tuple[np.ndarray, int, int, int]]:
    """Yield ``(chunk, start, end, total_samples)`` over the raw frames, ``chunk_duration_s`` at a time.

    ``chunk`` is ``(end - start, rows, cols)`` int16 as :func:`load_sensor_data`;
    ``total_samples`` is what the iteration covers (at most ``max_samples``).
    """
    from hdmea.io.cmcr import CmcrFile

    path = _existing(cmcr_path, "CMCR")
    step = max(1, int(float(chunk_duration_s) * float(sampling_rate)))
    with CmcrFile(path) as f:
        info = _sensor_info(f, path)
        total = info.n_frames if not max_samples or max_samples <= 0 else min(info.n_frames, int(max_samples))
        for start, block in f.iter_sensor_blocks(info, block_frames=step, stop=total, scaled=False):
            yield _as_int16(block, info.ad_zero, path), start, start + block.shape[0], total


def find_cmcr_file_from_cmtr(cmtr_path) -> Path | None:
    """The ``.cmcr`` beside a ``.cmtr``: same stem, the stem without ``_sorted``/``_spikes`` or a trailing
    ``-``, else the first ``.cmcr`` of the folder whose stem shares the first 10 characters; None if none."""
    cmtr_path = Path(cmtr_path)
    folder, stem = cmtr_path.parent, cmtr_path.stem
    candidates = [stem, stem.rstrip("-")] + [stem[: -len(s)] for s in ("_sorted", "_spikes") if stem.endswith(s)]
    for name in candidates:
        path = folder / f"{name}.cmcr"
        if path.exists():
            return path
    for path in sorted(folder.glob("*.cmcr")):
        if path.stem.startswith(stem[:10]):
            logger.info("%s: taking %s as its .cmcr (same first 10 characters)", cmtr_path, path.name)
            return path
    return None


def _attr_value(value):
    """Text decoded; a one-element array as its element (the original's reading of file attributes)."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value.item() if isinstance(value, np.generic) else value


def load_cmtr_data(cmtr_path) -> dict[str, Any]:
    """``{"units", "metadata", "source_path", "acquisition_rate"}`` of a ``.cmtr``.

    ``units`` maps ``unit_<MCS UnitID, 3 digits>`` to ``spike_times`` (microseconds,
    uint64, IncludePeak spikes), ``waveform`` (mean cutout), ``row``, ``col``,
    ``global_id`` (sensor id), ``unit_num`` and ``original_name``.  Spike times are
    the spikes' sample times in microseconds (the vendor's timestamps, which fall
    on samples), at the rate of the ``.cmcr`` beside the file, else 20 kHz;
    ``acquisition_rate`` is given only when the ``.cmcr`` was found.
    """
    from hdmea.io.cmcr import CmcrFile
    from hdmea.io.cmtr import CmtrFile

    path = _existing(cmtr_path, "CMTR")
    cmcr = find_cmcr_file_from_cmtr(path)
    fs = None
    if cmcr is not None:
        with CmcrFile(cmcr) as f:
            fs = float(f.sampling_rate)
    rate = fs if fs is not None else 20000.0
    units = {}
    with CmtrFile(path) as f:
        metadata = {k: _attr_value(v) for k, v in f.h5.attrs.items()}
        for unit in f.read_units(rate):
            uid = int(unit.unit_id)
            units[unit_name(uid)] = {
                "spike_times": np.rint(np.asarray(unit.spike_times, dtype=np.float64) * 1e6 / rate).astype(np.uint64),
                "waveform": np.asarray(unit.waveform, dtype=np.float32) if unit.waveform is not None
                else np.zeros(0, np.float32),
                "row": int(unit.row), "col": int(unit.col), "global_id": int(unit.sensor_id),
                "unit_num": uid, "original_name": original_name(f"Unit {uid}"),
            }
    out = {"units": units, "metadata": metadata, "source_path": str(path)}
    if fs is not None:
        out["acquisition_rate"] = fs
    return out


def get_cmtr_recording_id(cmtr_path) -> str | None:
    """The ``.cmtr``'s ``recording_id`` (or ``RecordingID``) root attribute; None when absent or unreadable."""
    from hdmea.errors import HdmeaError
    from hdmea.io.cmtr import CmtrFile

    try:
        with CmtrFile(cmtr_path) as f:
            for key in ("recording_id", "RecordingID"):
                if key in f.h5.attrs:
                    value = f.h5.attrs[key]
                    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    except (OSError, HdmeaError):
        return None
    return None


def validate_cmcr_cmtr_match(cmcr_path, cmtr_path) -> None:
    """Log a warning when the two files' names (without ``_sorted``/``_spikes``/``_raw`` and trailing ``-``)
    differ; as the original, a difference is not an error."""
    if cmcr_path is None or cmtr_path is None:
        return
    names = []
    for p in (cmcr_path, cmtr_path):
        stem = Path(p).stem.lower()
        for suffix in _STEM_SUFFIXES:
            stem = stem.replace(suffix, "")
        names.append(stem.rstrip("-"))
    if names[0] != names[1]:
        logger.warning("CMCR and CMTR file names differ: %s vs %s", Path(cmcr_path).stem, Path(cmtr_path).stem)
