"""Per-unit features: receptive fields (STA), and a registry of named, versioned extractors.

``FeatureRegistry`` / ``FeatureExtractor`` are the lab pipeline's class-based
interface (``@FeatureRegistry.register("name")``); ``register_extractor`` is the
function style; both fill one registry that ``extract_features`` runs by name,
immediately or in a session.  The built-in extractors register on import (they
need numpy only).  The original pipeline's names here that live in the layers above (its steps
``compute_sta``, ``section_by_direction`` and its electrical-image functions) are handed on on first use
by :mod:`hdmea._compat_table`.
"""

from __future__ import annotations

import importlib

from hdmea.features.base import ArrayAdapter, DictAdapter, FeatureExtractor
from hdmea.features.registry import (
    FeatureRegistry,
    RegisteredExtractor,
    UnknownFeatureError,
    get_extractor,
    list_extractors,
    params_hash,
    register_extractor,
)

# The built-ins register themselves on import.
from hdmea.features import extractors as _function_extractors  # noqa: F401  (firing_rate, step_response, ...)
from hdmea.features.baseline import BaselineFeatureExtractor
from hdmea.features.cell_type import CellTypeFeatureExtractor
from hdmea.features.chromatic import ChromaticFeatureExtractor
from hdmea.features.direction import MovingBarFeatureExtractor
from hdmea.features.direction.sectioning import DIRECTION_LIST, DirectionSectionResult
from hdmea.features.eimage_sta import EImageSTAExtractor
from hdmea.features.example import ExampleFeatureExtractor
from hdmea.features.frequency import FrequencyFeatureExtractor
from hdmea.features.frif import FRIFExtractor
from hdmea.features.on_off import StepUpFeatureExtractor
from hdmea.features.receptive_field import DenseNoiseFeatureExtractor

__all__ = [
    "ArrayAdapter",
    "BaselineFeatureExtractor",
    "CellTypeFeatureExtractor",
    "ChromaticFeatureExtractor",
    "DIRECTION_LIST",
    "DenseNoiseFeatureExtractor",
    "DictAdapter",
    "DirectionSectionResult",
    "EImageSTAExtractor",
    "ExampleFeatureExtractor",
    "FRIFExtractor",
    "FrequencyFeatureExtractor",
    "MovingBarFeatureExtractor",
    "FeatureExtractor",
    "FeatureRegistry",
    "RegisteredExtractor",
    "StepUpFeatureExtractor",
    "UnknownFeatureError",
    "get_extractor",
    "list_extractors",
    "params_hash",
    "register_extractor",
]

importlib.import_module("hdmea._compat_table").hand_on(globals())
