"""Spike-triggered average of a stimulus movie for many units at once.

``STA[u, k] = sum_f c_uf * S[f - first_lag - (n_lags - 1) + k] / sum_f c_uf`` where
``c_uf`` is the number of spikes of unit ``u`` in frame ``f`` (a frame with two
spikes counts twice).  Index ``k = n_lags - 1`` is the frame nearest to the
spike.  A spike whose window would start before the first frame, or whose frame
lies beyond the last, is excluded and counted.

Two implementations, equal up to float rounding:

``"sparse"``
    a compiled kernel (``h5stream._ext._sta``, built at install) that adds each spike's window (one contiguous block of
    ``n_lags * n_pixels`` values) into its unit's accumulator; units run in
    parallel, each thread owns whole units.  Work grows with the spikes.  Its
    multiply-add loop is built for AVX2 and for the baseline x86-64 set, the
    CPU's pick taken when loaded; both give the same sums bit for bit.
``"dense"``
    the count matrix (units x frames) times the lagged stimulus, one BLAS
    matrix product per lag.  Work grows with units x frames, at matrix-product
    speed; it wins only when most frames hold spikes of most units.

The kernels are compiled when the package is installed, so a fresh process (an
array task on a node that has never run one) pays nothing to compile them.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from h5stream.cores import allowed_cores
from h5stream.native import compiled
from h5stream.stops import check_point

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

METHODS = ("auto", "sparse", "dense")

# The dense path does units*frames*lags*pixels multiply-adds at BLAS speed; the sparse
# path does spikes*lags*pixels adds at memory speed.  Measured on 2 cores: equal times at
# about 0.2 spikes per (unit, frame) cell for 400 units when the machine is idle, the
# sparse path 4x faster at 0.37 for 8 units, and on a busy machine the dense path up to
# 10x slower than its idle time (BLAS threads wait on each other when descheduled).
# "auto" therefore takes the dense path only when spikes outnumber the cells.
_DENSE_SHARE = 1.0
_DENSE_MIN_UNITS = 64
#: additions (spikes x lags x pixels) one call of the sparse kernel makes per thread at most: some 0.1 s of
#: one core's work, so that a stop (a signal, whose handler runs between two calls) is taken within a second
#: on a busy machine however many spikes the units have; :func:`_unit_pieces` cuts the units so
_ADDS_PER_CALL = 1 << 26


@dataclasses.dataclass
class STASums:
    """Result of :func:`spike_triggered_average`.

    Attributes
    ----------
    sta : ndarray, float32, shape (n_units, n_lags, *frame_shape)
        Count-weighted average window; all zeros for a unit with no used spike.
    n_spikes_used, n_spikes_excluded : ndarray of int64, shape (n_units,)
        Spikes averaged, and spikes whose window fell outside the movie.
    method : str
        The implementation that ran (``"sparse"`` or ``"dense"``).
    """

    sta: np.ndarray
    n_spikes_used: np.ndarray
    n_spikes_excluded: np.ndarray
    method: str


def _as_ragged(spike_frames, offsets):
    """Accept a list of per-unit arrays or (values, offsets); return int64 values and offsets."""
    if offsets is None:
        if isinstance(spike_frames, np.ndarray) and spike_frames.dtype != object:
            raise ValueError(
                "spike_frames: expected a list of per-unit frame arrays or values with offsets "
                f"(found one array of shape {spike_frames.shape} and no offsets)"
            )
        parts = [np.asarray(p).reshape(-1) for p in spike_frames]
        for i, p in enumerate(parts):
            if p.size and not np.issubdtype(p.dtype, np.integer):
                raise TypeError(f"spike_frames[{i}]: expected integer frame indices (found dtype {p.dtype})")
        lengths = np.array([p.size for p in parts], dtype=np.int64)
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.concatenate(parts).astype(np.int64, copy=False) if parts else np.zeros(0, np.int64)
        return np.ascontiguousarray(values, dtype=np.int64), offsets
    values = np.asarray(spike_frames)
    offsets = np.asarray(offsets)
    if values.ndim != 1 or (values.size and not np.issubdtype(values.dtype, np.integer)):
        raise TypeError(f"spike_frames: expected a 1-d integer array (found {values.dtype}, ndim {values.ndim})")
    if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or offsets[-1] != values.size:
        raise ValueError(
            f"offsets: expected 1-d, starting at 0 and ending at {values.size} (found {offsets[:1]}..{offsets[-1:]})"
        )
    if np.any(np.diff(offsets) < 0):
        raise ValueError("offsets: expected non-decreasing values")
    return np.ascontiguousarray(values, dtype=np.int64), np.ascontiguousarray(offsets, dtype=np.int64)


def _working_dtype(stimulus: np.ndarray, n_spikes_max: int) -> np.dtype:
    # float32 sums of integer-valued stimuli are exact while they stay below 2**24.
    if np.issubdtype(stimulus.dtype, np.integer) or stimulus.dtype == np.bool_:
        peak = int(np.abs(stimulus).max()) if stimulus.size else 0
        if peak * max(n_spikes_max, 1) < 2**24:
            return np.dtype(np.float32)
    return np.dtype(np.float64)


def spike_triggered_average(
    stimulus: np.ndarray,
    spike_frames,
    offsets=None,
    *,
    n_lags: int = 60,
    exclude_current_frame: bool = True,
    method: str = "auto",
    n_threads: int | None = None,
) -> STASums:
    """Count-weighted spike-triggered average of ``stimulus`` for all units at once.

    Parameters
    ----------
    stimulus : ndarray, shape (n_frames, ...)
        The movie, one entry per displayed frame (e.g. uint8 (10800, 15, 15)).
    spike_frames : list of int arrays, or int array with ``offsets``
        Frame index of every spike, per unit (sorted input is faster: equal
        frames are merged into one weighted add).
    offsets : int array of n_units + 1, optional
        Unit ``u`` owns ``spike_frames[offsets[u]:offsets[u + 1]]``.
    n_lags : int
        Frames in the window.
    exclude_current_frame : bool
        True: the window is the ``n_lags`` frames before the spike's frame;
        False: it ends with the spike's frame.
    method : {"auto", "sparse", "dense"}
    n_threads : int or None
        Threads for the sparse kernel (1: serial; None: the cores this process may use).

    Returns
    -------
    STASums
    """
    stimulus = np.asarray(stimulus)
    if stimulus.ndim < 2:
        raise ValueError(f"stimulus: expected (n_frames, ...) with at least 2 dimensions (found shape {stimulus.shape})")
    if not (np.issubdtype(stimulus.dtype, np.number) or stimulus.dtype == np.bool_):
        raise TypeError(f"stimulus: expected a numeric array (found dtype {stimulus.dtype})")
    if int(n_lags) < 1:
        raise ValueError(f"n_lags: expected >= 1 (found {n_lags})")
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS} (found {method!r})")
    if n_threads is not None and int(n_threads) < 1:
        raise ValueError(f"n_threads: expected >= 1 or None (found {n_threads})")
    values, offsets = _as_ragged(spike_frames, offsets)
    n_units = offsets.size - 1
    n_frames = stimulus.shape[0]
    frame_shape = stimulus.shape[1:]
    n_pixels = int(np.prod(frame_shape))
    first_lag = 1 if exclude_current_frame else 0
    n_lags = int(n_lags)

    counts_per_unit = np.diff(offsets)
    dtype = _working_dtype(stimulus, int(counts_per_unit.max()) if n_units else 0)
    flat = np.ascontiguousarray(stimulus.reshape(n_frames, n_pixels), dtype=dtype)

    if method == "auto":
        share = values.size / max(n_units * n_frames, 1)
        method = "dense" if share > _DENSE_SHARE and n_units >= _DENSE_MIN_UNITS else "sparse"
    n_used = np.zeros(n_units, dtype=np.int64)
    n_excluded = np.zeros(n_units, dtype=np.int64)
    if method == "sparse":
        sums = _sparse_sums(flat, values, offsets, n_lags, first_lag, n_used, n_excluded, n_threads)
    else:
        sums = _dense_sums(flat, values, offsets, n_lags, first_lag, n_used, n_excluded)
    sta = sums.reshape(n_units, n_lags, *frame_shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(n_used > 0, 1.0 / np.maximum(n_used, 1), 0.0).astype(sums.dtype)
    sta = (sta * scale.reshape(-1, *([1] * (sta.ndim - 1)))).astype(np.float32, copy=False)
    logger.debug("STA of %d units over %d frames by the %s path", n_units, n_frames, method)
    return STASums(sta=sta, n_spikes_used=n_used, n_spikes_excluded=n_excluded, method=method)


def _sparse_sums(flat, values, offsets, n_lags, first_lag, n_used, n_excluded, n_threads):
    sums = np.zeros((offsets.size - 1, n_lags * flat.shape[1]), dtype=flat.dtype)
    n_threads = allowed_cores() if n_threads is None else int(n_threads)
    kernel = compiled("_sta")._sta_sums
    for a, b in _unit_pieces(offsets, n_lags * flat.shape[1], n_threads):
        check_point()  # a stop noted while the job runs ends it here
        # the offsets index the whole of ``values``: a slice of them is a run of units as they are
        kernel(flat, values, offsets[a:b + 1], n_lags, first_lag, sums[a:b], n_used[a:b], n_excluded[a:b],
               n_threads)
    return sums


def _unit_pieces(offsets, adds_per_spike: int, n_threads: int) -> list[tuple[int, int]]:
    """Runs of units ``[a, b)``, in order and covering them all, each of about :data:`_ADDS_PER_CALL` additions
    per thread (a unit is never split; a run holds at least ``n_threads`` units where that many are left)."""
    n_units = offsets.size - 1
    if n_units <= 0:
        return []
    work = np.cumsum(np.diff(offsets).astype(np.float64) * max(adds_per_spike, 1))
    budget = float(_ADDS_PER_CALL) * max(n_threads, 1)
    pieces, a = [], 0
    while a < n_units:
        done = work[a - 1] if a else 0.0
        b = int(np.searchsorted(work, done + budget, side="right"))
        b = min(n_units, max(b, a + max(n_threads, 1)))
        pieces.append((a, b))
        a = b
    return pieces


def _dense_sums(flat, values, offsets, n_lags, first_lag, n_used, n_excluded):
    n_units = offsets.size - 1
    n_frames, n_pixels = flat.shape
    counts = np.zeros((n_units, n_frames), dtype=flat.dtype)
    compiled("_sta")._count_matrix(values, offsets, n_frames, n_lags, first_lag, counts, n_used, n_excluded)
    # lag-major so that each product writes one contiguous block (a strided ``out`` would
    # make numpy leave BLAS for its slow loop)
    by_lag = np.zeros((n_lags, n_units, n_pixels), dtype=flat.dtype)
    # Window slot k of a spike in frame f holds frame f - first_lag - (n_lags - 1) + k, so slot
    # k is the count matrix over frames [shift, n_frames) times the stimulus shifted back.
    for k in range(n_lags):
        shift = first_lag + (n_lags - 1) - k
        if shift < n_frames:
            np.matmul(counts[:, shift:], flat[: n_frames - shift], out=by_lag[k])
    return np.ascontiguousarray(by_lag.transpose(1, 0, 2)).reshape(n_units, n_lags * n_pixels)
