"""The pipeline: the runner of one recording, its preflight checks and batch runs.

The steps and their order are the table :data:`hdmea.steps.table.STEPS`; each
step's function is exported here under the step's name.  The runner of one
recording is :func:`hdmea.pipeline.run.run_pipeline`; batches are
:func:`hdmea.pipeline.batch.run_batch`.

The original pipeline's names at this path (its flows, its session loader and
its results) are imported here from where they live, as
:data:`hdmea._compat_table.ORIGINAL_API` lists them.
"""

from __future__ import annotations

from hdmea._compat.flows import FlowResult, get_flow_info, list_available_flows, run_flow
from hdmea._compat.load_with_eimage import LoadWithEImageSTAResult, load_recording_with_eimage_sta
from hdmea.pipeline.batch import run_batch
from hdmea.pipeline.preflight import LowSpaceWarning, PreflightError
from hdmea.pipeline.run import PipelineReport, StepRecord, run_pipeline
from hdmea.session.loader import load_hdf5_to_session, load_session_from_hdf5
from hdmea.session.session import PipelineSession, SaveState, create_session
from hdmea.steps.eimage import compute_eimage_sta
from hdmea.steps.features import ExtractionResult, extract_features
from hdmea.steps.load import LoadResult, load_recording
from hdmea.steps.section_time import add_section_time
from hdmea.steps.spike_sectioning import SectionResult, section_spike_times
from hdmea.steps.sta import STAResult, compute_sta
from hdmea.steps.table import STEPS

__all__ = sorted([
    *(step.name for step in STEPS), "STEPS", "run_pipeline", "PipelineReport", "StepRecord", "run_batch",
    "PreflightError", "LowSpaceWarning", "PipelineSession", "SaveState", "create_session", "LoadResult",
    "ExtractionResult", "SectionResult", "STAResult",
    # the original pipeline's names (hdmea._compat_table)
    "load_recording_with_eimage_sta", "LoadWithEImageSTAResult", "FlowResult", "run_flow", "list_available_flows",
    "get_flow_info", "load_session_from_hdf5", "load_hdf5_to_session",
])
