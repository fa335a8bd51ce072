"""The build: every kernel compiled, OpenMP reported truthfully, sources shipped, outputs untracked.

The full check (sdist, then a wheel built from it, installed in a fresh virtual
environment, plus a serial build with ``H5STREAM_DISABLE_OPENMP=1``) takes minutes
and needs the package index; it runs only with ``H5STREAM_TEST_BUILD=1``.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import h5stream
from h5stream._ext import _runtime

ROOT = Path(__file__).resolve().parents[2]
PYX_STEMS = sorted(p.stem for p in (ROOT / "ext").glob("*.pyx"))


def test_every_kernel_source_is_compiled_into_the_package():
    assert "_runtime" in PYX_STEMS
    for stem in PYX_STEMS:
        module = importlib.import_module(f"h5stream._ext.{stem}")
        assert Path(module.__file__).suffix in (".so", ".pyd"), module.__file__


def test_openmp_flag_matches_the_compiled_code():
    enabled = h5stream.openmp_enabled()
    assert isinstance(enabled, bool)
    assert enabled is _runtime.openmp_enabled()
    threads = _runtime.openmp_max_threads()
    assert isinstance(threads, int)
    # The compiled module calls into the OpenMP runtime only in a parallel build.
    binary = Path(_runtime.__file__).read_bytes()
    assert (b"omp_get_max_threads" in binary) is enabled
    if enabled:
        assert threads >= 1
    else:
        assert threads == 1


def _git_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def test_no_build_output_is_tracked_by_git():
    tracked = _git_files()
    generated = [
        f for f in tracked
        if f.endswith((".c", ".cpp", ".so", ".pyd", ".o", ".whl"))
        or f.split("/")[0] in ("build", "dist")
        or ".egg-info/" in f
    ]
    assert generated == []
    assert [f"ext/{stem}.pyx" for stem in PYX_STEMS] == sorted(
        f for f in tracked if f.startswith("ext/") and f.endswith(".pyx")
    )


def test_manifest_ships_the_kernel_sources_and_not_generated_c():
    from setuptools._distutils.filelist import FileList

    files = FileList()
    files.findall(str(ROOT))
    files.files = [os.path.relpath(f, ROOT) for f in files.allfiles]
    files.allfiles = list(files.files)
    files.files = []
    for line in (ROOT / "MANIFEST.in").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            files.process_template_line(line)
    shipped = set(files.files)
    for stem in PYX_STEMS:
        assert f"ext/{stem}.pyx" in shipped
    assert not [f for f in shipped if f.startswith("ext/") and f.endswith((".c", ".so"))]
    assert {"README.md", "pyproject.toml", "setup.py"} <= shipped


@pytest.mark.skipif(os.environ.get("H5STREAM_TEST_BUILD") != "1",
                    reason="slow full build check; set H5STREAM_TEST_BUILD=1")
def test_sdist_wheel_install_and_serial_build(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(clone)], check=True,
                   capture_output=True)
    sdist = next(dist.glob("*.tar.gz"))
    wheel = next(dist.glob("*.whl"))
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    for stem in PYX_STEMS:
        assert any(n.endswith(f"ext/{stem}.pyx") for n in names)
    assert not any(n.endswith(".c") for n in names)
    with zipfile.ZipFile(wheel) as zf:
        compiled = [n for n in zf.namelist() if n.startswith("h5stream/_ext/") and n.endswith(".so")]
    assert sorted(Path(n).name.split(".")[0] for n in compiled) == PYX_STEMS

    probe = (
        "import h5stream, importlib; "
        f"[importlib.import_module('h5stream._ext.' + s) for s in {PYX_STEMS!r}]; "
        "print(h5stream.openmp_enabled())"
    )
    for serial in (False, True):
        venv = tmp_path / f"venv-{'serial' if serial else 'parallel'}"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        env = {**os.environ}
        if serial:
            env["H5STREAM_DISABLE_OPENMP"] = "1"
            source = str(clone)
        else:
            source = str(wheel)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", source], check=True, env=env,
                       capture_output=True)
        done = subprocess.run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path,
                              capture_output=True, text=True, check=True)
        assert done.stdout.strip() == str(not serial and h5stream.openmp_enabled())


# --------------------------------------------------------------------------- benchmark runner


def test_benchmark_runner_reports_failing_modules_as_rows(tmp_path, monkeypatch, capsys):
    import json
    import types

    from benchmarks.harness import run as runner
    from benchmarks.harness import Row

    good = types.ModuleType("benchmarks.suite.bench_good")
    # a goal at both sizes: at --size small a row whose goal names only the full size has no verdict
    good.run = lambda size: [Row("good thing", "naive", 2.0, 1.0, "s", 2.0, 1.5, goal_sizes=("small", "full"))]
    broken = types.ModuleType("benchmarks.suite.bench_broken")

    def explode(size):
        raise RuntimeError(f"exploded at {size}")

    broken.run = explode
    monkeypatch.setitem(sys.modules, "benchmarks.suite.bench_good", good)
    monkeypatch.setitem(sys.modules, "benchmarks.suite.bench_broken", broken)
    monkeypatch.setattr(runner, "discover", lambda: ["bench_broken", "bench_good", "bench_missing"])
    out = tmp_path / "table.json"
    code = runner.main(["--size", "small", "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 1
    assert "good thing" in printed and "bench_broken FAILED" in printed and "bench_missing FAILED" in printed
    table = json.loads(out.read_text())
    assert table["meta"]["failed"] == ["bench_broken", "bench_missing"]
    rows = {r["benchmark"]: r for r in table["rows"]}
    assert rows["good thing"]["holds"] is True
    assert "exploded at small" in rows["bench_broken FAILED"]["peer"]
    assert "import failed" in rows["bench_missing FAILED"]["peer"]
    assert runner.main(["--only", "good", "--json", str(out)]) == 0
    with pytest.raises(SystemExit, match="unknown benchmark"):
        runner.main(["--only", "nothing"])
