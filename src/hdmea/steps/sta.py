"""Receptive fields: the spike-triggered average of a dense-noise movie, for all units at once.

For every occurrence of the movie, each spike is mapped to the movie frame on
screen when it fired; the windows of all occurrences are pooled (every
occurrence counts).  The average is count-weighted (a frame with two spikes
counts twice), computed by :func:`h5stream.kernels.sta.spike_triggered_average`.

Stored per unit at ``units/{unit}/features/sta_{movie}``: dataset ``data``
(where the original pipeline's session mode puts it; float32, (n_lags, h, w),
oldest frame first: index ``k`` shows the frame ``first_lag + n_lags - 1 - k``
frames before the spike's frame; all NaN for a unit of which no spike was
averaged, as the original stores it; files of earlier versions call it ``sta``,
:mod:`hdmea.io.layout_names`) and attributes ``n_spikes_used``,
``n_spikes_excluded``, ``n_lags``, ``first_lag``, ``movie``, ``movie_name`` and
``cover_range`` (the original's names), plus ``name``, ``version``,
``params_hash`` and ``extracted_at``.

The original pipeline's call ``compute_sta(hdf5_path, cover_range=(-60, 0),
use_multiprocessing=True, stimuli_dir=...)`` runs the same step: ``cover_range``
``(-n, 0)`` is ``n_lags=n`` before the spike's frame, ``(-n + 1, 1)`` the same
window with the spike's own frame; the movie is the one sectioned movie whose
name contains ``noise`` (unless the stimulus configuration names its noise
movie), read from ``<stimuli_dir>/<movie>.npy``; without ``stimuli_dir`` (and
without a stimulus configuration naming the movie's file) from the folder this
module's ``DEFAULT_STIMULI_DIR`` names when the step is called, so a script may
set ``hdmea.features.sta.DEFAULT_STIMULI_DIR``.  The result also carries the
original's fields (``movie_name``, ``cover_range``, ``units_failed``,
``failed_units``, ``elapsed_seconds``, ``warnings``).  Unlike the original, every
occurrence of the movie is pooled, not only the first.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import numpy as np

from hdmea.errors import ConfigError
from hdmea.io.layout_names import STA_DATASET
from hdmea.features.registry import params_hash
from hdmea.progress import counted

__all__ = ["STAResult", "compute_sta", "movie_stimulus", "spikes_to_movie_frames", "cover_range_to_lags",
           "DEFAULT_STIMULI_DIR"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

STEP = "compute_sta"
FEATURE_VERSION = "1"
#: The lab's shared folder of stimulus movies (``<movie>.npy``), the original's default for ``stimuli_dir``.
DEFAULT_STIMULI_DIR = Path(r"M:\Python_Project\Data_Processing_2025\Design_Stimulation_Pattern\Data\Stimulations")


@dataclasses.dataclass(init=False)
class STAResult:
    """What :func:`compute_sta` did (immediate mode).

    Built with our fields or with the original pipeline's (``movie_name``,
    ``units_processed``, ``units_failed``, ``cover_range``, ``elapsed_seconds``,
    ``warnings``, ``failed_units``); both sets read back either way.
    """

    hdf5_path: Path | None
    movie: str
    units_processed: int
    n_lags: int
    exclude_current_frame: bool
    n_occurrences: int
    n_spikes_used: dict[str, int]
    n_spikes_excluded: dict[str, int]
    method: str
    params_hash: str
    elapsed_s: float
    skipped: bool
    warnings: list[str]
    failed_units: list[str]

    def __init__(self, hdf5_path=None, movie: str | None = None, units_processed: int = 0,
                 n_lags: int | None = None, exclude_current_frame: bool = True, n_occurrences: int = 0,
                 n_spikes_used=None, n_spikes_excluded=None, method: str = "", params_hash: str = "",
                 elapsed_s: float = 0.0, skipped: bool = False, warnings=None, failed_units=None, *,
                 movie_name: str | None = None, units_failed: int | None = None, cover_range=None,
                 elapsed_seconds: float | None = None) -> None:
        if cover_range is not None:
            lags, exclude = cover_range_to_lags(cover_range)
            if n_lags is not None and (n_lags, exclude_current_frame) != (lags, exclude):
                raise ConfigError("the window is given twice (cover_range and n_lags); pass one")
            n_lags, exclude_current_frame = lags, exclude
        self.hdf5_path = Path(hdf5_path) if hdf5_path is not None else None
        self.movie = movie if movie is not None else (movie_name or "")
        self.units_processed = int(units_processed)
        self.n_lags = int(n_lags) if n_lags is not None else 60
        self.exclude_current_frame = bool(exclude_current_frame)
        self.n_occurrences = int(n_occurrences)
        self.n_spikes_used = dict(n_spikes_used or {})
        self.n_spikes_excluded = dict(n_spikes_excluded or {})
        self.method = method
        self.params_hash = params_hash
        self.elapsed_s = float(elapsed_seconds if elapsed_seconds is not None else elapsed_s)
        self.skipped = bool(skipped)
        self.warnings = list(warnings or [])
        self.failed_units = list(failed_units or [])
        self._units_failed = None if units_failed is None else int(units_failed)

    # -- the original pipeline's names for the same facts
    @property
    def movie_name(self) -> str:
        return self.movie

    @property
    def cover_range(self) -> tuple[int, int]:
        """The window in display frames relative to the spike's frame, end exclusive."""
        return (-self.n_lags, 0) if self.exclude_current_frame else (1 - self.n_lags, 1)

    @property
    def units_failed(self) -> int:
        return self._units_failed if self._units_failed is not None else len(self.failed_units)

    @property
    def elapsed_seconds(self) -> float:
        return self.elapsed_s


