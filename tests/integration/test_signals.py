"""``hdmea run``, ``run-one`` and ``batch`` stopped by SIGTERM or SIGINT: checkpoint, one message, exit 75 or 130.

Real signals to real subprocesses, sent once the log says the first step is
done, while the job is still running: ``run`` and ``run-one`` (the job in the
command's own process) are held there until the stop (:mod:`tests.holds`); a
batch's worker processes are paused meanwhile.  The stopped
command leaves ``<out>.checkpoint.h5`` and no output; the same command then
resumes from it (its log says so) and writes a file equal to a clean run's.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hdmea.config import load_config
from hdmea.pipeline.batch import checkpoint_path_for, run_pipeline
from hdmea.pipeline.batch.preemption import EXIT_PREEMPTED
from hdmea.synthetic import generate_recording
from tests.filecompare import TIMESTAMP_ATTRS, assert_files_equal
from tests.holds import HELD_TEXT, hold_after_load

#: every test here stops a job by a signal or from another thread (CI runs them again on a busy machine)
pytestmark = pytest.mark.stops

CONFIG = """
[stimulus]
file = "{dir}/{name}.stimulus.json"
[steps]
compute_eimage_sta = true
[output]
checkpoint_min_seconds = 0.0
"""


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    folder = tmp_path_factory.mktemp("signals")
    made = generate_recording(folder / "recordings", "sig", n_units=4, seed=3)
    config = folder / "pipeline.toml"
    config.write_text(CONFIG)
    clean = folder / "clean" / "sig.h5"
    run_pipeline(made.cmcr_path, made.cmtr_path, clean, load_config(config), dataset_id="sig",
                 show_progress=False)
    return made, config, clean


def command_line(command: str, made, config: Path, out: Path) -> list[str]:
    # a batch's course of the stop (the driver passing it on) is logged from DEBUG on, the wait below reads it
    hdmea = [sys.executable, "-m", "hdmea", "--log-level", "DEBUG" if command == "batch" else "INFO"]
    if command == "run":
        return hdmea + ["run", str(made.cmcr_path), str(made.cmtr_path), "--config", str(config),
                        "--out", str(out / "sig.h5")]
    if command == "run-one":
        return hdmea + ["run-one", str(made.cmcr_path.parent), "--index", "0", "--config", str(config),
                        "--out", str(out)]
    return hdmea + ["batch", str(made.cmcr_path.parent), "--config", str(config), "--out", str(out),
                    "--workers", "1"]


def stop_after_first_step(argv: list[str], sig: signal.Signals, log: Path, env: dict, *,
                          hold_workers: bool = False, ready: str = "load_recording done") -> subprocess.CompletedProcess:
    """Run ``argv``, send ``sig`` once its log says the first step is done (``ready``: the text that
    says so); its exit code and output.

    ``hold_workers`` (a batch, whose job runs in a Dask worker process): the command's child processes
    are paused (SIGSTOP) before the signal and resumed once the batch has passed the stop on to them,
    so the job is still running when the stop reaches it, however quick its remaining steps are (on a
    fast machine they take a tenth of a second, less than the way of a message to a worker).
    """
    import psutil

    with open(log, "wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env)
        deadline = time.monotonic() + 240
        while ready.encode() not in log.read_bytes():
            assert proc.poll() is None, f"ended before its first step was done:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no step done in 240 s:\n{log.read_text()}"
            time.sleep(0.02)
        held = psutil.Process(proc.pid).children(recursive=True) if hold_workers else []
        for child in held:
            child.send_signal(signal.SIGSTOP)
        proc.send_signal(sig)
        if held:
            try:
                while f"{sig.name} received: the".encode() not in log.read_bytes():
                    assert proc.poll() is None, f"ended before passing the stop on:\n{log.read_text()}"
                    assert time.monotonic() < deadline, f"the stop was not passed on in 240 s:\n{log.read_text()}"
                    time.sleep(0.02)
                time.sleep(0.5)  # the message to the workers is on its way
            finally:
                for child in held:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        child.send_signal(signal.SIGCONT)
        stdout, _ = proc.communicate(timeout=240)
    return subprocess.CompletedProcess(argv, proc.returncode, stdout.decode(), log.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "run-one", "batch"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_checkpoints_and_the_same_command_resumes(recording, tmp_path, command, sig, child_env):
    made, config, clean = recording
    out = tmp_path / "out"
    argv = command_line(command, made, config, out)
    batch = command == "batch"
    env = child_env if batch else hold_after_load(tmp_path / "hook", child_env)
    stopped = stop_after_first_step(argv, sig, tmp_path / "stopped.log", env, hold_workers=batch,
                                    **({} if batch else {"ready": HELD_TEXT}))
    # Ctrl-C at a terminal ends as a shell expects of it (130); a cluster's SIGTERM with 75, which requeues
    assert stopped.returncode == (130 if sig == signal.SIGINT else EXIT_PREEMPTED), stopped.stderr
    if not batch:  # the stop landed while the job was held, before its next step
        assert HELD_TEXT in stopped.stderr and "add_section_time done" not in stopped.stderr, stopped.stderr
    checkpoint = checkpoint_path_for(out / "sig.h5")
    assert checkpoint.exists() and not (out / "sig.h5").exists()
    # One line saying what to do, the signal and what was kept where; the batch's table names each recording.
    assert stopped.stderr.count("stopped; run the same command again to resume") == 1, stopped.stderr
    assert f"hdmea {command}: stopped; run the same command again to resume" in stopped.stderr
    assert "Preempted" not in stopped.stderr and "requeue" not in stopped.stderr, stopped.stderr
    if command == "batch":
        assert f"{sig.name} received: recording 'sig' stopped" in stopped.stdout, stopped.stdout
        assert f"are checkpointed in {checkpoint}" in stopped.stdout, stopped.stdout
    else:
        words = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
        assert f"({words}: the finished steps load_recording are kept in {checkpoint})" in stopped.stderr, \
            stopped.stderr
    # No traceback of ours (Dask may log one of its own as its workers close under it)
    ours = stopped.stderr.split("hdmea.pipeline.batch.engine: batch stopped by")[-1] if command == "batch" \
        else stopped.stderr
    assert "Traceback" not in ours, ours

    again = subprocess.run(argv, capture_output=True, text=True, env=child_env, timeout=240)
    assert again.returncode == 0, again.stderr
    assert f"resuming from {checkpoint.name} (steps done: load_recording" in again.stderr
    assert not checkpoint.exists()
    assert_files_equal(clean, out / "sig.h5", ignore_attrs=TIMESTAMP_ATTRS)



def test_a_job_on_a_thread_is_stopped_and_a_shielded_write_completes_first():
    """stop_jobs raises Preempted in a job thread; inside shielded() it waits for the block's end."""
    import threading

    from hdmea.pipeline.batch import preemption

    events: list[str] = []
    in_shield, release = threading.Event(), threading.Event()

    def job() -> None:
        try:
            with preemption.job_thread():
                with preemption.shielded():
                    in_shield.set()
                    release.wait(30)
                    for _ in range(200_000):  # Python instructions: a stop would land here if not shielded
                        pass
                    events.append("write completed")
                preemption.raise_if_stopped()
                events.append("went on after the stop")
        except preemption.Preempted as exc:
            events.append(f"stopped by {exc.signal_name}")

    thread = threading.Thread(target=job)
    thread.start()
    try:
        assert in_shield.wait(30)
        assert preemption.stop_jobs("SIGTERM") == 1
        release.set()
        thread.join(30)
    finally:
        preemption._reset()
    assert events == ["write completed", "stopped by SIGTERM"]
    with pytest.raises(preemption.Preempted):  # a job that starts after the stop does not run
        preemption.stop_jobs("SIGINT")
        try:
            with preemption.job_thread():
                pass
        finally:
            preemption._reset()


