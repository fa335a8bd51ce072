"""Built-in feature extractors (registered on import).

``firing_rate``
    Spike counts per display frame (60 Hz on the lab's display) of every trial of
    a movie, as rates in Hz, and their mean over trials.
``step_response``
    ON/OFF measures of a light step from the frame-aligned rates averaged over
    trials, in the lab's windows (frames of a 600-frame trial: baseline 0-60, ON
    transient 60-120, ON sustained 239-299, OFF transient 360-420, OFF sustained
    539-599; scaled to the trial's length when it differs).
``receptive_field``
    Centre, size and polarity of the receptive field from a unit's STA.
"""

from __future__ import annotations


import numpy as np

from h5stream.kernels.bins import ragged_histograms
from hdmea.features.inputs import RecordingInputs, UnitInputs, frame_period, trial_frame_edges
from hdmea.features.registry import register_extractor
from hdmea.io.layout_names import sta_dataset

__all__ = ["UnitInputs", "RecordingInputs", "STEP_WINDOWS", "frame_aligned_rates", "frame_period",
           "trial_frame_edges", "step_measures", "receptive_field_measures"]

#: The lab's step-response windows, [start, end) display frames of a 600-frame trial.
STEP_WINDOWS: dict[str, tuple[int, int]] = {
    "baseline": (0, 60),
    "on_transient": (60, 120),
    "on_sustained": (239, 299),
    "off_transient": (360, 420),
    "off_sustained": (539, 599),
}
STEP_TRIAL_FRAMES = 600


