"""The wheel configuration agrees with the package: cibuildwheel builds every Python the classifiers name, tests
each wheel with the demo, and the workflow covers Linux, macOS and Windows and publishes only on a release.

(The wheel itself is built, made portable and installed without a compiler by ``.ci/run``.)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_cibuildwheel_builds_every_supported_python_and_runs_the_demo():
    project = _pyproject()
    supported = {m.group(1).replace(".", "") for c in project["project"]["classifiers"]
                 if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))}
    config = project["tool"]["cibuildwheel"]
    built = set(re.findall(r"cp(\d+)-\*", config["build"]))
    assert supported and built == supported, (built, supported)
    assert config["test-command"].startswith("hdmea demo --out ")
    assert project["project"]["scripts"]["hdmea"] == "hdmea.__main__:main"


def test_the_wheel_workflow_covers_three_systems_and_publishes_only_a_release():
    yaml = pytest.importorskip("yaml")
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "wheels.yml").read_text())
    jobs = flow["jobs"]
    systems = jobs["wheels"]["strategy"]["matrix"]["os"]
    for family in ("ubuntu", "macos", "windows"):
        assert any(os.startswith(family) for os in systems), (family, systems)
    assert any(step.get("uses", "").startswith("pypa/cibuildwheel@") for step in jobs["wheels"]["steps"])
    assert any("build --sdist" in step.get("run", "") for step in jobs["sdist"]["steps"])
    assert set(jobs["publish"]["needs"]) == {"sdist", "wheels"}
    assert "release" in jobs["publish"]["if"] and jobs["publish"]["permissions"] == {"id-token": "write"}
