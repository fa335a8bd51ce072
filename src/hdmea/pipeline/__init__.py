"""The pipeline: session, steps and batch runs.

Names are imported on first use so that ``import hdmea.pipeline`` stays cheap
(numba and the readers load only when a step needs them).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "PipelineSession": "hdmea.pipeline.session",
    "SaveState": "hdmea.pipeline.session",
    "create_session": "hdmea.pipeline.session",
    "load_recording": "hdmea.pipeline.runner",
    "LoadResult": "hdmea.pipeline.runner",
    "load_recording_with_eimage_sta": "hdmea.pipeline.eimage",
    "compute_eimage_sta": "hdmea.pipeline.eimage",
    "extract_features": "hdmea.features.extract",
    "ExtractionResult": "hdmea.features.extract",
    "add_section_time": "hdmea.io.section_time",
    "section_spike_times": "hdmea.io.spike_sectioning",
    "SectionResult": "hdmea.io.spike_sectioning",
    "compute_sta": "hdmea.features.sta",
    "STAResult": "hdmea.features.sta",
    "run_batch": "hdmea.pipeline.batch",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hdmea.pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
