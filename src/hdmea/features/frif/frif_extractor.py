"""``frif``: a unit's firing rate in every interval between consecutive display frames.

``FRIF[i]`` = spikes in ``[frame_i, frame_i+1)`` / the interval's length (Hz,
float32); ``FRIF_x_axis[i]`` = frame ``i``'s start in seconds.  Frame times
(samples) come from ``metadata/frame_timestamps`` (the lab pipeline's place) or
``stimulus/frame_time/default`` (ours), the rate from
``metadata/acquisition_rate`` or ``metadata/sampling_rate``.  Without frame
times or a rate the result is two empty arrays, as in the lab pipeline.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from hdmea.features.base import FeatureExtractor
from hdmea.features.registry import FeatureRegistry
from hdmea.features.trials import sampling_rate_of, stored_rate

__all__ = ["FRIFExtractor", "frame_interval_rates"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())


def frame_interval_rates(spike_times, frame_times) -> np.ndarray:
    """Spikes in each ``[frame_times[i], frame_times[i+1])`` over its length (both in one unit; rate per that
    unit's second is the caller's scaling), float64; 0 for an empty interval."""
    spikes = np.sort(np.asarray(spike_times, dtype=np.float64))
    frames = np.asarray(frame_times, dtype=np.float64)
    counts = np.diff(np.searchsorted(spikes, frames, side="left"))
    lengths = np.diff(frames)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(lengths > 0, counts / np.where(lengths > 0, lengths, 1.0), 0.0)


def _frame_times(stimulus_data, metadata):
    for group, key in ((metadata, "frame_timestamps"), (stimulus_data, "frame_time/default")):
        try:
            if group is not None and key in group:
                return np.asarray(group[key][:])
        except (TypeError, KeyError):
            continue
    return None


@FeatureRegistry.register("frif")
class FRIFExtractor(FeatureExtractor):
    """Firing rate in each interval between display frames, and the frames' start times."""

    version = "1.0.0"
    description = "Firing Rate Inter-Frame - spike rate aligned to video frames"
    required_inputs: list[str] = []
    output_schema = {
        "FRIF": {"dtype": "float32", "shape": "(n_frames-1,)", "unit": "Hz",
                 "description": "Firing rate for each inter-frame interval"},
        "FRIF_x_axis": {"dtype": "float64", "shape": "(n_frames-1,)", "unit": "s",
                        "description": "Frame start times in seconds (for x-axis plotting)"},
    }

    def extract(self, unit_data, stimulus_data, config=None, metadata=None) -> dict[str, Any]:
        frames = _frame_times(stimulus_data, metadata)
        rate = sampling_rate_of(metadata) or stored_rate(unit_data, metadata)
        if frames is None or frames.size < 2 or rate is None:
            logger.warning("frif: no frame times or no acquisition rate; the result is empty")
            return {"FRIF": np.zeros(0, np.float32), "FRIF_x_axis": np.zeros(0, np.float64)}
        spikes = np.asarray(unit_data["spike_times"][:])
        x_axis = (frames[:-1] / rate).astype(np.float64)
        if stored_rate(unit_data, metadata) is not None:  # stored samples: count against frame samples
            per_sample = frame_interval_rates(spikes, frames)
            return {"FRIF": (per_sample * rate).astype(np.float32), "FRIF_x_axis": x_axis}
        frames_us = frames.astype(np.float64) * 1e6 / rate
        return {"FRIF": (frame_interval_rates(spikes, frames_us) * 1e6).astype(np.float32), "FRIF_x_axis": x_axis}
