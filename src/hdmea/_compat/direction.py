"""The lab's direction sectioning as a step: :func:`section_by_direction` (see :mod:`hdmea.features.direction.sectioning`).

Every unit with a receptive-field centre gets its spikes of the moving-bar movie sectioned by the bar's
direction, stored at ``units/{u}/spike_times_sectioned/{movie}/direction_section``; the windows of one
unit come from :func:`hdmea.features.dsgc_direction.section_unit_by_direction`.  The original defined it in
``hdmea.features.dsgc_direction``, which hands it on under that path.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from hdmea.errors import ConfigError
from hdmea.features.direction import sectioning as _sectioning
from hdmea.features.base import StoredGroup
from hdmea.features.direction.bar_geometry import DIRECTION_LIST, MovingBar
from hdmea.features.direction.moving_bar import STA_MOVIE, unit_rf_centre
from hdmea.features.direction.sectioning import (
    DEFAULT_MOVIE_NAME,
    DEFAULT_PADDING_FRAMES,
    N_DIRECTIONS,
    STEP,
    DirectionSectionResult,
    convert_center_15_to_300,
    load_on_off_dict,
    section_unit_by_direction,
)
from hdmea.session.target import open_target
from hdmea.steps.section_time import read_stimulus_config

__all__ = ["section_by_direction"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())


def _geometry_timing(bar: MovingBar, centre_px: tuple[float, float], first_sweep_frames: np.ndarray):
    on, off = bar.crossing_frames(*centre_px)
    reps = first_sweep_frames.size
    on_all = (first_sweep_frames[:, None] + np.arange(N_DIRECTIONS) * bar.sweep_frames + on[None, :]).reshape(-1)
    off_all = (first_sweep_frames[:, None] + np.arange(N_DIRECTIONS) * bar.sweep_frames + off[None, :]).reshape(-1)
    assert on_all.size == reps * N_DIRECTIONS
    return {"on_peak_location": on_all.tolist(), "off_peak_location": off_all.tolist()}


def section_by_direction(
    hdf5_path: str | os.PathLike | None = None,
    *,
    movie_name: str = DEFAULT_MOVIE_NAME,
    on_off_dict_path: str | os.PathLike | None = None,
    padding_frames: int = DEFAULT_PADDING_FRAMES,
    force: bool = False,
    output_path: str | os.PathLike | None = None,
    unit_ids: list[str] | None = None,
    bar: MovingBar | None = None,
    sta_movie: str = STA_MOVIE,
    session=None,
):
    """Section every unit's spikes of the moving-bar movie by direction (see the module docstring).

    ``output_path`` copies the file there first and sections the copy; ``force``
    replaces stored sections; ``session`` stages into a session instead (and
    returns it).  Units without a centre or without spikes of the movie are
    skipped and named in the result.
    """
    if padding_frames < 0:
        raise ConfigError(f"padding_frames must be >= 0 (found {padding_frames})")
    t0 = time.perf_counter()
    if on_off_dict_path is None:  # the original's default: the pickle in the lab's stimulus folder, when there
        folder = _sectioning.DEFAULT_STIMULI_DIR  # read now: a script may have set it
        candidate = Path(folder) / f"{movie_name}_on_off_dict_area_hd.pkl" if folder is not None else None
        on_off_dict_path = candidate if candidate is not None and candidate.is_file() else None
    on_off_dict = load_on_off_dict(on_off_dict_path) if on_off_dict_path is not None else None
    target_path = Path(hdf5_path) if hdf5_path is not None else None
    if session is None and output_path is not None:
        if target_path is None:
            raise ConfigError("output_path needs hdf5_path (the file to copy)")
        Path(output_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(target_path, output_path)
        target_path = Path(output_path)
    warnings_list: list[str] = []
    skipped: list[str] = []
    processed = 0
    with open_target(target_path, session, step=STEP) as target:
        config = read_stimulus_config(target)
        section_key = f"stimulus/section_time/{movie_name}"
        if not target.has(section_key):
            raise ConfigError(f"no section times of movie {movie_name!r}", expected=section_key,
                              found=", ".join(target.keys("stimulus/section_time")) if target.has(
                                  "stimulus/section_time") else "no section times", hint="run add_section_time first")
        frames = np.asarray(target.get("stimulus/frame_time/default"), dtype=np.int64)
        sections = np.asarray(target.get(section_key), dtype=np.int64).reshape(-1, 2)
        pre = config.pre_margin_frames if config is not None else 60
        tc = config.trial_configs.get(movie_name) if config is not None else None
        start_frame, trial_len, repeat = (tc.start_frame, tc.trial_length_frame, tc.repeat) if tc else (0, None, 1)
        if bar is None:
            length = trial_len if trial_len is not None else (config.movie_lengths.get(movie_name) if config else None)
            if length is None:
                raise ConfigError(f"movie {movie_name!r} has no stored trial layout or length to place its sweeps")
            bar = MovingBar(sweep_frames=length // N_DIRECTIONS)
        movie_first = np.searchsorted(frames, sections[:, 0], side="right") - 1 + pre
        # sweeps of every occurrence, in movie frames of the first occurrence's time base
        firsts = np.concatenate([(m - movie_first[0]) + start_frame + np.arange(repeat) * (trial_len or 0)
                                 for m in movie_first])
        n_reps = firsts.size
        wanted = target.unit_ids() if unit_ids is None else [u for u in unit_ids if u in set(target.unit_ids())]
        for u in sorted(set(unit_ids or []) - set(target.unit_ids())):
            warnings_list.append(f"Specified unit '{u}' not found in the recording")
        for unit_id in wanted:
            base = f"units/{unit_id}/spike_times_sectioned/{movie_name}"
            path = f"{base}/direction_section"
            if target.has(path) and not force:
                skipped.append(unit_id)
                continue
            centre = unit_rf_centre(StoredGroup(target, f"units/{unit_id}"), sta_movie)
            if centre is None:
                warnings_list.append(f"No receptive-field centre for {unit_id}, skipping")
                skipped.append(unit_id)
                continue
            if on_off_dict is not None:
                key = convert_center_15_to_300(*centre)
                if key not in on_off_dict:
                    warnings_list.append(f"Cell center {key} not in on/off dict for {unit_id}, skipping")
                    skipped.append(unit_id)
                    continue
                timing = {key: on_off_dict[key]}
            else:
                key = bar.check_to_pixel(*centre)
                timing = {key: _geometry_timing(bar, key, firsts)}
            spikes = np.asarray(target.get(f"units/{unit_id}/spike_times"), dtype=np.int64)
            inside = np.zeros(spikes.size, dtype=bool)
            for a, b in sections:
                inside |= (spikes >= a) & (spikes <= b)
            samples = spikes[inside]
            spike_frames = np.searchsorted(frames, samples, side="right") - 1 - movie_first[0]
            sectioned = section_unit_by_direction(spike_frames, key, timing, padding_frames)
            node: dict[str, Any] = {
                "direction_list": np.asarray(DIRECTION_LIST, dtype=np.int64), "n_directions": N_DIRECTIONS,
                "n_repetitions": int(n_reps), "padding_frames": int(padding_frames),
                "cell_center_row": int(key[0]), "cell_center_col": int(key[1]),
            }
            for direction in DIRECTION_LIST:
                entry = sectioned[direction]
                trials = {}
                for rep, (start, end) in enumerate(entry["bounds"]):
                    keep = (spike_frames >= start) & (spike_frames <= end)
                    trials[str(rep)] = samples[keep].astype(np.int64)
                node[str(direction)] = {"trials": trials,
                                        "section_bounds": np.asarray(entry["bounds"], dtype=np.int64).reshape(-1, 2)}
            target.put(path, node)
            processed += 1
        for text in warnings_list:
            target.add_warning(text)
            logger.warning(text)
        target.mark_step_complete(STEP)
    result = DirectionSectionResult(hdf5_path=target_path, movie_name=movie_name, units_processed=processed,
                                    units_skipped=len(skipped), padding_frames=int(padding_frames),
                                    elapsed_seconds=time.perf_counter() - t0, warnings=warnings_list,
                                    skipped_units=skipped)
    logger.info("direction sectioning: %d units processed, %d skipped", processed, len(skipped))
    return session if session is not None else result
