"""``moving_h_bar_s5_d8_3x``: direction and orientation selectivity from a bar moving in 8 directions.

A trial of the movie holds one sweep per direction of
:data:`~hdmea.features.direction.bar_geometry.DIRECTION_LIST` (``sweep_frames``
display frames each, by default an eighth of the trial).  When the unit's
receptive-field centre is known (``features/<sta_movie>`` of the dense-noise
extractor, or the ``sta_geometry`` of ``features/sta_<sta_movie>``, or computed
from that STA), the bar's geometry (:class:`MovingBar`: ``screen_px``,
``bar_width_px``, ``speed_px``, ``lead_frames``) gives the frames ``on`` and
``off`` when the bar arrives at and leaves the centre in each direction, and
the ON response is the unit's rate in ``[on + L, off + L)``, the OFF response
in ``[off + L, off + L + (off - on))``, ``L`` = ``latency_frames`` (4).
With ``on_off_dict_path`` (the lab's per-pixel pickle, as
:func:`~hdmea.features.dsgc_direction.section_by_direction` reads it) the on and
off frames of each sweep come from that file at the centre instead.  Without a
centre both responses are the rate over the whole sweep (``rf_centre_known``
is False).  Rates are averaged over trials into the tuning curves (spikes/s).

From a tuning curve R(d): the preferred direction is the direction of the
largest R; ``DSI = (R_pref - R_null) / (R_pref + R_null)`` with the null
direction opposite; ``OSI = |sum R(d) exp(2 i d)| / sum R(d)``; the p-value is
the share of ``n_shuffles`` (100) permutations of the per-sweep responses
across directions (seed ``random_seed``, 42) whose DSI reaches the observed
one, counted as (k + 1) / (n + 1).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from hdmea.errors import MissingInputError
from hdmea.features.base import outputs
from hdmea.features.direction.bar_geometry import DIRECTION_LIST, MovingBar
from hdmea.features.direction.on_off_pickle import convert_center_15_to_300, load_on_off_dict
from hdmea.features.registry import FeatureRegistry
from hdmea.features.trials import MovieFeatureExtractor
from hdmea.io.layout_names import sta_dataset

__all__ = ["MovingBarFeatureExtractor", "direction_selectivity", "unit_rf_centre", "STA_MOVIE"]

STA_MOVIE = "perfect_dense_noise_15x15_15hz_r42_3min"
INVALID_CENTRE = -5.0


def _attr(group, name):
    attrs = getattr(group, "attrs", {}) or {}
    if name in attrs:
        return float(np.asarray(attrs[name]).reshape(-1)[0])
    if name in group:
        return float(np.asarray(group[name][:]).reshape(-1)[0])
    raise KeyError(name)


def unit_rf_centre(unit_data, sta_movie: str = STA_MOVIE) -> tuple[float, float] | None:
    """The unit's receptive-field centre (row, col) in checks, or None (no STA, or a failed fit)."""
    from hdmea.features.receptive_field.dense_noise import rf_geometry

    centre = None
    try:
        if f"features/{sta_movie}" in unit_data:
            g = unit_data[f"features/{sta_movie}"]
            centre = (_attr(g, "sta_center_y"), _attr(g, "sta_center_x"))
        elif f"features/sta_{sta_movie}/sta_geometry" in unit_data:
            g = unit_data[f"features/sta_{sta_movie}/sta_geometry"]
            centre = (_attr(g, "center_row"), _attr(g, "center_col"))
        elif f"features/sta_{sta_movie}" in unit_data:
            g = unit_data[f"features/sta_{sta_movie}"]
            first_lag = int(_attr(g, "first_lag")) if "first_lag" in (getattr(g, "attrs", {}) or {}) else 1
            geometry = rf_geometry(np.asarray(g[sta_dataset(g)][:]), first_lag=first_lag)
            centre = (geometry["sta_center_y"], geometry["sta_center_x"])
    except (KeyError, TypeError, ValueError):
        return None
    if centre is None or not np.all(np.isfinite(centre)) or INVALID_CENTRE in centre:
        return None
    return centre


