"""Build every ``ext/*.pyx`` into ``h5stream._ext.<name>``, once per machine.

All build logic lives here: numpy include, ``-O3``, and OpenMP when the
compiler supports it.  Set ``H5STREAM_DISABLE_OPENMP=1`` to force a serial
build.  Metadata lives in ``pyproject.toml``.

One compile serves every later install of the same source.  The compiled
extension files are kept in a per-user cache (``$H5STREAM_BUILD_CACHE``, else
``$XDG_CACHE_HOME/h5stream/ext``, else ``~/.cache/h5stream/ext``; set
``H5STREAM_BUILD_CACHE=off`` to always compile), one entry per key: a hash of
the kernel sources (``ext/``), this file, the compiler flags and OpenMP
setting, the compiler, the Python ABI and the numpy and Cython versions.  A hit
copies the files instead of compiling (``pip install ".[report]"`` after ``pip
install .`` takes seconds); an entry is written into a temporary folder and
renamed into place only when complete, and every file is checked against the
entry's manifest (size and SHA-256) before it is used: a partial or damaged
entry is set aside and the extensions are compiled.  A miss cythonizes and
compiles on every core (``-j`` overrides), largest sources first.

With Microsoft's compiler (MSVC, the default on Windows) the flags are its own:
``/O2`` and ``/openmp`` (no probe: every MSVC has OpenMP 2.0, which Cython's
``prange`` needs), zlib linked as ``zlib``.  Windows builds are not tested by
this project's CI (Linux only).
"""

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent.resolve()

# Extra libraries per kernel module (module stem -> libraries to link).
EXTRA_LIBRARIES = {"_compress": ["z"], "_h5attrs": ["z"], "_h5dsets": ["z"]}

# Cython's settings for every kernel; part of the cache key.
COMPILER_DIRECTIVES = {
    "language_level": "3",
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
}

# Entries kept in the cache; older ones (by last use) are removed after a store.
CACHE_ENTRIES_KEPT = 8
MANIFEST = "manifest.json"

OPENMP_PROBE = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""


def _say(text):
    """A line of the build's progress, on stderr and, where pip holds stderr back, on the terminal too.

    pip shows only "Building wheel ... still running..." while a build runs and prints the build's own output
    only with -v or on failure; a line written to the controlling terminal (``/dev/tty``, when this process
    has one) is seen under pip's default output as well.  ``H5STREAM_BUILD_TTY=0`` leaves the terminal alone.
    """
    line = f"h5stream build: {text}"
    with _SAY_LOCK:  # the extensions compile on several threads: one whole line at a time
        sys.stderr.write(line + "\n")  # one write: print() writes the line's end apart, where another can cut in
        sys.stderr.flush()
        if sys.stderr.isatty() or os.environ.get("H5STREAM_BUILD_TTY", "1").strip() in ("0", "off"):
            return
        try:
            with open("/dev/tty", "w") as tty:  # no controlling terminal (CI, cron, a batch job): stderr only
                tty.write("\r" + line + "\n")  # from the line's start: over pip's spinner
        except OSError:
            pass


_SAY_LOCK = threading.Lock()


def _compiler_is_msvc():
    """True when setuptools builds with Microsoft's compiler (Windows, unless told otherwise)."""
    try:
        from setuptools._distutils.ccompiler import get_default_compiler
    except ImportError:  # older setuptools
        from distutils.ccompiler import get_default_compiler
    return get_default_compiler() == "msvc"


MSVC = _compiler_is_msvc()


