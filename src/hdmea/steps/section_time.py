"""Frame times and section times of a recording's visual stimulus.

Frame times come from the display's frame-sync channel (light reference
``raw_ch2``): normalise by its 99.9th percentile, take the difference, and every
peak above 0.1 is a frame whose time is the first sample of its rising edge.  The
lab's convention drops the first ``drop_leading_peaks`` (default 4) peaks.

Section times say where each occurrence of each movie lies, as (n_occurrences, 2)
sample pairs (start of the section's first frame, start of its last frame):

* playlist mode: the :class:`~hdmea.stimulus.StimulusConfig` lays the playlist
  out frame by frame (pad, movie, pad per entry); every occurrence of a repeated
  movie counts.
* analog mode: every rising crossing of ``threshold`` on a light-reference
  channel starts a section of ``section_duration_s`` seconds for ``movie_name``
  (``detect="derivative"``: every peak of the channel's sample-to-sample rise
  above ``threshold``, as the original pipeline's ``add_section_time_analog``).

The original pipeline's call styles are thin layers over the same step:
``add_section_time(hdf5_path, playlist_name, playlist_file_path=...,
movie_length_file_path=...)`` reads the lab's playlist and movie-length CSV files
into a :class:`~hdmea.stimulus.StimulusConfig` with the original's layout (pad
frames between movies), and ``add_section_time_analog`` runs analog mode.  Both
also store the mean light trace of each movie's sections under
``/stimulus/light_template`` and return True or False as the original did.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import json
import logging
import os
from pathlib import Path

import numpy as np

from hdmea.errors import ConfigError, MissingInputError, RecordingExistsError, RecordingFormatError
from hdmea.session.target import open_target
from hdmea.steps.light_onsets import (  # noqa: F401  (the signal processing, re-exported under this module)
    analog_section_times, frame_times_from_sync, peaks_above, percentile_as_float64,
)
from hdmea.stimulus import StimulusConfig, frames_to_samples, occurrence_frame_ranges

__all__ = [
    "add_section_time",
    "frame_times_from_sync",
    "playlist_section_times",
    "analog_section_times",
    "light_template",
    "read_stimulus_config",
    "STIMULUS_CONFIG_PATH",
    "DEFAULT_FRAME_TIME",
    "add_section_time_analog",
    "convert_frame_to_sample_index",
    "convert_sample_index_to_frame",
    "read_playlist_csv",
    "read_movie_length_csv",
    "stimulus_from_playlist_csv",
    "PRE_MARGIN_FRAME_NUM",
    "POST_MARGIN_FRAME_NUM",
    "DEFAULT_PAD_FRAME",
    "DEFAULT_PLAYLIST_PATH",
    "DEFAULT_MOVIE_LENGTH_PATH",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

STEP = "add_section_time"
STIMULUS_CONFIG_PATH = "stimulus/config"
DEFAULT_FRAME_TIME = "default"
SYNC_CHANNEL = "raw_ch2"
LIGHT_CHANNEL = "raw_ch1"
LIGHT_TEMPLATE_PATH = "stimulus/light_template"

# The original pipeline's playlist layout, in display frames.
PRE_MARGIN_FRAME_NUM: int = 60
POST_MARGIN_FRAME_NUM: int = 120
DEFAULT_PAD_FRAME: int = 180
#: The lab's shared copies of the playlist and movie-length tables (used when no path is given).
DEFAULT_PLAYLIST_PATH: str = "//Jiangfs1/fs_1_2_data/Python_Project/Design_Stimulation_Pattern/Data/playlist.csv"
DEFAULT_MOVIE_LENGTH_PATH: str = (
    "//Jiangfs1/fs_1_2_data/Python_Project/Design_Stimulation_Pattern/Data/movie_length.csv")


def convert_frame_to_sample_index(frame, frame_timestamps) -> np.ndarray:
    """Sample index of each display frame; frames outside the recording clip to the first or last frame."""
    frame_timestamps = np.asarray(frame_timestamps)
    if frame_timestamps.size == 0:
        raise ConfigError("no frame timestamps: the frame-sync channel showed no frames")
    index = np.clip(np.asarray(frame).astype(np.int64), 0, frame_timestamps.size - 1)
    return frame_timestamps[index]


def convert_sample_index_to_frame(sample_index, frame_timestamps) -> np.ndarray:
    """The display frame on screen at each sample: the last frame starting at or before it (clipped to 0)."""
    frame_timestamps = np.asarray(frame_timestamps)
    if frame_timestamps.size == 0:
        raise ConfigError("no frame timestamps: the frame-sync channel showed no frames")
    samples = np.asarray(sample_index).astype(np.int64)
    frame = np.searchsorted(frame_timestamps.astype(np.int64), samples, side="right") - 1
    return np.clip(frame, 0, frame_timestamps.size - 1)


def _read_csv_rows(path, key: str, value: str, what: str) -> dict[str, str]:
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in (key, value) if c not in (reader.fieldnames or [])]
            if missing:
                raise ConfigError(f"{path}: not a {what} table", expected=f"columns {key!r} and {value!r}",
                                  found=", ".join(reader.fieldnames or []) or "no header")
            return {row[key].strip(): row[value] for row in reader if row.get(key)}
    except FileNotFoundError:
        raise ConfigError(f"{path}: the {what} file does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path}: cannot read the {what} file ({exc})") from exc


def read_playlist_csv(path) -> dict[str, list[str]]:
    """The lab's playlist table: ``{playlist_name: [movie, ...]}`` (file extensions such as ``.mov`` dropped).

    Columns ``playlist_name`` and ``movie_names``, the latter a Python list literal
    (``"['step_up_5s_5i_3x.mov', ...]"``).
    """
    out = {}
    for name, text in _read_csv_rows(path, "playlist_name", "movie_names", "playlist").items():
        try:
            movies = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            movies = None
        if not isinstance(movies, (list, tuple)) or not all(isinstance(m, str) for m in movies):
            raise ConfigError(f"{path}: playlist {name!r} does not list movie names",
                              expected="a list literal such as \"['a.mov', 'b.mov']\"", found=repr(text))
        out[name] = [m.split(".")[0] for m in movies]
    return out


def read_movie_length_csv(path) -> dict[str, int]:
    """The lab's movie-length table: ``{movie_name: length in display frames}``."""
    out = {}
    for name, text in _read_csv_rows(path, "movie_name", "movie_length", "movie-length").items():
        try:
            out[name] = int(float(text))
        except ValueError:
            raise ConfigError(f"{path}: movie {name!r} has no frame count", found=repr(text)) from None
    return out