def cover_range_to_lags(cover_range) -> tuple[int, bool]:
    """``(n_lags, exclude_current_frame)`` of a window ``(start, end)`` in frames relative to the spike's frame.

    The window must end just before the spike's frame (``end == 0``) or with it
    (``end == 1``): frames after the spike cannot drive it.
    """
    try:
        start, end = (int(v) for v in cover_range)
    except (TypeError, ValueError):
        raise ConfigError(f"Invalid cover_range {cover_range!r}: not a pair of frame offsets") from None
    if start >= end:
        raise ConfigError(f"Invalid cover_range {(start, end)}: it must start before it ends")
    if end not in (0, 1):
        raise ConfigError(
            f"Invalid cover_range {(start, end)}: it must end at the spike's frame",
            expected="(-n, 0) (before the spike's frame) or "
            "(-n + 1, 1) (with it)", found=repr(tuple(cover_range)),
            hint="frames after the spike's frame cannot have caused it")
    return end - start, end == 0


def movie_stimulus(stimulus, config, movie: str) -> np.ndarray:
    """The movie as shown, one entry per display frame (n_frames, h, w).

    ``stimulus`` may be None or a :class:`hdmea.stimulus.StimulusConfig` (use the
    noise movie of that stimulus configuration), a path to a ``.npy`` file, or an array: either one image per display frame
    or one per noise image (then each is repeated ``frames_per_image`` times as
    the configuration says).
    """
    from hdmea.stimulus import StimulusConfig

    if isinstance(stimulus, StimulusConfig):
        # The whole stimulus description was passed (as add_section_time takes it).
        config, stimulus = stimulus, None
    noise = config.noise_movies.get(movie) if config is not None else None
    length = config.movie_lengths.get(movie) if config is not None else None
    if stimulus is None:
        if noise is None:
            raise ConfigError(
                f"no stimulus for movie {movie!r}: the recording's stimulus configuration has no noise movie "
                "of that name", hint="pass stimulus= (an array or a .npy path)")
        frames = noise.load_frames()
    elif isinstance(stimulus, (str, os.PathLike)):
        try:
            frames = np.load(stimulus, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{stimulus}: cannot read the stimulus movie ({exc})") from exc
    else:
        frames = np.asarray(stimulus)
    if frames.ndim < 2:
        raise ConfigError(f"stimulus of movie {movie!r} must be (n_frames, ...), found shape {frames.shape}")
    if length is not None and frames.shape[0] != length:
        per_image = noise.frames_per_image if noise is not None else None
        if per_image and frames.shape[0] * per_image == length:
            frames = np.repeat(frames, per_image, axis=0)
        else:
            raise ConfigError(
                f"stimulus of movie {movie!r} has {frames.shape[0]} frames",
                expected=f"{length} display frames" + (f" or {length // per_image} images" if per_image else ""),
                found=str(frames.shape[0]),
            )
    return frames


def _occurrence_first_frames(target, config, movie: str, frame_times: np.ndarray, pad_frames: int) -> np.ndarray:
    """Display frame of movie frame 0 in every occurrence."""
    if config is not None and movie in config.playlist:
        from hdmea.stimulus import occurrence_frame_ranges

        return occurrence_frame_ranges(config)[movie][:, 0] + config.pre_margin_frames
    sections = np.asarray(target.get(f"stimulus/section_time/{movie}")).astype(np.int64).reshape(-1, 2)
    return np.searchsorted(frame_times, sections[:, 0], side="left") + pad_frames


def spikes_to_movie_frames(spike_samples, frame_times, first_frames, n_movie_frames) -> np.ndarray:
    """Movie frame of every spike, pooled over occurrences (spikes outside the movie are dropped).

    A spike belongs to the display frame that started last at or before it.  The
    movie's last frame ends where the next display frame starts.  ``frame_times``
    rise (as :func:`numpy.searchsorted` needs).  Naive twin:
    ``tests.reference.movie_frames_naive``.
    """
    spikes = np.asarray(spike_samples, dtype=np.int64)
    size = frame_times.size
    frame = None  # every spike's frame, found when an occurrence lies outside the display's frames
    parts = []
    for first in np.asarray(first_frames, dtype=np.int64).tolist():
        end = first + n_movie_frames
        if 0 <= first < size and n_movie_frames > 0:
            # the occurrence's spikes (frame_times rise): from its first frame's start to the start of the frame
            # after its last, the only ones searched among the frames
            inside = spikes >= frame_times[first]
            if end < size:
                inside &= spikes < frame_times[end]
            rel = np.searchsorted(frame_times, spikes[inside], side="right") - 1 - first
            if end >= size:
                rel = rel[rel < size - 1 - first]  # the display's last frame has no known end
            parts.append(rel)
            continue
        if frame is None:
            frame = np.searchsorted(frame_times, spikes, side="right") - 1
        rel = frame - first
        inside = (frame >= 0) & (rel >= 0) & (rel < n_movie_frames)
        if end >= size:
            inside &= frame < size - 1  # the display's last frame has no known end
        parts.append(rel[inside])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def compute_sta(
    hdf5_path: str | os.PathLike | None = None,
    stimulus=None,
    *,
    force: bool = False,
    session=None,
    movie_name: str | None = None,
    n_lags: int | None = None,
    exclude_current_frame: bool | None = None,
    section_pad_frames: int = 60,
    method: str = "auto",
    n_threads: int | None = None,
    # the original pipeline's parameters (see the docstring's last section)
    cover_range: tuple[int, int] = (-60, 0),
    use_multiprocessing: bool = True,
    stimuli_dir: str | os.PathLike | None = None,
):
    """Spike-triggered average of a noise movie for every unit of a recording.

    Parameters
    ----------
    hdf5_path
        The recording file (immediate mode).
    stimulus
        The movie: None (the recording's stimulus configuration names its
        ``.npy``), a path, or an array (per display frame or per noise image).
    movie_name
        Which movie (default: the only noise movie of the stimulus configuration,
        else the only sectioned movie whose name contains ``noise``).
    n_lags
        Display frames in the window (60 = 1 s at 60 Hz; default 60, or from
        ``cover_range``).
    exclude_current_frame
        True (the default): the window is the ``n_lags`` frames before the
        spike's frame; False: it ends with the spike's frame.
    section_pad_frames
        Without a stimulus configuration: display frames between a section's
        start and the movie's first frame.
    method, n_threads
        Kernel choice and threads (see :func:`h5stream.kernels.sta.spike_triggered_average`).
    force
        Recompute units whose STA of this movie has the same parameters already.
    session
        Stage into this session instead of writing the file.

    The original pipeline's parameters (kept for its scripts; the last three of the signature):

    cover_range
        The window, ``(start, end)`` display frames relative to the spike's
        frame, end exclusive: ``(-n, 0)`` is ``n_lags=n`` with
        ``exclude_current_frame=True``, ``(-n + 1, 1)`` the same with the spike's
        own frame.  Any other value than the default together with ``n_lags``
        or ``exclude_current_frame`` is refused (ConfigError).
    use_multiprocessing
        False: one thread (the original's sequential run) unless ``n_threads``
        is given; True: ``n_threads``.  With ``n_threads`` given it is accepted
        and ignored.
    stimuli_dir
        Read the movie from ``<stimuli_dir>/<movie>.npy``.  Default: the
        recording's stimulus configuration's file for the movie, else
        ``DEFAULT_STIMULI_DIR`` as it is when the step is called.  With
        ``stimulus`` given it is accepted and ignored.

    Returns
    -------
    STAResult or PipelineSession
    """
    from h5stream.kernels.sta import spike_triggered_average
    from hdmea.steps.section_time import DEFAULT_FRAME_TIME, read_stimulus_config
    from hdmea.session.target import open_target

    lags, exclude = cover_range_to_lags(cover_range)
    if n_lags is not None or exclude_current_frame is not None:
        if tuple(cover_range) != (-60, 0):
            raise ConfigError("the window is given twice (cover_range and n_lags/exclude_current_frame); pass one")
        lags = lags if n_lags is None else n_lags
        exclude = True if exclude_current_frame is None else exclude_current_frame
    n_lags, exclude_current_frame = lags, bool(exclude)
    if int(n_lags) < 1:
        raise ConfigError(f"n_lags must be >= 1, found {n_lags}")
    if not use_multiprocessing and n_threads is None:
        n_threads = 1
    t0 = time.perf_counter()
    with open_target(hdf5_path, session, step=STEP) as target:
        target.require_steps("load_recording", "add_section_time")
        config = read_stimulus_config(target)
        movie = movie_name or _default_movie(target, config)
        if not target.has(f"stimulus/section_time/{movie}") and (config is None or movie not in config.playlist):
            raise ConfigError(f"the recording never shows movie {movie!r}",
                              expected="a movie with section times", found=", ".join(_movies(target)) or "none")
        if stimulus is None and stimuli_dir is None and (config is None or movie not in config.noise_movies):
            stimuli_dir = DEFAULT_STIMULI_DIR  # read now, not at import: a script may have set it
        if stimulus is None and stimuli_dir is not None:
            stimulus = _load_stimulus_movie(movie, stimuli_dir)
        frames = movie_stimulus(stimulus, config, movie)
        first_lag = 1 if exclude_current_frame else 0
        params = {"movie": movie, "n_lags": int(n_lags), "first_lag": first_lag,
                  "stimulus_shape": list(frames.shape), "stimulus_sum": int(frames.sum(dtype=np.int64))
                  if np.issubdtype(frames.dtype, np.integer) else float(frames.sum())}
        digest = params_hash("sta", FEATURE_VERSION, params)
        feature = f"sta_{movie}"
        unit_ids = target.unit_ids()
        if not force and unit_ids and all(
            target.has(f"units/{u}/features/{feature}")
            and target.attrs(f"units/{u}/features/{feature}").get("params_hash") == digest
            for u in unit_ids
        ):
            logger.info("STA of %s is stored with the same parameters; pass force=True to recompute", movie)
            result = STAResult(hdf5_path=_path(hdf5_path), movie=movie, units_processed=0, n_lags=int(n_lags),
                               exclude_current_frame=bool(exclude_current_frame), n_occurrences=0,
                               n_spikes_used={}, n_spikes_excluded={}, method="", params_hash=digest, skipped=True)
        else:
            frame_times = np.asarray(target.get(f"stimulus/frame_time/{DEFAULT_FRAME_TIME}")).astype(np.int64)
            firsts = _occurrence_first_frames(target, config, movie, frame_times, int(section_pad_frames))
            per_unit = [
                spikes_to_movie_frames(np.asarray(target.spike_times(u)), frame_times, firsts,
                                       frames.shape[0])
                for u in unit_ids
            ]
            sums = spike_triggered_average(frames, per_unit, n_lags=int(n_lags),
                                           exclude_current_frame=bool(exclude_current_frame), method=method,
                                           n_threads=n_threads)
            meta = {"version": FEATURE_VERSION, "params_hash": digest, "extracted_at": _now()}
            cover = [-(first_lag + int(n_lags) - 1), 1 - first_lag]
            used, excluded = sums.n_spikes_used.tolist(), sums.n_spikes_excluded.tolist()
            stas = [_unit_sta(sums, i) for i in range(len(unit_ids))]
            # every unit's STA in one call (a session stages them in one change; a file writes them one by one)
            target.add_features(feature, [(u, {
                STA_DATASET: sta, "n_spikes_used": int(used[i]), "n_spikes_excluded": int(excluded[i]),
                "n_lags": int(n_lags), "first_lag": first_lag, "movie": movie, "movie_name": movie,
                "cover_range": list(cover)}, meta) for i, (u, sta) in enumerate(zip(unit_ids, stas))])
            if target.is_deferred:  # the original's session mode: a metadata group of datasets
                target.put_many([(f"units/{u}/features/{feature}/metadata", {
                    "cover_range": list(cover), "movie_name": movie, "n_spikes_used": int(used[i]),
                    "n_spikes_excluded": int(excluded[i])}) for i, u in enumerate(unit_ids)], values=True)
            else:  # the original's immediate mode: features/<movie>/sta with its records as attributes
                for i, (u, sta) in enumerate(zip(unit_ids, stas)):
                    target.put(f"units/{u}/features/{movie}", {"sta": sta})
                    target.set_attrs(f"units/{u}/features/{movie}/sta", {
                        "cover_range": list(cover), "dtype_warning":
                            bool(sta.dtype != np.uint8),  # as the original: set for any STA not uint8
                        "n_spikes": int(used[i]), "n_spikes_excluded": int(excluded[i])})
            target.mark_step_complete(STEP)
            result = STAResult(
                hdf5_path=_path(hdf5_path), movie=movie, units_processed=len(unit_ids), n_lags=int(n_lags),
                exclude_current_frame=bool(exclude_current_frame), n_occurrences=int(len(firsts)),
                n_spikes_used={u: int(n) for u, n in zip(unit_ids, sums.n_spikes_used)},
                n_spikes_excluded={u: int(n) for u, n in zip(unit_ids, sums.n_spikes_excluded)},
                method=sums.method, params_hash=digest,
            )
            logger.info("STA of %s for %s (%s, %s path)", movie, counted(len(unit_ids), "unit"),
                        counted(len(firsts), "occurrence"), sums.method)
    result.elapsed_s = time.perf_counter() - t0
    return session if session is not None else result


def _path(hdf5_path):
    return Path(hdf5_path) if hdf5_path is not None else None


def _now() -> str:
    from hdmea.io.hdf5_store import now_iso

    return now_iso()


def _movies(target) -> list[str]:
    return target.keys("stimulus/section_time") if target.has("stimulus/section_time") else []


def _noise_movies(names) -> list[str]:
    """The original pipeline's rule: movies whose name contains ``noise`` (any case)."""
    return sorted(m for m in names if "noise" in m.lower())


def _find_noise_movie(hdf5_file, unit_id: str) -> str:
    """The one noise movie among a unit's sectioned movies (the original's helper); ConfigError otherwise."""
    path = f"units/{unit_id}/spike_times_sectioned"
    if path not in hdf5_file:
        raise ConfigError(f"unit {unit_id} has no sectioned spikes", hint="run section_spike_times first")
    movies = list(hdf5_file[path].keys())
    noise = _noise_movies(movies)
    if len(noise) != 1:
        raise ConfigError(f"{'No' if not noise else 'Multiple'} noise movie found among the sectioned movies",
                          expected="exactly one movie whose name contains 'noise'",
                          found=", ".join(noise or movies) or "none")
    return noise[0]


def _find_noise_movie_from_session(section_time_data) -> str | None:
    """The noise movie among a session's section times (the original's helper): the first, by name, whose
    name contains ``noise``; None when there is none (a warning is logged when there are several)."""
    noise = _noise_movies(list(section_time_data))
    if len(noise) > 1:
        logger.warning("several noise movies have section times: %s; using %s", noise, noise[0])
    return noise[0] if noise else None


def _load_stimulus_movie(movie_name: str, stimuli_dir) -> np.ndarray:
    """``<stimuli_dir>/<movie_name>.npy`` as stored (a warning is logged when it is not uint8)."""
    from hdmea.errors import RecordingNotFoundError

    path = Path(stimuli_dir) / f"{movie_name}.npy"
    if not path.is_file():
        raise RecordingNotFoundError(f"Stimulus file not found for movie {movie_name!r}", path=path,
                                     hint="pass stimuli_dir= the folder holding <movie>.npy, or stimulus=")
    try:
        movie = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the stimulus movie ({exc})") from exc
    if movie.dtype != np.uint8:
        logger.warning("stimulus movie %r is %s, not uint8", movie_name, movie.dtype)
    return movie


def _compute_sta_for_unit(spike_frames, movie_array, cover_range) -> tuple[np.ndarray, int, int]:
    """One unit's STA over movie frames (the original's helper): ``(sta float32, used, excluded)``.

    The same kernel as :func:`compute_sta`; no spike used gives an all-NaN STA, as
    in the original.
    """
    from h5stream.kernels.sta import spike_triggered_average

    n_lags, exclude = cover_range_to_lags(cover_range)
    movie = np.asarray(movie_array)
    frames = np.asarray(spike_frames, dtype=np.int64)
    inside = (frames >= 0) & (frames < movie.shape[0])
    sums = spike_triggered_average(movie, [frames[inside]], n_lags=n_lags, exclude_current_frame=exclude,
                                   n_threads=1)
    used = int(sums.n_spikes_used[0])
    return np.asarray(_unit_sta(sums, 0), dtype=np.float32), used, int(frames.size - used)


def _unit_sta(sums, i: int) -> np.ndarray:
    """Unit ``i``'s STA of ``sums``: all NaN when no spike was averaged, as the original stores it (a unit
    that never fires, or whose spikes all fall outside the movie), so no plot draws a flat STA from no data."""
    sta = sums.sta[i]
    return sta if int(sums.n_spikes_used[i]) else np.full(sta.shape, np.nan, dtype=sta.dtype)


def _default_movie(target, config) -> str:
    noise = sorted(config.noise_movies) if config is not None else []
    if not noise:  # the original's rule: the one sectioned movie named like a noise movie
        noise = _noise_movies(_movies(target))
    if len(noise) == 1:
        return noise[0]
    raise ConfigError(
        "movie_name is needed: the recording's stimulus configuration has "
        + (f"several noise movies {noise}" if noise else "no noise movie"),
        found=", ".join(_movies(target)) or "no sectioned movies",
        hint="pass movie_name=",
    )
