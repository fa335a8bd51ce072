"""The ``[steps]`` table of the pipeline configuration (:mod:`hdmea.config`), read against the step table.

Each key names a step of :data:`hdmea.steps.table.STEPS` (or a former name, with a
:class:`~hdmea.errors.DeprecatedStepNameWarning`): ``name = true|false`` switches it, ``[steps.name]``
holds its keyword arguments, checked against the step function's signature and, for the parameters of
:data:`PARAMETER_CHECKS`, by value.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import warnings
from collections.abc import Mapping
from typing import Any

from hdmea.config_reader import Problems, TableReader, check_parameter_values, config_error
from hdmea.config_values import step_value_errors
from hdmea.errors import ConfigError, DeprecatedStepNameWarning
from hdmea.io.cmcr import check_sensor_axis_order
from hdmea.steps.table import RESERVED_STEP_ARGUMENTS, STEPS, SWITCH_KEY, Step, find_step

__all__ = ["StepsConfig", "parse_steps", "suggest_step", "PARAMETER_CHECKS"]

#: Step parameters whose values are checked when the configuration is read (before any work):
#: parameter name -> a function raising ConfigError for a bad value.
PARAMETER_CHECKS = {"sensor_axis_order": check_sensor_axis_order}


def _default_switches() -> dict[str, bool]:
    return {s.name: s.default for s in STEPS if s.switch}


@dataclasses.dataclass(frozen=True)
class StepsConfig:
    """Which optional steps run (``switches``: step name -> on), and the keyword arguments of every step."""

    switches: Mapping[str, bool] = dataclasses.field(default_factory=_default_switches)
    params: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def enabled(self, step: str) -> bool:
        """Whether the switchable ``step`` runs (steps without a switch always do)."""
        return bool(self.switches.get(step, True))

    def kwargs(self, step: str) -> dict[str, Any]:
        return dict(self.params.get(step, {}))


def parse_steps(r: TableReader, check_signatures: bool) -> StepsConfig:
    """``[steps]``: per step of the table, a switch (``name = bool``) or a parameter table.

    Every key is read; with ``r.problems`` each mistake is noted there and the others are still found.
    """
    problems = r.problems if r.problems is not None else Problems()
    before = len(problems)
    switches = _default_switches()
    params: dict[str, dict[str, Any]] = {}
    switch_key: dict[str, str] = {}  # step -> the key that switched it, for errors
    table_key: dict[str, str] = {}  # step -> the key of its parameter table
    for key, value in r.table.items():
        with problems.each():
            _parse_step_key(r, key, value, switches, params, switch_key, table_key, check_signatures)
    for name, key in table_key.items():
        if not switches.get(name, True) and name not in switch_key:
            # A table for a step that is off by default: the user most likely expects it to run.
            r.refuse(config_error(r.child_key(key), "parameters given but the step is off", source=r.source,
                                  hint=f"add `enabled = true` to the [steps.{name}] table ({name} = true under "
                                       "[steps] is not valid TOML beside that table), or remove the table"))
    if r.problems is None:
        problems.raise_if_any(r.source)
    elif len(problems) > before:
        return StepsConfig()  # the mistakes are noted: the caller raises them
    return StepsConfig(switches=switches, params=params)


def _parse_step_key(r: TableReader, key: str, value: Any, switches: dict[str, bool],
                    params: dict[str, dict[str, Any]], switch_key: dict[str, str], table_key: dict[str, str],
                    check_signatures: bool) -> None:
    """One key of ``[steps]``: a switch or a parameter table, each of its mistakes noted."""
    step = _step_for_key(r, key)
    if not isinstance(value, Mapping):
        on = r.get(key, "bool", fallback=None)
        if on is not None:
            _set_switch(r, step, switches, switch_key, key, on)
        return
    if step.name in table_key:
        raise config_error(r.child_key(key), f"gives the parameters of {step.name} a second time",
                           source=r.source, found=f"steps.{table_key[step.name]} and steps.{key}",
                           hint=f"merge them into [steps.{step.name}]")
    table_key[step.name] = key
    table = r.table_of(key)
    arguments = dict(table.table)
    if SWITCH_KEY in arguments:
        on = table.get(SWITCH_KEY, "bool", fallback=None)
        if on is not None:
            _set_switch(r, step, switches, switch_key, f"{key}.{SWITCH_KEY}", on)
        del arguments[SWITCH_KEY]
    for arg in [arg for arg in arguments if arg in RESERVED_STEP_ARGUMENTS]:
        table.refuse(config_error(table.child_key(arg), "is set by the pipeline itself and cannot be configured",
                                  source=r.source))
        del arguments[arg]
    if check_signatures:
        _check_step_arguments(step, table, arguments)
    for error in step_value_errors(step.name, arguments, table.key, r.source):
        table.refuse(error)
    if arguments or SWITCH_KEY not in table.table:
        # A table holding only the switch means what `name = bool` means.
        params[step.name] = arguments


def _step_for_key(r: TableReader, key: str) -> Step:
    found = find_step(key)
    if found is None:
        names = [s.name for s in STEPS]
        suggestion = suggest_step(key)
        raise config_error(r.child_key(key), "unknown pipeline step", source=r.source,
                    hint=f"did you mean {suggestion!r}?" if suggestion else "steps: " + ", ".join(names))
    step, is_alias = found
    if is_alias:
        where = f" in {r.source}" if r.source else ""
        warnings.warn(f"{r.child_key(key)}{where} is the former name of the step {step.name!r}; "
                      f"use steps.{step.name}", DeprecatedStepNameWarning, stacklevel=4)
    return step


def suggest_step(key: str) -> str | None:
    """The current name of the step ``key`` most likely means, or None.

    A misspelling is matched against every key the configuration accepts (the
    steps' names and their former names) and answered with the current name,
    which is always accepted: ``eimgae`` suggests ``compute_eimage_sta``.
    A key that is a part of exactly one step's name (``features``) suggests it too.
    """
    accepted = {s.name: s.name for s in STEPS}
    accepted.update({alias: s.name for s in STEPS for alias in s.aliases})
    close = difflib.get_close_matches(key, list(accepted), n=1, cutoff=0.6)
    if close:
        return accepted[close[0]]
    containing = {s.name for s in STEPS if key and key in s.name}
    return containing.pop() if len(containing) == 1 else None


def _set_switch(r: TableReader, step: Step, switches: dict[str, bool], switch_key: dict[str, str],
                key: str, on: bool) -> None:
    if not step.switch:
        raise config_error(r.child_key(key), f"the step {step.name} always runs and cannot be switched",
                    source=r.source, hint=f"give its parameters in a [steps.{step.name}] table")
    if step.name in switch_key:
        raise config_error(r.child_key(key), f"switches {step.name} a second time", source=r.source,
                    found=f"steps.{switch_key[step.name]} and steps.{key}", hint="keep one of them")
    switch_key[step.name] = key
    switches[step.name] = on


def _check_step_arguments(step: Step, table: TableReader, arguments: Mapping[str, Any]) -> None:
    signature = inspect.signature(step.function)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return
    names = {
        p.name for p in signature.parameters.values()
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    } - RESERVED_STEP_ARGUMENTS
    TableReader(arguments, table.key, table.source, table.problems).reject_unknown(names)
    try:
        check_parameter_values(arguments, table.key, table.source, PARAMETER_CHECKS)
    except ConfigError as exc:
        table.refuse(exc)
