"""The step table drives the configuration, the exports, the command line and the recorded names."""

from __future__ import annotations

import importlib
import inspect
import warnings

import pytest

import hdmea.pipeline
from hdmea.cli import steps_help
from hdmea.config import PipelineConfig, StepsConfig, parse_config
from hdmea.errors import ConfigError, DeprecatedStepNameWarning
from hdmea.session.names import RECORDED_STEP_ALIASES, canonical_step_name, canonical_step_names
from hdmea.steps.table import RESERVED_STEP_ARGUMENTS, STEPS, SWITCH_KEY, find_step

SWITCHABLE = [s for s in STEPS if s.switch]
# The configuration keys and recorded names in use before the table, and the step each now means.
FORMER_NAMES = {"sta": "compute_sta", "eimage": "compute_eimage_sta", "eimage_sta": "compute_eimage_sta",
                "features": "extract_features"}


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.name)
def test_each_step_function_carries_the_step_name(step):
    func = step.function
    assert func.__name__ == step.name
    module = importlib.import_module(step.module)
    # The name the step records in completed_steps is its module's STEP constant.
    assert module.STEP == step.name
    assert getattr(hdmea.pipeline, step.name) is func
    # The switch key inside [steps.<name>] must not shadow a parameter of the function.
    assert SWITCH_KEY not in inspect.signature(func).parameters


def test_names_and_aliases_are_unique_and_the_former_names_map_to_their_steps():
    names = [s.name for s in STEPS]
    aliases = [a for s in STEPS for a in s.aliases]
    assert len(set(names)) == len(names) and len(set(aliases)) == len(aliases)
    assert not set(names) & set(aliases)
    assert {a: find_step(a)[0].name for a in aliases} == FORMER_NAMES
    # only names earlier versions recorded are read as their steps; configuration keys are not
    assert canonical_step_name("eimage_sta") == "compute_eimage_sta"
    for key in ("sta", "eimage", "features"):
        assert canonical_step_name(key) == key
    for name in names:
        assert canonical_step_name(name) == name and find_step(name) == (STEPS[names.index(name)], False)
    assert canonical_step_name("not_a_step") == "not_a_step" and find_step("not_a_step") is None
    assert canonical_step_names(["load_recording", "eimage_sta", "compute_eimage_sta", "x"]) == [
        "load_recording", "compute_eimage_sta", "x"]
    # every recorded name reads as a step of the table
    assert set(RECORDED_STEP_ALIASES.values()) <= set(names)


def test_configuration_keys_come_from_the_table():
    assert set(StepsConfig().switches) == {s.name for s in SWITCHABLE}
    defaults = PipelineConfig().steps
    for step in STEPS:
        assert step.enabled(PipelineConfig()) == (step.default if step.switch else True)
    for step in SWITCHABLE:
        flipped = parse_config({"steps": {step.name: not step.default}})
        assert flipped.steps.enabled(step.name) is (not step.default)
        assert flipped.digest() != PipelineConfig().digest()
        via_table = parse_config({"steps": {step.name: {SWITCH_KEY: not step.default}}})
        assert via_table == flipped and via_table.steps.kwargs(step.name) == {}
        assert defaults.enabled(step.name) is step.default
    for step in (s for s in STEPS if not s.switch):
        with pytest.raises(ConfigError, match=f"steps.{step.name}: the step {step.name} always runs"):
            parse_config({"steps": {step.name: False}})
    # Reserved arguments are refused in every step's table.
    for step in STEPS:
        with pytest.raises(ConfigError, match="set by the pipeline"):
            parse_config({"steps": {step.name: {sorted(RESERVED_STEP_ARGUMENTS)[0]: 1}}})


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"sta": False}, {"compute_sta": False}),
        ({"features": False}, {"extract_features": False}),
        ({"eimage": True}, {"compute_eimage_sta": True}),
        ({"eimage": True, "eimage_sta": {"window": [-5, 20]}},
         {"compute_eimage_sta": {"enabled": True, "window": [-5, 20]}}),
        ({"eimage_sta": {"enabled": True, "max_spikes_per_unit": 50}},
         {"compute_eimage_sta": {"enabled": True, "max_spikes_per_unit": 50}}),
    ],
)
def test_former_keys_warn_and_mean_the_same(old, new):
    with pytest.warns(DeprecatedStepNameWarning) as caught:
        before = parse_config({"steps": old})
    assert len(caught) == len(old)
    for key, record in zip(old, caught):
        assert f"steps.{key} is the former name of the step {FORMER_NAMES[key]!r}" in str(record.message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        after = parse_config({"steps": new})
    assert before == after and before.digest() == after.digest()


def test_a_step_switched_or_configured_twice_is_refused():
    with pytest.warns(DeprecatedStepNameWarning), pytest.raises(ConfigError, match="switches compute_sta a second"):
        parse_config({"steps": {"compute_sta": False, "sta": True}})
    with pytest.warns(DeprecatedStepNameWarning), pytest.raises(ConfigError, match="parameters of compute_eimage_sta a second"):
        parse_config({"steps": {"compute_eimage_sta": {"enabled": True}, "eimage_sta": {"window": [-5, 20]}}})


def test_digests_stay_those_stored_before_the_renaming():
    # Computed by the configuration code before the step table existed (stored in .done markers
    # and checkpoint names): finished outputs and checkpoints of then are still recognised.
    assert PipelineConfig().digest() == "d14f119ed76b6baf"
    with pytest.warns(DeprecatedStepNameWarning):
        old = parse_config({"steps": {"eimage": True, "sta": False, "eimage_sta": {"window": [-1.0, 2.0]}}},
                           check_step_signatures=False)
    new = parse_config({"steps": {"compute_sta": False, "compute_eimage_sta": {"enabled": True, "window": [-1.0, 2.0]}}},
                       check_step_signatures=False)
    assert old.digest() == new.digest() == "40713ad568cfa49e"
    assert parse_config({"steps": {"extract_features": False, "compute_sta": {"n_lags": 20}}},
                        check_step_signatures=False).digest() == "470ad42c8418ccb3"


def test_command_line_help_lists_every_step_with_its_switch():
    text = steps_help()
    for step in STEPS:
        line = next(line for line in text.splitlines() if line.split()[:1] == [step.name])
        if step.switch:
            assert f"[steps] {step.name} = true|false (default {'on' if step.default else 'off'})" in line
        else:
            assert "no switch" in line