def stimulus_from_playlist_csv(
    playlist_name: str,
    playlist_file_path=None,
    movie_length_file_path=None,
    *,
    repeats: int = 1,
    pad_frame: int = DEFAULT_PAD_FRAME,
    pre_margin_frame_num: int = PRE_MARGIN_FRAME_NUM,
    post_margin_frame_num: int = POST_MARGIN_FRAME_NUM,
    trial_configs: dict | None = None,
) -> StimulusConfig:
    """A :class:`StimulusConfig` of one playlist of the lab's CSV files, in the original pipeline's layout.

    The playlist runs ``repeats`` times.  A movie the movie-length table lacks is
    left out of the playlist with a logged warning (it takes no display frames).
    """
    playlists = read_playlist_csv(playlist_file_path or DEFAULT_PLAYLIST_PATH)
    lengths = read_movie_length_csv(movie_length_file_path or DEFAULT_MOVIE_LENGTH_PATH)
    if playlist_name not in playlists:
        raise ConfigError(f"{playlist_file_path or DEFAULT_PLAYLIST_PATH}: no playlist {playlist_name!r}",
                          found=", ".join(sorted(playlists)) or "no playlists")
    movies = []
    for movie in playlists[playlist_name] * max(int(repeats), 1):
        if movie in lengths:
            movies.append(movie)
        else:
            logger.warning("movie %r of playlist %r has no length in the movie-length table; left out",
                           movie, playlist_name)
    if not movies:
        raise ConfigError(f"playlist {playlist_name!r} has no movie with a known length")
    used = {m: lengths[m] for m in dict.fromkeys(movies)}
    if trial_configs is None:
        from hdmea.stimulus_files import trial_configs as stimulus_trials

        trial_configs = stimulus_trials(used)
    trials = {}
    for movie, tc in trial_configs.items():
        tc = dict(tc) if isinstance(tc, dict) else dataclasses.asdict(tc)
        if movie in used and tc["start_frame"] + tc["trial_length_frame"] * tc["repeat"] <= used[movie]:
            trials[movie] = tc
        elif movie in used:
            logger.warning("the trials of %r end after its length %d frames; it is sectioned as one trial",
                           movie, used[movie])
    return StimulusConfig(playlist=movies, movie_lengths=used, trial_configs=trials,
                          pre_margin_frames=int(pre_margin_frame_num), post_margin_frames=int(post_margin_frame_num),
                          pad_frames=int(pad_frame))


