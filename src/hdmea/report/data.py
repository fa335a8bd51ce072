"""What the report shows, read from a recording file (no plotting here).

Each reader returns plain numpy arrays and dicts so figures can be drawn, and
tested, without a file open.  Only what exists is returned: a recording without
receptive fields yields no STA maps, and the report leaves that figure out.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import h5py
import numpy as np

__all__ = ["RecordingData", "UnitMaps", "MovieTrials", "read_recording_data", "sta_spatial_map",
           "eimage_map"]

DEFAULT_SAMPLING_RATE = 20000.0


@dataclasses.dataclass
class UnitMaps:
    """A 2-D map per unit plus where the unit sits (its centre on that map).

    ``peak_lags`` are in the table's convention: for an STA, ``peak_lag_frames``
    (display frames between the map's frame and the spike's frame, 1 = the frame
    before it); for an electrical image, samples from the spike to the map
    (negative: before the spike).  ``times_ms`` are the same lags in ms (NaN when
    the display's frame period is unknown).  ``n_spikes`` is how many spikes the
    map averages (0: the map is empty and the report says so).
    """

    unit_ids: list[str]
    maps: list[np.ndarray]
    centres: list[tuple[float, float]]  # (row, col) in map coordinates
    peak_lags: list[int]
    name: str
    times_ms: list[float] = dataclasses.field(default_factory=list)
    n_spikes: list[int] = dataclasses.field(default_factory=list)
    polarity: list[int] = dataclasses.field(default_factory=list)  # +1 ON, -1 OFF, 0 none
    value_unit: str = ""
    frame_ms: float = float("nan")  # STA: the display's frame period


@dataclasses.dataclass
class MovieTrials:
    """Sectioned spikes of one movie: per unit, spike times (s) relative to each trial's start."""

    movie: str
    trial_duration_s: float
    n_trials: int
    unit_ids: list[str]
    spikes: list[list[np.ndarray]]  # [unit][trial] -> seconds from trial start
    repeated_trials: bool  # the movie has a trial layout with more than one trial per occurrence


@dataclasses.dataclass
class RecordingData:
    path: Path
    dataset_id: str
    sampling_rate: float
    completed_steps: list[str]
    unit_ids: list[str]
    unit_positions: dict[str, tuple[int, int]]
    spike_counts: dict[str, int]
    sta: list[UnitMaps]
    eimage: UnitMaps | None
    movies: list[MovieTrials]
    feature_scalars: dict[str, dict[str, dict[str, object]]]  # feature -> unit -> name -> value
    frame_order: str = ""  # how the raw frames were read and why (hdmea.io.frame_order)
    warnings: list[str] = dataclasses.field(default_factory=list)  # the file's pipeline warnings


def sta_spatial_map(sta: np.ndarray, first_lag: int = 1) -> tuple[np.ndarray, int, int]:
    """The STA's spatial map at its peak, the peak's ``peak_lag_frames`` and its polarity.

    The same measure as the ``receptive_field`` extractor (one function,
    :func:`hdmea.features.extractors.receptive_field_measures`), so the figure's lag
    is the table's: ``sta`` is (n_lags, h, w), oldest frame first, and the lag is
    counted in display frames before the spike's frame.  An STA without any
    deviation (no spikes) gives a zero map, lag -1 and polarity 0.
    """
    from hdmea.features.extractors import receptive_field_measures

    measures = receptive_field_measures(sta, first_lag=int(first_lag))
    spatial = np.asarray(measures["spatial_map"], dtype=np.float64)
    return spatial, int(measures["peak_lag_frames"]), int(measures["polarity"])


def eimage_map(data: np.ndarray) -> tuple[np.ndarray, int]:
    """The electrode map at the time of the largest negative deflection (the spike's trough).

    ``data`` is (window, rows, cols) in chip orientation; electrodes that were not
    recorded (NaN) stay NaN in the map and are ignored when finding the trough.
    """
    data = np.asarray(data, dtype=np.float64)
    recorded = np.isfinite(data).any(axis=0)
    if not recorded.any():
        return np.full(data.shape[1:], np.nan), 0
    filled = np.where(recorded[None], data, 0.0)
    baseline = np.median(filled, axis=0, keepdims=True)
    centred = filled - baseline
    t = int(np.argmin(centred.reshape(data.shape[0], -1).min(axis=1)))
    return np.where(recorded, centred[t], np.nan), t


def smoothed_magnitude(values: np.ndarray) -> np.ndarray:
    """|map| averaged over 3 x 3 neighbourhoods: one noisy pixel does not make a centre (NaN counts as 0)."""
    from scipy.ndimage import uniform_filter

    return uniform_filter(np.nan_to_num(np.abs(np.asarray(values, dtype=np.float64))), size=3, mode="nearest")


def _map_centre(values: np.ndarray, radius: int = 2) -> tuple[float, float]:
    """Centre of mass of the smoothed magnitude (>= half its peak) within ``radius`` of the peak."""
    magnitude = smoothed_magnitude(values)
    peak = magnitude.max()
    if not np.isfinite(peak) or peak == 0:
        return (float("nan"), float("nan"))
    pr, pc = np.unravel_index(np.argmax(magnitude), magnitude.shape)
    rows, cols = np.indices(values.shape)
    near = (np.abs(rows - pr) <= radius) & (np.abs(cols - pc) <= radius)
    weights = np.where(near & (magnitude >= 0.5 * peak), magnitude, 0.0)
    total = weights.sum()
    return (float((rows * weights).sum() / total), float((cols * weights).sum() / total))


def _checked(ds: h5py.Dataset) -> np.ndarray:
    """All of dataset ``ds``, checked against its digest in the file's checksum manifest (a mismatch is a
    :class:`~h5stream.errors.ChecksumError` naming it): what a reader of the recording returns, never
    damaged values drawn as data.  (Chunks with Fletcher32 are checked by HDF5 as they are read.)"""
    from h5stream import checksums

    return checksums.check_dataset(ds, ds[()])


def _visible(group: h5py.Group) -> list[str]:
    from hdmea.io.hdf5_store import is_hidden

    return [name for name in group if not is_hidden(name)]


def _scalar(value, path, obj: str) -> object:
    """A Python scalar for an attribute value (1-element arrays unwrapped), else the value itself.

    Text must be valid UTF-8: anything else is damage, a typed error naming ``obj``
    (never replacement characters or lone surrogates).
    """
    from h5stream.tree.read import checked_text

    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, (bytes, str)):
        return checked_text(value, path, obj)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _attr(obj, key: str, path):
    """Attribute ``key`` of ``obj`` (None when absent), checked against the file's checksum manifest.

    An attribute that cannot be read, or differs from its digest, is a typed error naming it.
    """
    from h5stream import checksums
    from h5stream.errors import H5StreamError
    from hdmea.errors import RecordingFormatError

    where = f"{obj.name.rstrip('/')}/@{key}"
    try:
        raw = checksums.attr_value(obj, key)
        if raw is None:
            return None
    except H5StreamError:
        raise
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise RecordingFormatError("attribute cannot be read", path=path, obj=where, expected="a readable value",
                                   found=f"{type(exc).__name__}: {exc}", hint="the file is damaged") from exc
    return _scalar(raw, path, where)


