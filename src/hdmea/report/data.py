"""What the report shows, read from a recording file (no plotting here).

Each reader returns plain numpy arrays and dicts so figures can be drawn, and
tested, without a file open.  Only what exists is returned: a recording without
receptive fields yields no STA maps, and the report leaves that figure out.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from hdmea.io.recording import DEFAULT_SAMPLING_RATE, NO_POSITION, FeatureView, Recording, open_recording
from hdmea.io.layout_names import sta_dataset

__all__ = ["RecordingData", "UnitMaps", "MovieTrials", "read_recording_data", "sta_spatial_map",
           "eimage_map", "DEFAULT_SAMPLING_RATE", "NO_POSITION"]


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
    deviation, or all NaN (no spike averaged), gives a zero map, lag -1 and polarity 0.
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


def _movie_trials(recording: Recording, unit_ids: list[str]) -> list[MovieTrials]:
    """Sectioned spikes per movie of ``unit_ids``, in seconds from each trial's start."""
    repeats = recording.stimulus_repeats()
    movies: dict[str, MovieTrials] = {}
    for uid in unit_ids:
        unit = recording.unit(uid)
        for movie in unit.sectioned_movies():
            sectioned = unit.sectioned(movie)
            entry = movies.get(movie)
            if entry is None:
                entry = movies[movie] = MovieTrials(movie, sectioned.trial_duration_s, sectioned.n_trials, [], [],
                                                    repeats.get(movie, 1) > 1)
            entry.unit_ids.append(uid)
            entry.spikes.append(sectioned.trials_s())
    return list(movies.values())


def _sta_measures(features: dict[str, FeatureView], name: str) -> tuple[np.ndarray, tuple[float, float], int, int]:
    """The STA feature ``name``'s spatial map, centre, lag and polarity; the table's (``rf_<movie>``) centre, lag
    and polarity where it has them, so the figure draws what the table says."""
    group = features[name]
    spatial, lag, polarity = sta_spatial_map(group.array(sta_dataset(group)), group.attr_int("first_lag", 1))
    centre = _map_centre(spatial)
    rf = features.get(f"rf_{name[4:]}")
    if rf is not None:
        stored = rf.attrs()
        if isinstance(stored.get("centre_row"), (int, float)):
            centre = (float(stored["centre_row"]), float(stored["centre_col"]))
        if isinstance(stored.get("peak_lag_frames"), int):
            lag = int(stored["peak_lag_frames"])
        if isinstance(stored.get("polarity"), int):
            polarity = int(stored["polarity"])
    return spatial, centre, lag, polarity


def read_recording_data(path: str | os.PathLike) -> RecordingData:
    """Read everything the report draws from the recording file ``path`` (through :mod:`hdmea.io.recording`:
    every value checked against the file's checksum manifest)."""
    from hdmea.report.tree import recording_overview

    with open_recording(path) as recording:
        overview = recording_overview(recording.file)
        fs = recording.sampling_rate
        unit_ids = recording.unit_ids
        positions, counts = {}, {}
        sta_maps: dict[str, UnitMaps] = {}
        eimage = UnitMaps([], [], [], [], "eimage_sta")
        scalars: dict[str, dict[str, dict[str, object]]] = {}
        frame_ms = recording.frame_period_ms
        for uid in unit_ids:
            unit = recording.unit(uid)
            positions[uid] = unit.position()
            counts[uid] = unit.spike_count
            features = {name: unit.feature(name) for name in unit.feature_names()}
            for name, group in features.items():
                if name.startswith("sta_") and sta_dataset(group) is not None:
                    spatial, centre, lag, polarity = _sta_measures(features, name)
                    maps = sta_maps.setdefault(name, UnitMaps([], [], [], [], name, frame_ms=frame_ms,
                                                              value_unit="stimulus values"))
                    maps.unit_ids.append(uid)
                    maps.maps.append(spatial)
                    maps.centres.append(centre)
                    maps.peak_lags.append(lag)
                    maps.times_ms.append(lag * frame_ms if lag >= 0 else float("nan"))
                    maps.n_spikes.append(group.attr_int("n_spikes_used", counts[uid]))
                    maps.polarity.append(polarity)
                elif name == "eimage_sta" and "data" in group:
                    spatial, t = eimage_map(group.array("data"))
                    window = group.attr("window")
                    window = np.asarray(0 if window is None else window).ravel()
                    offset = int(t + (window[0] if window.size else 0))
                    eimage.unit_ids.append(uid)
                    eimage.maps.append(spatial)
                    eimage.centres.append(_map_centre(np.minimum(spatial, 0.0)))
                    eimage.peak_lags.append(offset)
                    eimage.times_ms.append(offset / fs * 1000.0)
                    eimage.n_spikes.append(group.attr_int("n_spikes_used", counts[uid]))
                    eimage.polarity.append(-1)
                    unit_text = group.attr("value_unit") or ""
                    eimage.value_unit = unit_text if isinstance(unit_text, str) else ""
                else:
                    values = group.scalars()
                    if values:
                        scalars.setdefault(name, {})[uid] = values
        movies = _movie_trials(recording, unit_ids)
        dataset_id = str(overview["attrs"].get("dataset_id", recording.path.stem))
    return RecordingData(
        path=recording.path, dataset_id=dataset_id, sampling_rate=fs, completed_steps=overview["completed_steps"],
        unit_ids=unit_ids, unit_positions=positions, spike_counts=counts, sta=list(sta_maps.values()),
        eimage=eimage if eimage.unit_ids else None, movies=movies, feature_scalars=scalars,
        frame_order=overview["frame_order"], warnings=list(overview["warnings"]) + recording.warnings,
    )