def playlist_section_times(frame_times, config: StimulusConfig) -> dict[str, np.ndarray]:
    """(n_occurrences, 2) uint64 sample pairs per movie of the playlist."""
    frame_times = np.asarray(frame_times)
    needed = config.frames_needed
    if frame_times.size < needed:
        raise ConfigError(
            f"the playlist needs {needed} display frames but the frame-sync channel shows {frame_times.size}; "
            "check the playlist, the movie lengths, the margins and drop_leading_peaks"
        )
    out = {}
    for movie, frames in occurrence_frame_ranges(config).items():
        starts = frames_to_samples(frame_times, frames[:, 0])
        lasts = frames_to_samples(frame_times, frames[:, 1] - 1)
        out[movie] = np.stack([starts, lasts], axis=1).astype(np.uint64)
    return out


def read_stimulus_config(target) -> StimulusConfig | None:
    """The stimulus configuration stored by :func:`add_section_time` (None if absent)."""
    if not target.has(STIMULUS_CONFIG_PATH):
        return None
    attrs = target.attrs(STIMULUS_CONFIG_PATH)
    text = attrs.get("config_json")
    if text is None:
        return None
    return StimulusConfig.from_dict(json.loads(text))


def _as_stimulus_config(stimulus) -> StimulusConfig:
    if isinstance(stimulus, StimulusConfig):
        return stimulus
    if isinstance(stimulus, dict):
        return StimulusConfig.from_dict(stimulus)
    if isinstance(stimulus, (str, os.PathLike)):
        return StimulusConfig.load_json(Path(stimulus))
    raise ConfigError(
        f"stimulus must be a StimulusConfig, a dict or a path to its JSON, found {type(stimulus).__name__}"
    )


def _scalar(value) -> float:
    return float(np.asarray(value).reshape(-1)[0])


def _looks_like_stimulus(value) -> bool:
    """Our positional style passes the stimulus second: a StimulusConfig, its dict, or its JSON file."""
    if isinstance(value, (StimulusConfig, dict)):
        return True
    if isinstance(value, os.PathLike):
        return True
    return isinstance(value, str) and (value.endswith(".json") or os.sep in value or "/" in value)


