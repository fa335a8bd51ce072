"""Installing ours beside another ScpTensor leaves it as it was; the default install takes no ``scptensor``.

The other ScpTensor is the stand-in of tests/data/standin_scptensor (upstream's shape; its README),
installed into a throwaway virtual environment as a wheel and as an editable install, the way
upstream's README installs it.  Ours are this project's default distribution ``h5stream`` and the
opt-in ``scptensor-january`` (optin/scptensor-january), each built into a wheel here.  The
stand-in's and the opt-in's builds run without build isolation, every install from the wheels built here (``--no-index --find-links``); from the configured
index come a setuptools recent enough to build wheels without the ``wheel`` package, and the build
requirements of this project's own wheel (built with isolation, as ``pip install .`` builds it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "tests" / "data" / "standin_scptensor"
OPTIN = ROOT / "optin" / "scptensor-january"


def _run(*args, env=None, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, timeout=600)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}")
    return done


def _digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (Python's own bytecode caches left out)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


class Venv:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.python = root / "bin" / "python"
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"

    @property
    def site_packages(self) -> Path:
        return Path(_run(self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                         env=self.env).stdout.strip())

    def pip(self, *args, check=True):
        return _run(self.python, "-m", "pip", "--disable-pip-version-check", *args, env=self.env, check=check)

    def python_c(self, code: str, check=True):
        return _run(self.python, "-c", code, env=self.env, check=check)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A virtual environment able to build wheels, and the wheels of the stand-in and of ours."""
    base = tmp_path_factory.mktemp("optin")
    _run(sys.executable, "-m", "venv", base / "venv")
    venv = Venv(base / "venv")
    venv.pip("install", "-q", "setuptools>=70.1")
    wheels = base / "wheels"
    for source, name in ((STANDIN, "standin"), (OPTIN, "optin")):
        copy = base / f"{name}-src"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        venv.pip("wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels, copy)
    # h5scp and its dependencies, for the interpreter of the environment: the library this run imports and this
    # test's own import paths, as plain paths (a path added by a .pth file has its own .pth files
    # ignored), leaving out any that holds a scptensor of its own
    import h5scp

    library = str(Path(h5scp.__file__).parents[1])  # the source tree built in place, or site-packages
    paths = [library] + [p for p in sys.path if p and p != library and Path(p).is_dir() and Path(p) != ROOT
                         and not (Path(p) / "scptensor").exists()]
    (venv.site_packages / "zz_test_paths.pth").write_text("\n".join(paths) + "\n")
    return venv, wheels, base


@pytest.fixture(scope="module")
def project_wheel(built):
    """This project's own wheel (the default install), built from a copy of the tree with build isolation.

    setup.py reuses the kernels compiled for the same sources by an earlier install (its cache), so
    after the Quick start's install this takes about a minute; without it, as long as a first build.
    """
    _venv, wheels, base = built
    copy = base / "project-src"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", "*.so", ".venv", "demo-output", "optin", "tests", "benchmarks"))
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, copy)
    (wheel,) = wheels.glob("h5stream-*.whl")
    return wheel


def _served(venv: Venv) -> str:
    return venv.python_c("import scptensor; print(scptensor.__name__, scptensor.__file__)").stdout.strip()


def _install_ours(venv: Venv, wheels: Path, *extra: str) -> None:
    venv.pip("install", "-q", "--no-deps", "--no-index", "--find-links", wheels, *extra, "scptensor-january")


def _package_files(venv: Venv, dist: str) -> list[str]:
    shown = venv.pip("show", "-f", dist).stdout
    return [line.strip() for line in shown.split("Files:", 1)[1].splitlines() if line.strip()]


