"""The pipeline: session, steps and batch runs.

The steps and their order are the table :data:`hdmea.steps.table.STEPS`;
each step's function is exported here under the step's name.  The runner of one
recording is :func:`hdmea.pipeline.run.run_pipeline`.

Names are imported on first use so that ``import hdmea.pipeline`` stays cheap
(numba and the readers load only when a step needs them).
"""

from __future__ import annotations

import importlib

from hdmea.steps.table import STEPS

_EXPORTS = {
    # every step of the table under its own name
    **{step.name: step.module for step in STEPS},
    "STEPS": "hdmea.steps.table",
    "run_pipeline": "hdmea.pipeline.run",
    "PipelineReport": "hdmea.pipeline.run",
    "StepRecord": "hdmea.pipeline.run",
    "PipelineSession": "hdmea.session.session",
    "SaveState": "hdmea.session.session",
    "create_session": "hdmea.session.session",
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
    "load_session_from_hdf5": "hdmea.session.loader",
    "load_hdf5_to_session": "hdmea.session.loader",
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
