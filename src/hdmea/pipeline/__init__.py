"""The pipeline: session, steps and batch runs.

The steps and their order are the table :data:`hdmea.pipeline.steps.STEPS`;
each step's function is exported here under the step's name.

Names are imported on first use so that ``import hdmea.pipeline`` stays cheap
(numba and the readers load only when a step needs them).
"""

from __future__ import annotations

import importlib

from hdmea.pipeline.steps import STEPS

_EXPORTS = {
    # every step of the table under its own name
    **{step.name: step.module for step in STEPS},
    "STEPS": "hdmea.pipeline.steps",
    "run_pipeline": "hdmea.pipeline.steps",
    "PipelineReport": "hdmea.pipeline.steps",
    "StepRecord": "hdmea.pipeline.steps",
    "PipelineSession": "hdmea.pipeline.session",
    "SaveState": "hdmea.pipeline.session",
    "create_session": "hdmea.pipeline.session",
    "LoadResult": "hdmea.steps.load",
    "load_recording_with_eimage_sta": "hdmea.steps.load",
    "ExtractionResult": "hdmea.steps.features",
    "SectionResult": "hdmea.steps.spike_sectioning",
    "STAResult": "hdmea.steps.sta",
    "run_batch": "hdmea.pipeline.batch",
    # the original pipeline's exports
    "LoadWithEImageSTAResult": "hdmea.steps.load",
    "FlowResult": "hdmea.steps.load",
    "run_flow": "hdmea.pipeline.flows",
    "list_available_flows": "hdmea.pipeline.flows",
    "get_flow_info": "hdmea.pipeline.flows",
    "load_session_from_hdf5": "hdmea.pipeline.loader",
    "load_hdf5_to_session": "hdmea.pipeline.loader",
    "PreflightError": "hdmea.pipeline.preflight",
    "LowSpaceWarning": "hdmea.pipeline.preflight",
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
