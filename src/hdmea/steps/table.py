"""The pipeline's steps in one table (the runner, :func:`~hdmea.steps.runner.run_pipeline`, walks it).

Each row of :data:`STEPS` is a :class:`Step`: its name, the function that
does the work, whether the configuration may switch it on or off
(``[steps] <name> = true|false``), whether it runs by default, and whether a
checkpoint follows it.  The name is the same everywhere: it is the function's
name, the name the step records in ``pipeline/session_info/completed_steps``
and its key in the configuration (``[steps.<name>]`` holds its parameters).
Configuration validation, the batch runner, ``hdmea.pipeline``'s exports and
the command line all read this table; adding a step is one row here plus its
function.

Names used before the table existed (configuration keys ``sta``, ``eimage``,
``features``, ``[steps.eimage_sta]`` and the recorded step ``eimage_sta``) are
the rows' ``aliases``: a configuration that uses one gets a
:class:`~hdmea.errors.DeprecatedStepNameWarning`, and files that recorded one
read as if they had recorded the current name (:func:`canonical_step_name`).

This module is a leaf: it imports no step and no runner (functions are named
``"module:function"`` and imported when they run), so the configuration and the
file layer may import it freely.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


__all__ = [
    "Step",
    "STEPS",
    "STEP_NAMES",
    "RESERVED_STEP_ARGUMENTS",
    "SWITCH_KEY",
    "CHECKPOINT_SUFFIX",
    "StepContext",
    "find_step",
    "canonical_step_name",
    "canonical_step_names",
    "checkpoint_path_for",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: Arguments the pipeline itself passes to every step; a configuration must not set them.
RESERVED_STEP_ARGUMENTS = frozenset(
    {"session", "hdf5_path", "output_path", "cmcr_path", "cmtr_path", "dataset_id", "self", "stimulus"}
)
#: Key inside ``[steps.<name>]`` that switches a step on or off beside its parameters.
SWITCH_KEY = "enabled"

CHECKPOINT_SUFFIX = ".checkpoint.h5"


def checkpoint_path_for(output: str | os.PathLike) -> Path:
    """Where :func:`run_pipeline` keeps the checkpoint of ``output`` while it runs."""
    output = Path(output)
    return output.with_name(output.name + CHECKPOINT_SUFFIX)


@dataclasses.dataclass
class StepContext:
    """What a step's call gets besides its configured parameters."""

    cmcr: Path
    cmtr: Path
    output: Path
    config: Any  # hdmea.config.PipelineConfig
    stimulus: Any  # hdmea.stimulus.StimulusConfig or None
    session: Any  # hdmea.pipeline.session.PipelineSession

    def call(self, step: Step, *args, **fixed) -> Any:
        """Call ``step``'s function with the session, its configured parameters and ``fixed`` ones."""
        func = step.resolve()
        kwargs = self.config.steps.kwargs(step.name)
        kwargs.update(fixed)
        if ("sensor_axis_order" in inspect.signature(func).parameters and "sensor_axis_order" not in kwargs
                and hasattr(self.config, "sensor_axis_order")):
            # one setting for every step that reads the raw frames
            kwargs["sensor_axis_order"] = self.config.sensor_axis_order
        if ("n_threads" in inspect.signature(func).parameters and "n_threads" not in kwargs
                and self.config.batch.threads_per_job):
            # Several jobs share the machine: each kernel gets its share of the cores.
            kwargs["n_threads"] = self.config.batch.threads_per_job
        return func(*args, session=self.session, **kwargs)


def _call_plain(ctx: StepContext, step: Step) -> None:
    ctx.call(step)


