"""What the built-in class-style extractors read from a unit: spike times in microseconds and its trials.

The recording stores spike times as acquisition sample indices
(``units/{u}/spike_times``) and the trials of a movie ragged
(``units/{u}/spike_times_sectioned/{movie}``: ``spike_times``,
``trial_offsets``, ``trial_bounds`` in samples).  The lab pipeline's extractors
documented their spike times as microseconds but were handed sample indices.
Here a unit read from a recording by ``extract_features`` (a
:class:`~hdmea.features.base.StoredGroup`) has its samples converted with the
recording's sampling rate; any other ``unit_data`` (a dict view, an h5py group,
a mock, as the lab's tests pass) holds microseconds, as documented.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

import numpy as np

from hdmea.errors import MissingInputError
from hdmea.features.base import FeatureExtractor, StoredGroup

__all__ = ["sampling_rate_of", "stored_rate", "spike_times_us", "TrialSpikes", "movie_trials", "frame_period_us",
           "required_movie_trials", "MovieFeatureExtractor", "UnitsTrials", "units_movie_trials", "SectionedMovie",
           "sectioned_key", "staged_units_trials"]

_RATE_NAMES = ("sampling_rate", "acquisition_rate")


def _scalar(node) -> float:
    return float(np.asarray(node[:]).reshape(-1)[0])


def sampling_rate_of(metadata) -> float | None:
    """The acquisition rate (Hz) that ``metadata`` holds (``sampling_rate`` or ``acquisition_rate``), else None."""
    if metadata is None:
        return None
    if isinstance(metadata, StoredGroup):
        return metadata.memoized("sampling_rate", lambda: _read_rate(metadata))
    return _read_rate(metadata)


def _read_rate(metadata) -> float | None:
    for key in _RATE_NAMES:
        try:
            if key in metadata:
                rate = _scalar(metadata[key])
                if rate > 0:
                    return rate
        except (TypeError, ValueError, IndexError):
            continue
    return None


def stored_rate(unit_data, metadata=None) -> float | None:
    """The sampling rate of a unit read from a recording (None for any other ``unit_data``)."""
    if not isinstance(unit_data, StoredGroup):
        return None
    rate = sampling_rate_of(metadata)
    if rate is None:
        rate = sampling_rate_of(StoredGroup(unit_data._target, "metadata"))
    if rate is None:
        raise KeyError(f"{unit_data.name}: the recording has no metadata/sampling_rate to convert its spike samples")
    return rate


def spike_times_us(unit_data, metadata=None) -> np.ndarray:
    """The unit's spike times in microseconds (float64); samples of a stored unit are converted."""
    spikes = np.asarray(unit_data["spike_times"][:])
    rate = stored_rate(unit_data, metadata)
    if rate is None:
        return spikes.astype(np.float64)
    return spikes.astype(np.float64) * (1e6 / rate)


def frame_period_us(stimulus_data, rate: float) -> float | None:
    """The median display-frame period (microseconds) of ``stimulus/frame_time/default``, else None."""
    if isinstance(stimulus_data, StoredGroup):
        return stimulus_data.memoized(("frame_period_us", rate), lambda: _read_frame_period_us(stimulus_data, rate))
    return _read_frame_period_us(stimulus_data, rate)


def _read_frame_period_us(stimulus_data, rate: float) -> float | None:
    try:
        frames = np.asarray(stimulus_data["frame_time"]["default"][:], dtype=np.float64)
    except (KeyError, TypeError):
        return None
    if frames.size < 2:
        return None
    return float(np.median(np.diff(frames))) * 1e6 / rate


@dataclasses.dataclass
class TrialSpikes:
    """Every trial of a movie: spike times relative to the trial's start, and its length (microseconds).

    Ragged, as stored: trial ``k`` is ``values[offsets[k]:offsets[k + 1]]`` (``offsets`` from 0 to
    ``values.size``); :attr:`spikes` lists them, one array per trial, built when first asked for.
    """

    values: np.ndarray
    offsets: np.ndarray
    lengths_us: np.ndarray
    frame_period_us: float | None

    @property
    def n_trials(self) -> int:
        return self.offsets.size - 1

    @functools.cached_property
    def spikes(self) -> list[np.ndarray]:
        return [self.values[a:b] for a, b in zip(self.offsets[:-1].tolist(), self.offsets[1:].tolist())]


