"""The original pipeline's reader functions for ``.cmcr``/``.cmtr`` files, over our readers.

Three of them are steps that copy what the readers find into a recording (or a
session): ``add_sys_meta_info`` (the files' metadata to ``/metadata/cmcr_meta`` and
``/metadata/cmtr_meta``) and ``add_cmtr_unit_info`` / ``update_hdf5_with_cmtr_unit_info``
(each unit's row of the ``.cmtr`` unit table to ``/units/<unit>/unit_meta``).

``hdmea.io.cmcr`` and ``hdmea.io.cmtr`` export these under the original's names
(``load_cmcr_data``, ``load_cmtr_data``, ``load_sensor_data``, ...); every read
goes through :class:`~hdmea.io.cmcr.CmcrFile` and :class:`~hdmea.io.cmtr.CmtrFile`,
so the files are checked as everywhere else.  Where the original was wrong the
results are corrected: unit rows and columns come from the unit table (the
original divided the sensor id by 220), and raw samples have the ADC's zero
removed before they are narrowed to int16 (the original cast uint16 samples to
int16, which wraps).  Spike times here are in microseconds, as the original's
functions returned them.
"""

from __future__ import annotations

import logging

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hdmea.errors import RecordingNotFoundError

__all__ = [
    "load_cmcr_data",
    "load_sensor_data",
    "load_sensor_data_chunked",
    "get_sensor_data_info",
    "find_cmcr_file_from_cmtr",
    "load_cmtr_data",
    "get_cmtr_recording_id",
    "validate_cmcr_cmtr_match",
    "add_sys_meta_info",
    "add_cmtr_unit_info",
    "update_hdf5_with_cmtr_unit_info",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

_STEM_SUFFIXES = ("_sorted", "_spikes", "_raw")


def _existing(path, label: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise RecordingNotFoundError(f"{label} file not found", path=path)
    return path


def _block_mean(data: np.ndarray, factor: int) -> np.ndarray:
    """Means of consecutive blocks of ``factor`` samples (an incomplete last block is dropped), float32."""
    if factor <= 1:
        return np.asarray(data, dtype=np.float32)
    n = (len(data) // factor) * factor
    return np.asarray(data[:n], dtype=np.float64).reshape(-1, factor).mean(axis=1).astype(np.float32)


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
            light[f"10hz_{channel}"] = _block_mean(raw, int(fs / 10))
            light[f"1khz_{channel}"] = _block_mean(raw, int(fs / 1000))
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
            units[f"unit_{uid:03d}"] = {
                "spike_times": np.rint(np.asarray(unit.spike_times, dtype=np.float64) * 1e6 / rate).astype(np.uint64),
                "waveform": np.asarray(unit.waveform, dtype=np.float32) if unit.waveform is not None
                else np.zeros(0, np.float32),
                "row": int(unit.row), "col": int(unit.col), "global_id": int(unit.sensor_id),
                "unit_num": uid, "original_name": f"Unit_{uid}",
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




def _sources(target, cmcr_path, cmtr_path):
    """The source files named in the call, else those the recording was loaded from."""
    stored = []
    if target.has("") and "source_files" in target.attrs(""):
        stored = [str(p) for p in target.attrs("")["source_files"]]
    if cmcr_path is None:
        cmcr_path = next((p for p in stored if p.lower().endswith(".cmcr")), None)
    if cmtr_path is None:
        cmtr_path = next((p for p in stored if p.lower().endswith(".cmtr")), None)
    return cmcr_path, cmtr_path


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return np.asarray(value) if all(isinstance(v, (int, float, np.number)) for v in value) else \
            [str(v) for v in value]
    return value


def add_sys_meta_info(session=None, hdf5_path=None, cmcr_path=None, cmtr_path=None, *, force: bool = False,
                      _cmcr_meta: dict | None = None, _cmtr_meta: dict | None = None):
    """Copy the source files' metadata into ``/metadata/cmcr_meta`` and ``/metadata/cmtr_meta``.

    One of ``session`` and ``hdf5_path``; the files default to those the recording
    was loaded from.  A group stored already is kept unless ``force``.  Returns
    ``{"hdf5_path", "cmcr_fields", "cmtr_fields"}`` (fields written), or the session.
    """
    from hdmea.errors import ConfigError
    from hdmea.pipeline.target import open_target

    if (session is None) == (hdf5_path is None):
        raise ConfigError("add_sys_meta_info needs one of session and hdf5_path")
    if hdf5_path is not None:
        _existing(hdf5_path, "HDF5")
    counts = {"cmcr": 0, "cmtr": 0}
    with open_target(hdf5_path, session, step="add_sys_meta_info") as target:
        cmcr_path, cmtr_path = _sources(target, cmcr_path, cmtr_path)
        metas = {"cmcr": _cmcr_meta, "cmtr": _cmtr_meta}
        if metas["cmcr"] is None and cmcr_path is not None and Path(cmcr_path).exists():
            metas["cmcr"] = load_cmcr_data(cmcr_path)["metadata"]
        if metas["cmtr"] is None and cmtr_path is not None and Path(cmtr_path).exists():
            metas["cmtr"] = load_cmtr_data(cmtr_path)["metadata"]
        for kind, meta in metas.items():
            path = f"metadata/{kind}_meta"
            if not meta or (target.has(path) and not force):
                continue
            target.put(path, _plain(meta))
            counts[kind] = len(meta)
        target.mark_step_complete("add_sys_meta_info")
    if session is not None:
        return session
    return {"hdf5_path": Path(hdf5_path), "cmcr_fields": counts["cmcr"], "cmtr_fields": counts["cmtr"]}


def add_cmtr_unit_info(session=None, hdf5_path=None, cmtr_path=None, *, force: bool = False):
    """Copy each unit's row of the ``.cmtr`` unit table (SNR, separability, ...) to ``/units/<unit>/unit_meta``.

    Units are matched by their MCS UnitID (``global_id``); the ``.cmtr`` defaults to
    the one the recording was loaded from.  A unit's stored ``unit_meta`` is kept
    unless ``force``.  Returns ``{"hdf5_path", "units_updated"}``, or the session.
    """
    from hdmea.errors import ConfigError
    from hdmea.io.cmtr import CmtrFile
    from hdmea.pipeline.target import open_target

    if (session is None) == (hdf5_path is None):
        raise ConfigError("add_cmtr_unit_info needs one of session and hdf5_path")
    if hdf5_path is not None:
        _existing(hdf5_path, "HDF5")
    updated = 0
    with open_target(hdf5_path, session, step="add_cmtr_unit_info") as target:
        _, cmtr_path = _sources(target, None, cmtr_path)
        if cmtr_path is None:
            raise ConfigError("no .cmtr to read unit information from", hint="pass cmtr_path=")
        with CmtrFile(_existing(cmtr_path, "CMTR")) as cmtr:
            table = cmtr.units_table()
        rows = {} if table is None else {int(r["UnitID"]): r for r in table}
        for unit in target.unit_ids():
            attrs = target.attrs(f"units/{unit}")
            gid = attrs.get("global_id")
            if gid is None and target.has(f"units/{unit}/global_id"):
                gid = np.asarray(target.get(f"units/{unit}/global_id")).reshape(-1)[0]
            row = rows.get(int(gid)) if gid is not None else None
            if row is None or (target.has(f"units/{unit}/unit_meta") and not force):
                continue
            target.put(f"units/{unit}/unit_meta", {name.lower(): _plain(row[name]) for name in row.dtype.names})
            updated += 1
        target.mark_step_complete("add_cmtr_unit_info")
    if session is not None:
        return session
    return {"hdf5_path": Path(hdf5_path), "units_updated": updated}


def update_hdf5_with_cmtr_unit_info(hdf5_path, cmtr_path=None, *, force: bool = False):
    """:func:`add_cmtr_unit_info` on a recording file (the original's second name for it)."""
    return add_cmtr_unit_info(hdf5_path=hdf5_path, cmtr_path=cmtr_path, force=force)
