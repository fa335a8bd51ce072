"""The pipeline's steps in one table (the runner, :func:`hdmea.pipeline.run.run_pipeline`, walks it).

Each row of :data:`STEPS` is a :class:`Step`: its name, the module of the
function that does the work (the function has the step's name), whether the configuration may switch it on or off
(``[steps] <name> = true|false``), whether it runs by default, whether a
checkpoint follows it, and the hooks the configuration and the preflight
checks need (the key the step had in configuration digests, and an estimate
of the bytes it writes).  The name is the same everywhere: it is the
function's name, the name the step records in
``pipeline/session_info/completed_steps`` and its key in the configuration
(``[steps.<name>]`` holds its parameters).  Configuration validation, the
preflight estimate, the runner, the batch runner and the command line all read
this table, and so does :mod:`hdmea.pipeline`, which exports each step's function under
its name: adding a step is its module and one row here.

Names used before the table existed (configuration keys ``sta``, ``eimage``,
``features`` and ``[steps.eimage_sta]``) are the rows' ``aliases``: a
configuration that uses one gets a
:class:`~hdmea.errors.DeprecatedStepNameWarning`.  Names files recorded are
read by :mod:`hdmea.session.names`.

The table names each step's module and imports none: a row imports its
function on first use (:attr:`Step.function`), so that reading the table
(``import hdmea.pipeline``) loads no step.  It sits in the steps' layer,
below the runner and the configuration, which import it.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any


__all__ = [
    "Step",
    "STEPS",
    "STEP_NAMES",
    "RESERVED_STEP_ARGUMENTS",
    "SWITCH_KEY",
    "StepContext",
    "EstimateInputs",
    "find_step",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: Arguments the pipeline itself passes to every step; a configuration must not set them.
RESERVED_STEP_ARGUMENTS = frozenset(
    {"session", "hdf5_path", "output_path", "cmcr_path", "cmtr_path", "dataset_id", "self", "stimulus"}
)
#: Key inside ``[steps.<name>]`` that switches a step on or off beside its parameters.
SWITCH_KEY = "enabled"


@dataclasses.dataclass
class StepContext:
    """What a step's call gets besides its configured parameters."""

    cmcr: Path
    cmtr: Path
    output: Path
    config: Any  # hdmea.config.PipelineConfig
    stimulus: Any  # hdmea.stimulus.StimulusConfig or None
    session: Any  # hdmea.session.session.PipelineSession

    def call(self, step: Step, *args, **fixed) -> Any:
        """Call ``step``'s function with the session, its configured parameters and ``fixed`` ones."""
        func = step.function
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

    ``module`` is the module that defines the step's function, whose name is
    the step's name; :attr:`function` imports it on first use.
    ``needs`` returns why the step cannot run for this recording (None: it
    can); ``call`` runs it (default: the function with the session and the
    configured parameters).  ``aliases`` are older configuration keys of the
    step.  ``digest_key`` / ``digest_params_key``: the keys the step's switch
    and parameters had when configuration digests were introduced (digests of
    finished outputs and checkpoints stay the same).  ``estimate``: the part
    of the output the step writes, as ``(label, function)``; the function takes
    the row and an :class:`EstimateInputs` and returns bytes (see
    :mod:`hdmea.pipeline.preflight`).
    """

    name: str
    module: str
    switch: bool = False
    default: bool = True
    checkpoint_after: bool = False
    needs: Callable[[StepContext], str | None] | None = None
    call: Callable[[StepContext, Step], None] = _call_plain
    aliases: tuple[str, ...] = ()
    digest_key: str | None = None
    digest_params_key: str | None = None
    estimate: tuple[str, Callable[[Step, EstimateInputs], int]] | None = None

    @property
    def function(self) -> Callable[..., Any]:
        """The step's function: ``name`` of ``module`` (imported on first use)."""
        return getattr(importlib.import_module(self.module), self.name)

    def enabled(self, config: Any) -> bool:
        return config.steps.enabled(self.name) if self.switch else True

    def parameter(self, config: Any, name: str) -> Any:
        """A parameter as the run will use it: configured, else the function's default (None: no such one)."""
        configured = config.steps.kwargs(self.name)
        if name in configured:
            return configured[name]
        parameter = inspect.signature(self.function).parameters.get(name)
        return None if parameter is None else parameter.default


@dataclasses.dataclass(frozen=True)
class EstimateInputs:
    """What a step's output estimate is made from: the recording's shape before anything is read."""

    n_units: int
    config: Any  # hdmea.config.PipelineConfig
    stimulus: Any  # hdmea.stimulus.StimulusConfig or None


_FLOAT32 = 4



def _estimate_sta(step: Step, inputs: EstimateInputs) -> int:
    """Per unit and noise movie, ``n_lags`` frames of the movie's images as float32."""
    stimulus = inputs.stimulus
    if stimulus is None or not stimulus.noise_movies:
        return 0
    n_lags = int(step.parameter(inputs.config, "n_lags") or 0)
    movie = inputs.config.steps.kwargs(step.name).get("movie_name")
    movies = [stimulus.noise_movies[movie]] if movie in stimulus.noise_movies else list(stimulus.noise_movies.values())
    return sum(inputs.n_units * n_lags * m.shape[0] * m.shape[1] * _FLOAT32 for m in movies)


def _estimate_eimage(step: Step, inputs: EstimateInputs) -> int:
    """Per unit, the window's samples of the sensor grid as float32."""
    from hdmea.io.mcs import GRID_SIZE  # here, so that reading the table loads no reader

    window = step.parameter(inputs.config, "window") or (0, 0)
    return inputs.n_units * int(window[1] - window[0]) * GRID_SIZE * GRID_SIZE * _FLOAT32


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
    Step("load_recording", "hdmea.steps.load", checkpoint_after=True, call=_call_load),
    Step("add_section_time", "hdmea.steps.section_time", needs=_needs_stimulus, call=_call_section_time),
    Step("section_spike_times", "hdmea.steps.spike_sectioning", needs=_needs_stimulus),
    Step("compute_sta", "hdmea.steps.sta", switch=True, default=True, checkpoint_after=True,
         needs=_needs_noise_movie, call=_call_sta, aliases=("sta",), digest_key="sta",
         estimate=("receptive fields", _estimate_sta)),
    Step("compute_eimage_sta", "hdmea.steps.eimage", switch=True, default=False,
         checkpoint_after=True, call=_call_eimage, aliases=("eimage", "eimage_sta"), digest_key="eimage",
         digest_params_key="eimage_sta", estimate=("electrical images", _estimate_eimage)),
    Step("extract_features", "hdmea.steps.features", switch=True, default=True,
         needs=_needs_stimulus, aliases=("features",), digest_key="features"),
)

STEP_NAMES: tuple[str, ...] = tuple(s.name for s in STEPS)
_BY_NAME: dict[str, Step] = {s.name: s for s in STEPS}
_BY_ALIAS: dict[str, Step] = {alias: s for s in STEPS for alias in s.aliases}


def find_step(key: str) -> tuple[Step, bool] | None:
    """The step named ``key`` and whether ``key`` is an older alias; None for no step."""
    if key in _BY_NAME:
        return _BY_NAME[key], False
    if key in _BY_ALIAS:
        return _BY_ALIAS[key], True
    return None