#: A unit's ``row``/``col`` when the file does not store it (stored positions are the vendor's 1..65).
NO_POSITION = 0


def _position(unit, key: str, path) -> int:
    """A unit's ``row``/``col`` attribute (1..65); :data:`NO_POSITION` when the file has none.

    A value that cannot be read, is not an integer or lies off the chip is a typed
    error naming the attribute, never drawn as a position.
    """
    value = _attr(unit, key, path)
    if value is None:
        return NO_POSITION
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= 65:
        from hdmea.errors import RecordingFormatError

        raise RecordingFormatError(f"unit {key} is not an electrode {key}", path=path, obj=f"{unit.name}/@{key}",
                                   expected="an integer in 1..65", found=repr(value)[:80], hint="the file is damaged")
    return int(value)


def _sampling_rate(f: h5py.File, path) -> float:
    """``/metadata/sampling_rate`` (Hz); the default when the file has none, a typed error when it is not a rate."""
    if "metadata/sampling_rate" not in f:
        return DEFAULT_SAMPLING_RATE
    value = np.asarray(_checked(f["metadata/sampling_rate"])).ravel()
    if value.size != 1 or value.dtype.kind not in "iuf" or not np.isfinite(value[0]) or value[0] <= 0:
        from hdmea.errors import RecordingFormatError

        raise RecordingFormatError("the sampling rate is not a positive number", path=path,
                                   obj="/metadata/sampling_rate", expected="one positive number (Hz)",
                                   found=f"{value.size} value(s) of {value.dtype}: {value[:3].tolist()!r}",
                                   hint="the file is damaged")
    return float(value[0])


