"""Series the original pipeline derives while loading, which the lab's analysis code reads from the file.

- ``stimulus/light_reference/{10hz,1khz}_ch{1,2}``: each light-reference channel averaged over blocks
  of ``fs / 10`` and ``fs / 1000`` samples (an incomplete last block dropped), float32;
- ``units/<unit>/firing_rate_10hz``: spikes per 100 ms bin from time 0, times 10 (Hz), float32; the
  original's ``load_recording`` ends it at the ``.cmcr``'s stated duration, its
  ``load_recording_with_eimage_sta`` one second after each unit's last spike (it reads no duration).

The lab's HTR agonist/antagonist scripts fall back silently without ``firing_rate_10hz``; plots read the
light reference at 10 Hz and 1 kHz.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["block_mean", "block_means", "firing_rate", "light_reference_series", "firing_rate_10hz", "FIRING_RATE_UNTIL"]

#: Where ``load_recording`` may end each unit's ``firing_rate_10hz`` (its ``firing_rate_until``): at the
#: recording's stated duration, or one second after the unit's last spike.
FIRING_RATE_UNTIL = ("recording", "last_spike")


def block_mean(data, factor: int) -> np.ndarray:
    """Means of consecutive blocks of ``factor`` samples (an incomplete last block is dropped), float32."""
    return block_means(data, (factor,))[0]


#: float64 samples converted at a time by :func:`block_means` (1 MiB: the piece stays in a core's L2 cache while
#: each factor's means are taken from it)
_PIECE = 2**17


def block_means(data, factors) -> list[np.ndarray]:
    """:func:`block_mean` of ``data`` for each of ``factors``, in order: each block's float64 mean as float32.

    The samples are converted to float64 once, a piece at a time, for every factor (pieces a whole number of
    every factor's blocks long), not as a whole array of float64 per factor; each block's mean is numpy's
    mean of the block, as before.
    """
    factors = [int(f) for f in factors]
    out: list = [np.asarray(data, dtype=np.float32) if f <= 1 else None for f in factors]
    averaged = [i for i, f in enumerate(factors) if f > 1]
    unit = math.lcm(*(factors[i] for i in averaged)) if averaged else 1
    if len(averaged) > 1 and unit > _PIECE:  # no piece of a useful size holds whole blocks of every factor
        for i in averaged:
            out[i] = block_means(data, (factors[i],))[0]
        return out
    n = len(data)
    for i in averaged:
        out[i] = np.empty(n // factors[i], dtype=np.float32)
    whole = n // unit * unit
    piece = unit * max(1, _PIECE // unit)
    scratch = np.empty(min(piece, whole), dtype=np.float64)
    for a in range(0, whole, piece):
        b = min(whole, a + piece)
        values = scratch[: b - a]
        np.copyto(values, data[a:b], casting="unsafe")
        for i in averaged:
            f = factors[i]
            out[i][a // f : b // f] = values.reshape(-1, f).mean(axis=1)
    for i in averaged:  # each factor's whole blocks past the last whole unit
        f = factors[i]
        end = n // f * f
        if end > whole:
            out[i][whole // f :] = np.asarray(data[whole:end], dtype=np.float64).reshape(-1, f).mean(axis=1)
    return out


def firing_rate(spike_times_us, duration_us: float, bin_rate_hz: float = 10) -> np.ndarray:
    """Firing rate (Hz, float32) in bins of ``1 / bin_rate_hz`` s from 0 to ``duration_us``.

    ``spike_times_us`` in microseconds; the last bin is partial when the duration is not a whole
    number of bins; no spikes or no duration give an empty array.
    """
    spikes = np.asarray(spike_times_us, dtype=np.float64)
    if spikes.size == 0 or not bin_rate_hz > 0:
        return np.zeros(0, dtype=np.float32)
    width = 1e6 / float(bin_rate_hz)
    n_bins = int(np.ceil(float(duration_us) / width))
    if n_bins <= 0:
        return np.zeros(0, dtype=np.float32)
    edges = np.arange(n_bins + 1) * width
    if spikes.size < 2 or bool(np.all(spikes[1:] >= spikes[:-1])):
        # np.histogram's own count for bin edges given as an array (each bin [a, b), the last [a, b]: the
        # spikes below each edge, by searchsorted on the sorted spikes), without its sort of spikes that
        # are in order already (a unit's spike train; NaN fails the test): the same counts
        below = np.concatenate((spikes.searchsorted(edges[:-1], "left"), spikes.searchsorted(edges[-1:], "right")))
        counts = np.diff(below)
    else:
        counts, _ = np.histogram(spikes, bins=edges)
    return counts.astype(np.float32) * np.float32(bin_rate_hz)


def light_reference_series(light: dict, fs: float) -> dict[str, np.ndarray]:
    """``light`` (``raw_ch1``, ``raw_ch2``) with the 10 Hz and 1 kHz block means of each channel added."""
    out = dict(light)
    for channel in ("ch1", "ch2"):
        raw = light.get(f"raw_{channel}")
        if raw is not None:
            out[f"10hz_{channel}"], out[f"1khz_{channel}"] = block_means(raw, (int(fs / 10), int(fs / 1000)))
    return out


def firing_rate_10hz(spike_samples, fs: float, duration_us: float | None) -> np.ndarray:
    """The original's ``firing_rate_10hz`` of a unit whose spikes are sample indices at ``fs``.

    ``duration_us``: the recording's duration; None or 0 uses the last spike plus one second, as the
    original does without a ``.cmcr`` stating the duration, and always in ``load_recording_with_eimage_sta``.
    """
    spikes_us = np.asarray(spike_samples, dtype=np.float64) * (1e6 / float(fs))
    if not duration_us:
        duration_us = (spikes_us[-1] if spikes_us.size else 0.0) + 1e6
    return firing_rate(spikes_us, duration_us, 10)
