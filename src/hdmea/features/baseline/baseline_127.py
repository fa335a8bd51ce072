"""``baseline_127``: firing statistics of a unit on a gray screen (intensity 127).

Windows: the trials of the movie ``baseline_127`` when the unit has them
sectioned (``config["movie"]`` names another movie); otherwise
``[start_time_us, end_time_us)`` of the recording (``start_time_us`` default 0,
``end_time_us`` default the last spike, which is then kept), as the lab
pipeline did.

Over the windows: ``mean_firing_rate`` = spikes / total duration (Hz);
``std_firing_rate`` = standard deviation of the spike counts in bins of about
one second (each window cut in ``max(1, int(duration_s))`` equal bins);
``cv_isi`` and ``median_isi_ms`` of the intervals between spikes of the same
window; ``quality_index`` = mean of three scores in [0, 1] (rate within
0.5-50 Hz, ISI CV below 1, at least 100 spikes; 0 below 10 spikes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hdmea.features.registry import FeatureRegistry
from hdmea.features.trials import MovieFeatureExtractor, movie_trials, spike_times_us

__all__ = ["BaselineFeatureExtractor", "baseline_statistics", "quality_index"]


def quality_index(mean_rate: float, cv_isi: float, spike_count: int) -> float:
    """Mean of a rate score (1 within 0.5-50 Hz), a regularity score (1 below CV 1) and a count score."""
    if spike_count < 10:
        return 0.0
    if 0.5 <= mean_rate <= 50:
        rate_score = 1.0
    elif mean_rate < 0.5:
        rate_score = mean_rate / 0.5
    else:
        rate_score = max(0.0, 1 - (mean_rate - 50) / 50)
    cv_score = 1.0 if cv_isi < 1 else (2 - cv_isi if cv_isi < 2 else 0.0)
    count_score = 1.0 if spike_count >= 100 else spike_count / 100
    return (rate_score + cv_score + count_score) / 3


def baseline_statistics(windows: list[tuple[np.ndarray, float, float]]) -> dict[str, Any]:
    """The statistics over ``(spike times us, start us, end us)`` windows (spikes already inside them)."""
    total = sum(w[0].size for w in windows)
    duration_s = sum(end - start for _, start, end in windows) / 1e6
    if total == 0 or duration_s <= 0:
        return BaselineFeatureExtractor._empty_result()
    isis_ms = np.concatenate([np.diff(s) for s, _, _ in windows]) / 1000.0
    if isis_ms.size:
        median_isi = float(np.median(isis_ms))
        mean_isi = float(np.mean(isis_ms))
        cv = float(np.std(isis_ms)) / mean_isi if mean_isi > 0 else 0.0
        counts = [np.histogram(s, bins=np.linspace(start, end, max(1, int((end - start) / 1e6)) + 1))[0]
                  for s, start, end in windows]
        std_rate = float(np.std(np.concatenate(counts)))
    else:
        median_isi, cv, std_rate = float("nan"), 0.0, 0.0
    mean_rate = total / duration_s
    return {
        "mean_firing_rate": float(mean_rate),
        "std_firing_rate": std_rate,
        "cv_isi": float(cv),
        "median_isi_ms": median_isi,
        "spike_count": int(total),
        "quality_index": float(quality_index(mean_rate, cv, total)),
    }


@FeatureRegistry.register("baseline_127")
class BaselineFeatureExtractor(MovieFeatureExtractor):
    """Firing statistics during a gray screen (intensity 127)."""

    version = "1.0.0"
    description = "Baseline firing statistics during gray screen"
    output_schema = {
        "mean_firing_rate": {"dtype": "float64", "unit": "spikes/s"},
        "std_firing_rate": {"dtype": "float64", "unit": "spikes/s",
                            "description": "standard deviation of spike counts in ~1 s bins"},
        "cv_isi": {"dtype": "float64", "unit": "dimensionless", "description": "Coefficient of variation of ISI"},
        "median_isi_ms": {"dtype": "float64", "unit": "ms"},
        "spike_count": {"dtype": "int64"},
        "quality_index": {"dtype": "float64", "unit": "dimensionless", "description": "Quality metric [0,1]"},
    }

    def extract(self, unit_data, stimulus_data, config=None, metadata=None) -> dict[str, Any]:
        config = self.merged_config(config)
        trials = movie_trials(unit_data, stimulus_data, metadata, self.movie(config))
        if trials is not None and trials.n_trials:
            windows = []
            for spikes, length in zip(trials.spikes, trials.lengths_us):
                inside = spikes[(spikes >= 0) & (spikes < length)]
                windows.append((inside, 0.0, float(length)))
            return baseline_statistics(windows)
        spikes = spike_times_us(unit_data, metadata)
        start = float(config.get("start_time_us", 0))
        end = config.get("end_time_us")
        if end is None:
            spikes = spikes[spikes >= start]
            end = float(spikes[-1]) if spikes.size else start
        else:
            end = float(end)
            spikes = spikes[(spikes >= start) & (spikes < end)]
        return baseline_statistics([(spikes, start, end)])

    @staticmethod
    def _empty_result() -> dict[str, Any]:
        return {"mean_firing_rate": 0.0, "std_firing_rate": 0.0, "cv_isi": 0.0, "median_isi_ms": float("nan"),
                "spike_count": 0, "quality_index": 0.0}
