"""A stop in the stretches around a job's stop handling is not lost: ``hdmea batch`` between its signal handlers
and its :class:`~h5stream.stops.kept_stops` block, and after that block ended; :func:`hdmea.pipeline.run_batch`
from Python before its first job and after its last; a session's save before it writes.

Each test runs a fresh interpreter that sends itself a real SIGINT with ``signal.raise_signal`` from a patched
function that runs at exactly that point (the handler runs before the call returns: no sleeps, no races).  With
``swallow``, a library's ``except BaseException: pass`` around the signal takes the stop's exception there (the
library's folder is named in :data:`h5stream.stops.LIBRARY_PATHS`).  A stop that comes before the work was
committed ends the job with the stop; one that comes after leaves the job's own outcome, and a program run from
Python meets it at its next check point.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.stop_campaign import RECORDINGS, prepare

pytestmark = pytest.mark.stops

LIBRARY = """
import signal

def swallow():
    try:
        signal.raise_signal(signal.SIGINT)
    except BaseException:
        pass
"""

HEAD = """
import os, signal, sys
sys.path.insert(0, {folder!r})
from h5stream import stops
getattr(stops, "LIBRARY_PATHS", []).append(os.path.join({folder!r}, ""))  # (a build before the rule: none)
import library

fired = []

def hit():
    if fired:
        return
    fired.append(1)
    if {swallow}:
        library.swallow()
    else:
        signal.raise_signal(signal.SIGINT)
"""

CLI = HEAD + """
from hdmea.pipeline.batch import preemption

if {where!r} == "before_block":  # stop_on_signals has set its handlers; its kept_stops block is being made
    made = stops.kept_stops

    def kept(*args, **kwargs):
        if args and args[0] == (preemption.Preempted,):
            hit()
        return made(*args, **kwargs)

    stops.kept_stops = kept
else:  # stop_on_signals' block has ended and its handlers are back
    reset = preemption._reset

    def after_block():
        hit()
        reset()

    preemption._reset = after_block
sys.argv = ["hdmea", "batch", {recordings!r}, "--config", {config!r}, "--out", {out!r}, "--workers", "1"]
from hdmea.__main__ import main

sys.exit(main())
"""

API = HEAD + """
from hdmea.config import load_config
from hdmea.pipeline import run_batch
from hdmea.pipeline.batch import engine

if {where!r} == "batch_start":
    found = engine.discover_recordings

    def discover(*args, **kwargs):
        hit()
        return found(*args, **kwargs)

    engine.discover_recordings = discover
else:  # the last job has ended, its output committed
    times = engine._setup_times

    def setup_times(*args, **kwargs):
        hit()
        return times(*args, **kwargs)

    engine._setup_times = setup_times
try:
    summary = run_batch({recordings!r}, load_config({config!r}), {out!r}, workers=1, show_progress=False)
    print("returned", len(summary.done), flush=True)
    stops.check_point()
    print("ran on", flush=True)
except KeyboardInterrupt as exc:
    print("stopped", type(exc).__name__, flush=True)
"""

SAVE = HEAD + """
from hdmea.session import session as session_module

check = session_module._files.check_replace_target

def check_target(*args, **kwargs):  # the save has begun: after its first look for a stop, before it writes
    hit()
    return check(*args, **kwargs)

session_module._files.check_replace_target = check_target
try:
    made = session_module.create_session("r", output_dir=None, hdf5_path={out!r} + "/r.h5")
    made.save()
    print("saved", flush=True)
    stops.check_point()
    print("ran on", flush=True)
except KeyboardInterrupt as exc:
    print("stopped", type(exc).__name__, flush=True)
"""


def _setup(tmp_path) -> dict:
    (tmp_path / "library.py").write_text(LIBRARY)
    setup = prepare(tmp_path)
    return {"folder": str(tmp_path), "recordings": str(setup["recordings"]), "config": str(setup["config"]),
            "out": str(tmp_path / "out")}


def _run(code: str, child_env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env=child_env)


def _outputs(tmp_path) -> int:
    return len(list((tmp_path / "out").glob("r*.h5"))) if (tmp_path / "out").exists() else 0


@pytest.mark.parametrize("swallow", [False, True])
def test_hdmea_batch_stopped_before_its_block_ends_with_the_stop_line(tmp_path, child_env, swallow):
    setup = _setup(tmp_path)
    done = _run(CLI.format(where="before_block", swallow=swallow, **setup), child_env)
    lines = done.stderr.splitlines()
    assert done.returncode == 130, done
    assert lines[-1] == "hdmea batch: stopped; run the same command again to resume", done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr
    assert _outputs(tmp_path) == 0


def test_hdmea_batch_stopped_after_its_block_ends_with_the_stop_line(tmp_path, child_env):
    """The outputs are committed; the stop's exception reaches the command line, which ends with its line."""
    setup = _setup(tmp_path)
    done = _run(CLI.format(where="after_block", swallow=False, **setup), child_env)
    assert done.returncode == 130, done
    assert done.stderr.splitlines()[-1] == "hdmea batch: stopped; run the same command again to resume", done
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr
    assert _outputs(tmp_path) == RECORDINGS


def test_hdmea_batch_whose_stop_a_library_takes_after_its_block_keeps_its_status(tmp_path, child_env):
    """The outputs are committed when the stop comes: the command's own status stands."""
    setup = _setup(tmp_path)
    done = _run(CLI.format(where="after_block", swallow=True, **setup), child_env)
    assert done.returncode == 0, done
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert _outputs(tmp_path) == RECORDINGS


def test_run_batch_whose_stop_a_library_takes_at_its_start_ends_before_its_jobs(tmp_path, child_env):
    setup = _setup(tmp_path)
    done = _run(API.format(where="batch_start", swallow=True, **setup), child_env)
    assert done.stdout.splitlines() == ["stopped KeyboardInterrupt"], done
    assert _outputs(tmp_path) == 0


def test_run_batch_whose_stop_a_library_takes_after_its_jobs_returns_and_the_stop_comes_next(tmp_path, child_env):
    """The outputs are committed: the batch returns its summary, and the program meets the stop at its next
    check point."""
    setup = _setup(tmp_path)
    done = _run(API.format(where="batch_end", swallow=True, **setup), child_env)
    assert done.stdout.splitlines() == [f"returned {RECORDINGS}", "stopped KeyboardInterrupt"], done
    assert _outputs(tmp_path) == RECORDINGS


@pytest.mark.parametrize("swallow", [False, True])
def test_a_stop_in_a_sessions_save_before_it_writes_is_not_lost(tmp_path, child_env, swallow):
    """Raised there, the stop ends the save with nothing written; taken by a library there, the save commits
    its file and the program meets the stop at its next check point."""
    (tmp_path / "library.py").write_text(LIBRARY)
    (tmp_path / "out").mkdir()
    done = _run(SAVE.format(folder=str(tmp_path), out=str(tmp_path / "out"), swallow=swallow), child_env)
    if swallow:
        assert done.stdout.splitlines() == ["saved", "stopped KeyboardInterrupt"], done
        assert [p.name for p in (tmp_path / "out").iterdir()] == ["r.h5"]
    else:
        assert done.stdout.splitlines() == ["stopped KeyboardInterrupt"], done
        assert list((tmp_path / "out").iterdir()) == []