def _bin_counts(spike_times: np.ndarray, offsets: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Spikes of trial k (``spike_times[offsets[k]:offsets[k + 1]]``) per bin of ``edges[k]``, as np.histogram
    counts them: bins [e_j, e_j+1), the last one closed, [e_n-1, e_n] (one merge per sorted trial)."""
    if offsets.size < edges.shape[0] + 1:
        raise ValueError(f"trial offsets: expected {edges.shape[0] + 1} (one more than the trials), "
                         f"found {offsets.size}")
    return ragged_histograms(spike_times, offsets[: edges.shape[0] + 1], edges)


def frame_aligned_rates(spike_times, trial_offsets, trial_bounds, frame_times, sampling_rate,
                        period: float | None = None, edges: np.ndarray | None = None):
    """Rates (Hz) per display frame of every trial, (n_trials, n_frames) float64.

    The frames are those of :func:`trial_frame_edges` (``edges`` when the caller
    has them: they are the same for every unit of a movie; ``period`` otherwise
    helps build them).
    """
    spike_times = np.asarray(spike_times, dtype=np.int64)
    offsets = np.asarray(trial_offsets, dtype=np.int64)
    if edges is None:
        edges = trial_frame_edges(trial_bounds, frame_times, period)
    if edges.shape[0] == 0 or edges.shape[1] < 2:
        return np.zeros((edges.shape[0], 0))
    counts = _bin_counts(spike_times, offsets, edges)
    return counts / (np.diff(edges, axis=1) / sampling_rate)


@register_extractor(
    "firing_rate",
    version="1",
    requires=("units/{unit}/spike_times_sectioned/{movie}", "stimulus/frame_time/{frame_time}"),
    defaults={"movie": None, "frame_time": "default"},
    output_name="firing_rate_{movie}",
)
def firing_rate(inputs: UnitInputs, *, movie: str, frame_time: str) -> dict:
    """Frame-aligned firing rate of every trial of a movie, and its mean over trials."""
    sec = inputs.get(f"spike_times_sectioned/{movie}")
    frame_times = inputs.recording.frame_times(frame_time)
    period = inputs.recording.frame_period(frame_time)
    fs = inputs.recording.sampling_rate()
    rates = frame_aligned_rates(sec["spike_times"], sec["trial_offsets"], sec["trial_bounds"], frame_times, fs,
                                edges=inputs.recording.trial_edges(frame_time, sec["trial_bounds"]))
    mean = rates.mean(axis=0) if rates.shape[0] else np.zeros(rates.shape[1])
    return {
        "rate_hz": rates.astype(np.float32),
        "mean_rate_hz": mean.astype(np.float32),
        "n_trials": int(rates.shape[0]),
        "n_frames": int(rates.shape[1]),
        "display_rate_hz": float(fs / np.float64(period)) if frame_times.size > 1 else 0.0,
    }


def _scaled_windows(n_frames: int, windows: dict, reference_frames: int) -> dict[str, tuple[int, int]]:
    scale = n_frames / reference_frames
    out = {}
    for key, (a, b) in windows.items():
        lo = int(round(a * scale))
        hi = max(lo + 1, int(round(b * scale)))
        out[key] = (min(lo, n_frames - 1), min(hi, n_frames))
    return out


def step_measures(mean_rate: np.ndarray, windows: dict | None = None,
                  reference_frames: int = STEP_TRIAL_FRAMES) -> dict:
    """ON/OFF measures of a trial-averaged, frame-aligned rate (see the module docstring).

    ``on_response`` is the ON transient above the baseline (light off before the
    step); ``off_response`` the OFF transient above the ON sustained rate (the rate
    just before the light went off).  ``on_off_index = (on - off) / (|on| + |off|)``
    is positive for ON units and negative for OFF units.
    """
    mean_rate = np.asarray(mean_rate, dtype=np.float64)
    if mean_rate.size == 0:
        raise ValueError("step_measures: expected a non-empty rate curve (found no frames)")
    win = _scaled_windows(mean_rate.size, dict(windows or STEP_WINDOWS), reference_frames)
    level = {key: float(mean_rate[a:b].mean()) for key, (a, b) in win.items()}
    on = level["on_transient"] - level["baseline"]
    off = level["off_transient"] - level["on_sustained"]
    denom = abs(on) + abs(off)
    index = (on - off) / denom if denom > 0 else 0.0

    def transience(peak, sustained):
        total = peak + sustained
        return (peak - sustained) / total if total > 0 else 0.0

    out = {f"{key}_hz": value for key, value in level.items()}
    out.update(
        on_response_hz=on,
        off_response_hz=off,
        on_off_index=float(index),
        polarity="on" if index > 0 else ("off" if index < 0 else "none"),
        on_transience=transience(level["on_transient"], level["on_sustained"]),
        off_transience=transience(level["off_transient"], level["off_sustained"]),
        windows_frames=np.array([win[k] for k in STEP_WINDOWS if k in win], dtype=np.int64),
    )
    return out


@register_extractor(
    "step_response",
    version="1",
    requires=("units/{unit}/spike_times_sectioned/{movie}", "stimulus/frame_time/{frame_time}"),
    defaults={"movie": None, "frame_time": "default", "reference_trial_frames": STEP_TRIAL_FRAMES},
    output_name="step_response_{movie}",
)
def step_response(inputs: UnitInputs, *, movie: str, frame_time: str, reference_trial_frames: int) -> dict:
    """ON/OFF step-response measures from the trial-averaged frame-aligned rate."""
    rates = firing_rate(inputs, movie=movie, frame_time=frame_time)
    if rates["n_frames"] == 0:
        raise ValueError(f"unit {inputs.unit_id}: movie {movie!r} has no whole display frame in its trials")
    return step_measures(rates["mean_rate_hz"], reference_frames=int(reference_trial_frames))


#: A lobe of the centre's time course counts when its peak reaches this fraction of the largest lobe's.
RF_LOBE_FRACTION = 0.5


def _lobes(course: np.ndarray) -> list[tuple[int, int, float]]:
    """(start, stop, peak value) of every run of one sign in ``course`` (zeros end a run), in order."""
    signs = np.sign(course)
    out = []
    start = 0
    for i in range(1, course.size + 1):
        if i == course.size or signs[i] != signs[start]:
            if signs[start] != 0:
                j = start + int(np.argmax(np.abs(course[start:i])))
                out.append((start, i, float(course[j])))
            start = i
    return out


def receptive_field_measures(sta: np.ndarray, *, first_lag: int = 1, threshold: float = 0.5,
                             lobe_fraction: float = RF_LOBE_FRACTION) -> dict:
    """Centre, size and polarity of the receptive field in an STA (lags, h, w), oldest lag first.

    The rule, on the deviation from the STA's mean:

    1. Spatial centre: the pixel of largest magnitude (any lag) and, at its lag,
       the pixels reaching ``threshold`` of it with its sign.
    2. The centre's time course: the mean of those pixels' time courses,
       weighted by their deviation at that lag (``temporal_profile``), smoothed
       with the 3-frame kernel (1, 2, 1) / 4.
    3. Lobes: the runs of one sign of the smoothed course, each with its peak.
       The chosen lobe is the one closest to the spike among the lobes whose
       peak reaches ``lobe_fraction`` (default 0.5) of the largest lobe's peak.
       Its sign is the polarity (+1: ON, brighter checks precede spikes; -1:
       OFF).
    4. Peak: within the chosen lobe's frames, the frame of the STA's largest
       deviation with the polarity's sign (any pixel; unsmoothed).  Its lag is
       ``peak_lag_frames``: display frames between the STA frame and the
       spike's frame (index ``k`` is lag ``first_lag + n_lags - 1 - k``; 1 = the
       frame before the spike's).  When the chosen lobe holds the STA's largest
       deviation, this is that deviation's frame.

    A biphasic filter thus reports its first lobe even when the later, opposite
    lobe of the STA is larger (the noise's frame hold blurs a narrow first lobe
    more than a wide second one).  At the chosen lag, pixels reaching
    ``threshold`` of the strongest pixel with the polarity's sign form the
    centre: their weighted centroid is the centre (row, col in checks, 0-based),
    ``sigma_checks`` the root-mean-square distance from it, ``radius_checks`` the
    radius of a disc of the same area.  ``peak_value`` is that strongest pixel's
    deviation, ``peak_z`` its magnitude over the STA's robust spread (1.4826 MAD).
    """
    sta = np.asarray(sta, dtype=np.float64)
    n_lags = sta.shape[0]
    dev = sta - sta.mean()
    if not np.any(dev) or not np.isfinite(dev).any():  # no deviation, or all NaN: no spike was averaged
        nan = float("nan")
        return dict(polarity=0, polarity_label="none", centre_row=nan, centre_col=nan, sigma_checks=nan,
                    radius_checks=nan, peak_lag_frames=-1, peak_value=0.0, peak_z=0.0,
                    temporal_profile=np.zeros(n_lags, np.float32), spatial_map=np.zeros(sta.shape[1:], np.float32))
    k0, y0, x0 = np.unravel_index(np.argmax(np.abs(dev)), dev.shape)
    strongest = dev[k0] * np.sign(dev[k0, y0, x0])
    centre_weights = np.where(strongest >= threshold * strongest[y0, x0], strongest, 0.0)
    course = np.tensordot(dev, centre_weights, axes=([1, 2], [0, 1])) / centre_weights.sum()
    smooth = np.convolve(np.pad(course, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    lobes = _lobes(smooth) or _lobes(course)  # the raw course has a lobe at the strongest pixel's lag
    largest = max(abs(v) for _, _, v in lobes)
    # oldest first: the last qualifying lobe is the one closest to the spike
    start, stop, value = [lobe for lobe in lobes if abs(lobe[2]) >= lobe_fraction * largest][-1]
    polarity = 1 if value > 0 else -1
    k = start + int(np.argmax((dev[start:stop] * polarity).reshape(stop - start, -1).max(axis=1)))
    spatial = dev[k] * polarity
    y, x = np.unravel_index(np.argmax(spatial), spatial.shape)
    peak = spatial[y, x]
    mask = spatial >= threshold * peak
    weights = np.where(mask, spatial, 0.0)
    rows, cols = np.indices(spatial.shape)
    total = weights.sum()
    cy = float((weights * rows).sum() / total)
    cx = float((weights * cols).sum() / total)
    sigma = float(np.sqrt((weights * ((rows - cy) ** 2 + (cols - cx) ** 2)).sum() / total / 2.0))
    mad = float(np.median(np.abs(dev - np.median(dev)))) * 1.4826
    return dict(
        polarity=int(polarity),
        polarity_label="on" if polarity > 0 else "off",
        centre_row=cy,
        centre_col=cx,
        sigma_checks=sigma,
        radius_checks=float(np.sqrt(mask.sum() / np.pi)),
        peak_lag_frames=int(first_lag + (n_lags - 1 - k)),
        peak_value=float(dev[k, y, x]),
        peak_z=float(abs(dev[k, y, x]) / mad) if mad > 0 else float("inf"),
        temporal_profile=course.astype(np.float32),
        spatial_map=(dev[k]).astype(np.float32),
    )


@register_extractor(
    "receptive_field",
    version="2",
    requires=("units/{unit}/features/sta_{movie}",),
    defaults={"movie": None, "threshold": 0.5},
    output_name="rf_{movie}",
)
def receptive_field(inputs: UnitInputs, *, movie: str, threshold: float) -> dict:
    """Receptive-field centre, size and polarity from the unit's STA of a noise movie."""
    feature = inputs.get(f"features/sta_{movie}")
    attrs = inputs.attrs(f"features/sta_{movie}")
    first_lag = int(_scalar(attrs.get("first_lag", 1)))
    out = receptive_field_measures(feature[sta_dataset(feature)], first_lag=first_lag, threshold=float(threshold))
    out["n_spikes_used"] = int(_scalar(attrs.get("n_spikes_used", -1)))
    return out


def _scalar(value):
    # the store keeps numeric attributes as 1-element arrays
    return np.asarray(value).reshape(-1)[0].item()
