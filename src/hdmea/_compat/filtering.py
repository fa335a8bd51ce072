"""Filters and firing rates at the original pipeline's import path.

The high-pass filters are zero-phase Butterworth filters along the first (time)
axis of a (samples, ...) array, returned as float32 (the ``_legacy`` variant:
float64, transfer-function coefficients, as the lab's first scripts).  The
streaming electrical-image step filters chunk by chunk on its own
(:mod:`hdmea.steps.eimage`); these functions filter an array held in memory.
Spike times here are in microseconds, as the original's firing-rate helpers took them.
"""

from __future__ import annotations

import logging

import numpy as np

from hdmea.io.lab_series import firing_rate

from hdmea.errors import ConfigError

__all__ = [
    "apply_highpass_filter_3d",
    "apply_highpass_filter_3d_simple",
    "apply_highpass_filter_3d_legacy",
    "compute_firing_rate",
    "smooth_signal",
    "filter_by_firing_rate",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())


def _check_filter(cutoff_hz: float, sampling_rate: float, filter_order: int) -> float:
    if not cutoff_hz > 0:
        raise ConfigError("cutoff_hz must be positive", found=str(cutoff_hz))
    if int(filter_order) < 1:
        raise ConfigError("filter_order must be >= 1", found=str(filter_order))
    nyquist = 0.5 * float(sampling_rate)
    if cutoff_hz >= nyquist:
        raise ConfigError(f"cutoff_hz must be less than Nyquist ({nyquist} Hz)", found=f"{cutoff_hz} Hz")
    return float(cutoff_hz) / nyquist


def _highpass(data: np.ndarray, cutoff_hz, sampling_rate, filter_order, *, form: str, dtype) -> np.ndarray:
    from scipy.signal import butter, filtfilt, sosfiltfilt

    wn = _check_filter(cutoff_hz, sampling_rate, filter_order)
    data = np.asarray(data)
    if form == "sos":
        sos = butter(int(filter_order), wn, btype="high", output="sos")
        out = sosfiltfilt(sos, data.astype(dtype, copy=False), axis=0)
    else:
        b, a = butter(int(filter_order), wn, btype="high", output="ba")
        out = filtfilt(b, a, data.astype(np.float64, copy=False), axis=0)
    return out.astype(dtype, copy=False)


def apply_highpass_filter_3d(
    sensor_data: np.ndarray,
    cutoff_hz: float,
    sampling_rate: float,
    filter_order: int = 2,
    n_workers: int = 4,
    chunk_size: int = 256,
    show_progress: bool = True,
) -> np.ndarray:
    """Zero-phase high-pass of (samples, rows, cols) data along time; float32 of the same shape.

    Electrodes are filtered in blocks of ``chunk_size`` on up to ``n_workers``
    threads (scipy releases the GIL); ``show_progress`` is accepted for the
    original's signature (progress is logged at DEBUG).
    """
    _check_filter(cutoff_hz, sampling_rate, filter_order)
    data = np.asarray(sensor_data)
    shape = data.shape
    flat = data.reshape(shape[0], -1) if data.ndim > 1 else data.reshape(-1, 1)
    n = flat.shape[1]
    chunk = max(int(chunk_size), 1)
    out = np.empty(flat.shape, dtype=np.float32)
    starts = range(0, n, chunk)

    def run(start: int) -> None:
        out[:, start:start + chunk] = _highpass(flat[:, start:start + chunk], cutoff_hz, sampling_rate,
                                                filter_order, form="sos", dtype=np.float32)

    if int(n_workers) <= 1 or n <= chunk:
        for start in starts:
            run(start)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=int(n_workers)) as pool:
            list(pool.map(run, starts))
    logger.debug("high-pass %.1f Hz (order %d) over %d electrodes", cutoff_hz, filter_order, n)
    return out.reshape(shape)


def apply_highpass_filter_3d_simple(sensor_data, cutoff_hz: float, sampling_rate: float,
                                    filter_order: int = 2) -> np.ndarray:
    """The same filter in one call over the whole array (float32)."""
    return _highpass(sensor_data, cutoff_hz, sampling_rate, filter_order, form="sos", dtype=np.float32)


def apply_highpass_filter_3d_legacy(sensor_data, cutoff_hz: float, sampling_rate: float, filter_order: int = 2,
                                    show_progress: bool = True) -> np.ndarray:
    """The filter as the lab's first scripts ran it: (b, a) coefficients, float64 result."""
    return _highpass(sensor_data, cutoff_hz, sampling_rate, filter_order, form="ba", dtype=np.float64)


def compute_firing_rate(spike_times: np.ndarray, duration_us: float, bin_rate_hz: float = 10) -> np.ndarray:
    """Firing rate (Hz, float32) in bins of ``1 / bin_rate_hz`` s from 0 to ``duration_us`` (see
    :func:`hdmea.io.lab_series.firing_rate`, which the loader uses for ``firing_rate_10hz``)."""
    return firing_rate(spike_times, duration_us, bin_rate_hz)


def smooth_signal(signal: np.ndarray, window_size: int = 5, method: str = "gaussian") -> np.ndarray:
    """Moving-window smoothing (``"gaussian"`` over +-2 sigma, ``"boxcar"``, ``"triangular"``), same length and dtype.

    A signal shorter than the window is returned as it is.
    """
    signal = np.asarray(signal)
    window_size = int(window_size)
    if signal.size < window_size or window_size < 1:
        return signal
    if method == "boxcar":
        kernel = np.ones(window_size)
    elif method == "triangular":
        half = window_size // 2
        kernel = np.concatenate([np.arange(1, half + 1), np.arange(half, 0, -1)]).astype(np.float64)
    elif method == "gaussian":
        kernel = np.exp(-np.linspace(-2.0, 2.0, window_size) ** 2)
    else:
        raise ConfigError(f"unknown smoothing method {method!r}", expected="gaussian, boxcar or triangular")
    kernel = kernel / kernel.sum()
    return np.convolve(signal, kernel, mode="same").astype(signal.dtype)


def filter_by_firing_rate(spike_times: np.ndarray, duration_us: float, min_rate_hz: float = 0.1,
                          max_rate_hz: float = 100.0) -> bool:
    """Whether the mean rate (spikes per second over ``duration_us``) lies within [min, max]."""
    n = len(spike_times)
    if n == 0 or not duration_us > 0:
        return False
    rate = n / (float(duration_us) / 1e6)
    return bool(min_rate_hz <= rate <= max_rate_hz)
