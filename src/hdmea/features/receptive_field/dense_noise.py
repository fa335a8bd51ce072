"""``perfect_dense_noise_15x15_15hz_r42_3min``: centre, size and time of a unit's receptive field.

It reads the unit's spike-triggered average of the noise movie
(``features/sta_{movie}``, written by :func:`hdmea.pipeline.compute_sta`;
``movie`` defaults to the extractor's name) and measures it with
:func:`hdmea.features.extractors.receptive_field_measures` (the rule of the
``receptive_field`` extractor): ``sta_center_x`` / ``sta_center_y`` are the
centre's column and row in checks (0-based, a check's centre at its index),
``sta_center_time`` the lag (display frames before the spike) of the chosen
lobe's peak, ``rf_size_x`` / ``rf_size_y`` the weighted standard deviation of
the centre's pixels along columns and rows (checks), ``rf_amplitude`` the peak
deviation from the STA's mean (signed: negative for an OFF centre),
``sta_quality`` = min(1, peak z-score / 10) (z over the STA's robust spread).
``sta_geometry`` (a subgroup) repeats the centre as ``center_row`` /
``center_col``, where the lab's direction sectioning reads it.  A unit with
fewer than ``min_spikes`` (100) spikes in its STA gets NaN and zeros, as in the
lab pipeline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hdmea.errors import MissingInputError
from hdmea.features.base import outputs
from hdmea.features.registry import FeatureRegistry
from hdmea.features.trials import MovieFeatureExtractor
from hdmea.io.layout_names import sta_dataset

__all__ = ["DenseNoiseFeatureExtractor", "rf_geometry"]


def rf_geometry(sta: np.ndarray, first_lag: int = 1, threshold: float = 0.5) -> dict[str, Any]:
    """The extractor's outputs from an STA (lags, rows, cols), oldest lag first."""
    from hdmea.features.extractors import receptive_field_measures

    m = receptive_field_measures(sta, first_lag=first_lag, threshold=threshold)
    if m["polarity"] == 0:
        return _empty()
    spatial = np.asarray(m["spatial_map"], dtype=np.float64) * m["polarity"]
    weights = np.where(spatial >= threshold * spatial.max(), spatial, 0.0)
    rows, cols = np.indices(spatial.shape)
    total = weights.sum()
    size_y = float(np.sqrt((weights * (rows - m["centre_row"]) ** 2).sum() / total))
    size_x = float(np.sqrt((weights * (cols - m["centre_col"]) ** 2).sum() / total))
    return {
        "sta_center_x": float(m["centre_col"]),
        "sta_center_y": float(m["centre_row"]),
        "sta_center_time": float(m["peak_lag_frames"]),
        "rf_size_x": size_x,
        "rf_size_y": size_y,
        "rf_amplitude": float(m["peak_value"]),
        "sta_quality": float(min(1.0, m["peak_z"] / 10.0)),
        "polarity": int(m["polarity"]),
        "sta_geometry": {"center_row": float(m["centre_row"]), "center_col": float(m["centre_col"]),
                         "size_row": size_y, "size_col": size_x},
    }


def _empty() -> dict[str, Any]:
    nan = float("nan")
    return {"sta_center_x": nan, "sta_center_y": nan, "sta_center_time": nan, "rf_size_x": nan, "rf_size_y": nan,
            "rf_amplitude": 0.0, "sta_quality": 0.0, "polarity": 0,
            "sta_geometry": {"center_row": -5.0, "center_col": -5.0, "size_row": nan, "size_col": nan}}


@FeatureRegistry.register("perfect_dense_noise_15x15_15hz_r42_3min")
class DenseNoiseFeatureExtractor(MovieFeatureExtractor):
    """Receptive-field centre, size, time and strength from the unit's dense-noise STA."""

    version = "1.0.0"
    description = "Receptive field via STA from 15x15 dense noise"
    output_schema = {
        **outputs("sta_center_x", "sta_center_y", unit="checks"),
        **outputs("sta_center_time", unit="frames"),
        **outputs("rf_size_x", "rf_size_y", unit="checks"),
        **outputs("rf_amplitude", unit="a.u."),
        **outputs("sta_quality", unit="dimensionless"),
    }
    runtime_class = "slow"

    def extract(self, unit_data, stimulus_data, config=None, metadata=None) -> dict[str, Any]:
        config = self.merged_config(config)
        movie = self.movie(config)
        key = f"features/sta_{movie}"
        if key not in unit_data:
            raise MissingInputError(f"no STA of movie {movie!r} for this unit ({key}): run compute_sta first",
                                    feature_name=self.name, missing_input=key)
        group = unit_data[key]
        attrs = getattr(group, "attrs", {}) or {}
        used = int(np.asarray(attrs.get("n_spikes_used", 0)).reshape(-1)[0])
        if used < int(config.get("min_spikes", 100)):
            return _empty()
        first_lag = int(np.asarray(attrs.get("first_lag", 1)).reshape(-1)[0])
        return rf_geometry(np.asarray(group[sta_dataset(group)][:]), first_lag=first_lag,
                           threshold=float(config.get("threshold", 0.5)))