def test_the_optin_wheel_holds_no_scptensor_folder(built):
    _venv, wheels, _base = built
    import zipfile

    (wheel,) = wheels.glob("scptensor_january-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "scptensor-january.pth" in names and "scptensor_january.py" in names
    assert not [n for n in names if n.split("/")[0] == "scptensor"]


@pytest.mark.parametrize("how", ["wheel", "editable"])
def test_installing_upgrading_and_uninstalling_ours_leaves_another_scptensor_byte_for_byte(built, how):
    venv, wheels, base = built
    if how == "wheel":
        venv.pip("install", "-q", "--no-deps", "--no-index", "--find-links", wheels, "scptensor")
        where = venv.site_packages / "scptensor"
    else:
        source = base / "standin-editable"
        shutil.copytree(STANDIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        venv.pip("install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-e", source)
        where = source / "scptensor"
    try:
        before = _digest(where)
        assert before and _served(venv) == f"scptensor {where / '__init__.py'}"
        _install_ours(venv, wheels)
        assert _digest(where) == before
        assert _served(venv) == f"scptensor {where / '__init__.py'}"  # ours stands aside
        said = venv.python_c("import scptensor_january; print(scptensor_january.serving())").stdout
        assert "another distribution's" in said and str(where) in said
        _install_ours(venv, wheels, "--force-reinstall")  # an upgrade: pip removes ours, then installs it
        assert _digest(where) == before
        venv.pip("uninstall", "-q", "-y", "scptensor-january")
        assert _digest(where) == before
        assert _served(venv) == f"scptensor {where / '__init__.py'}"
        toolkit = venv.python_c("import scptensor.toolkit, scptensor.core.structures as s; print(s.ScpMatrix.__slots__)")
        assert "X" in toolkit.stdout
    finally:
        venv.pip("uninstall", "-q", "-y", "scptensor", check=False)
        venv.pip("uninstall", "-q", "-y", "scptensor-january", check=False)


def test_alone_ours_serves_scptensor_as_h5scp_and_uninstalls_cleanly(built):
    venv, wheels, _base = built
    assert venv.python_c("import importlib.util; print(importlib.util.find_spec('scptensor'))").stdout.strip() == "None"
    _install_ours(venv, wheels)
    try:
        files = _package_files(venv, "scptensor-january")
        assert not [f for f in files if f.split("/")[0] == "scptensor"]
        out = venv.python_c(
            "import scptensor, h5scp, scptensor.core.structures as s, h5scp.core.structures as t; "
            "from scptensor.io import save_hdf5, load_hdf5; "
            "print(scptensor is h5scp, s is t, save_hdf5.__module__)").stdout.split()
        assert out == ["True", "True", "h5scp.io.exporters"]
        usage = _run(venv.python, "-m", "scptensor", "--help", env=venv.env).stdout
        assert "inspect" in usage and "convert" in usage  # python -m scptensor runs h5scp's command line
    finally:
        venv.pip("uninstall", "-q", "-y", "scptensor-january")
    assert venv.python_c("import importlib.util; print(importlib.util.find_spec('scptensor'))").stdout.strip() == "None"
    assert not list(venv.site_packages.glob("scptensor*"))


@pytest.mark.parametrize("how", ["wheel", "editable"])
def test_installing_and_uninstalling_this_project_leaves_another_scptensor_byte_for_byte(built, project_wheel, how):
    import zipfile

    venv, wheels, base = built
    assert {n.split("/")[0] for n in zipfile.ZipFile(project_wheel).namelist()} == {
        "h5scp", "h5stream", "hdmea",
        project_wheel.name.split("-")[0] + "-" + project_wheel.name.split("-")[1] + ".dist-info"}
    if how == "wheel":
        venv.pip("install", "-q", "--no-deps", "--no-index", "--find-links", wheels, "scptensor")
        where = venv.site_packages / "scptensor"
    else:
        source = base / "standin-editable-2"
        shutil.copytree(STANDIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        venv.pip("install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-e", source)
        where = source / "scptensor"
    try:
        before = _digest(where)
        venv.pip("install", "-q", "--no-deps", "--no-index", project_wheel)
        assert _digest(where) == before and _served(venv) == f"scptensor {where / '__init__.py'}"
        assert not [f for f in _package_files(venv, "h5stream") if f.split("/")[0] == "scptensor"]
        venv.pip("install", "-q", "--no-deps", "--no-index", "--force-reinstall", project_wheel)
        assert _digest(where) == before
        venv.pip("uninstall", "-q", "-y", "h5stream")
        assert _digest(where) == before and _served(venv) == f"scptensor {where / '__init__.py'}"
    finally:
        venv.pip("uninstall", "-q", "-y", "scptensor", check=False)
        venv.pip("uninstall", "-q", "-y", "h5stream", check=False)

