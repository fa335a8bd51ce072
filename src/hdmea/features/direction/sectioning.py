"""Spike times of each unit sectioned by the moving bar's direction (the lab's DSGC sectioning).

For every unit with a receptive-field centre, each sweep of the moving-bar
movie (8 directions x the movie's trials, every occurrence) gives a window of
movie frames ``[on - padding_frames, off + padding_frames]`` (both ends kept),
``on``/``off`` being the frames when the bar arrives at and leaves the centre.
The spikes inside it are stored where the lab pipeline stores them::

    units/{u}/spike_times_sectioned/{movie}/direction_section/
        attrs: direction_list, n_directions, n_repetitions, padding_frames, cell_center_row, cell_center_col
        {direction}/trials/{rep}   int64 spike samples of that sweep
        {direction}/section_bounds int64 (n_repetitions, 2) window in movie frames

The on/off frames come from the bar's geometry
(:class:`~hdmea.features.direction.bar_geometry.MovingBar`, the keyword
``bar``) at the centre in screen pixels, or from the lab's per-pixel pickle
(``on_off_dict_path``: ``{(row, col): {"on_peak_location": [...],
"off_peak_location": [...]}}`` in 300 x 300 pixels, one entry per sweep,
keyed by ``convert_center_15_to_300``).  The centre comes from the unit's
dense-noise features (see :func:`hdmea.features.direction.moving_bar.unit_rf_centre`).
Movie frame ``j`` of an occurrence is display frame ``section start +
pre_margin_frames + j``; a spike's frame is the last frame starting at or
before it.

This module holds the layout and the per-unit sectioning; the step that runs them over a recording,
:func:`~hdmea._compat.direction.section_by_direction`, is one of the steps, and
:mod:`hdmea.features.dsgc_direction` (the original's path) hands both on.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from hdmea.features.base import StoredGroup
from hdmea.features.direction.bar_geometry import DIRECTION_LIST
from hdmea.features.direction.moving_bar import INVALID_CENTRE, STA_MOVIE, unit_rf_centre
# The lab's on/off pickle and grid conversion (in their own module, which the moving-bar extractor reads too).
from hdmea.features.direction.on_off_pickle import COORDINATE_SCALE_FACTOR, convert_center_15_to_300, load_on_off_dict

__all__ = [
    "DIRECTION_LIST", "N_DIRECTIONS", "N_REPETITIONS", "N_TRIALS", "DEFAULT_PADDING_FRAMES", "DEFAULT_STIMULI_DIR",
    "COORDINATE_SCALE_FACTOR", "STA_GEOMETRY_FEATURE", "DEFAULT_MOVIE_NAME", "INVALID_CENTER_VALUE",
    "DirectionSectionResult", "load_on_off_dict", "convert_center_15_to_300", "get_cell_center",
    "section_unit_by_direction", "STEP",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

N_DIRECTIONS = len(DIRECTION_LIST)
N_REPETITIONS = 3
N_TRIALS = N_DIRECTIONS * N_REPETITIONS
DEFAULT_PADDING_FRAMES = 10
#: Where the lab keeps its stimulus files (the original's value): ``section_by_direction`` without
#: ``on_off_dict_path`` uses ``<this>/<movie>_on_off_dict_area_hd.pkl`` when that file exists, else the on/off
#: frames of the bar's geometry.  Set it (at this path or the original's) to the lab's folder.
DEFAULT_STIMULI_DIR: Path = Path(r"M:\Python_Project\Data_Processing_2025\Design_Stimulation_Pattern\Data\Stimulations")
STA_GEOMETRY_FEATURE = f"sta_{STA_MOVIE}"
DEFAULT_MOVIE_NAME = "moving_h_bar_s5_d8_3x"
INVALID_CENTER_VALUE = INVALID_CENTRE
STEP = "section_by_direction"


@dataclasses.dataclass
class DirectionSectionResult:
    """What :func:`section_by_direction` did."""

    hdf5_path: Path | None
    movie_name: str
    units_processed: int
    units_skipped: int
    padding_frames: int
    elapsed_seconds: float
    warnings: list[str] = dataclasses.field(default_factory=list)
    skipped_units: list[str] = dataclasses.field(default_factory=list)


def get_cell_center(hdf5_file, unit_id: str, sta_feature_name: str = STA_GEOMETRY_FEATURE) -> tuple[int, int] | None:
    """A unit's centre in 300 x 300 pixels (the lab's conversion), or None.

    ``hdf5_file`` is an open h5py file or a pipeline target; the centre is read as
    :func:`~hdmea.features.direction.moving_bar.unit_rf_centre` reads it.
    """
    import h5py

    movie = sta_feature_name[len("sta_"):] if sta_feature_name.startswith("sta_") else sta_feature_name
    if isinstance(hdf5_file, h5py.File):
        group = hdf5_file.get(f"units/{unit_id}")
        if group is None:
            return None
        centre = unit_rf_centre(group, movie)
    else:
        centre = unit_rf_centre(StoredGroup(hdf5_file, f"units/{unit_id}"), movie)
    return None if centre is None else convert_center_15_to_300(*centre)


def section_unit_by_direction(spike_frames, cell_center, on_off_dict, padding_frames: int = DEFAULT_PADDING_FRAMES):
    """``{direction: {"trials": [frames per repetition], "bounds": [(start, end)]}}`` for one unit.

    ``on_off_dict[cell_center]`` lists the on and off movie frames of every sweep,
    sweep ``i`` being direction ``DIRECTION_LIST[i % 8]``.
    """
    if cell_center not in on_off_dict:
        raise KeyError(f"cell centre {cell_center} is not in the on/off dictionary")
    timing = on_off_dict[cell_center]
    on, off = list(timing["on_peak_location"]), list(timing["off_peak_location"])
    frames = np.asarray(spike_frames)
    out: dict[int, dict[str, list]] = {d: {"trials": [], "bounds": []} for d in DIRECTION_LIST}
    for i in range(min(len(on), len(off))):
        direction = DIRECTION_LIST[i % N_DIRECTIONS]
        start, end = int(on[i]) - padding_frames, int(off[i]) + padding_frames
        out[direction]["trials"].append(frames[(frames >= start) & (frames <= end)])
        out[direction]["bounds"].append((start, end))
    return out
