"""``green_blue_3s_3i_3x``: a unit's responses to a green and a blue light step.

A trial of the movie (``config["movie"]``, default the extractor's name) is a
green step, a dark gap, a blue step and a dark gap, of equal length by default
(``step_frames`` / ``gap_frames`` give them in display frames; the lab's movie:
180 and 180).  Each response is the unit's rate in the ``window_us`` (500 ms)
after the event less its rate in the ``window_us`` before it, floored at 0,
averaged over trials: ``green_on_response`` (green step on),
``green_off_response`` (green step off), ``blue_on_response``,
``blue_off_response`` (spikes/s).  ``color_opponency_index = (G - B) / (G + B)``
with G and B the sums of a colour's ON and OFF responses (0 when both are 0);
``preferred_color`` is the colour with the larger sum (``"none"`` when both are 0).
The unit needs the movie's sectioned trials.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hdmea.features.base import outputs
from hdmea.features.registry import FeatureRegistry
from hdmea.features.trials import MovieFeatureExtractor

__all__ = ["ChromaticFeatureExtractor", "event_responses"]


def event_responses(trials: list[np.ndarray], events_us, window_us: float) -> np.ndarray:
    """Per event: mean over trials of (rate in [e, e + w)) - (rate in [e - w, e)), floored at 0 (spikes/s)."""
    out = []
    for e in events_us:
        after = sum(int(np.count_nonzero((s >= e) & (s < e + window_us))) for s in trials)
        before = sum(int(np.count_nonzero((s >= e - window_us) & (s < e))) for s in trials)
        out.append(max(0.0, (after - before) / (len(trials) * window_us / 1e6)))
    return np.asarray(out, dtype=np.float64)


@FeatureRegistry.register("green_blue_3s_3i_3x")
class ChromaticFeatureExtractor(MovieFeatureExtractor):
    """ON and OFF responses to green and blue steps, their opponency and the preferred colour."""

    version = "1.0.0"
    description = "Green/blue chromatic response features"
    output_schema = {
        **outputs("green_on_response", "green_off_response", "blue_on_response", "blue_off_response",
                  unit="spikes/s"),
        **outputs("color_opponency_index", unit="dimensionless"),
        **outputs("preferred_color", dtype="str"),
    }

    def extract(self, unit_data, stimulus_data, config=None, metadata=None) -> dict[str, Any]:
        config = self.merged_config(config)
        trials = self.trials(unit_data, stimulus_data, metadata, config)
        period = trials.frame_period_us
        length_frames = float(np.min(trials.lengths_us)) / period
        step = float(config.get("step_frames", length_frames / 4))
        gap = float(config.get("gap_frames", length_frames / 2 - step))
        events = np.array([0.0, step, step + gap, 2 * step + gap]) * period
        g_on, g_off, b_on, b_off = event_responses(trials.spikes, events, float(config.get("window_us", 500_000)))
        green, blue = g_on + g_off, b_on + b_off
        total = green + blue
        return {
            "green_on_response": float(g_on),
            "green_off_response": float(g_off),
            "blue_on_response": float(b_on),
            "blue_off_response": float(b_off),
            "color_opponency_index": float((green - blue) / total) if total > 0 else 0.0,
            "preferred_color": "none" if total == 0 else ("green" if green >= blue else "blue"),
        }
