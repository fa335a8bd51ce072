"""``step_up_5s_5i_3x``: ON and OFF responses of a unit to a full-field light step.

Time zero is the start of each trial of the movie (``config["movie"]``,
default ``step_up_5s_5i_3x``) when the unit has it sectioned; the light goes on
at display frame ``on_frame`` (default 60) and off at ``off_frame`` (default
360) of a 600-frame trial, scaled to the trial's length, converted to time with
the recording's display-frame period.  Without sectioned trials, time zero is
the recording's start and the light goes on at 5 s and off at 10 s (the lab
pipeline's fixed times).  ``stim_onset_us`` / ``stim_offset_us`` in the config
set both times explicitly (relative to the trial's start when there are trials).

Windows (``transient_window_us`` T = 500 ms, ``sustained_window_us`` S = 4 s,
``baseline_window_us`` B = 4 s), each cut at time zero and at the trial's end:
baseline ``[on - B, on)``, ON transient ``[on, on + T)``, ON sustained
``[on + T, off)``, OFF transient ``[off, off + T)``, OFF sustained
``[off + T, off + T + S)``.  A rate is the spikes of every trial in a window
divided by the trials times the window's length.  A response is flagged when
its transient rate exceeds ``threshold_factor`` (2) times the baseline rate;
``on_off_ratio = (on - off) / (on + off)`` of the transient rates; a latency is
the mean over trials of the first spike within the transient window (ms, NaN
when no trial has one); ``response_quality = min(1, (max transient - baseline)
/ (baseline + 1) / 10)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hdmea.features.extractors import STEP_TRIAL_FRAMES, STEP_WINDOWS
from hdmea.features.registry import FeatureRegistry
from h5stream.kernels.windows import segment_windows
from hdmea.features.base import FeatureRows, StoredGroup
from hdmea.features.trials import (MovieFeatureExtractor, UnitsTrials, frame_period_us, movie_trials, spike_times_us,
                                   staged_units_trials, stored_rate, units_movie_trials)

__all__ = ["StepUpFeatureExtractor", "step_up_responses"]

# The light step's layout is the one of the function-style step response (hdmea.features.extractors): the
# light goes on where its ON transient starts and off where its OFF transient starts.
ON_FRAME = STEP_WINDOWS["on_transient"][0]
OFF_FRAME = STEP_WINDOWS["off_transient"][0]


def step_up_responses(trials: list[np.ndarray], *, onset: float, offset: float, transient: float,
                      sustained: float, baseline: float, threshold_factor: float = 2.0,
                      trial_end: float | None = None) -> dict[str, Any]:
    """The step-response features of spike times (us, one array per trial of one dtype, time zero at the
    trial's start).  Naive twin: ``tests.reference.step_up_responses_naive``."""
    values = np.concatenate(trials) if trials else np.empty(0)
    offsets = np.zeros(len(trials) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([s.size for s in trials], dtype=np.int64)
    return _step_up_ragged(values, offsets, onset=onset, offset=offset, transient=transient, sustained=sustained,
                           baseline=baseline, threshold_factor=threshold_factor, trial_end=trial_end)


def _rate(values: np.ndarray, n_trials: int, lo: float, hi: float) -> float:
    if hi <= lo or not n_trials:
        return 0.0
    return int(np.count_nonzero((values >= lo) & (values < hi))) / (n_trials * (hi - lo) / 1e6)


def _rates(values: np.ndarray, n_trials: int, windows) -> list[float]:
    """:func:`_rate` of each ``(lo, hi)`` window, from one search of ``values``: the count in ``[lo, hi)``
    is the count below ``hi`` less the count below ``lo``, and the counts below every edge come from one
    search of each value among the sorted edges (the number of edges at or below it) and their histogram."""
    edges = np.unique(np.array([x for window in windows for x in window], dtype=np.float64))
    if np.isnan(edges).any():  # a window of no number: each counted as it is (no spike lies in it)
        return [_rate(values, n_trials, lo, hi) for lo, hi in windows]
    # the values under edges[j]: those with at most j edges at or below them
    below = np.cumsum(np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1))
    at = dict(zip(edges.tolist(), below[:edges.size].tolist()))
    out = []
    for lo, hi in windows:
        if hi <= lo or not n_trials:
            out.append(0.0)
        else:
            out.append((at[hi] - at[lo]) / (n_trials * (hi - lo) / 1e6))
    return out


def _latency_ms(values: np.ndarray, offsets: np.ndarray, event: float, window: float) -> float:
    # The first spike of each trial inside [event, event + window): a minimum per trial over the spikes
    # inside (the others +inf), skipping empty trials, whose start would fall on the next trial's.
    inside = np.where((values >= event) & (values < event + window), values, np.inf)
    starts = offsets[:-1][offsets[1:] > offsets[:-1]]
    if not starts.size:
        return float("nan")
    firsts = np.minimum.reduceat(inside, starts).astype(np.float64)
    firsts = firsts[firsts != np.inf]
    # np.mean's own sum and division, without its checks (the same value)
    return float(np.add.reduce((firsts - event) / 1000.0) / firsts.size) if firsts.size else float("nan")


def _windows(onset: float, offset: float, transient: float, sustained: float, baseline: float,
             trial_end: float | None) -> tuple:
    """The (lo, hi) windows: baseline, ON transient, ON sustained, OFF transient, OFF sustained."""
    end = float("inf") if trial_end is None else float(trial_end)
    return ((max(0.0, onset - baseline), onset), (onset, min(onset + transient, end)),
            (onset + transient, min(offset, end)), (offset, min(offset + transient, end)),
            (offset + transient, min(offset + transient + sustained, end)))


def _step_up_ragged(values: np.ndarray, offsets: np.ndarray, *, onset: float, offset: float, transient: float,
                    sustained: float, baseline: float, threshold_factor: float,
                    trial_end: float | None) -> dict[str, Any]:
    """:func:`step_up_responses` of the trials ``values[offsets[k]:offsets[k + 1]]`` (``offsets`` from 0 to
    ``values.size``, non-decreasing): each window's spikes counted over all trials at once."""
    n_trials = offsets.size - 1
    windows = _windows(onset, offset, transient, sustained, baseline, trial_end)
    rates = _rates(values, n_trials, windows)
    return _responses(*rates, _latency_ms(values, offsets, onset, transient),
                      _latency_ms(values, offsets, offset, transient), threshold_factor)


#: the features of a unit, in the order :func:`_responses` gives them
RESPONSE_KEYS = ("on_response_flag", "off_response_flag", "on_peak_value", "off_peak_value", "on_sustained_response",
                 "off_sustained_response", "response_quality", "on_latency_ms", "off_latency_ms", "on_off_ratio",
                 "baseline_rate")


def _response_rows(rates: np.ndarray, latencies: np.ndarray, threshold_factor: float) -> zip:
    """The features of many units, one tuple of :data:`RESPONSE_KEYS`' values per unit (Python bools and
    floats), from each unit's window rates ``rates`` (n, 5: baseline, ON transient, ON sustained, OFF transient,
    OFF sustained) and latencies ``latencies`` (n, 2: ON, OFF), every feature computed for all units at once with
    the double arithmetic of Python floats (``max(a, b)``: b where b > a; ``min(1.0, q)``: q where q < 1)."""
    baseline, on, on_sustained, off, off_sustained = (np.asarray(rates, dtype=np.float64).reshape(-1, 5).T)
    latencies = np.asarray(latencies, dtype=np.float64).reshape(-1, 2)
    total = on + off
    largest = np.where(off > on, off, on)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        quality = (largest - baseline) / (baseline + 1) / 10
        ratio = (on - off) / total
    quality = np.where(largest > 0, np.where(quality < 1.0, quality, 1.0), 0.0)
    ratio = np.where(total > 0, ratio, 0.0)
    level = baseline * threshold_factor
    return zip((on > level).tolist(), (off > level).tolist(), on.tolist(), off.tolist(), on_sustained.tolist(),
               off_sustained.tolist(), quality.tolist(), latencies[:, 0].tolist(), latencies[:, 1].tolist(),
               ratio.tolist(), baseline.tolist())


def _responses(baseline_rate: float, on_transient: float, on_sustained: float, off_transient: float,
               off_sustained: float, on_latency: float, off_latency: float, threshold_factor: float) -> dict[str, Any]:
    """The features from the window rates and latencies of one unit (:func:`_response_rows` of one)."""
    row, = _response_rows(np.array([baseline_rate, on_transient, on_sustained, off_transient, off_sustained]),
                          np.array([on_latency, off_latency]), threshold_factor)
    return dict(zip(RESPONSE_KEYS, row))


def _units_responses(trials: UnitsTrials, events, *, transient: float, sustained: float, baseline: float,
                     threshold_factor: float) -> FeatureRows:
    """The features of every unit of ``trials`` (each with trials), as :func:`_step_up_ragged` gives each
    unit's: ``events(length)`` gives (onset, offset) for a unit whose shortest trial lasts ``length`` us.  One
    pass of the compiled kernel over all units' spikes counts each unit's windows and finds each trial's
    first spike after the onset and the offset (:func:`h5stream.kernels.windows.segment_windows`)."""
    n_units = len(trials.units)
    if not n_units:
        return FeatureRows(RESPONSE_KEYS, {})
    lengths = np.minimum.reduceat(trials.lengths_us, trials.unit_trials[:-1])
    # each distinct shortest trial's windows and events (one length, mostly), then every unit's by its length's
    distinct, which = np.unique(lengths, return_inverse=True)
    windows, events_of = [], []
    for length in distinct.tolist():
        onset, offset = events(length)
        windows.append(_windows(onset, offset, transient, sustained, baseline, length))
        events_of.append(((onset, onset + transient), (offset, offset + transient)))
    windows_array = np.array(windows, dtype=np.float64)[which]
    events_array = np.array(events_of, dtype=np.float64)[which]
    found = segment_windows(trials.spikes, trials.offsets, trials.starts, trials.scale, trials.unit_trials,
                            windows_array, events_array, row_ends=trials.ends)
    n_trials = np.diff(trials.unit_trials)[:, None]
    lo, hi = windows_array[..., 0], windows_array[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):  # (windows of no length: 0, as _rates gives them)
        rates = np.where(hi <= lo, 0.0, found.counts / (n_trials * (hi - lo) / 1e6))
    return FeatureRows(RESPONSE_KEYS, dict(zip(trials.units, _response_rows(rates, found.mean_first,
                                                                           threshold_factor))))


#: units whose trials one pass of :meth:`StepUpFeatureExtractor.extract_units` holds at a time
UNITS_PER_PASS = 256


@FeatureRegistry.register("step_up_5s_5i_3x")
class StepUpFeatureExtractor(MovieFeatureExtractor):
    """ON/OFF responses to a light step, averaged over the step movie's trials."""

    version = "1.0.0"
    description = "ON/OFF response features for step-up intensity stimulus"
    output_schema = {
        "on_response_flag": {"dtype": "bool", "description": "Significant ON response detected"},
        "off_response_flag": {"dtype": "bool", "description": "Significant OFF response detected"},
        "on_peak_value": {"dtype": "float64", "unit": "spikes/s", "description": "ON transient rate"},
        "off_peak_value": {"dtype": "float64", "unit": "spikes/s", "description": "OFF transient rate"},
        "on_sustained_response": {"dtype": "float64", "unit": "spikes/s", "description": "Sustained rate after ON"},
        "off_sustained_response": {"dtype": "float64", "unit": "spikes/s", "description": "Sustained rate after OFF"},
        "response_quality": {"dtype": "float64", "unit": "dimensionless", "description": "Quality metric"},
        "on_latency_ms": {"dtype": "float64", "unit": "ms", "description": "Latency to the first ON spike"},
        "off_latency_ms": {"dtype": "float64", "unit": "ms", "description": "Latency to the first OFF spike"},
        "on_off_ratio": {"dtype": "float64", "unit": "dimensionless", "description": "ON/OFF balance [-1,1]"},
        "baseline_rate": {"dtype": "float64", "unit": "spikes/s", "description": "Rate before the light goes on"},
    }

    DEFAULT_STIM_ONSET_US = 5_000_000
    DEFAULT_STIM_OFFSET_US = 10_000_000
    DEFAULT_TRANSIENT_WINDOW_US = 500_000
    DEFAULT_SUSTAINED_WINDOW_US = 4_000_000
    DEFAULT_BASELINE_WINDOW_US = 4_000_000

    def _windows(self, config: dict[str, Any]) -> dict[str, float]:
        return dict(
            transient=float(config.get("transient_window_us", self.DEFAULT_TRANSIENT_WINDOW_US)),
            sustained=float(config.get("sustained_window_us", self.DEFAULT_SUSTAINED_WINDOW_US)),
            baseline=float(config.get("baseline_window_us", self.DEFAULT_BASELINE_WINDOW_US)),
            threshold_factor=float(config.get("threshold_factor", 2.0)),
        )

    @staticmethod
    def _events(config: dict[str, Any], length: float, period: float) -> tuple[float, float]:
        """(onset, offset) in a movie whose shortest trial lasts ``length`` us, display frames of ``period`` us."""
        scale = length / (STEP_TRIAL_FRAMES * period)
        onset = config.get("stim_onset_us", config.get("on_frame", ON_FRAME) * scale * period)
        offset = config.get("stim_offset_us", config.get("off_frame", OFF_FRAME) * scale * period)
        return float(onset), float(offset)

    def extract(self, unit_data, stimulus_data, config=None, metadata=None) -> dict[str, Any]:
        config = self.merged_config(config)
        windows = self._windows(config)
        trials = movie_trials(unit_data, stimulus_data, metadata, self.movie(config))
        if trials is not None and trials.n_trials and trials.frame_period_us:
            length = float(np.min(trials.lengths_us))
            onset, offset = self._events(config, length, trials.frame_period_us)
            return _step_up_ragged(trials.values, trials.offsets, onset=onset, offset=offset,
                                   trial_end=length, **windows)
        spikes = spike_times_us(unit_data, metadata)
        if spikes.size == 0:
            return self._empty_result()
        return step_up_responses(
            [spikes], onset=float(config.get("stim_onset_us", self.DEFAULT_STIM_ONSET_US)),
            offset=float(config.get("stim_offset_us", self.DEFAULT_STIM_OFFSET_US)), **windows)

    def extract_units(self, target, unit_ids, config=None) -> Mapping[str, dict[str, Any]]:
        """:meth:`extract` of many units of a step's ``target`` at once (``extract_features`` calls it):
        ``{unit id: features}`` of the units with sectioned trials of the movie, equal to what :meth:`extract`
        gives each; the others are left out (their :meth:`extract` then runs alone).  Every unit's windows are
        counted in one pass over all units' trials, ``UNITS_PER_PASS`` units at a time (all at once from the
        trials a session's sectioning kept together, :func:`~hdmea.features.trials.staged_units_trials`)."""
        config = self.merged_config(config)
        unit_ids = list(unit_ids)
        if not unit_ids:
            return {}
        try:
            windows = self._windows(config)
            metadata = StoredGroup(target, "metadata", memo=True)
            rate = stored_rate(StoredGroup(target, f"units/{unit_ids[0]}"), metadata)
            period = frame_period_us(StoredGroup(target, "stimulus", memo=True), rate)
            if not period:
                return {}
            self._events(config, 1.0, period)  # parameters that are no number: each unit's extract tells
        except (KeyError, TypeError, ValueError):
            return {}
        movie = self.movie(config)
        staged = staged_units_trials(target, unit_ids, movie, rate)
        passes = [staged] if staged is not None else (
            units_movie_trials(target, unit_ids[first:first + UNITS_PER_PASS], movie, rate)
            for first in range(0, len(unit_ids), UNITS_PER_PASS))
        rows: dict[str, tuple] = {}
        for trials in passes:
            rows.update(_units_responses(trials, lambda length: self._events(config, length, period), **windows).rows)
        return FeatureRows(RESPONSE_KEYS, rows)

    @staticmethod
    def _empty_result() -> dict[str, Any]:
        return {"on_response_flag": False, "off_response_flag": False, "on_peak_value": 0.0, "off_peak_value": 0.0,
                "on_sustained_response": 0.0, "off_sustained_response": 0.0, "response_quality": 0.0,
                "on_latency_ms": float("nan"), "off_latency_ms": float("nan"), "on_off_ratio": 0.0,
                "baseline_rate": 0.0}
