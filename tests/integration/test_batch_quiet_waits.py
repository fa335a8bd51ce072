"""The batch's processes start with their libraries' idle threads told to sleep rather than spin.

Numpy's OpenBLAS starts a thread per core when it loads and each spins about 0.1 s before it sleeps (again
after each BLAS call); an OpenMP runtime's threads spin after each parallel region.  On a 16-core node a
batch of eight tiny recordings with one worker took 10-12 s of CPU for 3 s of wall time, most of it such
spinning in the driver, the input-check process, the workers' fork server and the worker
(docs/benchmarks.md).  The variables must be in a process's environment before the libraries load:
these tests read them where they are read, in the processes the batch starts, each a real process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from h5stream import capabilities
from tests.integration import _batch_jobs as jobs

#: the values the batch's processes get unless the user set the variable (independent of the code's table)
EXPECTED = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}
ROOT = Path(__file__).resolve().parents[2]

_BATCH_CHILD = """
import json, os, sys
from pathlib import Path

import numpy as np

from hdmea.pipeline.batch import Recording, run_batch
from tests.integration import _batch_jobs as jobs

if __name__ == "__main__":
    root, scheduler = Path(sys.argv[1]), (sys.argv[2] or None)
    (root / "in").mkdir()
    recs = []
    for i in range(2):
        jobs.make_input(root / "in" / f"rec{i}.cmcr", np.arange(5.0 + i))
        (root / "in" / f"rec{i}.cmtr").write_bytes(b"")
        recs.append(Recording.from_paths(root / "in" / f"rec{i}.cmcr"))
    summary = run_batch(recs, None, root / "out", workers=2, scheduler=scheduler, job=jobs.quiet_waits_job,
                        show_progress=False, verify_inputs=False)
    print(json.dumps({"ok": summary.ok, "executor": summary.executor, "pid": os.getpid(),
                      "workers": [r.detail for r in summary.results],
                      "driver": {name: os.environ.get(name) for name in jobs.WAIT_VARIABLES}}))
"""


def _environment(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in EXPECTED and not k.startswith("SLURM_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**env, **values}


def _unset(monkeypatch) -> None:
    """Take the variables out of this process's environment until the test ends (and whatever the code
    under test adds with them)."""
    for name in EXPECTED:
        monkeypatch.setenv(name, "unset")  # recorded as absent or as it was: restored at the end
        monkeypatch.delenv(name)


def _batch(tmp_path: Path, scheduler: str, **values: str) -> dict:
    script = tmp_path / "batch_child.py"  # a file: the fork server's children re-import the main module
    script.write_text(_BATCH_CHILD)
    done = subprocess.run([sys.executable, str(script), str(tmp_path), scheduler], capture_output=True,
                          text=True, timeout=300, env=_environment(**values))
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not capabilities.fork_server(), reason="the workers fork from a server only on POSIX")
@pytest.mark.parametrize("scheduler", ["", "local"])
def test_batch_workers_start_with_idle_threads_told_to_sleep(tmp_path, scheduler):
    if scheduler:
        pytest.importorskip("distributed")
    result = _batch(tmp_path, scheduler)
    assert result["ok"], result
    assert result["executor"].startswith("process pool" if not scheduler else "dask LocalCluster"), result["executor"]
    assert len(result["workers"]) == 2 and result["pid"] not in {w["pid"] for w in result["workers"]}
    for worker in result["workers"]:
        assert {name: worker[name] for name in EXPECTED} == EXPECTED, worker
    # the library's caller keeps its own environment: the variables go to the processes the batch starts
    assert result["driver"] == {name: None for name in EXPECTED}, result["driver"]


@pytest.mark.skipif(not capabilities.fork_server(), reason="the workers fork from a server only on POSIX")
def test_a_wait_policy_the_user_set_reaches_the_workers_unchanged(tmp_path):
    result = _batch(tmp_path, "", OMP_WAIT_POLICY="ACTIVE")
    assert result["ok"], result
    for worker in result["workers"]:
        assert worker["OMP_WAIT_POLICY"] == "ACTIVE" and worker["OPENBLAS_THREAD_TIMEOUT"] == "4", worker


def test_the_input_check_process_starts_with_idle_threads_told_to_sleep(tmp_path, monkeypatch):
    from h5stream.files.verify import verify_files

    _unset(monkeypatch)
    path = tmp_path / "rec.cmcr"
    jobs.make_input(path, __import__("numpy").arange(3.0))
    [error] = verify_files([path], check=jobs.report_waits_check, timeout=60)
    assert error is not None and error.obj == "/", error
    assert json.loads(error.found) == EXPECTED, error.found
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "20")  # the user's value stays
    [error] = verify_files([path], check=jobs.report_waits_check, timeout=60)
    assert json.loads(error.found) == {**EXPECTED, "OPENBLAS_THREAD_TIMEOUT": "20"}, error.found
    assert "OMP_WAIT_POLICY" not in os.environ  # set for the child, not in this process


@pytest.mark.parametrize(("argv", "quiet"), [(["batch", "in", "--out", "out"], True),
                                             (["--log-level", "INFO", "batch", "in"], True),
                                             (["run", "a.cmcr", "a.cmtr", "--out", "o.h5"], False)])
def test_the_batch_command_sets_the_waits_before_the_command_line_loads(monkeypatch, argv, quiet):
    """``hdmea batch`` puts the variables in its own environment before the command line (and numpy) loads;
    the other commands leave it as it is."""
    import hdmea.__main__ as start
    import hdmea.cli

    _unset(monkeypatch)
    monkeypatch.setattr(sys, "argv", ["hdmea", *argv])
    seen = {}
    monkeypatch.setattr(hdmea.cli, "main", lambda: seen.update({n: os.environ.get(n) for n in EXPECTED}) or 0)
    assert start.main() == 0
    assert seen == (EXPECTED if quiet else {name: None for name in EXPECTED})


def test_quiet_waits_leave_the_users_values():
    from h5stream.cores import QUIET_WAITS, quiet_waits

    assert QUIET_WAITS == EXPECTED
    assert quiet_waits({}) == EXPECTED
    assert quiet_waits({"OMP_WAIT_POLICY": "ACTIVE", "PATH": "/bin"}) == {"OPENBLAS_THREAD_TIMEOUT": "4"}
    assert quiet_waits(dict(EXPECTED)) == {}
