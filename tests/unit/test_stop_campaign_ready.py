"""The stop campaign's start of a stop (tests/stop_campaign.py): a command gets its stop only once it can take
one, read from the process itself: its handlers of SIGINT and SIGTERM (``SigCgt`` in /proc), or the file a
job run from Python writes.  Checked against real processes whose handlers come when the test says."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.stop_campaign import _env, catches, command_line, prepare, wait_ready, with_default_stops

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc/PID/status")

HANDLERS_WHEN_TOLD = """
import signal, sys
print("started", flush=True)
sys.stdin.readline()
signal.signal(signal.SIGINT, lambda *a: None)
signal.signal(signal.SIGTERM, lambda *a: None)
print("installed", flush=True)
sys.stdin.readline()
"""

MARKER_WHEN_TOLD = """
import sys
sys.stdin.readline()
open(sys.argv[1], "w").close()
print("written", flush=True)
sys.stdin.readline()
"""


def _started(program: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", program, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


def _tell(proc: subprocess.Popen, answer: str) -> None:
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == answer


def test_a_process_is_ready_once_it_catches_both_signals_and_not_before():
    proc = _started(HANDLERS_WHEN_TOLD)
    try:
        assert proc.stdout.readline().strip() == "started"
        # Python's own Ctrl-C handler is there from the interpreter's start: SIGINT alone says nothing
        assert catches(proc.pid, (signal.SIGINT,)) is True
        assert catches(proc.pid) is False
        assert wait_ready(proc, timeout=0.0) is False
        _tell(proc, "installed")
        assert catches(proc.pid) is True
        assert wait_ready(proc, timeout=60.0) is True
    finally:
        proc.kill()
        proc.communicate()


def test_a_command_starts_with_the_stops_at_their_defaults_even_where_they_are_ignored_here():
    program = ("import signal\n"
               "names = {signal.SIG_IGN: 'ignored', signal.SIG_DFL: 'default', signal.default_int_handler: 'python'}\n"
               "print(names.get(signal.getsignal(signal.SIGTERM)), names.get(signal.getsignal(signal.SIGINT)))\n")
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        inherited = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
        started = subprocess.run(with_default_stops([sys.executable, "-c", program]), capture_output=True, text=True,
                                 check=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert inherited.stdout.split()[0] == "ignored"
    assert started.stdout.split() == ["default", "python"]  # SIGINT: Python's own handler, as at any start


def test_a_process_that_ends_before_it_is_ready_is_not_ready():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        assert wait_ready(proc, timeout=600.0) is False  # returns as the process ends, not at the timeout
        assert proc.returncode == 0
    finally:
        proc.wait()
    assert catches(proc.pid) is None  # reaped: nothing to read


def test_a_job_that_writes_its_marker_is_ready_then_and_not_before(tmp_path):
    marker = tmp_path / "job.ready"
    proc = _started(MARKER_WHEN_TOLD, str(marker))
    try:
        assert wait_ready(proc, marker, timeout=0.0) is False
        _tell(proc, "written")
        assert wait_ready(proc, marker, timeout=60.0) is True
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.stops
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 75), (signal.SIGINT, 130)])
def test_hdmea_stopped_at_the_moment_it_is_ready_ends_with_its_stop(tmp_path, sig, status):
    setup = prepare(tmp_path / "setup")
    argv, done = command_line("demo", setup, tmp_path / "out")
    # as the campaign starts it: a test before may have left this process ignoring SIGTERM (the batch's fork
    # server module does so as it is imported), which the command would inherit
    proc = subprocess.Popen(with_default_stops(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=_env(), start_new_session=True)
    try:
        ready = wait_ready(proc, timeout=120.0)
        assert ready is True, (proc.poll(), catches(proc.pid), proc.poll() is not None and proc.communicate())
        os.killpg(proc.pid, sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == status, err
    assert len(lines) == 1 and "stopped" in lines[0], err
    assert not done.exists()