def _frame_ms(f: h5py.File, fs: float) -> float:
    """The display's frame period in ms (median interval of ``/stimulus/frame_time/default``), NaN if unknown."""
    if "stimulus/frame_time/default" not in f:
        return float("nan")
    times = np.asarray(_checked(f["stimulus/frame_time/default"]), dtype=np.float64).ravel()
    if times.size < 2:
        return float("nan")
    period = float(np.median(np.diff(times)))
    return period / fs * 1000.0 if period > 0 else float("nan")


def _attr_int(obj, key: str, default: int, path) -> int:
    """Integer attribute ``key`` of ``obj``; ``default`` when absent, a typed error when it is not an integer."""
    value = _attr(obj, key, path)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        from hdmea.errors import RecordingFormatError

        raise RecordingFormatError("attribute is not an integer", path=path, obj=f"{obj.name.rstrip('/')}/@{key}",
                                   expected="an integer", found=repr(value)[:80], hint="the file is damaged")
    return value


def _stimulus_trials(f: h5py.File, path) -> dict[str, int]:
    """Movie -> trials per occurrence, from the stored stimulus configuration."""
    if "stimulus/config" not in f:
        return {}
    text = _attr(f["stimulus/config"], "config_json", path)
    if text is None:
        return {}
    obj = "/stimulus/config/@config_json"
    try:
        data = json.loads(text)
        return {str(name): int(tc.get("repeat", 1)) for name, tc in (data.get("trial_configs") or {}).items()}
    except (TypeError, ValueError, AttributeError) as exc:
        from hdmea.errors import RecordingFormatError

        raise RecordingFormatError("the stored stimulus configuration cannot be read", path=path, obj=obj,
                                   expected="JSON with trial_configs of integer repeats",
                                   found=f"{type(exc).__name__}: {exc}"[:200], hint="the file is damaged") from exc


def _movie_trials(f: h5py.File, unit_ids: list[str], fs: float, repeats: dict[str, int]) -> list[MovieTrials]:
    movies: dict[str, MovieTrials] = {}
    for uid in unit_ids:
        unit = f["units"][uid]
        if "spike_times_sectioned" not in unit:
            continue
        for movie in _visible(unit["spike_times_sectioned"]):
            g = unit["spike_times_sectioned"][movie]
            values = np.asarray(_checked(g["spike_times"]), dtype=np.int64)
            offsets = np.asarray(_checked(g["trial_offsets"]), dtype=np.int64)
            bounds = np.asarray(_checked(g["trial_bounds"]), dtype=np.int64).reshape(-1, 2)
            entry = movies.get(movie)
            if entry is None:
                duration = float(np.median(bounds[:, 1] - bounds[:, 0]) / fs) if bounds.size else 0.0
                entry = movies[movie] = MovieTrials(movie, duration, int(bounds.shape[0]), [], [],
                                                    repeats.get(movie, 1) > 1)
            trials = [(values[offsets[i]:offsets[i + 1]] - bounds[i, 0]) / fs for i in range(bounds.shape[0])]
            entry.unit_ids.append(uid)
            entry.spikes.append(trials)
    return list(movies.values())


