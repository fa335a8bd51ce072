"""Onsets in the light-reference signals: display frames from the frame-sync channel, stimulus onsets
from the photodiode channel (the signal processing of :mod:`hdmea.steps.section_time`).

Frame times: normalise the sync signal by its 99.9th percentile, take the
difference, and every peak above 0.1 is a frame timed at the first sample of its
rising edge.  Analog onsets: every rising crossing of a threshold, or every peak of
the sample-to-sample rise above it.
"""

from __future__ import annotations

import numpy as np

from hdmea.errors import ConfigError

__all__ = ["frame_times_from_sync", "percentile_as_float64", "peaks_above", "analog_section_times"]


def frame_times_from_sync(sync, *, drop_leading_peaks: int = 4, percentile: float = 99.9,
                          height: float = 0.1) -> np.ndarray:
    """Sample of every display frame's sync pulse (uint64), leading peaks dropped.

    The signal is scaled by its ``percentile`` percentile (as ``np.percentile`` of it in
    float64); every peak of the scaled signal's difference at or above ``height`` is a pulse
    (as :func:`peaks_above`), timed at the sample after the difference's peak.  A float32
    signal (the light reference as stored) is read as it is, in one compiled pass, with no
    float64 copy of it.
    """
    from h5stream.kernels.sync import sync_peaks

    sync = _native_float(np.asarray(sync))
    if sync.ndim != 1:
        raise ConfigError(f"the frame-sync signal must be 1-D, found shape {sync.shape}")
    if drop_leading_peaks < 0:
        raise ConfigError(f"drop_leading_peaks must be >= 0, found {drop_leading_peaks}")
    if sync.size < 2:
        return np.zeros(0, dtype=np.uint64)
    sync = np.ascontiguousarray(sync)
    scale = percentile_as_float64(sync, percentile)
    if not np.isfinite(scale) or scale <= 0:
        return np.zeros(0, dtype=np.uint64)
    peaks = sync_peaks(sync, scale, height)
    # diff[i] rises between samples i and i + 1: the pulse starts at i + 1.
    return (peaks[drop_leading_peaks:] + 1).astype(np.uint64)


def _native_float(x: np.ndarray) -> np.ndarray:
    """``x`` itself when the compiled sync pass reads it as it is (native float32 or float64), else as float64."""
    if x.dtype in (np.float32, np.float64) and x.dtype.isnative:
        return x
    return x.astype(np.float64)


def percentile_as_float64(x: np.ndarray, q: float) -> float:
    """``np.percentile(x.astype(np.float64), q)`` (method "linear") of a 1-d float32 or float64 ``x``.

    A float32 ``x`` is partitioned in float32, with no float64 copy: its values are float64
    values exactly and the conversion keeps their order, so the two order statistics the
    percentile interpolates between are the same; the interpolation is numpy's, in float64.
    """
    if x.dtype != np.float32:
        return float(np.percentile(x, q))
    q = float(np.true_divide(q, 100))
    if not 0.0 <= q <= 1.0:
        raise ConfigError(f"percentile must be in 0..100, found {q * 100}")
    n = x.size
    if n == 0:
        raise ConfigError("the percentile of an empty signal is not defined")
    virtual = (n - 1) * q
    if virtual >= n - 1:
        low = high = n - 1
    else:
        low = int(np.floor(virtual))
        high = low + 1
    a, b = _order_statistics(x, low, high)
    if np.isnan(a) or np.isnan(b):
        return float("nan")
    gamma = virtual - low if high != low else 0.0
    diff = b - a
    value = a + diff * gamma
    if gamma >= 0.5:
        value = b - diff * (1 - gamma)
    return value


