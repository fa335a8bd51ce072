"""Build every ``ext/*.pyx`` into ``h5stream._ext.<name>``.

All build logic lives here: numpy include, ``-O3``, and OpenMP when the
compiler supports it.  Set ``H5STREAM_DISABLE_OPENMP=1`` to force a serial
build.  Metadata lives in ``pyproject.toml``.

With Microsoft's compiler (MSVC, the default on Windows) the flags are its own:
``/O2`` and ``/openmp`` (no probe: every MSVC has OpenMP 2.0, which Cython's
``prange`` needs), zlib linked as ``zlib``.  Windows builds are not tested by
this project's CI (Linux only).
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent.resolve()

# Extra libraries per kernel module (module stem -> libraries to link).
EXTRA_LIBRARIES = {"_compress": ["z"], "_h5attrs": ["z"]}

OPENMP_PROBE = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""


def _compiler_is_msvc():
    """True when setuptools builds with Microsoft's compiler (Windows, unless told otherwise)."""
    try:
        from setuptools._distutils.ccompiler import get_default_compiler
    except ImportError:  # older setuptools
        from distutils.ccompiler import get_default_compiler
    return get_default_compiler() == "msvc"


MSVC = _compiler_is_msvc()


def _openmp_flags():
    """Return (compile_args, link_args) for OpenMP, or None if unusable."""
    if os.environ.get("H5STREAM_DISABLE_OPENMP", "").strip() not in ("", "0"):
        print("h5stream build: OpenMP disabled by H5STREAM_DISABLE_OPENMP", file=sys.stderr)
        return None
    if MSVC:
        return ["/openmp"], []
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    cc = cc.split()
    tmp = Path(tempfile.mkdtemp(prefix="h5stream-omp-"))
    try:
        src = tmp / "probe.c"
        src.write_text(OPENMP_PROBE)
        cmd = [*cc, "-fopenmp", str(src), "-o", str(tmp / "probe")]
        done = subprocess.run(cmd, capture_output=True, check=False)
        if done.returncode != 0:
            print("h5stream build: compiler has no OpenMP, building serial kernels", file=sys.stderr)
            return None
        run = subprocess.run([str(tmp / "probe")], capture_output=True, check=False)
        if run.returncode != 0:
            return None
        return ["-fopenmp"], ["-fopenmp"]
    except OSError:
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _openmp_state_changed(enabled: bool) -> bool:
    """True when the last generation of the C sources used the other OpenMP setting.

    The Cython compile-time constant ``OPENMP`` is baked into the generated C, and
    cythonize only compares timestamps, so a switch must regenerate every source.
    """
    stamp = HERE / "build" / "h5stream-openmp-state"
    state = "1" if enabled else "0"
    previous = stamp.read_text().strip() if stamp.exists() else None
    if previous != state:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(state)
    return previous is not None and previous != state


def _extensions():
    omp = _openmp_flags()
    compile_args = ["/O2"] if MSVC else ["-O3"]
    link_args = []
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    if omp is not None:
        compile_args += omp[0]
        link_args += omp[1]
        macros.append(("H5STREAM_OPENMP", "1"))
    else:
        macros.append(("H5STREAM_OPENMP", "0"))
    exts = []
    for pyx in sorted((HERE / "ext").glob("*.pyx")):
        name = pyx.stem
        exts.append(
            Extension(
                f"h5stream._ext.{name}",
                sources=[os.path.relpath(pyx, HERE)],
                include_dirs=[np.get_include(), "ext"],
                define_macros=macros,
                extra_compile_args=compile_args,
                extra_link_args=link_args,
                libraries=[("zlib" if MSVC and lib == "z" else lib) for lib in EXTRA_LIBRARIES.get(name, [])],
            )
        )
    return cythonize(
        exts,
        force=_openmp_state_changed(omp is not None),
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
        compile_time_env={"OPENMP": omp is not None},
    )


setup(ext_modules=_extensions())
