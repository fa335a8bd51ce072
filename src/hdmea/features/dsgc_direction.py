"""The original pipeline's module of the lab's DSGC direction sectioning, under its path.

The layout and the per-unit sectioning live in :mod:`hdmea.features.direction.sectioning`; the step,
:func:`section_by_direction`, lives with the steps (:mod:`hdmea.steps.direction`, a layer above) and is handed
on here on first use.
"""

from __future__ import annotations

import importlib

from hdmea.features.direction.sectioning import (
    COORDINATE_SCALE_FACTOR,
    DEFAULT_MOVIE_NAME,
    DEFAULT_PADDING_FRAMES,
    DEFAULT_STIMULI_DIR,
    DIRECTION_LIST,
    INVALID_CENTER_VALUE,
    N_DIRECTIONS,
    N_REPETITIONS,
    N_TRIALS,
    STA_GEOMETRY_FEATURE,
    STEP,
    DirectionSectionResult,
    convert_center_15_to_300,
    get_cell_center,
    load_on_off_dict,
    section_unit_by_direction,
)

__all__ = [
    "DIRECTION_LIST", "N_DIRECTIONS", "N_REPETITIONS", "N_TRIALS", "DEFAULT_PADDING_FRAMES", "DEFAULT_STIMULI_DIR",
    "COORDINATE_SCALE_FACTOR", "STA_GEOMETRY_FEATURE", "DEFAULT_MOVIE_NAME", "INVALID_CENTER_VALUE", "STEP",
    "DirectionSectionResult", "load_on_off_dict", "convert_center_15_to_300", "get_cell_center",
    "section_unit_by_direction", "section_by_direction",
]

# The step is handed on under the original's path (this table is the only way this module reaches the layer
# above, see tests/unit/test_import_graph.py).
_HANDED_ON = {"section_by_direction": "hdmea.steps.direction"}


def __getattr__(name: str):
    module = _HANDED_ON.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
