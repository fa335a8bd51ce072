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
  channel starts a section of ``section_duration_s`` seconds for ``movie_name``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from scipy.signal import find_peaks

from hdmea.errors import ConfigError, RecordingFormatError
from hdmea.pipeline.target import open_target
from hdmea.stimulus import StimulusConfig, frames_to_samples, occurrence_frame_ranges

__all__ = [
    "add_section_time",
    "frame_times_from_sync",
    "playlist_section_times",
    "analog_section_times",
    "read_stimulus_config",
    "STIMULUS_CONFIG_PATH",
    "DEFAULT_FRAME_TIME",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

STEP = "add_section_time"
STIMULUS_CONFIG_PATH = "stimulus/config"
DEFAULT_FRAME_TIME = "default"
SYNC_CHANNEL = "raw_ch2"
LIGHT_CHANNEL = "raw_ch1"


def frame_times_from_sync(sync, *, drop_leading_peaks: int = 4, percentile: float = 99.9,
                          height: float = 0.1) -> np.ndarray:
    """Sample of every display frame's sync pulse (uint64), leading peaks dropped."""
    sync = np.asarray(sync, dtype=np.float64)
    if sync.ndim != 1:
        raise ConfigError(f"the frame-sync signal must be 1-D, found shape {sync.shape}")
    if drop_leading_peaks < 0:
        raise ConfigError(f"drop_leading_peaks must be >= 0, found {drop_leading_peaks}")
    if sync.size < 2:
        return np.zeros(0, dtype=np.uint64)
    scale = np.percentile(sync, percentile)
    if not np.isfinite(scale) or scale <= 0:
        return np.zeros(0, dtype=np.uint64)
    d = np.diff(sync / scale)
    peaks, _ = find_peaks(d, height=height)
    # diff[i] rises between samples i and i + 1: the pulse starts at i + 1.
    return (peaks[drop_leading_peaks:] + 1).astype(np.uint64)


def playlist_section_times(frame_times, config: StimulusConfig) -> dict[str, np.ndarray]:
    """(n_occurrences, 2) uint64 sample pairs per movie of the playlist."""
    frame_times = np.asarray(frame_times)
    needed = config.total_frames
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


def analog_section_times(signal, threshold: float, duration_samples: int) -> np.ndarray:
    """(n, 2) uint64 sections starting at each rising crossing of ``threshold``."""
    signal = np.asarray(signal)
    if duration_samples <= 0:
        raise ConfigError(f"section duration must be positive, found {duration_samples} samples")
    above = signal >= threshold
    onsets = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    if onsets.size:
        # A new section starts only after the previous one has ended.
        keep = [onsets[0]]
        for t in onsets[1:]:
            if t >= keep[-1] + duration_samples:
                keep.append(t)
        onsets = np.asarray(keep, dtype=np.int64)
    ends = np.minimum(onsets + duration_samples, signal.size - 1)
    return np.stack([onsets, ends], axis=1).astype(np.uint64).reshape(-1, 2)


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


def add_section_time(
    hdf5_path: str | os.PathLike | None = None,
    stimulus=None,
    *,
    mode: str = "playlist",
    drop_leading_peaks: int = 4,
    movie_name: str | None = None,
    threshold: float | None = None,
    section_duration_s: float | None = None,
    channel: str = LIGHT_CHANNEL,
    force: bool = False,
    session=None,
):
    """Compute frame times and section times and store them under ``/stimulus``.

    Parameters
    ----------
    hdf5_path
        The recording file (immediate mode).
    stimulus
        Playlist mode: a :class:`~hdmea.stimulus.StimulusConfig`, its dict, or
        the path of its JSON file.
    mode
        ``"playlist"`` or ``"analog"``.
    drop_leading_peaks
        Frame-sync peaks dropped before the first counted frame (lab convention 4).
    movie_name, threshold, section_duration_s, channel
        Analog mode: sections of ``movie_name`` start where light-reference
        ``channel`` rises through ``threshold`` and last ``section_duration_s``.
    force
        Playlist mode: recompute when this step has run already (otherwise it is
        skipped).  Analog mode always runs; it adds or replaces ``movie_name``.
    session
        Stage into this session instead of writing the file.

    Returns
    -------
    bool or PipelineSession
        ``True`` when section times were written (``False`` when skipped).
    """
    handler = _MODES.get(mode)
    if handler is None:
        raise ConfigError(f"unknown section-time mode {mode!r}; use one of {sorted(_MODES)}")
    with open_target(hdf5_path, session, step=STEP) as target:
        target.require_steps("load_recording")
        if STEP in target.completed_steps and not force and mode == "playlist":
            logger.info("add_section_time already ran; pass force=True to recompute")
            done = False
        else:
            handler(target, stimulus=stimulus, drop_leading_peaks=drop_leading_peaks, movie_name=movie_name,
                    threshold=threshold, section_duration_s=section_duration_s, channel=channel)
            target.mark_step_complete(STEP)
            done = True
    return session if session is not None else done


def _light(target, name: str) -> np.ndarray:
    path = f"stimulus/light_reference/{name}"
    if not target.has(path):
        raise RecordingFormatError(
            "the recording has no light reference channel", obj="/" + path,
            expected=f"light reference {name!r} (loaded from the .cmcr)", found="nothing",
            hint="run load_recording with the .cmcr file",
        )
    return np.asarray(target.get(path))


def _playlist_mode(target, *, stimulus, drop_leading_peaks, **_unused) -> None:
    if stimulus is None:
        config = read_stimulus_config(target)
        if config is None:
            raise ConfigError("playlist mode needs stimulus= (a StimulusConfig or the path of its JSON)")
    else:
        config = _as_stimulus_config(stimulus)
    frame_times = frame_times_from_sync(_light(target, SYNC_CHANNEL), drop_leading_peaks=drop_leading_peaks)
    sections = playlist_section_times(frame_times, config)
    extra = frame_times.size - config.total_frames
    if extra > 0:
        text = (f"the frame-sync channel shows {frame_times.size} frames, {extra} more than the playlist's "
                f"{config.total_frames}; frames after the playlist are ignored")
        logger.warning(text)
        target.add_warning(text)
    target.add_stimulus(frame_times={DEFAULT_FRAME_TIME: frame_times}, section_times=sections)
    _store_config(target, config, drop_leading_peaks)


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


def _analog_mode(target, *, movie_name, threshold, section_duration_s, channel, **_unused) -> None:
    if not movie_name or threshold is None or section_duration_s is None:
        raise ConfigError("analog mode needs movie_name, threshold and section_duration_s")
    fs = _scalar(target.get("metadata/sampling_rate"))
    signal = _light(target, channel)
    sections = analog_section_times(signal, float(threshold), int(round(section_duration_s * fs)))
    if sections.shape[0] == 0:
        text = f"analog mode found no crossing of {threshold} on {channel}; no sections for {movie_name!r}"
        logger.warning(text)
        target.add_warning(text)
    target.add_stimulus(section_times={movie_name: sections})


_MODES = {"playlist": _playlist_mode, "analog": _analog_mode}
