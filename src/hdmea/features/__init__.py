"""Per-unit features: receptive fields (STA), and a registry of named, versioned extractors.

``compute_sta`` and ``extract_features`` are pipeline steps (immediate or in a
session); ``register_extractor`` adds an extractor that ``extract_features`` can
run by name.  Step functions load on first use so that importing this package
stays cheap (numba is not imported here).
"""

from __future__ import annotations

import importlib

from hdmea.features.registry import (
    FeatureExtractor,
    UnknownFeatureError,
    get_extractor,
    list_extractors,
    params_hash,
    register_extractor,
)

_LAZY = {
    "compute_sta": "hdmea.features.sta",
    "STAResult": "hdmea.features.sta",
    "extract_features": "hdmea.features.extract",
    "ExtractionResult": "hdmea.features.extract",
}

__all__ = [
    "FeatureExtractor",
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