def required_movie_trials(feature: str, unit_data, stimulus_data, metadata, movie: str) -> TrialSpikes:
    """The unit's trials of ``movie``; a :class:`MissingInputError` for ``feature`` when there are none."""
    trials = movie_trials(unit_data, stimulus_data, metadata, movie)
    if trials is None or not trials.n_trials or not trials.frame_period_us:
        raise MissingInputError(f"no sectioned trials of movie {movie!r} for this unit: run section_spike_times "
                                "first", feature_name=feature, missing_input=f"spike_times_sectioned/{movie}")
    return trials


#: the ragged trials of a sectioned movie: its spikes (samples), offsets and [start, end) bounds
_SECTIONED = ("spike_times", "trial_offsets", "trial_bounds")


def movie_trials(unit_data, stimulus_data, metadata, movie: str) -> TrialSpikes | None:
    """The unit's trials of ``movie`` (None unless a stored unit has sectioned spikes of it)."""
    rate = stored_rate(unit_data, metadata)
    if rate is None:
        return None
    try:
        if isinstance(unit_data, StoredGroup):
            # a stored unit: each array read by its path (one look-up each, no view of every level)
            target, name = unit_data._target, f"{unit_data._path}/spike_times_sectioned/{movie}"
            spikes, offsets, bounds = (target.get(f"{name}/{member}") for member in _SECTIONED)
            attrs = target.attrs(name)
            name = "/" + name
        else:
            group = unit_data["spike_times_sectioned"][movie]
            spikes, offsets, bounds = (group[member][:] for member in _SECTIONED)
            attrs, name = getattr(group, "attrs", {}) or {}, getattr(group, "name", movie)
        spikes = np.asarray(spikes, dtype=np.float64)
        offsets = np.asarray(offsets, dtype=np.int64)
        bounds = np.asarray(bounds, dtype=np.float64).reshape(-1, 2)
    except (KeyError, TypeError):
        return None
    # Trials widened by a pad margin keep the unpadded start as time zero.
    before = int(round(float(np.asarray(attrs.get("pad_margin_before_s", 0.0)).reshape(-1)[0]) * rate))
    after = int(round(float(np.asarray(attrs.get("pad_margin_after_s", 0.0)).reshape(-1)[0]) * rate))
    starts = bounds[:, 0] + before
    ends = bounds[:, 1] - after
    scale = 1e6 / rate
    n_trials = bounds.shape[0]
    offsets = offsets[:n_trials + 1] if n_trials else np.zeros(1, dtype=np.int64)
    counts = np.diff(offsets)
    if offsets.size != n_trials + 1 or offsets[0] < 0 or offsets[-1] > spikes.size or np.any(counts < 0):
        raise ValueError(f"{name}: trial_offsets {offsets[:8].tolist()}... do not cut its "
                         f"{spikes.size} spike_times into {n_trials} trials (expected {n_trials + 1} non-decreasing "
                         "offsets within them): run section_spike_times again")
    # Each trial's spikes less its start, all trials at once (the same values as trial by trial).
    values = (spikes[offsets[0]:offsets[-1]] - np.repeat(starts, counts)) * scale
    return TrialSpikes(values=values, offsets=offsets - offsets[0], lengths_us=(ends - starts) * scale,
                       frame_period_us=frame_period_us(stimulus_data, rate))