def _dsi(curve: np.ndarray) -> tuple[float, int]:
    best = int(np.argmax(curve))
    r_pref, r_null = curve[best], curve[(best + len(curve) // 2) % len(curve)]
    return (float((r_pref - r_null) / (r_pref + r_null)) if r_pref + r_null > 0 else 0.0), best


def direction_selectivity(responses: np.ndarray, *, n_shuffles: int = 100, seed: int = 42) -> dict[str, Any]:
    """Selectivity of per-sweep responses (n_repeats, 8 directions), spikes/s."""
    responses = np.asarray(responses, dtype=np.float64)
    curve = responses.mean(axis=0)
    if curve.sum() <= 0:
        return {"dsi": 0.0, "osi": 0.0, "preferred_direction": 0.0, "p_value": 1.0, "tuning_curve": curve}
    dsi, best = _dsi(curve)
    angles = np.deg2rad(np.asarray(DIRECTION_LIST, dtype=np.float64))
    osi = float(abs((curve * np.exp(2j * angles)).sum()) / curve.sum())
    rng = np.random.default_rng(seed)
    flat = responses.reshape(-1)
    null = [_dsi(rng.permutation(flat).reshape(responses.shape).mean(axis=0))[0] for _ in range(int(n_shuffles))]
    p = (np.count_nonzero(np.asarray(null) >= dsi - 1e-12) + 1) / (int(n_shuffles) + 1)
    return {"dsi": dsi, "osi": osi, "preferred_direction": float(DIRECTION_LIST[best]), "p_value": float(p),
            "tuning_curve": curve}


@FeatureRegistry.register("moving_h_bar_s5_d8_3x")
class MovingBarFeatureExtractor(MovieFeatureExtractor):
    """Direction and orientation selectivity of the ON and OFF responses to a moving bar."""

    version = "1.0.0"
    description = "Direction selectivity from moving horizontal bar"
    output_schema = {
        **outputs("dsi_on", "dsi_off", "osi_on", "osi_off", unit="dimensionless", range=[0, 1]),
        **outputs("preferred_direction_on", "preferred_direction_off", unit="degrees"),
        **outputs("on_p_value", "off_p_value"),
        **outputs("tuning_curve_on", "tuning_curve_off", dtype="float64[]", unit="spikes/s"),
        **outputs("rf_centre_known", dtype="bool"),
    }

    def extract(self, unit_data, stimulus_data, config=None, metadata=None) -> dict[str, Any]:
        config = self.merged_config(config)
        movie = self.movie(config)
        trials = self.trials(unit_data, stimulus_data, metadata, config)
        period = trials.frame_period_us
        n_dir = len(DIRECTION_LIST)
        sweep = int(config.get("sweep_frames", round(float(np.min(trials.lengths_us)) / period / n_dir)))
        bar = MovingBar(screen_px=int(config.get("screen_px", 300)),
                        bar_width_px=float(config.get("bar_width_px", 50.0)),
                        speed_px=float(config.get("speed_px", 5.0)), sweep_frames=sweep,
                        lead_frames=int(config.get("lead_frames", 0)))
        centre = unit_rf_centre(unit_data, config.get("sta_movie", STA_MOVIE))
        lat = int(config.get("latency_frames", 4))
        if centre is not None and config.get("on_off_dict_path") is not None:
            on, off = self._pickle_timing(config, centre, stimulus_data, movie, trials.n_trials)
        elif centre is not None:
            grid = int(config.get("grid", 15))
            on, off = bar.crossing_frames((centre[0] + 0.5) * bar.screen_px / grid,
                                          (centre[1] + 0.5) * bar.screen_px / grid)
            starts = np.arange(n_dir) * sweep
            shape = (trials.n_trials, n_dir)
            on, off = np.broadcast_to(starts + on, shape), np.broadcast_to(starts + off, shape)
        if centre is not None:
            on_win = np.stack([on + lat, off + lat], axis=-1)
            off_win = np.stack([off + lat, 2 * off - on + lat], axis=-1)
        else:
            starts = np.arange(n_dir) * sweep
            whole = np.stack([starts, starts + sweep], axis=1)
            on_win = off_win = np.broadcast_to(whole, (trials.n_trials, n_dir, 2))
        on_rates = self._rates(trials.spikes, on_win * period)
        off_rates = self._rates(trials.spikes, off_win * period)
        n_shuffles, seed = int(config.get("n_shuffles", 100)), int(config.get("random_seed", 42))
        son = direction_selectivity(on_rates, n_shuffles=n_shuffles, seed=seed)
        soff = direction_selectivity(off_rates, n_shuffles=n_shuffles, seed=seed)
        return {
            "dsi_on": son["dsi"], "dsi_off": soff["dsi"], "osi_on": son["osi"], "osi_off": soff["osi"],
            "preferred_direction_on": son["preferred_direction"],
            "preferred_direction_off": soff["preferred_direction"],
            "on_p_value": son["p_value"], "off_p_value": soff["p_value"],
            "tuning_curve_on": son["tuning_curve"], "tuning_curve_off": soff["tuning_curve"],
            "rf_centre_known": centre is not None,
        }

    def _pickle_timing(self, config, centre, stimulus_data, movie: str, n_trials: int):
        """Trial-relative (on, off) frames, (n_trials, 8), from the lab's per-pixel pickle (movie frames of the
        sweeps of one occurrence; every occurrence is timed alike)."""
        from hdmea.stimulus import StimulusConfig

        path = config["on_off_dict_path"]
        cache = self.__dict__.setdefault("_on_off_cache", {})
        if path not in cache:
            cache[path] = load_on_off_dict(path)
        key = convert_center_15_to_300(*centre)
        timing = cache[path].get(key)
        if timing is None:
            raise MissingInputError(f"the on/off dictionary {path} has no entry for pixel {key}",
                                    feature_name=self.name, missing_input=f"{path}: {key}")
        stored = json.loads(str(stimulus_data["config"].attrs["config_json"]))
        layout = StimulusConfig.from_dict(stored).trial_configs[movie]
        k = np.arange(n_trials) % layout.repeat
        index = k[:, None] * len(DIRECTION_LIST) + np.arange(len(DIRECTION_LIST))[None, :]
        trial_first = (layout.start_frame + k * layout.trial_length_frame)[:, None]
        on = np.asarray(timing["on_peak_location"], dtype=np.int64)[index] - trial_first
        off = np.asarray(timing["off_peak_location"], dtype=np.int64)[index] - trial_first
        return on, off

    @staticmethod
    def _rates(trials: list[np.ndarray], windows_us: np.ndarray) -> np.ndarray:
        """(n_trials, 8) rates of each trial's spikes in its (n_trials, 8, 2) windows."""
        out = np.zeros(windows_us.shape[:2])
        for k, s in enumerate(trials):
            lo = np.searchsorted(s, windows_us[k, :, 0], side="left")
            hi = np.searchsorted(s, windows_us[k, :, 1], side="left")
            out[k] = (hi - lo) / ((windows_us[k, :, 1] - windows_us[k, :, 0]) / 1e6)
        return out