def test_a_job_that_stops_at_its_own_check_gets_one_stop():
    """stop_jobs's raise and the job's own check between steps race; the job is stopped once.

    The job starts threads back to back (the raise waits while it is inside
    Thread.start), checking for a stop after each: the check waits for a raise
    under way, and a stop still on its way when the job stops on its own is
    taken back, so nothing lands in the handler that writes the checkpoint
    (Python instructions, a function call each).
    """
    import threading

    from hdmea.pipeline.batch import preemption

    def handler_work() -> int:
        return 1

    CHECK = preemption.raise_if_stopped

    for trial in range(100):
        events: list[str] = []
        running = threading.Event()

        def job() -> None:
            try:
                with preemption.job_thread():
                    try:
                        running.set()
                        while True:  # a step that starts a thread, then the check between steps
                            child = threading.Thread(target=int)
                            child.start()
                            child.join()
                            CHECK()
                    except preemption.Preempted:
                        events.append("stopped")
                        total = sum(handler_work() for _ in range(20_000))
                        events.append(f"handler done ({total})")
            except preemption.Preempted:
                events.append("stopped again")

        thread = threading.Thread(target=job)
        thread.start()
        try:
            assert running.wait(30)
            preemption.stop_jobs("SIGTERM")
            thread.join(30)
        finally:
            preemption._reset()
        assert events == ["stopped", "handler done (20000)"], f"trial {trial}: {events}"