@dataclasses.dataclass
class UnitsTrials:
    """The trials of a movie of many units at once, as :func:`movie_trials` gives each unit's, one after another.

    Unit ``units[i]`` has the trials ``unit_trials[i]`` to ``unit_trials[i + 1]``; trial ``k`` (of all units,
    in that order) holds the samples ``spikes[offsets[k]:offsets[k + 1]]`` (as stored), starts at sample
    ``starts[k]`` and lasts ``lengths_us[k]``; a sample ``v`` of it is at ``(float64(v) - starts[k]) * scale``
    us in the trial (:attr:`values`).  With ``ends`` (the units' arrays read where they lie, in the one
    buffer that holds them all: ``spikes``), trial ``k`` is ``spikes[offsets[k]:ends[k]]`` instead, and
    ``offsets`` holds one entry per trial.
    """

    units: list[str]
    spikes: np.ndarray
    offsets: np.ndarray
    unit_trials: np.ndarray
    starts: np.ndarray
    lengths_us: np.ndarray
    scale: float
    ends: np.ndarray | None = None

    @property
    def values(self) -> np.ndarray:
        """Every trial's spikes less its start, in us (the values of :func:`movie_trials`)."""
        if self.ends is not None:
            spikes = np.concatenate([self.spikes[a:b] for a, b in zip(self.offsets.tolist(), self.ends.tolist())]
                                    or [self.spikes[:0]])
            return (spikes.astype(np.float64) - np.repeat(self.starts, self.ends - self.offsets)) * self.scale
        return (self.spikes.astype(np.float64) - np.repeat(self.starts, np.diff(self.offsets))) * self.scale


