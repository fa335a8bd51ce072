"""``example_feature``: the template for a new extractor (copy this file, rename, change ``extract``).

A class-style extractor declares its ``version`` (bump it when the output
changes), its ``required_inputs`` (paths under the unit's group, or under the
file's root), an ``output_schema`` documenting what ``extract`` returns, and a
``runtime_class``.  ``extract`` is called once per unit and must be
deterministic.  Register it with ``@FeatureRegistry.register("name")`` and
import its module before calling ``extract_features``.

Outputs: the number of spikes, the first and last spike times (us) and the
mean rate between them (Hz; spikes / 1 s when the first and last coincide).
"""

from __future__ import annotations

from typing import Any

from hdmea.features.base import FeatureExtractor
from hdmea.features.registry import FeatureRegistry
from hdmea.features.trials import spike_times_us

__all__ = ["ExampleFeatureExtractor"]


@FeatureRegistry.register("example_feature")
class ExampleFeatureExtractor(FeatureExtractor):
    """Spike count, first and last spike time, and mean rate: a template."""

    version = "1.0.0"
    description = "Example feature extractor for documentation"
    required_inputs = ["spike_times"]  # units/{unit_id}/spike_times
    output_schema = {
        "total_spikes": {"dtype": "int64", "description": "Total number of spikes"},
        "mean_rate_hz": {"dtype": "float64", "unit": "Hz", "description": "Mean firing rate in Hz"},
        "first_spike_time_us": {"dtype": "uint64", "unit": "us", "description": "Time of first spike"},
        "last_spike_time_us": {"dtype": "uint64", "unit": "us", "description": "Time of last spike"},
    }
    runtime_class = "fast"

    def extract(self, unit_data, stimulus_data, config=None, metadata=None) -> dict[str, Any]:
        spikes = spike_times_us(unit_data, metadata)
        if spikes.size == 0:
            return {"total_spikes": 0, "mean_rate_hz": 0.0, "first_spike_time_us": 0, "last_spike_time_us": 0}
        first, last = float(spikes[0]), float(spikes[-1])
        duration_s = (last - first) / 1e6 if last > first else 1.0
        return {
            "total_spikes": int(spikes.size),
            "mean_rate_hz": float(spikes.size / duration_s),
            "first_spike_time_us": int(round(first)),
            "last_spike_time_us": int(round(last)),
        }