@dataclasses.dataclass(frozen=True)
class Step:
    """One row of the step table.

    ``function`` is ``"module:function"``; the function's name is the step's
    name.  ``needs`` returns why the step cannot run for this recording (None:
    it can); ``call`` runs it (default: the function with the session and the
    configured parameters).  ``aliases`` are older configuration keys of the
    step; ``recorded_aliases`` the older names files recorded in
    ``completed_steps`` for it (read as the step's name).
    """

    name: str
    function: str
    switch: bool = False
    default: bool = True
    checkpoint_after: bool = False
    needs: Callable[[StepContext], str | None] | None = None
    call: Callable[[StepContext, Step], None] = _call_plain
    aliases: tuple[str, ...] = ()
    recorded_aliases: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return self.function.partition(":")[0]

    def resolve(self) -> Callable[..., Any]:
        module, _, name = self.function.partition(":")
        return getattr(importlib.import_module(module), name)

    def enabled(self, config: Any) -> bool:
        return config.steps.enabled(self.name) if self.switch else True


def _needs_stimulus(ctx: StepContext) -> str | None:
    return None if ctx.stimulus is not None else "no stimulus in the configuration"


def _needs_noise_movie(ctx: StepContext) -> str | None:
    if ctx.stimulus is None or not ctx.stimulus.noise_movies:
        return "no noise movie in the stimulus"
    return None


def _call_load(ctx: StepContext, step: Step) -> None:
    ctx.call(step, ctx.cmcr, ctx.cmtr, ctx.session.dataset_id)


def _call_section_time(ctx: StepContext, step: Step) -> None:
    ctx.call(step, stimulus=ctx.stimulus)


def _call_sta(ctx: StepContext, step: Step) -> None:
    # The step reads the movie named in the stored stimulus configuration; one call per noise movie.
    configured = ctx.config.steps.kwargs(step.name).get("movie_name")
    movies = [configured] if configured else sorted(ctx.stimulus.noise_movies)
    for i, movie in enumerate(movies):
        extra = {"force": True} if i else {}
        ctx.call(step, movie_name=movie, **extra)


def _call_eimage(ctx: StepContext, step: Step) -> None:
    # The units are in the session already: the step streams the raw data of the .cmcr.
    ctx.call(step, None, ctx.cmcr)


#: The pipeline in order.
STEPS: tuple[Step, ...] = (
    Step("load_recording", "hdmea.steps.load:load_recording", checkpoint_after=True, call=_call_load),
    Step("add_section_time", "hdmea.steps.section_time:add_section_time", needs=_needs_stimulus,
         call=_call_section_time),
    Step("section_spike_times", "hdmea.steps.spike_sectioning:section_spike_times", needs=_needs_stimulus),
    Step("compute_sta", "hdmea.steps.sta:compute_sta", switch=True, default=True, checkpoint_after=True,
         needs=_needs_noise_movie, call=_call_sta, aliases=("sta",)),
    Step("compute_eimage_sta", "hdmea.steps.eimage:compute_eimage_sta", switch=True, default=False,
         checkpoint_after=True, call=_call_eimage, aliases=("eimage", "eimage_sta"),
         recorded_aliases=("eimage_sta",)),
    Step("extract_features", "hdmea.steps.features:extract_features", switch=True, default=True,
         needs=_needs_stimulus, aliases=("features",)),
)

STEP_NAMES: tuple[str, ...] = tuple(s.name for s in STEPS)
_BY_NAME: dict[str, Step] = {s.name: s for s in STEPS}
_BY_ALIAS: dict[str, Step] = {alias: s for s in STEPS for alias in s.aliases}
# Only names earlier versions wrote into files: a configuration key such as "sta" is no recorded name.
_BY_RECORDED_ALIAS: dict[str, Step] = {alias: s for s in STEPS for alias in s.recorded_aliases}


def find_step(key: str) -> tuple[Step, bool] | None:
    """The step named ``key`` and whether ``key`` is an older alias; None for no step."""
    if key in _BY_NAME:
        return _BY_NAME[key], False
    if key in _BY_ALIAS:
        return _BY_ALIAS[key], True
    return None


def canonical_step_name(name: str) -> str:
    """The current name of a recorded step (older names map to theirs; unknown names pass through)."""
    step = _BY_RECORDED_ALIAS.get(name)
    return step.name if step is not None else name


def canonical_step_names(names: Iterable[str]) -> list[str]:
    """Recorded step names with older names replaced, in order, each once."""
    seen: dict[str, None] = {}
    for name in names:
        seen.setdefault(canonical_step_name(str(name)), None)
    return list(seen)


