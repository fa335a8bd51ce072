"""``hdmea.pipeline`` imports each name from its home on first use, and its table of homes is right."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import hdmea.pipeline as pipeline
from hdmea._compat_table import home_of, names_at
from hdmea.steps.table import STEPS


def test_every_step_is_exported_under_its_name_from_its_module():
    # the table's row names the module that defines the function (not one that imports it from elsewhere)
    elsewhere = [f"{s.name}: {s.module} (defined in {s.function.__module__})" for s in STEPS
                 if s.function.__module__ != s.module]
    assert not elsewhere, f"rows of hdmea.steps.table.STEPS naming a module that does not define the step: {elsewhere}"
    for step in STEPS:
        assert pipeline.HOMES[step.name] == step.module
        assert getattr(pipeline, step.name) is getattr(importlib.import_module(step.module), step.name)
        assert step.name in pipeline.__all__


@pytest.mark.parametrize("name", pipeline.__all__)
def test_every_listed_name_resolves_to_the_object_where_it_lives(name):
    if name in pipeline.HOMES:
        expected = getattr(importlib.import_module(pipeline.HOMES[name]), name)
    else:
        module, attribute = home_of("hdmea.pipeline", name)
        expected = getattr(importlib.import_module(module), attribute)
    assert getattr(pipeline, name) is expected


def test_the_original_names_here_agree_with_the_compatibility_table():
    for name in names_at("hdmea.pipeline"):
        module, attribute = home_of("hdmea.pipeline", name)
        assert getattr(pipeline, name) is getattr(importlib.import_module(module), attribute)
        if name in pipeline.HOMES:
            assert pipeline.HOMES[name] == module


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'compute_everything'"):
        pipeline.compute_everything  # noqa: B018


def _modules_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_importing_the_pipeline_or_the_session_loads_no_step():
    # the step table is read (it names the steps' modules), no step is imported
    for code in ("import hdmea.pipeline", "from hdmea.pipeline import create_session, PipelineSession"):
        loaded = _modules_after(code)
        assert not [m for m in loaded if m.startswith("hdmea.steps.") and m != "hdmea.steps.table"], (code, loaded)
    assert "h5py" not in _modules_after("import hdmea.pipeline")  # nor a reader


def test_a_step_is_imported_on_first_use_alone():
    loaded = _modules_after("from hdmea.pipeline import add_section_time")
    assert "hdmea.steps.section_time" in loaded
    assert not {"hdmea.steps.sta", "hdmea.steps.eimage", "hdmea.steps.features"} & set(loaded), loaded


def test_star_import_gives_every_listed_name():
    namespace: dict = {}
    exec("from hdmea.pipeline import *", namespace)
    assert set(pipeline.__all__) <= set(namespace)