MAIN_THREAD_JOB = """
import contextlib, logging, sys, threading, time
from hdmea.pipeline.batch import preemption

logging.basicConfig(level=logging.WARNING)

mode, wait = sys.argv[1:3]
started = threading.Event()
told = []

def tell():
    started.wait(30)
    time.sleep(0.2)
    told.append(preemption.stop_jobs("SIGTERM"))

teller = threading.Thread(target=tell, daemon=True)
teller.start()
t0 = time.monotonic()
try:
    handler = preemption.stop_on_signals() if mode == "handler" else contextlib.nullcontext()
    with handler, preemption.job_thread():
        started.set()
        if wait == "blocking":
            time.sleep(60)  # a blocking wait: a signal ends it
        else:
            while time.monotonic() - t0 < 60:  # Python instructions: the stop lands between two
                pass
    outcome = "not stopped"
except preemption.Preempted as exc:
    outcome = f"stopped by {exc.signal_name} after {time.monotonic() - t0:.1f} s"
teller.join(30)
print(f"told {told}")
print(outcome)
"""


@pytest.mark.parametrize("mode, wait, portable", [("handler", "blocking", False), ("handler", "busy", True),
                                                  ("no-handler", "busy", False)])
def test_stop_jobs_stops_a_job_on_the_main_thread(mode, wait, portable, child_env):
    """stop_jobs from another thread stops the main thread's job: by SIGTERM to that thread, which the handler
    takes as the stop it is (not as a second signal to ignore) and which ends a blocking wait; without the
    handler, or without POSIX signals (Windows; forced here), by Preempted raised at the job's next instruction
    (a blocking wait ends first)."""
    from h5stream import capabilities

    env = {**child_env, capabilities.ENV_VAR: "1" if portable else "0"}
    done = subprocess.run([sys.executable, "-c", MAIN_THREAD_JOB, mode, wait], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert "told [1]" in lines, done.stdout
    stopped = [line for line in lines if line.startswith("stopped by SIGTERM after")]
    assert stopped and float(stopped[0].split()[-2]) < 20, done.stdout + done.stderr
    # The handler took stop_jobs's signal as the stop it is, not as a repeated signal to ignore.
    assert "received again" not in done.stderr, done.stderr


LOOP_JOB = """
import os, signal, sys, threading, time
from hdmea.pipeline.batch import preemption

class Logged:
    def __init__(self, log):
        self.log = log
    def __enter__(self):
        pass
    def __exit__(self, *exc_info):
        self.log.append("exit ran")

outcomes = []
for trial in range(int(sys.argv[1])):
    log = []
    ready = threading.Event()
    def send():
        ready.wait(30)
        time.sleep(0.001 * (trial % 7))
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=send).start()
    n = 0
    try:
        with preemption.stop_on_signals(), preemption.job_thread(), Logged(log):
            ready.set()
            while n < 10**9:  # no call: the stop comes at the loop's closing jump or its start
                n += 1
        log.append("not stopped")
    except preemption.Preempted as exc:
        log.append(f"stopped by {exc.signal_name}")
    outcomes.append(log)
bad = [(trial, log) for trial, log in enumerate(outcomes) if log != ["exit ran", "stopped by SIGTERM"]]
print(f"{len(outcomes) - len(bad)} of {len(outcomes)} stopped inside the job's blocks; otherwise {bad}")
"""


def test_a_signal_during_a_loop_is_taken_by_the_blocks_around_it(child_env):
    """SIGTERM while the main thread's job counts in a loop directly inside its ``with`` and ``try`` blocks (no
    call: the signal handler runs at the loop's closing jump, which CPython 3.13 places outside those blocks):
    every time the job's ``__exit__`` runs and its ``except`` takes the stop (on 3.13 the stop escaped them)."""
    done = subprocess.run([sys.executable, "-c", LOOP_JOB, "20"], capture_output=True, text=True, env=child_env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "20 of 20 stopped inside the job's blocks" in done.stdout, done.stdout + done.stderr


def _job_until_stopped(marker: str) -> str:
    """A job on a process pool worker's main thread, as the batch runs one: it runs until it is stopped."""
    from h5stream import capabilities
    from hdmea.pipeline.batch import preemption

    t0 = time.monotonic()
    try:
        with preemption.stop_on_signals(), preemption.job_thread():
            Path(marker).write_text("started")
            while time.monotonic() - t0 < 60:
                pass
        return "not stopped"
    except preemption.Preempted as exc:
        return f"stopped by {exc.signal_name}; POSIX signals {capabilities.posix_signals()}"


@pytest.mark.parametrize("portable", [False, True], ids=["SIGTERM", "event"])
def test_a_process_pool_worker_is_told_to_stop(portable, tmp_path, monkeypatch):
    """The batch's process pool stops its workers' jobs by an event a thread in each worker waits on, which
    stops the job with the driver's signal by name (on POSIX through SIGTERM to the worker's main thread;
    where SIGTERM would end the worker without a checkpoint, Windows, forced here, by raising in it); the
    job sees Preempted, named for the driver's signal, in both."""
    from h5stream import capabilities
    from hdmea.pipeline.batch.executors import _process_pool

    if portable:
        monkeypatch.setenv(capabilities.ENV_VAR, "1")  # spawned workers inherit it
    pool = _process_pool(1)
    try:
        marker = tmp_path / "started"
        future = pool.submit(_job_until_stopped, str(marker))
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < deadline and not future.done(), "the job did not start"
            time.sleep(0.02)
        pool.stop_jobs("SIGINT")
        expected = f"stopped by SIGINT; POSIX signals {not portable}"
        assert future.result(timeout=30) == expected
    finally:
        pool.close()


def test_the_stop_signals_are_those_the_system_has():
    """SIGTERM and SIGINT everywhere; SIGBREAK (Windows' Ctrl-Break, CTRL_BREAK_EVENT) where it exists."""
    import types

    from hdmea.pipeline.batch.preemption import STOP_SIGNALS, stop_signals

    assert STOP_SIGNALS[:2] == (signal.SIGTERM, signal.SIGINT)
    assert (getattr(signal, "SIGBREAK", None) in STOP_SIGNALS) == hasattr(signal, "SIGBREAK")
    windows = types.SimpleNamespace(SIGTERM=15, SIGINT=2, SIGBREAK=21)
    assert stop_signals(windows) == (15, 2, 21)
    assert stop_signals(types.SimpleNamespace(SIGTERM=15, SIGINT=2)) == (15, 2)


@pytest.mark.slow
def test_a_stop_noted_but_not_raised_ends_the_run_at_the_next_step(recording, tmp_path):
    """A stop the process was told of whose Preempted never reached the runner (here: the handler only notes it)
    still ends the run before the next step, with the finished steps checkpointed."""
    import os

    from hdmea.pipeline.batch.preemption import Preempted, signals_noted, stop_on_signals, stop_requested
    from hdmea.pipeline.run import run_pipeline

    made, config, _clean = recording
    out = tmp_path / "sig.h5"
    ran = []

    def on_step(record):
        ran.append(record.name)
        if len(ran) == 1:
            with signals_noted():  # the handler notes the stop and raises nothing
                os.kill(os.getpid(), signal.SIGTERM)
                deadline = time.monotonic() + 10
                while stop_requested() is None and time.monotonic() < deadline:
                    time.sleep(0.01)
            assert stop_requested() == "SIGTERM"

    with stop_on_signals(), pytest.raises(Preempted) as stop:
        run_pipeline(made.cmcr_path, made.cmtr_path, out, load_config(config), dataset_id="sig",
                     on_step=on_step, show_progress=False)
    assert ran == ["load_recording"]  # nothing after the step in which the stop came
    assert stop.value.signal_name == "SIGTERM" and stop.value.steps_done == ["load_recording"]
    assert checkpoint_path_for(out).exists() and not out.exists()
