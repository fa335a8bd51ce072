"""The pipeline: the runner of one recording, its preflight checks and batch runs.

The steps and their order are the table :data:`hdmea.steps.table.STEPS`; each
step's function is exported here under the step's name.  The runner of one
recording is :func:`hdmea.pipeline.run.run_pipeline`; batches are
:func:`hdmea.pipeline.batch.run_batch`.

Every name here is imported from the module where it lives on first use
(:data:`HOMES`, read by the module's ``__getattr__``; a step's home is its
row of the table, which names its module and imports no step), so that
``from hdmea.pipeline import create_session`` loads the session and not every
step, and a batch's driver does not load the steps its workers run.  The
original pipeline's names at this path (its flows, its results) come from
:data:`hdmea._compat_table.ORIGINAL_API` the same way.
"""

from __future__ import annotations

import importlib

from hdmea._compat_table import names_at, original_attribute
from hdmea.steps.table import STEPS

#: name -> the module where it lives (this library's own names at this path).
HOMES: dict[str, str] = {
    "STEPS": "hdmea.steps.table",
    # the steps: every row of the table by its name
    **{step.name: step.module for step in STEPS},
    # the steps' results
    "LoadResult": "hdmea.steps.load",
    "SectionResult": "hdmea.steps.spike_sectioning",
    "STAResult": "hdmea.steps.sta",
    "ExtractionResult": "hdmea.steps.features",
    # one recording's run, its checks, batches
    "run_pipeline": "hdmea.pipeline.run",
    "PipelineReport": "hdmea.pipeline.run",
    "StepRecord": "hdmea.pipeline.run",
    "PreflightError": "hdmea.pipeline.preflight",
    "LowSpaceWarning": "hdmea.pipeline.preflight",
    "run_batch": "hdmea.pipeline.batch",
    # the deferred session
    "PipelineSession": "hdmea.session.session",
    "SaveState": "hdmea.session.session",
    "create_session": "hdmea.session.session",
    "load_session_from_hdf5": "hdmea.session.loader",
    "load_hdf5_to_session": "hdmea.session.loader",
}

#: the original pipeline's names at this path that live in the fence (the others are in HOMES)
ORIGINAL_ONLY: tuple[str, ...] = tuple(name for name in names_at(__name__) if name not in HOMES)

__all__ = sorted([*HOMES, *ORIGINAL_ONLY])


def __getattr__(name: str):
    # a name of neither table is an AttributeError (raised by original_attribute)
    value = (getattr(importlib.import_module(HOMES[name]), name) if name in HOMES
             else original_attribute(__name__, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