def _c_compiler():
    return (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()


def _openmp_flags():
    """Return (compile_args, link_args) for OpenMP, or None if unusable."""
    if os.environ.get("H5STREAM_DISABLE_OPENMP", "").strip() not in ("", "0"):
        _say("OpenMP disabled by H5STREAM_DISABLE_OPENMP")
        return None
    if MSVC:
        return ["/openmp"], []
    tmp = Path(tempfile.mkdtemp(prefix="h5stream-omp-"))
    try:
        src = tmp / "probe.c"
        src.write_text(OPENMP_PROBE)
        cmd = [*_c_compiler(), "-fopenmp", str(src), "-o", str(tmp / "probe")]
        done = subprocess.run(cmd, capture_output=True, check=False)
        if done.returncode != 0:
            _say("compiler has no OpenMP, building serial kernels")
            return None
        run = subprocess.run([str(tmp / "probe")], capture_output=True, check=False)
        if run.returncode != 0:
            return None
        return ["-fopenmp"], ["-fopenmp"]
    except OSError:
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _openmp_state_changed(enabled):
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


def _numpy_include():
    import numpy as np

    return np.get_include()


def _extensions():
    """One Extension per ``ext/*.pyx``: Cython sources, cythonized only when they must be compiled.

    The compiler flags are set by :func:`_set_flags` when the extensions are built,
    so that the other steps of an install (metadata, requirements) skip the OpenMP probe.
    """
    exts = []
    # every extension depends on the headers and includes beside it: an edit of one rebuilds them (the build
    # cache's key covers them too, so a stale object is never stored under a new key)
    shared = sorted(os.path.relpath(p, HERE) for p in (HERE / "ext").iterdir() if p.suffix in (".h", ".pxi", ".pxd"))
    for pyx in sorted((HERE / "ext").glob("*.pyx")):
        name = pyx.stem
        exts.append(Extension(
            f"h5stream._ext.{name}",
            sources=[os.path.relpath(pyx, HERE)],
            depends=shared,
            include_dirs=["ext"],  # numpy's include is added when compiling
            libraries=[("zlib" if MSVC and lib == "z" else lib) for lib in EXTRA_LIBRARIES.get(name, [])],
        ))
    return exts


def _set_flags(extensions):
    """Optimisation, numpy API and OpenMP flags on every extension; returns whether OpenMP is on."""
    omp = _openmp_flags()
    compile_args = ["/O2"] if MSVC else ["-O3"]
    link_args = []
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), ("H5STREAM_OPENMP", "0" if omp is None else "1")]
    if omp is not None:
        compile_args += omp[0]
        link_args += omp[1]
    for ext in extensions:
        ext.define_macros = list(macros)
        ext.extra_compile_args = list(compile_args)
        ext.extra_link_args = list(link_args)
    return omp is not None


# --------------------------------------------------------------------------- the build cache


def _cache_root():
    """The per-user cache folder, or None when switched off (``H5STREAM_BUILD_CACHE=off``)."""
    setting = os.environ.get("H5STREAM_BUILD_CACHE", "").strip()
    if setting.lower() in ("0", "off", "no", "false", "none"):
        return None
    if setting:
        return Path(setting).expanduser()
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "h5stream" / "cache" / "ext"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "h5stream" / "ext"


