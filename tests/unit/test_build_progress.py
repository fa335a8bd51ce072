"""The build says what it compiles: a line per extension, ``compiling NAME (k of N)``, on stderr.

``setup.py``'s ``build_ext`` command compiles three small C extensions written here (a real compiler, real
setuptools, one job per extension, all starting together); the lines it prints are compared with the extensions
given, each a whole line (the jobs run on threads, which once wrote a line's end apart from its text).
Cython is not needed: the sources are C already, so the command's cythonize step is left out.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

MODULE = """
#include <Python.h>
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "%s", NULL, -1, NULL};
PyMODINIT_FUNC PyInit_%s(void) { return PyModule_Create(&def); }
"""

DRIVER = """
import importlib.util, sys
from setuptools import Distribution, Extension
spec = importlib.util.spec_from_file_location("h5stream_setup_under_test", sys.argv[1])
setup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setup)
names = sys.argv[2:]
dist = Distribution({"ext_modules": [Extension(n, [n + ".c"]) for n in names]})
command = setup.BuildExtOnce(dist)
command.inplace = True
command.parallel = len(names)  # every extension starts at once: their lines must not run together
command.ensure_finalized()
command._cythonize = lambda: None  # plain C sources: nothing to cythonize
command.run()
"""


@pytest.mark.skipif(shutil.which(sysconfig.get_config_var("CC").split()[0] if sysconfig.get_config_var("CC")
                                 else "cc") is None, reason="no C compiler")
def test_a_line_per_extension_it_compiles(tmp_path):
    names = ["_first", "_second", "_third"]
    for name in names:
        (tmp_path / f"{name}.c").write_text(MODULE % (name, name))
    done = subprocess.run([sys.executable, "-c", DRIVER, str(ROOT / "setup.py"), *names], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "H5STREAM_BUILD_TTY": "0", "H5STREAM_BUILD_CACHE": "off"})
    assert done.returncode == 0, done.stderr
    said = [re.fullmatch(r"h5stream build: compiling (\w+) \((\d+) of (\d+)\)", line)
            for line in done.stderr.splitlines() if line.startswith("h5stream build: compiling ")]
    assert all(said), done.stderr
    assert sorted(m.group(1) for m in said) == sorted(names)
    assert sorted(int(m.group(2)) for m in said) == [1, 2, 3] and {m.group(3) for m in said} == {"3"}
    for name in names:  # each was compiled for real: it imports
        found = list(tmp_path.glob(f"{name}*.so"))
        assert len(found) == 1
        probe = subprocess.run([sys.executable, "-c", f"import {name}; print({name}.__name__)"], cwd=tmp_path,
                               capture_output=True, text=True, check=True)
        assert probe.stdout.strip() == name

