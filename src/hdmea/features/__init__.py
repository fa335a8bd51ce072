"""Per-unit features: receptive fields (STA), and a registry of named, versioned extractors.

``FeatureRegistry`` / ``FeatureExtractor`` are the lab pipeline's class-based
interface (``@FeatureRegistry.register("name")``); ``register_extractor`` is the
function style; both fill one registry that ``extract_features`` runs by name,
immediately or in a session.  The built-in extractors register on import (they
need numpy only); step functions load on first use so that importing this
package stays cheap (numba is not imported here).
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
from hdmea.features.eimage_sta import EImageSTAConfig, EImageSTAExtractor, EImageSTAResult
from hdmea.features.example import ExampleFeatureExtractor
from hdmea.features.frequency import FrequencyFeatureExtractor
from hdmea.features.frif import FRIFExtractor
from hdmea.features.on_off import StepUpFeatureExtractor
from hdmea.features.receptive_field import DenseNoiseFeatureExtractor

# Steps handed on under this package (they live a layer above; see tests/unit/test_import_graph.py).
_LAZY = {
    "compute_eimage_sta": "hdmea.steps.eimage_variants",
    "section_by_direction": "hdmea.steps.direction",
    "compute_sta": "hdmea.steps.sta",
    "STAResult": "hdmea.steps.sta",
    "extract_features": "hdmea.steps.features",
    "ExtractionResult": "hdmea.steps.features",
}

__all__ = [
    "ArrayAdapter",
    "BaselineFeatureExtractor",
    "CellTypeFeatureExtractor",
    "ChromaticFeatureExtractor",
    "DIRECTION_LIST",
    "DenseNoiseFeatureExtractor",
    "DictAdapter",
    "DirectionSectionResult",
    "EImageSTAConfig",
    "EImageSTAExtractor",
    "EImageSTAResult",
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
    *sorted(_LAZY),
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hdmea.features' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