def read_recording_data(path: str | os.PathLike) -> RecordingData:
    """Read everything the report draws from the recording file ``path``."""
    from h5stream.files import guard_read
    from hdmea.io.hdf5_store import open_recording_hdf5
    from hdmea.report.tree import recording_overview

    path = Path(path)
    with open_recording_hdf5(path, "r") as f, guard_read(path, "/"):
        overview = recording_overview(f)
        fs = _sampling_rate(f, path)
        unit_ids = _visible(f["units"]) if "units" in f else []
        positions, counts = {}, {}
        sta_maps: dict[str, UnitMaps] = {}
        eimage = UnitMaps([], [], [], [], "eimage_sta")
        scalars: dict[str, dict[str, dict[str, object]]] = {}
        frame_ms = _frame_ms(f, fs)
        for uid in unit_ids:
            unit = f["units"][uid]
            positions[uid] = (_position(unit, "row", path), _position(unit, "col", path))
            counts[uid] = int(unit["spike_times"].shape[0]) if "spike_times" in unit else 0
            features = unit["features"] if "features" in unit else {}
            names = _visible(features) if features else []
            for name in names:
                group = features[name]
                if name.startswith("sta_") and "sta" in group:
                    spatial, lag, polarity = sta_spatial_map(_checked(group["sta"]), _attr_int(group, "first_lag", 1, path))
                    centre = _map_centre(spatial)
                    rf = f"rf_{name[4:]}"
                    if rf in names:  # draw the table's centre, lag and polarity where the table has them
                        stored = {k: _attr(features[rf], k, path) for k in features[rf].attrs}
                        if isinstance(stored.get("centre_row"), (int, float)):
                            centre = (float(stored["centre_row"]), float(stored["centre_col"]))
                        if isinstance(stored.get("peak_lag_frames"), int):
                            lag = int(stored["peak_lag_frames"])
                        if isinstance(stored.get("polarity"), int):
                            polarity = int(stored["polarity"])
                    maps = sta_maps.setdefault(name, UnitMaps([], [], [], [], name, frame_ms=frame_ms,
                                                              value_unit="stimulus values"))
                    maps.unit_ids.append(uid)
                    maps.maps.append(spatial)
                    maps.centres.append(centre)
                    maps.peak_lags.append(lag)
                    maps.times_ms.append(lag * frame_ms if lag >= 0 else float("nan"))
                    maps.n_spikes.append(_attr_int(group, "n_spikes_used", counts[uid], path))
                    maps.polarity.append(polarity)
                elif name == "eimage_sta" and "data" in group:
                    spatial, t = eimage_map(_checked(group["data"]))
                    window = _attr(group, "window", path)
                    window = np.asarray(0 if window is None else window).ravel()
                    offset = int(t + (window[0] if window.size else 0))
                    eimage.unit_ids.append(uid)
                    eimage.maps.append(spatial)
                    eimage.centres.append(_map_centre(np.minimum(spatial, 0.0)))
                    eimage.peak_lags.append(offset)
                    eimage.times_ms.append(offset / fs * 1000.0)
                    eimage.n_spikes.append(_attr_int(group, "n_spikes_used", counts[uid], path))
                    eimage.polarity.append(-1)
                    unit_text = _attr(group, "value_unit", path) or ""
                    eimage.value_unit = unit_text if isinstance(unit_text, str) else ""
                else:
                    values = {}
                    for key in group.attrs:
                        value = _attr(group, key, path)
                        if (key in ("version", "params_hash", "extracted_at", "name")
                                or key.startswith("h5stream") or isinstance(value, (str, np.ndarray))):
                            continue
                        values[key] = value
                    if values:
                        scalars.setdefault(name, {})[uid] = values
        movies = _movie_trials(f, unit_ids, fs, _stimulus_trials(f, path))
        dataset_id = str(overview["attrs"].get("dataset_id", path.stem))
    return RecordingData(
        path=path, dataset_id=dataset_id, sampling_rate=fs, completed_steps=overview["completed_steps"],
        unit_ids=unit_ids, unit_positions=positions, spike_counts=counts, sta=list(sta_maps.values()),
        eimage=eimage if eimage.unit_ids else None, movies=movies, feature_scalars=scalars,
        frame_order=overview["frame_order"], warnings=list(overview["warnings"]),
    )
