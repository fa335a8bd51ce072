"""``freq_step_5st_3x``: how strongly a unit follows full-field sinusoids of each frequency.

A trial of the movie is one step per frequency of ``freq_list`` (the lab's:
0.5, 1, 2, 4, 10 Hz), each a sinusoid of ``step_frames`` display frames then a
gray break of ``break_frames`` (the lab's movie: 4 s and 1 s; by default the
trial is split into equal spans with the same 4:1 ratio).  For each frequency
f the response is the amplitude of the unit's firing at f (spikes/s): with
``t`` the spike times from the step's start, ``N`` of them over all trials,
``T`` the step's length and ``n`` the trials,
``A(f) = 2 / (n T) * | sum exp(-2 pi i f t) - N / T * integral_0^T exp(-2 pi i f t) dt |``
(the mean rate's share subtracted, so a step that is not a whole number of
cycles long does not leak the mean rate into ``A``).

``preferred_frequency`` is the frequency of the largest amplitude,
``peak_amplitude`` that amplitude, ``bandwidth`` the span (Hz) of the
frequencies whose amplitude reaches half of it, ``low_freq_response`` and
``high_freq_response`` the amplitudes at the lowest and highest frequencies;
``frequencies`` and ``amplitudes`` hold the whole curve.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hdmea.features.base import outputs
from hdmea.features.registry import FeatureRegistry
from hdmea.features.trials import MovieFeatureExtractor

__all__ = ["FrequencyFeatureExtractor", "response_amplitude", "DEFAULT_FREQUENCIES"]

DEFAULT_FREQUENCIES = (0.5, 1.0, 2.0, 4.0, 10.0)


def response_amplitude(trials: list[np.ndarray], freq_hz: float, start_us: float, length_us: float) -> float:
    """``A(f)`` of the module docstring for the step ``[start, start + length)`` of every trial."""
    t = np.concatenate([s[(s >= start_us) & (s < start_us + length_us)] - start_us for s in trials]) / 1e6
    T = length_us / 1e6
    w = 2 * np.pi * freq_hz
    mean_part = t.size / T * (1 - np.exp(-1j * w * T)) / (1j * w)
    return float(2.0 / (len(trials) * T) * abs(np.exp(-1j * w * t).sum() - mean_part))


@FeatureRegistry.register("freq_step_5st_3x")
class FrequencyFeatureExtractor(MovieFeatureExtractor):
    """Response amplitude at each frequency of the steps, the preferred frequency and the bandwidth."""

    version = "1.0.0"
    description = "Temporal frequency response features"
    output_schema = {
        **outputs("preferred_frequency", "bandwidth", unit="Hz"),
        **outputs("peak_amplitude", "low_freq_response", "high_freq_response", unit="spikes/s"),
        **outputs("frequencies", dtype="float64[]", unit="Hz"),
        **outputs("amplitudes", dtype="float64[]", unit="spikes/s"),
    }

    def extract(self, unit_data, stimulus_data, config=None, metadata=None) -> dict[str, Any]:
        config = self.merged_config(config)
        trials = self.trials(unit_data, stimulus_data, metadata, config)
        freqs = np.asarray(config.get("freq_list", DEFAULT_FREQUENCIES), dtype=np.float64)
        period = trials.frame_period_us
        span = float(np.min(trials.lengths_us)) / period / freqs.size
        step = float(config.get("step_frames", span * 0.8))
        span = step + float(config.get("break_frames", span - step))
        amps = np.array([response_amplitude(trials.spikes, f, i * span * period, step * period)
                         for i, f in enumerate(freqs)])
        best = int(np.argmax(amps))
        strong = freqs[amps >= amps[best] / 2] if amps[best] > 0 else freqs[:0]
        return {
            "preferred_frequency": float(freqs[best]) if amps[best] > 0 else float("nan"),
            "bandwidth": float(strong.max() - strong.min()) if strong.size else float("nan"),
            "peak_amplitude": float(amps[best]),
            "low_freq_response": float(amps[np.argmin(freqs)]),
            "high_freq_response": float(amps[np.argmax(freqs)]),
            "frequencies": freqs,
            "amplitudes": amps,
        }
