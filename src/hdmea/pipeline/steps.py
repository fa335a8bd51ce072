"""The step table and the runner under their former path (they live in :mod:`hdmea.steps.table` and
:mod:`hdmea.steps.runner`); every name is handed on unchanged."""

from hdmea.steps.runner import PipelineReport, StepRecord, _off_reason, planned_steps, run_pipeline
from hdmea.steps.table import (
    CHECKPOINT_SUFFIX, RESERVED_STEP_ARGUMENTS, STEP_NAMES, STEPS, SWITCH_KEY, Step, StepContext,
    canonical_step_name, canonical_step_names, checkpoint_path_for, find_step,
)

__all__ = [
    "Step", "STEPS", "STEP_NAMES", "RESERVED_STEP_ARGUMENTS", "SWITCH_KEY", "CHECKPOINT_SUFFIX", "StepContext",
    "find_step", "canonical_step_name", "canonical_step_names", "checkpoint_path_for", "run_pipeline",
    "PipelineReport", "StepRecord", "planned_steps", "_off_reason",
]
