"""Readers of MCS files and the recording store (``hdf5_store``).

The original pipeline's package-level names load on first use (so importing
``hdmea.io`` stays cheap): the recording store's writers, the section-time
functions and ``section_spike_times``.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    **{name: "hdmea.io.hdf5_store" for name in (
        "create_recording_hdf5", "open_recording_hdf5", "write_units", "write_stimulus", "write_metadata",
        "write_source_files", "mark_stage1_complete", "get_stage1_status", "list_units", "list_features",
        "write_feature_to_unit")},
    **{name: "hdmea.steps.section_time" for name in (
        "add_section_time", "add_section_time_analog", "convert_frame_to_sample_index",
        "convert_sample_index_to_frame")},
    "section_spike_times": "hdmea.steps.spike_sectioning",
    "SectionResult": "hdmea.steps.spike_sectioning",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hdmea.io' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