def _one_buffer(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """(buffer, the index in it where each array starts) when every array is a contiguous 1-D part of one
    contiguous 1-D array of their dtype (as a step stages many units' values), else None."""
    if not arrays:
        return None
    buffer = arrays[0].base
    if not isinstance(buffer, np.ndarray) or buffer.ndim != 1 or not buffer.flags.c_contiguous \
            or buffer.dtype != arrays[0].dtype:
        return None
    origin, itemsize, dtype = buffer.__array_interface__["data"][0], buffer.itemsize, buffer.dtype
    end = origin + buffer.nbytes
    starts = []
    for array in arrays:
        if array.base is not buffer or array.dtype != dtype or array.ndim != 1 or not array.flags.c_contiguous:
            return None
        address = array.__array_interface__["data"][0]
        if (address - origin) % itemsize or address + array.nbytes > end:
            return None
        starts.append((address - origin) // itemsize)
    return buffer, np.array(starts, dtype=np.int64)


def _margin_samples(margins, rate: float) -> tuple[int, int]:
    """The pad margins ``(before_s, after_s)`` (attribute values: numbers or arrays of one) in samples."""
    return tuple(int(round(float(np.asarray(v).reshape(-1)[0]) * rate)) for v in margins)


def sectioned_key(movie: str) -> tuple[str, str]:
    """The key of a movie's :class:`SectionedMovie` among what a session keeps derived (``target.derived``)."""
    return ("sectioned trials", movie)


@dataclasses.dataclass(frozen=True, eq=False)  # (its arrays: compared by identity, as the session's)
class SectionedMovie:
    """Every unit's trials of one movie in the arrays the sectioning staged them in, one of each for all units:
    unit ``units[r]``'s ``spike_times`` is ``spikes[firsts[r]:lasts[r]]``, its ``trial_offsets`` ``offsets[r]``
    (n_units, n_trials + 1) and its ``trial_bounds`` ``bounds[r]`` (n_units, n_trials, 2), each staged as a
    view of these; ``pad_margin`` its ``pad_margin_before_s`` and ``pad_margin_after_s``.

    The sectioning keeps one per movie in a session (:meth:`hdmea.session.target.StepTarget.keep_derived`,
    under :func:`sectioned_key`; dropped by any write of a unit's trials of the movie), never in the file;
    :func:`units_movie_trials` reads it instead of every unit's arrays.  Read where the units' values lie,
    it sees a value changed in place."""

    units: tuple[str, ...]
    spikes: np.ndarray
    firsts: np.ndarray
    lasts: np.ndarray
    offsets: np.ndarray
    bounds: np.ndarray
    pad_margin: tuple[float, float]

    def units_trials(self, rate: float) -> UnitsTrials | None:
        """The :class:`UnitsTrials` of every unit, as :func:`units_movie_trials` reads them from the units'
        arrays; None when a unit's would be left out there (offsets out of order or past its spikes, no
        trial) or its spikes are of a dtype the kernel does not read as they are."""
        offsets, n_units = self.offsets, len(self.units)
        if not n_units or offsets.ndim != 2 or offsets.shape[1] < 2 or self.bounds.shape != (
                n_units, offsets.shape[1] - 1, 2) or self.spikes.dtype not in (np.int64, np.uint64, np.float64):
            return None
        if (offsets[:, 0] < 0).any() or (offsets[:, -1] > self.lasts - self.firsts).any() \
                or (offsets[:, 1:] < offsets[:, :-1]).any():
            return None
        try:
            before, after = _margin_samples(self.pad_margin, rate)
        except (TypeError, ValueError, IndexError):
            return None
        n_trials = offsets.shape[1] - 1
        # trial k of unit r: the unit's spikes from its offsets on, where they lie in the buffer
        trial_starts = (offsets[:, :-1] + self.firsts[:, None]).reshape(-1)
        trial_ends = (offsets[:, 1:] + self.firsts[:, None]).reshape(-1)
        bounds = self.bounds.reshape(-1, 2).astype(np.float64)
        starts, ends = bounds[:, 0] + before, bounds[:, 1] - after
        scale = 1e6 / rate
        return UnitsTrials(list(self.units), self.spikes, trial_starts, np.arange(n_units + 1) * n_trials, starts,
                           (ends - starts) * scale, scale, trial_ends)


def staged_units_trials(target, unit_ids, movie: str, rate: float) -> UnitsTrials | None:
    """:func:`units_movie_trials` from the :class:`SectionedMovie` a session's ``target`` keeps of exactly the
    units ``unit_ids`` (in that order), where it holds (the same values); else None."""
    derived = getattr(target, "derived", None)
    sectioned = derived(sectioned_key(movie)) if derived is not None else None
    if isinstance(sectioned, SectionedMovie) and list(sectioned.units) == list(unit_ids):
        return sectioned.units_trials(rate)
    return None


def units_movie_trials(target, unit_ids, movie: str, rate: float) -> UnitsTrials:
    """:func:`movie_trials` of many stored units of a step's ``target`` (a recording or a session), their
    arrays read in one call and put together.  A unit whose trials :func:`movie_trials` would find absent,
    malformed or empty is left out (its own :func:`movie_trials` then tells why).  A session's
    :class:`SectionedMovie` of exactly these units is read instead, where it holds (:func:`staged_units_trials`)."""
    staged = staged_units_trials(target, unit_ids, movie, rate)
    if staged is not None:
        return staged
    found = target.members_of([f"units/{u}/spike_times_sectioned/{movie}" for u in unit_ids], _SECTIONED)
    scale = 1e6 / rate
    margins: dict = {}  # (before, after) of each distinct pair of pad-margin attributes
    units, spikes, offsets, bounds_of, before, after = [], [], [], [], [], []
    for unit_id, members in zip(unit_ids, found):
        if members is None:
            continue
        (unit_spikes, unit_offsets, bounds), attrs = members
        try:
            unit_spikes = np.asarray(unit_spikes)
            unit_offsets = np.asarray(unit_offsets, dtype=np.int64)
            bounds = np.asarray(bounds)
            if bounds.dtype.kind not in "biuf":  # (numbers are made float64 all at once, below)
                bounds = np.asarray(bounds, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if unit_spikes.ndim != 1 or unit_spikes.dtype.kind not in "biuf" or bounds.ndim != 2 \
                or bounds.shape[1] != 2 or not bounds.shape[0] or unit_offsets.ndim != 1:
            continue
        key = (attrs.get("pad_margin_before_s", 0.0), attrs.get("pad_margin_after_s", 0.0))
        try:
            margin = margins.get(key)
        except TypeError:  # an array attribute: not hashable
            margin = None
        if margin is None:
            try:
                margin = _margin_samples(key, rate)
            except (TypeError, ValueError, IndexError):
                continue
            try:
                margins[key] = margin
            except TypeError:
                pass
        n_trials = bounds.shape[0]
        unit_offsets = unit_offsets[:n_trials + 1]
        if unit_offsets.size != n_trials + 1:
            continue
        first, last = int(unit_offsets[0]), int(unit_offsets[-1])
        if first < 0 or last > unit_spikes.size:
            continue
        units.append(unit_id)
        spikes.append(unit_spikes[first:last])
        offsets.append(unit_offsets)
        bounds_of.append(bounds)
        before.append(margin[0])
        after.append(margin[1])
    n_units = len(units)
    unit_trials = np.zeros(n_units + 1, dtype=np.int64)
    np.cumsum([o.size - 1 for o in offsets], out=unit_trials[1:])
    if not n_units:
        return UnitsTrials([], np.empty(0), np.zeros(1, np.int64), unit_trials, np.empty(0), np.empty(0), scale)
    every_offset = np.concatenate(offsets)
    per_trial = np.diff(every_offset)
    # the differences across two units' offsets are no trial's
    per_trial = np.delete(per_trial, unit_trials[1:-1] + np.arange(n_units - 1))
    bad = per_trial < 0
    if bad.any():  # a unit whose offsets fall somewhere: left out, the others read again
        keep = ~np.logical_or.reduceat(bad, unit_trials[:-1])
        return units_movie_trials(target, [units[i] for i in np.flatnonzero(keep)], movie, rate)
    shared = _one_buffer(spikes)
    if shared is not None and shared[0].dtype not in (np.int64, np.uint64, np.float64):
        shared = None  # (the kernel reads these three as they are; any other is made float64, all at once)
    if shared is not None:  # every unit's spikes where they lie: each trial's first index in the buffer and its end
        buffer, firsts = shared
        # unit i's offsets: every_offset[unit_trials[i] + i:unit_trials[i + 1] + i + 1]; a trial starts at its
        # offset less the unit's first, past where the unit's spikes lie in the buffer
        heads = unit_trials[:-1] + np.arange(n_units)
        trial_starts = np.delete(every_offset, unit_trials[1:] + np.arange(n_units)) \
            + np.repeat(firsts - every_offset[heads], np.diff(unit_trials))
        trial_ends, trial_offsets = trial_starts + per_trial, trial_starts
    else:
        trial_offsets = np.zeros(per_trial.size + 1, dtype=np.int64)
        np.cumsum(per_trial, out=trial_offsets[1:])
    kinds = {s.dtype for s in spikes}
    dtype = kinds.pop() if len(kinds) == 1 else np.float64  # one dtype kept as stored (else each made float64)
    bounds_all = np.concatenate(bounds_of, dtype=np.float64, casting="unsafe")  # each unit's as float64
    n_trials = np.diff(unit_trials)
    # each trial's start and end less its unit's pad margins (samples, float64 plus int as movie_trials adds them)
    if len(set(before)) == 1 and len(set(after)) == 1:
        starts_all, ends_all = bounds_all[:, 0] + before[0], bounds_all[:, 1] - after[0]
    else:
        starts_all = bounds_all[:, 0] + np.repeat(np.array(before, dtype=np.float64), n_trials)
        ends_all = bounds_all[:, 1] - np.repeat(np.array(after, dtype=np.float64), n_trials)
    if shared is not None:
        return UnitsTrials(units, shared[0], trial_offsets, unit_trials, starts_all, (ends_all - starts_all) * scale,
                           scale, trial_ends)
    return UnitsTrials(units, np.concatenate(spikes, dtype=dtype, casting="unsafe"), trial_offsets, unit_trials,
                       starts_all, (ends_all - starts_all) * scale, scale)


class MovieFeatureExtractor(FeatureExtractor):
    """A built-in class-style extractor of a unit's spikes during one movie.

    The lab named each such extractor after its movie: ``config["movie"]``
    names another one.  :meth:`trials` reads the unit's sectioned trials of the
    movie, refusing a unit without them.
    """

    required_inputs: ClassVar[list[str]] = ["spike_times"]

    def movie(self, config: dict[str, Any]) -> str:
        """The movie ``config`` names (``config["movie"]``), else the extractor's own name."""
        return config.get("movie", self.name)

    def trials(self, unit_data, stimulus_data, metadata, config: dict[str, Any]) -> TrialSpikes:
        """The unit's trials of :meth:`movie`; a :class:`MissingInputError` when it has none."""
        return required_movie_trials(self.name, unit_data, stimulus_data, metadata, self.movie(config))
