"""``cell_type_classifier``: the lab pipeline's rule for calling a unit a retinal ganglion cell.

``waveform_width_ms``: samples from the waveform's trough to the largest value
after it, over the sampling rate (the recording's for a stored unit; 20 kHz
otherwise, as the lab pipeline assumed), NaN for a waveform of 10 samples or
fewer.  ``has_axon``: that width is below 0.4 ms.  ``rgc_probability``: 0.8
with an axon and over 100 spikes, else 0.6 over 500 spikes, else 0.3;
``cell_type`` is ``"RGC"`` above 0.5, else ``"unknown"``.  Under 50 spikes the
unit is ``"unknown"`` with probability 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hdmea.features.base import FeatureExtractor
from hdmea.features.registry import FeatureRegistry
from hdmea.features.trials import stored_rate

__all__ = ["CellTypeFeatureExtractor", "trough_to_peak_samples"]

DEFAULT_RATE_HZ = 20_000.0


def trough_to_peak_samples(waveform) -> int:
    """Samples from the waveform's minimum to the largest value at or after it."""
    waveform = np.asarray(waveform, dtype=np.float64).reshape(-1)
    trough = int(np.argmin(waveform))
    return int(np.argmax(waveform[trough:]))


@FeatureRegistry.register("cell_type_classifier")
class CellTypeFeatureExtractor(FeatureExtractor):
    """RGC vs not, from the waveform's trough-to-peak width and the spike count."""

    version = "1.0.0"
    description = "RGC vs non-RGC classification"
    required_inputs = ["spike_times", "waveform"]
    output_schema = {
        "cell_type": {"dtype": "str", "description": "RGC or unknown"},
        "rgc_probability": {"dtype": "float64", "range": [0, 1]},
        "has_axon": {"dtype": "bool"},
        "waveform_width_ms": {"dtype": "float64", "unit": "ms"},
    }

    def extract(self, unit_data, stimulus_data, config=None, metadata=None) -> dict[str, Any]:
        n_spikes = int(np.asarray(unit_data["spike_times"][:]).size)
        try:
            waveform = np.asarray(unit_data["waveform"][:], dtype=np.float64).reshape(-1)
        except KeyError:
            waveform = np.zeros(0)
        if n_spikes < 50:
            return {"cell_type": "unknown", "rgc_probability": 0.0, "has_axon": False,
                    "waveform_width_ms": float("nan")}
        rate = stored_rate(unit_data, metadata) or DEFAULT_RATE_HZ
        width_ms = trough_to_peak_samples(waveform) * 1000.0 / rate if waveform.size > 10 else float("nan")
        has_axon = bool(width_ms < 0.4) if not np.isnan(width_ms) else False
        if has_axon and n_spikes > 100:
            probability = 0.8
        elif n_spikes > 500:
            probability = 0.6
        else:
            probability = 0.3
        return {"cell_type": "RGC" if probability > 0.5 else "unknown", "rgc_probability": probability,
                "has_axon": has_axon, "waveform_width_ms": float(width_ms)}