def _compiler_identity():
    """The C compiler's own description (``cc --version``), so that a new compiler compiles again."""
    if MSVC:
        return "msvc"
    try:
        done = subprocess.run([*_c_compiler(), "--version"], capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip()


def _file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_key(extensions):
    """The cache key of ``extensions``: everything the compiled files depend on, hashed."""
    import numpy as np

    try:
        from Cython import __version__ as cython_version
    except ImportError:  # not needed on a hit; a miss fails later with Cython's own message
        cython_version = "none"
    digest = hashlib.sha256()

    def add(label, value):
        digest.update(f"{label}={value}\n".encode())

    for path in sorted((HERE / "ext").iterdir()):
        if path.is_file() and path.suffix in (".pyx", ".pxd", ".pxi", ".h"):
            add(f"source {path.name}", _file_digest(path))
    add("setup.py", _file_digest(HERE / "setup.py"))
    for ext in sorted(extensions, key=lambda e: e.name):
        add(f"extension {ext.name}", json.dumps([
            ext.define_macros, ext.extra_compile_args, ext.extra_link_args, ext.libraries, ext.include_dirs,
        ]))
    add("directives", json.dumps(COMPILER_DIRECTIVES, sort_keys=True))
    for variable in ("CC", "CFLAGS", "CPPFLAGS", "LDFLAGS", "LDSHARED", "ARCHFLAGS"):
        add(f"env {variable}", os.environ.get(variable, ""))
    add("compiler", _compiler_identity())
    add("python", sys.version)
    add("abi", sysconfig.get_config_var("EXT_SUFFIX") or sysconfig.get_config_var("SO"))
    add("platform", f"{sys.platform} {platform.machine()} {sysconfig.get_platform()}")
    add("numpy", np.__version__)
    add("cython", cython_version)
    return digest.hexdigest()[:32]


def _fsync_path(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _verified_entry(entry, names):
    """The manifest of cache entry ``entry`` if it is complete and every file matches it, else None."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        files = manifest["files"]
        if sorted(files) != sorted(names):
            return None
        for name in names:
            record = files[name]
            path = entry / record["file"]
            if path.name != record["file"] or path.stat().st_size != record["size"]:
                return None
            if _file_digest(path) != record["sha256"]:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return manifest


def _ignore_oserror(func, *args):
    try:
        func(*args)
    except OSError:
        pass


def _copy_atomic(source, target):
    """Copy ``source`` to ``target`` through a temporary file next to it, renamed into place."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        shutil.copymode(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        _ignore_oserror(os.unlink, tmp)
        raise


def restore_from_cache(root, key, targets):
    """Copy the cached files of ``key`` to ``targets`` (extension name -> path); True on a verified hit.

    A partial or damaged entry (no manifest, a file missing, a size or SHA-256
    that differs) is never used: it is moved aside and removed, and False is
    returned so that the caller compiles.
    """
    entry = Path(root) / key
    if not entry.is_dir():
        return False
    manifest = _verified_entry(entry, list(targets))
    if manifest is None:
        _say(f"ignoring the damaged or partial cache entry {entry}; compiling")
        aside = entry.with_name(f".damaged-{key}-{os.getpid()}")
        try:
            os.replace(entry, aside)
            shutil.rmtree(aside, ignore_errors=True)
        except OSError:
            pass
        return False
    for name, target in targets.items():
        source = entry / manifest["files"][name]["file"]
        _copy_atomic(source, target)
        if _file_digest(target) != manifest["files"][name]["sha256"]:  # the copy itself, checked
            _say(f"the copy of {source} to {target} does not match the cache entry; compiling")
            return False
    _ignore_oserror(os.utime, entry)  # last use, for pruning
    return True


def store_in_cache(root, key, built):
    """Keep the compiled files ``built`` (extension name -> path) as cache entry ``key``.

    The entry is written into a temporary folder in the cache, each file and the
    manifest synced, then renamed to its key: readers see a complete entry or none.
    A failure to store is reported and otherwise ignored (the build itself succeeded).
    """
    root = Path(root)
    entry = root / key
    if entry.is_dir():
        return None
    tmp = None
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = Path(tempfile.mkdtemp(prefix=f".partial-{key}-", dir=root))
        files = {}
        for name, path in built.items():
            path = Path(path)
            shutil.copyfile(path, tmp / path.name)
            shutil.copymode(path, tmp / path.name)
            _fsync_path(tmp / path.name)
            files[name] = {"file": path.name, "size": path.stat().st_size, "sha256": _file_digest(tmp / path.name)}
        manifest = {"key": key, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": sys.version,
                    "files": files}
        with open(tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.rename(tmp, entry)
        except OSError:  # another build stored the same key first
            shutil.rmtree(tmp, ignore_errors=True)
            return None
        _fsync_path(root)
    except OSError as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        _say(f"could not keep the compiled extensions in {root} ({exc}); the next install compiles again")
        return None
    _prune(root)
    return entry


def _prune(root):
    """Keep the newest CACHE_ENTRIES_KEPT complete entries; remove leftovers of interrupted stores."""
    try:
        entries = [p for p in Path(root).iterdir() if p.is_dir()]
    except OSError:
        return
    now = time.time()
    complete = []
    for path in entries:
        try:
            age = now - path.stat().st_mtime
        except OSError:
            continue
        if path.name.startswith("."):
            if age > 24 * 3600:  # an interrupted store or a damaged entry a day old
                shutil.rmtree(path, ignore_errors=True)
        else:
            complete.append((path.stat().st_mtime, path))
    for _, path in sorted(complete, reverse=True)[CACHE_ENTRIES_KEPT:]:
        shutil.rmtree(path, ignore_errors=True)


class BuildExtOnce(build_ext):
    """``build_ext`` that reuses the per-user cache and otherwise builds on every core."""

    def finalize_options(self):
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1
        super().finalize_options()
        self._compiled = 0
        self._count_lock = threading.Lock()

    def build_extension(self, ext):
        """Compile one extension, saying so first: one line per extension, ``(3 of 12)``."""
        with self._count_lock:
            self._compiled += 1
            number = self._compiled
        _say(f"compiling {ext.name} ({number} of {len(self.extensions)})")
        super().build_extension(ext)

    def _targets(self):
        return {ext.name: self.get_ext_fullpath(ext.name) for ext in self.extensions}

    def run(self):
        self._openmp = _set_flags(self.extensions)
        root = _cache_root()
        key = build_key(self.extensions) if root is not None else None
        if root is not None and restore_from_cache(root, key, self._targets()):
            _say(f"reused the compiled extensions from {root / key} (same sources, flags, compiler, Python "
                 "and numpy; H5STREAM_BUILD_CACHE=off compiles anyway)")
            return
        start = time.perf_counter()
        _say(f"cythonizing and compiling {len(self.extensions)} extensions on {self.parallel} jobs, once per machine "
             "(about a minute on two free cores, several on a busy machine; a line per extension follows)")
        self._cythonize()
        cythonized = time.perf_counter()
        _say(f"cythonized in {cythonized - start:.1f} s; compiling the C sources")
        super().run()
        _say(f"cythonized in {cythonized - start:.1f} s, compiled {len(self.extensions)} extensions in "
             f"{time.perf_counter() - cythonized:.1f} s on {self.parallel} jobs")
        if root is not None:
            stored = store_in_cache(root, key, self._targets())
            if stored is not None:
                _say(f"kept the compiled extensions in {stored} for the next install of this source")

    def _cythonize(self):
        from Cython.Build import cythonize

        openmp = self._openmp
        include = _numpy_include()
        for ext in self.extensions:
            if include not in ext.include_dirs:
                ext.include_dirs.append(include)
            # setuptools renames .pyx sources to .c when it was imported without Cython
            ext.sources = [s[:-2] + ".pyx" if s.endswith(".c") and (HERE / (s[:-2] + ".pyx")).exists() else s
                           for s in ext.sources]
        # cythonize's worker processes need fork (the build backend runs this file as __main__)
        fork = sys.platform.startswith("linux")
        jobs = self.parallel if fork and isinstance(self.parallel, int) and self.parallel > 1 else None
        built = cythonize(
            self.extensions,
            nthreads=jobs or 0,
            force=_openmp_state_changed(openmp),
            compiler_directives=COMPILER_DIRECTIVES,
            compile_time_env={"OPENMP": openmp},
        )

        generated = {ext.name: ext.sources for ext in built}
        for ext in self.extensions:  # keep setuptools' own Extension objects (build_ext sets attributes on them)
            ext.sources = generated[ext.name]

        def c_size(ext):  # the largest generated sources take longest: start them first
            return sum(os.path.getsize(s) for s in ext.sources if os.path.exists(s))

        self.extensions.sort(key=c_size, reverse=True)


if __name__ == "__main__":  # setuptools' build backend runs this file as __main__, as does `python setup.py`
    setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExtOnce})