def _order_statistics(x: np.ndarray, low: int, high: int) -> tuple[float, float]:
    """The ``low``-th and ``high``-th smallest of a 1-d float32 ``x`` (``low <= high``), as floats; NaN if x has NaN.

    Order statistics near the top (the 99.9th percentile's) are found among the samples at or
    above a threshold taken from a strided sample of ``x``: those samples are the top of the
    sorted ``x``, so when they are at least ``n - low`` the wanted ones are among them, found by
    partitioning a few thousand samples instead of the whole signal.  Otherwise (a low
    percentile, or a sample that missed) the whole signal is partitioned.
    """
    n = x.size
    top = np.max(x)  # NaN if x has any
    if np.isnan(top):
        return float("nan"), float("nan")
    if low == n - 1:
        return float(top), float(top)
    needed = n - low  # samples from the low-th smallest up
    step = max(1, n // 65536)
    if needed * 64 < n and step > 1:
        sample = x[::step]
        s = sample.size
        expected = s * needed / n  # sample points above the low-th smallest, on average
        k = s - 1 - int(expected + 4 * np.sqrt(expected) + 64)
        if k > 0:
            threshold = np.partition(sample, k)[k]
            candidates = x[x >= threshold]
            c = candidates.size
            if c >= needed:  # candidates are the top c of the sorted x
                part = np.partition(candidates, sorted({low - (n - c), high - (n - c)}))
                return float(part[low - (n - c)]), float(part[high - (n - c)])
    part = np.partition(x, sorted({low, high}))
    return float(part[low]), float(part[high])


def peaks_above(x, height: float) -> np.ndarray:
    """Indices of the local maxima of ``x`` whose value is at least ``height`` (int64, ascending).

    A maximum is a sample, or a flat run of equal samples, higher than the samples on both sides;
    a flat run counts once, at its middle (rounded down); the first and last samples never count.
    (As ``scipy.signal.find_peaks(x, height=height)``, written in numpy so that a fresh process
    does not import ``scipy.signal``, about two seconds.)
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n < 3:
        return np.zeros(0, dtype=np.int64)
    # A maximum's samples are all >= height, so only those samples are looked at: the memory taken is
    # that of the candidates, not several int64 copies of the whole signal (a 30-minute sync channel
    # at 20 kHz is 36 M samples).  Runs of equal candidates at consecutive samples are the flat runs;
    # a run's neighbours are either below height or of another value.
    cand = np.flatnonzero(x >= height)
    if cand.size == 0:
        return np.zeros(0, dtype=np.int64)
    values = x[cand]
    breaks = np.flatnonzero((cand[1:] != cand[:-1] + 1) | (values[1:] != values[:-1])) + 1
    starts = cand[np.concatenate([[0], breaks])]
    ends = cand[np.concatenate([breaks - 1, [cand.size - 1]])]
    inside = (starts >= 1) & (ends <= n - 2)
    starts, ends = starts[inside], ends[inside]
    higher = (x[starts - 1] < x[starts]) & (x[ends + 1] < x[ends])
    return ((starts[higher] + ends[higher]) // 2).astype(np.int64)


def analog_section_times(signal, threshold: float, duration_samples: int, *, detect: str = "level",
                         non_overlapping: bool = False) -> np.ndarray:
    """(n, 2) uint64 sections starting at each rising crossing of ``threshold``.

    ``detect="derivative"``: at each peak of the sample-to-sample rise above
    ``threshold`` instead, timed at the first sample after the rise.  Every onset
    starts a section, as in the original pipeline (sections may overlap);
    ``non_overlapping=True`` keeps an onset only when the previous kept section
    has ended.  A section ends ``duration_samples`` later, or at the signal's
    last sample.
    """
    signal = np.asarray(signal)
    if duration_samples <= 0:
        raise ConfigError(f"section duration must be positive, found {duration_samples} samples")
    if detect == "level":
        above = signal >= threshold
        onsets = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    elif detect == "derivative":
        if signal.ndim == 1:
            from h5stream.kernels.sync import sync_peaks

            # the compiled pass differences the signal as it goes (x / 1.0 is x): no float64 copy, no
            # difference array
            onsets = sync_peaks(np.ascontiguousarray(_native_float(signal)), 1.0, float(threshold)) + 1
        else:
            onsets = peaks_above(np.diff(signal.astype(np.float64)), threshold) + 1
    else:
        raise ConfigError(f"unknown onset detection {detect!r}", expected="'level' or 'derivative'")
    if onsets.size and non_overlapping:
        # A new section starts only after the previous one has ended.
        keep = [onsets[0]]
        for t in onsets[1:]:
            if t >= keep[-1] + duration_samples:
                keep.append(t)
        onsets = np.asarray(keep, dtype=np.int64)
    ends = np.minimum(onsets + duration_samples, signal.size - 1)
    return np.stack([onsets, ends], axis=1).astype(np.uint64).reshape(-1, 2)