def add_section_time(
    hdf5_path: str | os.PathLike | None = None,
    playlist_name: str | None = None,
    *,
    force: bool = False,
    session=None,
    stimulus=None,
    mode: str = "playlist",
    drop_leading_peaks: int = 4,
    movie_name: str | None = None,
    threshold: float | None = None,
    section_duration_s: float | None = None,
    channel: str = LIGHT_CHANNEL,
    detect: str = "level",
    max_sections: int | None = None,
    light_template: bool | None = None,
    non_overlapping: bool = False,
    # the original pipeline's parameters (see the docstring's last section)
    playlist_file_path: str | os.PathLike | None = None,
    movie_length_file_path: str | os.PathLike | None = None,
    repeats: int = 1,
    pad_frame: int = DEFAULT_PAD_FRAME,
    pre_margin_frame_num: int = PRE_MARGIN_FRAME_NUM,
    post_margin_frame_num: int = POST_MARGIN_FRAME_NUM,
):
    """Compute frame times and section times and store them under ``/stimulus``.

    Parameters
    ----------
    hdf5_path
        The recording file (immediate mode).
    playlist_name
        Our style: a :class:`~hdmea.stimulus.StimulusConfig`, its dict or the path
        of its JSON file in this place is taken as ``stimulus``.  The original
        pipeline's style: the playlist's name in the lab's playlist table, laid
        out by the parameters of the last section.  A missing or unreadable
        table or an unknown playlist is logged and returns False (the session,
        with a warning, in a session); section times stored already raise
        FileExistsError unless ``force``.
    stimulus
        Our style, playlist mode: a :class:`~hdmea.stimulus.StimulusConfig`, its
        dict, or the path of its JSON file (default: the one stored by an earlier run).
    mode
        ``"playlist"`` or ``"analog"``.
    drop_leading_peaks
        Frame-sync peaks dropped before the first counted frame (lab convention 4).
    movie_name, threshold, section_duration_s, channel, detect, max_sections, non_overlapping
        Analog mode: sections of ``movie_name`` start where light-reference
        ``channel`` rises through ``threshold`` (``detect="derivative"``: where
        its rise from one sample to the next peaks above ``threshold``) and last
        ``section_duration_s``; at most the first ``max_sections`` are kept (the light
        template averages every section found, as in the original).
        Every onset starts a section (they may overlap), as in the original;
        ``non_overlapping=True`` keeps an onset only after the previous section
        ended.  When no onset is found nothing is stored (a warning is recorded).
    light_template
        Also store each movie's mean light trace over its sections at
        ``/stimulus/light_template/{movie}`` (default: in the original's style).
    force
        Playlist mode: recompute when this step has run already (otherwise it is
        skipped).  Analog mode always runs; it adds or replaces ``movie_name``.
    session
        Stage into this session instead of writing the file.

    The original pipeline's parameters (kept for its scripts; the last six of the
    signature).  They are read only when ``playlist_name`` is a playlist's name;
    without one (a stimulus configuration in second place or as ``stimulus``, or
    nothing there) they are accepted and ignored:

    playlist_file_path
        The lab's playlist table (CSV; default :data:`DEFAULT_PLAYLIST_PATH` as it
        is when the step is called).
    movie_length_file_path
        The lab's movie-length table (CSV; default :data:`DEFAULT_MOVIE_LENGTH_PATH`
        as it is when the step is called).
    repeats
        How many times the playlist runs (0 or less: once).
    pad_frame
        Gray display frames before and after each movie.
    pre_margin_frame_num, post_margin_frame_num
        Display frames a section starts before its movie and ends after it.

    Returns
    -------
    bool or PipelineSession
        ``True`` when section times were written (``False`` when skipped).
    """
    handler = _MODES.get(mode)
    if handler is None:
        raise ConfigError(f"unknown section-time mode {mode!r}; use one of {sorted(_MODES)}")
    original_style = playlist_name is not None and not _looks_like_stimulus(playlist_name)
    if playlist_name is not None and not original_style:
        if stimulus is not None:
            raise ConfigError("the stimulus is given twice (second argument and stimulus=); pass one")
        stimulus = playlist_name
    if original_style:
        try:
            stimulus = stimulus_from_playlist_csv(
                playlist_name, playlist_file_path, movie_length_file_path, repeats=repeats, pad_frame=pad_frame,
                pre_margin_frame_num=pre_margin_frame_num, post_margin_frame_num=post_margin_frame_num)
        except ConfigError as exc:
            logger.error("add_section_time: %s", exc)
            if session is not None:
                session.add_warning(f"add_section_time: {exc}")
                return session
            return False
    if light_template is None:
        light_template = original_style
    with open_target(hdf5_path, session, step=STEP) as target:
        target.require_steps("load_recording")
        if original_style and target.has("stimulus/section_time") and not force:
            if session is None:
                raise RecordingExistsError("section times are stored already", path=hdf5_path,
                                           obj="/stimulus/section_time", hint="pass force=True to recompute them")
            logger.warning("section times are in the session already; pass force=True to recompute them")
            target.mark_step_complete(STEP)
            return session
        if STEP in target.completed_steps and not force and mode == "playlist":
            logger.info("add_section_time already ran; pass force=True to recompute")
            done = False
        else:
            sections = handler(target, stimulus=stimulus, drop_leading_peaks=drop_leading_peaks,
                               movie_name=movie_name, threshold=threshold, section_duration_s=section_duration_s,
                               channel=channel, detect=detect, max_sections=max_sections,
                               non_overlapping=non_overlapping)
            if light_template and sections:
                _store_light_templates(target, sections)
            if original_style:
                target.set_attrs("", {"section_time_playlist": playlist_name,
                                      "section_time_repeats": int(max(repeats, 1))})
            target.mark_step_complete(STEP)
            done = bool(sections)  # analog mode finding no onset wrote nothing
    return session if session is not None else done


