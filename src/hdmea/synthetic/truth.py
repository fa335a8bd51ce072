"""The ground truth written beside a synthetic recording (``<name>.truth.h5``).

Layout::

    /                      attrs: sampling_rate, display_rate, n_samples, raw_frames, lead_pulses,
                                  frame_period_samples, noise_movie, step_movie, filter_lag_of_index0 (=1)
    /frame_times           uint64  counted display frames (leading pulses dropped)
    /sync_pulse_samples    uint64  every frame-sync pulse, leading ones included
    /section_times/{movie} uint64  (n_occurrences, 2) [first frame, first frame after the section)
    /section_frames/{movie} int64  same in display frames
    /noise/frames          uint8   (n_images, h, w)
    /noise/display_frames  int64   (n_occurrences, movie_length) display frame of each movie frame
    /noise/display_images  int64   (n_occurrences, movie_length) image shown on it
    /units/{unit_id}/      (unit_id: the lab's name for the UnitID, unit_012) attrs: mcs_unit_id, sensor_id, row, col, kind, base_rate_hz,
                                  preferred_direction_deg, direction_selective, green_weight,
                                  preferred_frequency_hz (the planted tuning to the lab's other movies)
                           spike_times (uint64, included peaks), excluded_peak_times (uint64),
                           sta_filter (lags, h, w) float32 (index j is lag j + 1 frames),
                           expected_sta (lags, h, w): sta_filter blurred by the noise's
                           autocorrelation, the shape an STA converges to (up to scale),
                           temporal_filter, spatial_rf, footprint (65, 65) microvolts [row-1, col-1],
                           waveform (cutout_samples,) peak-normalised template
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import h5py
import numpy as np

from hdmea.io.unit_names import unit_name

__all__ = ["GroundTruth", "UnitTruth", "load_truth"]


@dataclasses.dataclass
class UnitTruth:
    unit_id: str
    mcs_unit_id: int
    sensor_id: int
    row: int
    col: int
    kind: str
    base_rate_hz: float
    spike_times: np.ndarray
    excluded_peak_times: np.ndarray
    sta_filter: np.ndarray
    expected_sta: np.ndarray
    temporal_filter: np.ndarray
    spatial_rf: np.ndarray
    footprint: np.ndarray
    waveform: np.ndarray
    preferred_direction_deg: float = 0.0
    direction_selective: bool = False
    green_weight: float = 0.5
    preferred_frequency_hz: float = 2.0


@dataclasses.dataclass
class GroundTruth:
    sampling_rate: float
    display_rate: float
    n_samples: int
    raw_frames: int
    lead_pulses: int
    noise_movie: str
    step_movie: str
    frame_times: np.ndarray
    sync_pulse_samples: np.ndarray
    section_times: dict[str, np.ndarray]
    section_frames: dict[str, np.ndarray]
    noise_frames: np.ndarray
    noise_display_frames: np.ndarray
    noise_display_images: np.ndarray
    units: dict[str, UnitTruth]

    def unit_ids(self) -> list[str]:
        return list(self.units)


def unit_key(mcs_unit_id: int) -> str:
    """The planted unit's name: the lab's name for its UnitID (``unit_012``)."""
    return unit_name(mcs_unit_id)


def write_truth(path: Path, *, attrs: dict, frames_per_image: int, frame_times, sync, section_times, section_frames,
                noise_frames, noise_display_frames, noise_display_images, units, spikes, excluded) -> None:
    with h5py.File(path, "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        f["frame_times"] = np.asarray(frame_times, dtype=np.uint64)
        f["sync_pulse_samples"] = np.asarray(sync, dtype=np.uint64)
        for movie, arr in section_times.items():
            f[f"section_times/{movie}"] = np.asarray(arr, dtype=np.uint64)
            f[f"section_frames/{movie}"] = np.asarray(section_frames[movie], dtype=np.int64)
        f["noise/frames"] = noise_frames
        f["noise/display_frames"] = noise_display_frames
        f["noise/display_images"] = noise_display_images
        for u, s, x in zip(units, spikes, excluded):
            g = f.create_group(f"units/{unit_key(u.mcs_unit_id)}")
            g.attrs.update(mcs_unit_id=u.mcs_unit_id, sensor_id=u.sensor_id, row=u.row, col=u.col,
                           kind=u.kind, base_rate_hz=u.base_rate_hz,
                           preferred_direction_deg=u.preferred_direction_deg,
                           direction_selective=bool(u.direction_selective), green_weight=u.green_weight,
                           preferred_frequency_hz=u.preferred_frequency_hz)
            g["spike_times"] = s.astype(np.uint64)
            g["excluded_peak_times"] = x.astype(np.uint64)
            g["sta_filter"] = u.sta_filter
            g["expected_sta"] = u.expected_sta(frames_per_image)
            g["temporal_filter"] = u.temporal_filter.astype(np.float32)
            g["spatial_rf"] = u.spatial_rf.astype(np.float32)
            g["footprint"] = u.footprint.astype(np.float32)
            g["waveform"] = u.waveform.astype(np.float32)


def load_truth(path: str | os.PathLike) -> GroundTruth:
    """Read a ``<name>.truth.h5`` file into memory."""
    with h5py.File(path, "r") as f:
        a = f.attrs
        units = {}
        for key in f["units"]:
            g = f["units"][key]
            units[key] = UnitTruth(
                unit_id=key, mcs_unit_id=int(g.attrs["mcs_unit_id"]), sensor_id=int(g.attrs["sensor_id"]),
                row=int(g.attrs["row"]), col=int(g.attrs["col"]), kind=str(g.attrs["kind"]),
                base_rate_hz=float(g.attrs["base_rate_hz"]),
                spike_times=g["spike_times"][()], excluded_peak_times=g["excluded_peak_times"][()],
                sta_filter=g["sta_filter"][()], expected_sta=g["expected_sta"][()],
                temporal_filter=g["temporal_filter"][()],
                spatial_rf=g["spatial_rf"][()], footprint=g["footprint"][()], waveform=g["waveform"][()],
                preferred_direction_deg=float(g.attrs.get("preferred_direction_deg", 0.0)),
                direction_selective=bool(g.attrs.get("direction_selective", False)),
                green_weight=float(g.attrs.get("green_weight", 0.5)),
                preferred_frequency_hz=float(g.attrs.get("preferred_frequency_hz", 2.0)),
            )
        return GroundTruth(
            sampling_rate=float(a["sampling_rate"]), display_rate=float(a["display_rate"]),
            n_samples=int(a["n_samples"]), raw_frames=int(a["raw_frames"]), lead_pulses=int(a["lead_pulses"]),
            noise_movie=str(a["noise_movie"]), step_movie=str(a["step_movie"]),
            frame_times=f["frame_times"][()], sync_pulse_samples=f["sync_pulse_samples"][()],
            section_times={k: v[()] for k, v in f["section_times"].items()},
            section_frames={k: v[()] for k, v in f["section_frames"].items()},
            noise_frames=f["noise/frames"][()], noise_display_frames=f["noise/display_frames"][()],
            noise_display_images=f["noise/display_images"][()], units=units,
        )
