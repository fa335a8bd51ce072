"""The package's own names: ``h5scp.<submodule>`` without importing it first, errors naming ``h5scp``,
and the opt-in alias's own report when h5scp is not installed beside it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OPTIN_SRC = ROOT / "optin" / "scptensor-january" / "src"


def _python(code: str, *flags: str, pythonpath: str | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_submodules_are_attributes_of_the_package():
    # the package this interpreter imports (installed, with its compiled kernels), in a fresh process
    done = _python("import h5scp; print(h5scp.io.__name__, h5scp.io.save is h5scp.save, h5scp.testing.__name__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["h5scp.io", "True", "h5scp.testing"]


def test_an_unknown_attribute_names_the_package():
    import h5scp

    with pytest.raises(AttributeError, match=r"^module 'h5scp' has no attribute 'no_such_name'$"):
        h5scp.no_such_name  # noqa: B018


def test_the_optin_alias_without_h5scp_says_what_to_install():
    """``python -m scptensor_january`` with the alias installed and h5stream not: a sentence, no traceback."""
    code = ("import runpy, scptensor_january; scptensor_january.install(); "
            "runpy.run_module('scptensor_january', run_name='__main__')")
    done = _python(f"import sys; sys.path.insert(0, {str(OPTIN_SRC)!r}); " + code, "-S")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "h5scp is not" in done.stdout and "pip install h5stream" in done.stdout


def test_the_optin_alias_with_h5scp_names_it():
    code = (f"import sys; sys.path.insert(0, {str(OPTIN_SRC)!r}); import scptensor_january as m; "
            "m.install(); print(m.serving()); import scptensor, h5scp; print(scptensor is h5scp)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    line, same = done.stdout.strip().splitlines()
    assert line.startswith("scptensor is h5scp's January API (") and same == "True"


def test_the_optin_module_imports_nothing_at_interpreter_start():
    """The .pth imports the module in every interpreter start: it must not pull in importlib.util/abc."""
    code = (f"import sys; sys.path.insert(0, {str(OPTIN_SRC)!r}); before = set(sys.modules); "
            "import scptensor_january; print(sorted(set(sys.modules) - before - {'scptensor_january'}))")
    done = _python(code, "-S")
    assert done.returncode == 0, done.stderr
    imported = set(eval(done.stdout))  # noqa: S307 (a list of names printed above)
    assert not imported & {"importlib.util", "importlib.abc", "typing", "importlib.resources"}, imported