def add_section_time_analog(
    hdf5_path: str | os.PathLike,
    threshold_value: float,
    *,
    movie_name: str = "iprgc_test",
    plot_duration: float = 120.0,
    repeat: int | None = None,
    force: bool = False,
    session=None,
    non_overlapping: bool = False,
) -> bool:
    """Sections where the photodiode channel ``raw_ch1`` jumps (the original pipeline's analog call).

    Every peak of the channel's sample-to-sample rise above ``threshold_value``
    starts a section of ``plot_duration`` seconds of ``movie_name`` (the first
    ``repeat`` of them when given), as in the original: sections may overlap
    (``non_overlapping=True``: an onset inside the previous section is skipped).
    Stored in ``/stimulus/section_time/{movie_name}`` with the mean light trace in
    ``/stimulus/light_template/{movie_name}``.  Returns True, or False when no
    onset is found (then nothing is stored); section times of that movie stored
    already raise FileExistsError unless ``force``.
    """
    if threshold_value is None:
        raise ConfigError("threshold_value is required (inspect the raw_ch1 signal to choose it)")
    if not plot_duration or plot_duration <= 0:
        raise ConfigError("plot_duration must be positive", found=str(plot_duration))
    if not movie_name:
        raise ConfigError("movie_name must not be empty")
    with open_target(hdf5_path, session, step=STEP) as target:
        if not target.has(f"stimulus/light_reference/{LIGHT_CHANNEL}"):
            raise MissingInputError("the recording has no photodiode channel", path=hdf5_path,
                                    obj=f"/stimulus/light_reference/{LIGHT_CHANNEL}",
                                    missing_input=f"stimulus/light_reference/{LIGHT_CHANNEL}",
                                    hint="run load_recording with the .cmcr file")
        exists = target.has(f"stimulus/section_time/{movie_name}")
    if exists and not force:
        raise RecordingExistsError(f"section times of {movie_name!r} are stored already", path=hdf5_path,
                                   obj=f"/stimulus/section_time/{movie_name}", hint="pass force=True to replace them")
    result = add_section_time(hdf5_path, mode="analog", movie_name=movie_name, threshold=float(threshold_value),
                              section_duration_s=float(plot_duration), detect="derivative", max_sections=repeat,
                              light_template=True, session=session, non_overlapping=non_overlapping)
    if session is not None:
        return session
    return bool(result)


def _store_light_templates(target, sections: dict[str, np.ndarray]) -> None:
    """Mean photodiode trace over each movie's sections (:func:`light_template`), float32."""
    if not target.has(f"stimulus/light_reference/{LIGHT_CHANNEL}"):
        return
    light = np.asarray(target.get(f"stimulus/light_reference/{LIGHT_CHANNEL}"))
    for movie, pairs in sections.items():
        template = light_template(light, pairs)
        if template is not None:
            target.put(f"{LIGHT_TEMPLATE_PATH}/{movie}", template)


#: samples of a light template averaged at a time: its float64 sums and counts stay this small
TEMPLATE_BLOCK = 1 << 16


def light_template(light: np.ndarray, pairs) -> np.ndarray | None:
    """The mean of ``light`` over the sample ranges ``pairs`` ((n, 2) start and end, clipped to the signal;
    empty ones left out) as float32, None when none is left: ``np.nanmean`` of the ranges stacked in float64
    (the shorter padded with NaN) over the ranges, bit for bit, computed ``TEMPLATE_BLOCK`` samples at a time.

    A range spans the movie (minutes of samples at 20 kHz): the stack and nanmean's copies of it would be
    five float64 arrays of that length per range, each new memory; here only the template is.
    """
    light = np.asarray(light)
    spans = [(a, b) for a, b in ((max(a, 0), min(b, light.size))
                                 for a, b in np.asarray(pairs, dtype=np.int64).reshape(-1, 2).tolist()) if b > a]
    if not spans:
        return None
    width = max(b - a for a, b in spans)
    out = np.empty(width, dtype=np.float32)
    total = np.empty(min(width, TEMPLATE_BLOCK), dtype=np.float64)
    count = np.empty(total.size, dtype=np.intp)
    row = np.empty(total.size, dtype=np.float64)
    for start in range(0, width, TEMPLATE_BLOCK):
        n = min(TEMPLATE_BLOCK, width - start)
        tot, cnt, values = total[:n], count[:n], row[:n]
        tot.fill(0.0)
        cnt.fill(0)
        for a, b in spans:  # (nanmean sums from 0.0, its NaN padding as 0.0: adding nothing is the same)
            k = min(max(b - a - start, 0), n)  # this range's samples in the block
            if k:
                values[:k] = light[a + start:a + start + k]  # (as the float64 stack holds them)
                missing = np.isnan(values[:k])
                values[:k][missing] = 0.0
                cnt[:k] += ~missing
                tot[:k] += values[:k]
        with np.errstate(invalid="ignore", divide="ignore"):  # (no value at a sample: NaN, as nanmean)
            np.true_divide(tot, cnt, out=tot)
        out[start:start + n] = tot
    return out


