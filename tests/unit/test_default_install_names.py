"""The default install of this project takes the import names h5stream, hdmea and h5scp, never scptensor.

The package list is what setuptools' own discovery finds under the configuration of pyproject.toml
(the same call a build makes), so a package or module named ``scptensor`` added under ``src/``, or a
configuration that reaches outside ``src/``, fails here; so does a top-level module (``py-modules``).
(A wheel built from this tree holds exactly ``h5scp``, ``h5stream``, ``hdmea`` and the dist-info; building one takes minutes,
so this test asks setuptools instead.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[2]


def test_the_default_distribution_takes_no_scptensor_import_name():
    import setuptools

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert config["package-dir"] == {"": "src"} and config.get("py-modules", []) == []
    find = config["packages"]["find"]
    discover = setuptools.find_namespace_packages if find.get("namespaces", True) else setuptools.find_packages
    where = ROOT / find.get("where", ["."])[0]
    packages = discover(where=str(where), include=find.get("include", ["*"]), exclude=find.get("exclude", ()))
    top = {name.split(".")[0] for name in packages}
    assert top == {"h5stream", "hdmea", "h5scp"}
    assert not list(where.glob("*.py")) and not list(where.glob("*.pth"))
    assert not any(str(pattern).endswith(".pth") for patterns in config.get("package-data", {}).values()
                   for pattern in patterns)
