"""Cut every unit's spike train into the trials of every movie occurrence.

Trial ``n`` of an occurrence whose section starts at display frame ``s`` covers
display frames ``[s + pre_margin + start_frame + n * trial_length, ... +
trial_length)``; frames map to samples through ``/stimulus/frame_time/default``.
``pad_margin = (before_s, after_s)`` widens every trial.  Trials are half-open
``[start, end)`` sample intervals.  Movies without a trial configuration (and
sections found in analog mode) are one trial per occurrence spanning the section.

Results are stored under each unit as the original writes them, which the lab's analysis reads, and
ragged beside them, which our readers read in one go::

    /units/{unit}/spike_times_sectioned/{movie}/
        full_spike_times         int64  every spike of any trial, sorted, once
        trials_spike_times/{k}   int64  trial k's spikes (absolute samples)
        trials_start_end         int64  (n_trials, 2) trial bounds without the pad margin
        _attrs/                  (a session's file) n_trials, pad_margin, pre_samples, post_samples;
                                 in immediate mode these, trial_repeats and created_at are attributes
        spike_times    uint64  all trials' spikes, concatenated (absolute samples)
        trial_offsets  int64   n_trials + 1; trial k is spike_times[off[k]:off[k + 1]]
        trial_bounds   uint64  (n_trials, 2) [start, end) samples
        attrs: pad_margin_before_s, pad_margin_after_s, n_occurrences, repeat

Trials run occurrence by occurrence: trial ``k`` is repeat ``k % repeat`` of
occurrence ``k // repeat``.  The cut is one compiled pass over all units and all
trials (:func:`h5stream.kernels.sectioning.section_sorted`).

In a session the step also keeps, per movie, the ragged form of every unit at once
(:class:`hdmea.features.trials.SectionedMovie`: the arrays the units' own values are views of), never
written to the file and dropped by any later write of a unit's trials of that movie; the features that
read every unit's trials read it in one go.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import time
from pathlib import Path
from typing import TypedDict

import numpy as np

from h5stream.kernels.sectioning import rows_to_csr, section_sorted, sorted_unique, sorted_unique_runs
from h5stream.tree import Pieces
from hdmea.errors import ConfigError
from hdmea.features.trials import SectionedMovie, sectioned_key
from hdmea.steps.section_time import DEFAULT_FRAME_TIME, read_stimulus_config
from hdmea.session.target import open_target
from hdmea.progress import counted
from hdmea.stimulus import StimulusConfig, frames_to_samples, occurrence_frame_ranges, trial_frame_ranges

__all__ = ["SectionResult", "section_spike_times", "movie_trial_bounds", "StimuliConfigDict", "DEFAULT_CONFIG_DIR",
           "MAX_RETRIES", "RETRY_DELAY"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

STEP = "section_spike_times"
#: Attempts at opening the recording file when the system refuses access for a moment (a virus scanner,
#: an indexer or a sync client holding the file on Windows, a network share); the n-th retry waits
#: ``n * RETRY_DELAY`` seconds. Only a ``PermissionError`` while opening is retried, never a write.
MAX_RETRIES = 3
RETRY_DELAY = 0.1  # seconds
#: The stimulus files shipped with hdmea (``<movie>.json``, the original's format); ``config_dir`` looks elsewhere.
DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "data" / "config" / "stimuli"
_SHIPPED_CONFIG_DIR = DEFAULT_CONFIG_DIR


class StimuliConfigDict(TypedDict, total=False):
    """A stimulus file's ``section_kwargs``: where a movie's trials lie, in movie frames.

    ``start_frame``, ``trial_length_frame`` and ``repeat`` are required;
    ``group_count`` and ``group_gap`` (groups of trials, e.g. intensities) are
    read by the extractors that use them.
    """

    start_frame: int
    trial_length_frame: int
    repeat: int
    group_count: int
    group_gap: int


@dataclasses.dataclass
class SectionResult:
    """What :func:`section_spike_times` did (immediate mode)."""

    hdf5_path: Path | None
    units_processed: int
    movies_processed: list[str]
    trials_per_movie: dict[str, int]
    pad_margin: tuple[float, float]
    warnings: list[str] = dataclasses.field(default_factory=list)
    skipped: bool = False
    pre_samples: int = 0
    post_samples: int = 0

    # -- the original pipeline's names
    @property
    def success(self) -> bool:
        """True: a step that cannot section raises (the original also reported failures this way)."""
        return True

    @property
    def trial_repeats(self) -> int:
        """The most trials any movie was cut into."""
        return max(self.trials_per_movie.values(), default=0)


def original_sections(spikes: np.ndarray, offsets: np.ndarray, unpadded_bounds: np.ndarray, *,
                      copy: bool = True, full: np.ndarray | None = None) -> dict:
    """The original's arrays of one movie from the ragged form (``spikes`` cut at ``offsets``): the sorted
    unique ``full_spike_times``, ``trials_spike_times`` keyed by the trial's number (as the original's
    session holds them; the file names them "0", "1", ...) and ``trials_start_end``, all int64.

    The trials are one int64 copy of ``spikes`` cut at ``offsets`` (:class:`~h5stream.tree.Pieces`: a
    mapping whose node is built in one pass), or views of ``spikes`` itself when it is int64 already
    and ``copy`` is False (an array the caller made for this and never changes); ``full_spike_times``
    takes one linear pass when the trials do not overlap (their concatenation is then sorted already);
    ``full``: that array, made by the caller (``sorted_unique`` of ``spikes`` as int64)."""
    values = np.asarray(spikes)
    values = values.astype(np.int64) if copy or values.dtype != np.int64 else values
    return {"full_spike_times": sorted_unique(values) if full is None else full,
            "trials_spike_times": Pieces(values, offsets),
            "trials_start_end": np.asarray(unpadded_bounds, dtype=np.int64).reshape(-1, 2)}


def original_records(n_trials: int, pad_margin, pre_samples: int, post_samples: int) -> dict:
    """The original's records of one movie's sectioning (``_attrs`` in a session's file)."""
    return {"n_trials": int(n_trials), "pad_margin": [float(pad_margin[0]), float(pad_margin[1])],
            "pre_samples": int(pre_samples), "post_samples": int(post_samples)}


def movie_trial_bounds(
    movie: str,
    *,
    config: StimulusConfig | None,
    frame_times: np.ndarray | None,
    section_times: np.ndarray | None,
    sampling_rate: float,
    pad_margin: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, int, int]:
    """(trial bounds (n_trials, 2) int64, n_occurrences, repeat) of one movie."""
    before = int(round(pad_margin[0] * sampling_rate))
    after = int(round(pad_margin[1] * sampling_rate))
    if config is not None and movie in config.movie_lengths and movie in config.playlist and frame_times is not None:
        firsts = occurrence_frame_ranges(config)[movie][:, 0]
        frames = trial_frame_ranges(config, movie, firsts)
        tc = config.trial_configs.get(movie)
        repeat = tc.repeat if tc is not None else 1
        bounds = np.stack([frames_to_samples(frame_times, frames[:, 0]),
                           frames_to_samples(frame_times, frames[:, 1])], axis=1)
        n_occ = firsts.size
    elif section_times is not None:
        bounds = np.asarray(section_times, dtype=np.int64).reshape(-1, 2).copy()
        repeat, n_occ = 1, bounds.shape[0]
    else:
        raise ConfigError(f"movie {movie!r} has neither a trial layout nor section times")
    bounds[:, 0] = np.maximum(bounds[:, 0] - before, 0)
    bounds[:, 1] = bounds[:, 1] + after
    return bounds.astype(np.int64), int(n_occ), int(repeat)


def section_spike_times(
    hdf5_path: str | os.PathLike | None = None,
    movie_names=None,
    *,
    pad_margin: tuple[float, float] = (0.0, 0.0),
    force: bool = False,
    session=None,
    n_threads: int | None = None,
    # the original pipeline's parameters (see the docstring's last section)
    trial_repeats: int = 3,
    config_dir: str | os.PathLike | None = None,
):
    """Section every unit's spikes into the trials of every occurrence of each movie.

    Parameters
    ----------
    hdf5_path
        The recording file (immediate mode).
    movie_names
        Movies to section (default: every movie with section times).
    pad_margin
        Seconds (before, after) added around every trial.
    n_threads
        Threads of the compiled kernel (default: cores, at most 8).
    force
        Recompute when this step has run already (otherwise skipped).
    session
        Stage into this session instead of writing the file.

    The original pipeline's parameters (kept for its scripts; the last two of the signature):

    trial_repeats
        Accepted and ignored, as the original ignored it: the number of trials
        comes from each movie's trial layout.
    config_dir
        A folder of the original's stimulus files (``stimuli/<movie>.json`` or
        ``<movie>.json``): their ``section_kwargs`` replace the stored trial layouts.
        Default: the module's ``DEFAULT_CONFIG_DIR`` when a script has set it (read
        at the call, as the original does; ``hdmea.io.spike_sectioning`` sets it
        here too), else the stored layouts.

    Returns
    -------
    SectionResult or PipelineSession
    """
    try:
        before, after = (float(x) for x in pad_margin)
    except (TypeError, ValueError):
        raise ConfigError(f"pad_margin must be (before_s, after_s), found {pad_margin!r}") from None
    if before < 0 or after < 0 or not np.isfinite(before + after):
        raise ConfigError(f"pad_margin values must be finite and >= 0, found {pad_margin!r}")
    stack, target = _open_retrying(hdf5_path, session)
    with stack:
        target.require_steps("load_recording", "add_section_time")
        if STEP in target.completed_steps and not force:
            logger.info("section_spike_times already ran; pass force=True to recompute")
            result = SectionResult(hdf5_path=Path(hdf5_path) if hdf5_path else None, units_processed=0,
                                   movies_processed=[], trials_per_movie={}, pad_margin=(before, after),
                                   skipped=True)
        else:
            result = _section(target, movie_names, (before, after), n_threads, config_dir)
            result.hdf5_path = Path(hdf5_path) if hdf5_path else None
            target.mark_step_complete(STEP)
    return session if session is not None else result


def _open_retrying(hdf5_path, session):
    """Enter the step's target, retrying a refused open of the file; returns (exit stack, target)."""
    attempt = 1
    while True:
        stack = contextlib.ExitStack()
        try:
            return stack, stack.enter_context(open_target(hdf5_path, session, step=STEP))
        except PermissionError as exc:
            stack.close()
            if session is not None or attempt >= MAX_RETRIES:
                raise
            logger.warning("%s: access refused (%s); retry %d of %d in %.2f s", hdf5_path, exc,
                           attempt, MAX_RETRIES - 1, RETRY_DELAY * attempt)
            time.sleep(RETRY_DELAY * attempt)
            attempt += 1


def _with_stimulus_files(config: StimulusConfig | None, config_dir) -> StimulusConfig | None:
    """``config`` with the trial layouts of the stimulus files in ``config_dir`` (those that fit their movie)."""
    if config is None:
        return None
    from hdmea.stimulus_files import trial_configs

    folder = Path(config_dir)
    found = trial_configs(config.movie_lengths, folder.parent if folder.name == "stimuli" else folder)
    trials = dict(config.trial_configs)
    for movie, tc in found.items():
        if tc["start_frame"] + tc["trial_length_frame"] * tc["repeat"] <= config.movie_lengths[movie]:
            trials[movie] = tc
        else:
            logger.warning("the trials of %r in %s end after the movie (%d frames); its stored layout is kept",
                           movie, config_dir, config.movie_lengths[movie])
    return dataclasses.replace(config, trial_configs=trials)


def _section(target, movie_names, pad_margin, n_threads, config_dir=None) -> SectionResult:
    fs = float(np.asarray(target.get("metadata/sampling_rate")).reshape(-1)[0])
    config = read_stimulus_config(target)
    if config_dir is None and Path(DEFAULT_CONFIG_DIR) != _SHIPPED_CONFIG_DIR:
        config_dir = DEFAULT_CONFIG_DIR  # set by the caller (read now, as the original reads it)
    if config_dir is not None:
        config = _with_stimulus_files(config, config_dir)
    frame_path = f"stimulus/frame_time/{DEFAULT_FRAME_TIME}"
    frame_times = np.asarray(target.get(frame_path)).astype(np.int64) if target.has(frame_path) else None
    available = target.keys("stimulus/section_time") if target.has("stimulus/section_time") else []
    if movie_names is None:
        movies = list(available)
    else:
        movies = [movie_names] if isinstance(movie_names, str) else list(movie_names)
        missing = [m for m in movies if m not in available]
        if missing:
            raise ConfigError(
                f"no section times for movies {missing}; the recording has {available or 'none'}"
            )
    per_movie, unpadded = {}, {}
    for movie in movies:
        sections = target.get(f"stimulus/section_time/{movie}")
        per_movie[movie] = movie_trial_bounds(movie, config=config, frame_times=frame_times,
                                              section_times=sections, sampling_rate=fs, pad_margin=pad_margin)
        unpadded[movie] = movie_trial_bounds(movie, config=config, frame_times=frame_times,
                                             section_times=sections, sampling_rate=fs)[0]
    pre, post = int(round(pad_margin[0] * fs)), int(round(pad_margin[1] * fs))
    unit_ids = target.unit_ids()
    rows = [np.asarray(target.spike_times(u), dtype=np.uint64) for u in unit_ids]
    values, offsets = rows_to_csr(rows)
    all_bounds = (np.concatenate([b for b, _, _ in per_movie.values()]) if per_movie
                  else np.zeros((0, 2), np.int64))
    cut = section_sorted(values, offsets, all_bounds, n_threads=n_threads)
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat()
    n_total = all_bounds.shape[0]
    movie_rows, k = [], 0  # per movie: (path tail, first trial, n trials, records, bounds, unpadded, scalars)
    for movie, (bounds, n_occ, repeat) in per_movie.items():
        original = original_records(bounds.shape[0], pad_margin, pre, post)
        scalars = {"pad_margin_before_s": float(pad_margin[0]), "pad_margin_after_s": float(pad_margin[1]),
                   "n_occurrences": int(n_occ), "repeat": int(repeat),
                   # the original's immediate mode: its records as attributes (its session mode: datasets)
                   **({} if target.is_deferred else {**original, "trial_repeats": int(repeat), "created_at": stamp})}
        movie_rows.append((f"spike_times_sectioned/{movie}", k, bounds.shape[0], original, bounds.astype(np.uint64),
                           np.asarray(unpadded[movie], dtype=np.int64).reshape(-1, 2), scalars))
        k += bounds.shape[0]
    movie_arrays = _movies_of_units(len(unit_ids), movie_rows, cut, n_total)
    # every unit's movies stored in one call (a session takes them at once; a file writes them as they come)
    target.put_many(_unit_movies(unit_ids, movie_arrays, cut, spare=values))
    del values  # (its memory now holds the trials, staged)
    if target.is_deferred:
        target.put_many([(f"units/{unit}/{row[0]}/_attrs", row[3]) for unit in unit_ids for row in movie_rows],
                        values=True)
        # each movie's trials of all units as staged, for the steps that read them all (never in the file)
        for movie, (_tail, scalars, firsts, lasts, rows) in zip(per_movie, movie_arrays):
            target.keep_derived(sectioned_key(movie), ("units", None, "spike_times_sectioned", movie), SectionedMovie(
                tuple(unit_ids), cut.values, firsts, lasts, rows["trial_offsets"], rows["trial_bounds"],
                (scalars["pad_margin_before_s"], scalars["pad_margin_after_s"])))
    logger.info("sectioned %s into %s of %s", counted(len(unit_ids), "unit"), counted(n_total, "trial"),
                counted(len(movies), "movie"))
    return SectionResult(hdf5_path=None, units_processed=len(unit_ids), movies_processed=movies,
                         trials_per_movie={m: int(b.shape[0]) for m, (b, _, _) in per_movie.items()},
                         pad_margin=pad_margin, pre_samples=int(round(pad_margin[0] * fs)),
                         post_samples=int(round(pad_margin[1] * fs)))


def _movies_of_units(n_units, movie_rows, cut, n_total) -> list:
    """Per movie of ``movie_rows``: (path tail, scalars, every unit's first and last index in the cut, arrays of
    every unit: one row each), the rows' arrays made once for all units."""
    movies = []
    for tail, first, n, _original, bounds, unpadded_bounds, scalars in movie_rows:
        index = np.arange(n_units, dtype=np.int64)[:, None] * n_total + first + np.arange(n + 1, dtype=np.int64)
        absolute = cut.offsets[index]  # (n_units, n + 1): every unit's trial offsets into the cut
        relative = absolute - absolute[:, :1]
        rows = {"trial_offsets": relative, "trial_bounds": np.tile(bounds, (n_units, 1, 1)),
                "trials_start_end": np.tile(unpadded_bounds, (n_units, 1, 1)), "pieces": relative.copy()}
        movies.append((tail, scalars, absolute[:, 0], absolute[:, -1], rows))
    return movies


def _unit_movies(unit_ids, movies, cut, spare=None):
    """``(path, value)`` of every unit's sectioned movies (``movies``: :func:`_movies_of_units`), in order, made
    as they are asked for.

    Every array is a view of a buffer made for all units at once, each unit's its own part of it: the
    ragged spikes are the cut's own array, the original's trials one int64 copy of it (written into
    ``spare``, a uint64 array of the caller's that it no longer needs, when that is large enough), its
    ``full_spike_times`` one more (:func:`~h5stream.kernels.sectioning.sorted_unique_runs`; a movie whose
    trials overlap gets its own), and each movie's trial offsets and bounds one array of all units' rows.
    No value shares memory with another (an edit in place of one unit's value changes no other; the
    trials' offsets are not the ragged ones), and no spike array is allocated per unit or per movie: the
    step's time grows with the fresh memory it touches, two buffers of every sectioned spike (the cut and
    ``full_spike_times``) beside the concatenated trains, where copies per movie took four."""
    spikes = cut.values
    if spare is not None and spare.dtype == np.uint64 and spare.flags.c_contiguous and spare.size >= spikes.size:
        spikes64 = spare.view(np.int64)[:spikes.size]  # memory touched already: no fresh pages to fault in
        np.copyto(spikes64, spikes)
    else:
        spikes64 = spikes.astype(np.int64)  # the original's dtype
    # full_spike_times of unit r, movie m: run r * n_movies + m (the runs in the cut's order)
    starts = np.stack([m[2] for m in movies], axis=1).reshape(-1) if movies else np.zeros(0, np.int64)
    ends = np.stack([m[3] for m in movies], axis=1).reshape(-1) if movies else np.zeros(0, np.int64)
    fulls = iter(sorted_unique_runs(spikes, starts, ends))
    for r, unit in enumerate(unit_ids):
        for tail, scalars, firsts, lasts, rows in movies:
            a, b = int(firsts[r]), int(lasts[r])
            yield f"units/{unit}/{tail}", {
                # the original's layout, which the lab's analysis reads
                **original_sections(spikes64[a:b], rows["pieces"][r], rows["trials_start_end"][r], copy=False,
                                    full=next(fulls)),
                # the ragged form beside it (our readers' one read per movie)
                "spike_times": spikes[a:b],
                "trial_offsets": rows["trial_offsets"][r],
                "trial_bounds": rows["trial_bounds"][r],
                **scalars,
            }