def _light(target, name: str) -> np.ndarray:
    path = f"stimulus/light_reference/{name}"
    if not target.has(path):
        raise RecordingFormatError(
            "the recording has no light reference channel", obj="/" + path,
            expected=f"light reference {name!r} (loaded from the .cmcr)", found="nothing",
            hint="run load_recording with the .cmcr file",
        )
    return np.asarray(target.get(path))


def _playlist_mode(target, *, stimulus, drop_leading_peaks, **_unused) -> dict[str, np.ndarray]:
    if stimulus is None:
        config = read_stimulus_config(target)
        if config is None:
            raise ConfigError("playlist mode needs stimulus= (a StimulusConfig or the path of its JSON)")
    else:
        config = _as_stimulus_config(stimulus)
    frame_times = frame_times_from_sync(_light(target, SYNC_CHANNEL), drop_leading_peaks=drop_leading_peaks)
    sections = playlist_section_times(frame_times, config)
    extra = frame_times.size - config.total_frames
    if extra > 0 and config.pad_frames is None:
        text = (f"the frame-sync channel shows {frame_times.size} frames, {extra} more than the playlist's "
                f"{config.total_frames}; frames after the playlist are ignored")
        logger.warning(text)
        target.add_warning(text)
    target.add_stimulus(frame_times={DEFAULT_FRAME_TIME: frame_times}, section_times=sections)
    _store_config(target, config, drop_leading_peaks)
    return sections


def _store_config(target, config: StimulusConfig, drop_leading_peaks: int) -> None:
    movies = {}
    for name, length in config.movie_lengths.items():
        entry = {"length_frames": int(length), "n_occurrences": int(config.playlist.count(name))}
        tc = config.trial_configs.get(name)
        if tc is not None:
            entry.update(start_frame=tc.start_frame, trial_length_frame=tc.trial_length_frame, repeat=tc.repeat)
        movies[name] = entry
    target.put(STIMULUS_CONFIG_PATH, {
        "config_json": json.dumps(config.to_dict(), sort_keys=True),
        "pre_margin_frames": int(config.pre_margin_frames),
        "post_margin_frames": int(config.post_margin_frames),
        "drop_leading_peaks": int(drop_leading_peaks),
        "movies": movies,
    })


def _analog_mode(target, *, movie_name, threshold, section_duration_s, channel, detect="level", max_sections=None,
                 non_overlapping=False, **_unused) -> dict[str, np.ndarray]:
    if not movie_name or threshold is None or section_duration_s is None:
        raise ConfigError("analog mode needs movie_name, threshold and section_duration_s")
    fs = _scalar(target.get("metadata/sampling_rate"))
    signal = _light(target, channel)
    sections = analog_section_times(signal, float(threshold), int(round(section_duration_s * fs)), detect=detect,
                                    non_overlapping=non_overlapping)
    if sections.shape[0] == 0:
        # As the original: nothing is stored (an empty section list would read as "shown, never")
        text = f"analog mode found no crossing of {threshold} on {channel}; no sections for {movie_name!r}"
        logger.warning(text)
        target.add_warning(text)
        return {}
    kept = sections[:int(max_sections)] if max_sections is not None and int(max_sections) > 0 else sections
    target.add_stimulus(section_times={movie_name: kept})
    return {movie_name: sections}  # every section found: the light template averages them all, as the original


_MODES = {"playlist": _playlist_mode, "analog": _analog_mode}
